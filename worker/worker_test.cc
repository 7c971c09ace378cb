#include "worker/worker.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/genome.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/validation_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/model/checkpoint.h"
#include "worker/model/mlp.h"

namespace evonas::worker {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

// A controller that hands out one lease, serves one data set and one
// checkpoint, and records what the worker does with the lease.
class FakeController final : public v1::WorkerService::Service {
 public:
  FakeController(v1::Lease lease, std::string dataset, std::string checkpoint)
      : lease_(std::move(lease)),
        dataset_(std::move(dataset)),
        checkpoint_(std::move(checkpoint)) {}

  // FetchCheckpoint answers with `status` instead of the checkpoint.
  void FailCheckpoint(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    checkpoint_status_ = std::move(status);
  }

  grpc::Status LeaseWork(grpc::ServerContext*, const v1::LeaseWorkRequest*,
                         v1::LeaseWorkResponse* response) override {
    absl::MutexLock lock(&mu_);
    ++lease_requests_;
    if (!leased_) {
      leased_ = true;
      *response->mutable_lease() = lease_;
    } else {
      response->set_retry_after_seconds(0.05);
    }
    return grpc::Status::OK;
  }

  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*,
                         v1::HeartbeatResponse*) override {
    return grpc::Status::OK;
  }

  grpc::Status ReleaseLease(grpc::ServerContext*,
                            const v1::ReleaseLeaseRequest*,
                            v1::ReleaseLeaseResponse*) override {
    absl::MutexLock lock(&mu_);
    released_ = true;
    return grpc::Status::OK;
  }

  grpc::Status ReportResult(grpc::ServerContext*,
                            grpc::ServerReader<v1::ReportResultRequest>* reader,
                            v1::ReportResultResponse*) override {
    v1::ReportResultRequest request;
    if (!reader->Read(&request)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty report");
    }
    v1::WorkResult result = request.result();
    std::string payload;
    while (reader->Read(&request)) payload += request.model_chunk();
    absl::MutexLock lock(&mu_);
    result_ = std::move(result);
    payload_ = std::move(payload);
    return grpc::Status::OK;
  }

  grpc::Status FetchDataset(
      grpc::ServerContext*, const v1::FetchDatasetRequest* request,
      grpc::ServerWriter<v1::FetchDatasetResponse>* writer) override {
    if (request->dataset_id() != Sha256Hex(dataset_)) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such data set");
    }
    v1::FetchDatasetResponse response;
    response.set_chunk(dataset_);
    response.set_total_bytes(static_cast<int64_t>(dataset_.size()));
    writer->Write(response);
    return grpc::Status::OK;
  }

  grpc::Status FetchCheckpoint(
      grpc::ServerContext*, const v1::FetchCheckpointRequest* request,
      grpc::ServerWriter<v1::FetchCheckpointResponse>* writer) override {
    {
      absl::MutexLock lock(&mu_);
      ++checkpoint_fetches_;
      if (!checkpoint_status_.ok()) return checkpoint_status_;
    }
    if (request->lease_id() != lease_.lease_id() ||
        request->worker_id() != "test-worker") {
      return grpc::Status(grpc::StatusCode::ABORTED, "not your lease");
    }
    // Two chunks, as a large checkpoint would arrive.
    const size_t half = checkpoint_.size() / 2;
    v1::FetchCheckpointResponse first;
    first.set_chunk(checkpoint_.substr(0, half));
    first.set_total_bytes(static_cast<int64_t>(checkpoint_.size()));
    writer->Write(first);
    v1::FetchCheckpointResponse second;
    second.set_chunk(checkpoint_.substr(half));
    writer->Write(second);
    return grpc::Status::OK;
  }

  // Waits until the lease was reported or released, or the worker came back
  // for more work after dropping it; false after `timeout`.
  bool AwaitOutcome(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return result_.has_value() || released_ || lease_requests_ >= 2;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }

  std::optional<v1::WorkResult> result() {
    absl::MutexLock lock(&mu_);
    return result_;
  }
  bool released() {
    absl::MutexLock lock(&mu_);
    return released_;
  }
  int checkpoint_fetches() {
    absl::MutexLock lock(&mu_);
    return checkpoint_fetches_;
  }
  // The reported file of `format` (an artifact after the model); empty when
  // there is none.
  std::string ReportedFile(v1::ModelFormat format) {
    absl::MutexLock lock(&mu_);
    if (!result_.has_value()) return "";
    size_t offset = static_cast<size_t>(result_->model_size_bytes());
    for (const v1::Artifact& artifact : result_->artifacts()) {
      if (artifact.format() == format) {
        return payload_.substr(offset, artifact.size_bytes());
      }
      offset += static_cast<size_t>(artifact.size_bytes());
    }
    return "";
  }

 private:
  const v1::Lease lease_;
  const std::string dataset_;
  const std::string checkpoint_;
  absl::Mutex mu_;
  grpc::Status checkpoint_status_ ABSL_GUARDED_BY(mu_);
  bool leased_ ABSL_GUARDED_BY(mu_) = false;
  int lease_requests_ ABSL_GUARDED_BY(mu_) = 0;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  int checkpoint_fetches_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<v1::WorkResult> result_ ABSL_GUARDED_BY(mu_);
  std::string payload_ ABSL_GUARDED_BY(mu_);  // model, then artifacts
};

v1::Genome ParentGenome() {
  v1::Genome genome;
  v1::DenseLayer* layer = genome.add_hidden_layers();
  layer->set_width(8);
  layer->set_activation(v1::ACTIVATION_TANH);
  genome.mutable_training()->set_learning_rate(1e-2);
  genome.mutable_training()->set_adam_steps(200);
  return genome;
}

// The parent's "trained" weights: random, 2 inputs, 1 output.
model::NetworkParameters ParentNetwork() {
  std::mt19937_64 rng(17);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  model::MlpParameters stage;
  stage.x_mean = {0.1, -0.2};
  stage.x_std = {0.6, 0.5};
  stage.y_mean = {0.3};
  stage.y_std = {1.5};
  model::DenseParameters hidden;
  hidden.inputs = 2;
  hidden.outputs = 8;
  for (int i = 0; i < 16; ++i) hidden.weight.push_back(uniform(rng));
  for (int i = 0; i < 8; ++i) hidden.bias.push_back(0.3 * uniform(rng));
  hidden.activation = v1::ACTIVATION_TANH;
  model::DenseParameters output;
  output.inputs = 8;
  output.outputs = 1;
  for (int i = 0; i < 8; ++i) output.weight.push_back(uniform(rng));
  output.bias = {0.1};
  stage.layers = {hidden, output};
  model::NetworkParameters network;
  network.stages = {stage};
  return network;
}

// 300 rows of y = parent(x): the parent fits its data exactly, so a child
// that starts from its weights starts with (almost) no error.
std::string ParentDataset(const model::NetworkParameters& parent) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::vector<double> x;
  for (int i = 0; i < 600; ++i) x.push_back(uniform(rng));
  const std::vector<double> y = model::Forward(parent, x, 300);
  std::string csv = "a,b,y\n";
  for (int r = 0; r < 300; ++r) {
    csv += absl::StrFormat("%.17g,%.17g,%.17g\n", x[2 * r], x[2 * r + 1],
                           y[r]);
  }
  return csv;
}

class InheritingLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("worker_" + std::string(::testing::UnitTest::GetInstance()
                                        ->current_test_info()
                                        ->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    parent_ = ParentNetwork();
    dataset_ = ParentDataset(parent_);
    checkpoint_ = model::SerializeCheckpoint(parent_);
    log::SetSinkForTesting([this](absl::string_view line) {
      absl::MutexLock lock(&log_mu_);
      log_lines_.emplace_back(line);
    });
  }
  void TearDown() override {
    log::SetSinkForTesting(nullptr);
    std::filesystem::remove_all(dir_);
  }

  // The worker's log lines so far.
  std::vector<std::string> LogLines() {
    absl::MutexLock lock(&log_mu_);
    return log_lines_;
  }

  // A lease for `child` that inherits from the parent by `kind` at layer 0
  // of stage 0 (or trains from scratch when `inherit` is false). One Adam
  // step at a tiny learning rate: the result is where training started.
  v1::Lease MakeLease(const v1::Genome& child, v1::MorphismKind kind,
                      bool inherit = true) {
    v1::Lease lease;
    lease.set_lease_id("lease-1");
    lease.set_candidate_id("child");
    *lease.mutable_genome() = child;
    lease.mutable_genome()->mutable_training()->set_learning_rate(1e-9);
    lease.mutable_genome()->mutable_training()->set_adam_steps(4);
    lease.mutable_genome()->mutable_training()->set_lbfgs_steps(0);
    lease.set_dataset_id(Sha256Hex(dataset_));
    lease.add_input_columns("a");
    lease.add_input_columns("b");
    lease.add_output_columns("y");
    lease.mutable_validation_split()->set_seed(3);
    lease.mutable_validation_split()->set_fraction(0.25);
    lease.set_within_tolerance(1e-6);
    lease.set_seed(9);
    lease.set_heartbeat_interval_seconds(1);
    if (inherit) {
      Inherit(lease, ParentGenome(), kind, checkpoint_);
      lease.mutable_inheritance()->set_step_fraction(0.25);
    }
    return lease;
  }

  // A classification lease of `genome` on `csv`'s 1x2 images: four Adam
  // steps at a learning rate of 1e-9, from scratch.
  v1::Lease ConvChildLease(const v1::Genome& genome, const std::string& csv) {
    v1::Lease lease = MakeLease(genome, v1::MORPHISM_KIND_CONTINUE, false);
    lease.set_dataset_id(Sha256Hex(csv));
    lease.set_task(v1::TASK_CLASSIFICATION);
    lease.set_class_count(2);
    lease.add_image_shape(1);
    lease.add_image_shape(2);
    return lease;
  }

  // A parent of `lease`'s genome trained for real (300 Adam steps at 1e-2)
  // by a worker on `csv`, and its checkpoint as the worker reported it.
  struct TrainedParent {
    v1::WorkResult result;
    std::string checkpoint;
  };
  TrainedParent TrainConvParent(v1::Lease lease, const std::string& csv) {
    lease.mutable_genome()->mutable_training()->set_learning_rate(1e-2);
    lease.mutable_genome()->mutable_training()->set_adam_steps(300);
    FakeController controller(lease, csv, checkpoint_);
    RunWorker(controller);
    TrainedParent parent;
    std::optional<v1::WorkResult> result = controller.result();
    EXPECT_TRUE(result.has_value());
    if (!result.has_value()) return parent;
    EXPECT_EQ(result->failure_reason(), "");
    parent.result = *result;
    parent.checkpoint = controller.ReportedFile(v1::MODEL_FORMAT_CHECKPOINT);
    return parent;
  }

  // Makes `lease` inherit from `parent_genome`'s `checkpoint` by `kind`
  // (layer 0 of stage 0), training all of its steps.
  static void Inherit(v1::Lease& lease, const v1::Genome& parent_genome,
                      v1::MorphismKind kind, const std::string& checkpoint) {
    v1::Inheritance* inheritance = lease.mutable_inheritance();
    inheritance->set_parent_candidate_id("parent");
    *inheritance->mutable_parent_genome() = parent_genome;
    inheritance->mutable_morphism()->set_kind(kind);
    inheritance->set_checkpoint_size_bytes(
        static_cast<int64_t>(checkpoint.size()));
    inheritance->set_checkpoint_sha256(Sha256Hex(checkpoint));
    inheritance->set_step_fraction(1);
  }

  // Runs a worker (parsing data sets within `limits`) against `controller`
  // until the lease's outcome.
  void RunWorker(FakeController& controller,
                 const DatasetLimits& limits = {}) {
    grpc::ServerBuilder builder;
    builder.RegisterService(&controller);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    WorkerOptions options;
    options.worker_id = "test-worker";
    options.cache_dir = (dir_ / "cache").string();
    options.powercap_dir = (dir_ / "no-powercap").string();
    options.rpc_timeout = absl::Seconds(10);
    options.dataset_limits = limits;
    Worker worker(options,
                  server->InProcessChannel(grpc::ChannelArguments()));
    std::thread run([&worker] { worker.Run(); });
    EXPECT_TRUE(controller.AwaitOutcome(absl::Minutes(3)));
    worker.RequestStop();
    run.join();
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
  }

  std::filesystem::path dir_;
  model::NetworkParameters parent_;
  std::string dataset_;
  std::string checkpoint_;
  absl::Mutex log_mu_;
  std::vector<std::string> log_lines_ ABSL_GUARDED_BY(log_mu_);
};

TEST_F(InheritingLeaseTest, ContinueTrainsFromTheParentsWeights) {
  FakeController controller(
      MakeLease(ParentGenome(), v1::MORPHISM_KIND_CONTINUE), dataset_,
      checkpoint_);
  RunWorker(controller);
  EXPECT_EQ(controller.checkpoint_fetches(), 1);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  ASSERT_EQ(result->failure_reason(), "");
  // The parent fits the data exactly; a tiny step barely moves it.
  EXPECT_LT(result->metrics().validation().max_abs_error(), 1e-6);
  EXPECT_EQ(result->metrics().energy_source(), v1::ENERGY_SOURCE_ESTIMATED);
  EXPECT_GT(result->metrics().training_cpu_seconds(), 0.0);
  EXPECT_DOUBLE_EQ(result->metrics().training_energy_joules(),
                   result->metrics().training_cpu_seconds() *
                       kDefaultWattsPerCore);
  // One logfmt line per step, in the order they happened.
  const std::vector<std::string> lines = LogLines();
  EXPECT_THAT(lines, Contains(AllOf(HasSubstr(" level=info event=training "),
                                    HasSubstr(" candidate=child "),
                                    HasSubstr(" lease=lease-1 "))));
  EXPECT_THAT(lines,
              Contains(AllOf(HasSubstr(" level=info event=inherited "),
                             HasSubstr(" parent=parent "),
                             HasSubstr(" morphism=MORPHISM_KIND_CONTINUE "))));
  EXPECT_THAT(lines, Contains(AllOf(HasSubstr(" event=trained "),
                                    HasSubstr(" candidate=child "))));
  // And one line per trained stage, with when each phase last improved.
  EXPECT_THAT(lines, Contains(AllOf(HasSubstr(" event=stage_trained "),
                                    HasSubstr(" candidate=child stage=0 "),
                                    HasSubstr(" inherited=yes "),
                                    HasSubstr(" adam_best_step="),
                                    HasSubstr(" lbfgs_seconds="))));
  EXPECT_THAT(lines, Not(Contains(HasSubstr("evonas-worker:"))));
}

TEST_F(InheritingLeaseTest, FromScratchTheSameLeaseIsFarOff) {
  // The control experiment of the test above: without the parent's weights
  // four tiny steps leave a random network.
  FakeController controller(
      MakeLease(ParentGenome(), v1::MORPHISM_KIND_CONTINUE, false), dataset_,
      checkpoint_);
  RunWorker(controller);
  EXPECT_EQ(controller.checkpoint_fetches(), 0);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  ASSERT_EQ(result->failure_reason(), "");
  EXPECT_GT(result->metrics().validation().max_abs_error(), 1e-2);
}

TEST_F(InheritingLeaseTest, ShortRunTrainsItsFractionOfTheSteps) {
  // Multi-fidelity level 1 without a parent: Lease.step_fraction alone.
  v1::Lease lease =
      MakeLease(ParentGenome(), v1::MORPHISM_KIND_CONTINUE, false);
  lease.set_step_fraction(0.25);
  FakeController controller(lease, dataset_, checkpoint_);
  RunWorker(controller);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  ASSERT_EQ(result->failure_reason(), "");
  EXPECT_THAT(LogLines(), Contains(AllOf(HasSubstr(" event=training "),
                                         HasSubstr(" step_fraction=0.25"))));
}

TEST_F(InheritingLeaseTest, RequirementsTimeLimitStopsTraining) {
  v1::Lease lease =
      MakeLease(ParentGenome(), v1::MORPHISM_KIND_CONTINUE, false);
  lease.mutable_genome()->mutable_training()->set_adam_steps(kMaxAdamSteps);
  lease.mutable_requirements()->set_max_training_seconds(0.5);
  FakeController controller(lease, dataset_, checkpoint_);
  RunWorker(controller);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  ASSERT_EQ(result->failure_reason(), "");
  EXPECT_TRUE(result->metrics().stopped_at_time_limit());
  // Loose: the limit is kept by construction, but a loaded machine may pause
  // the worker between the trainer's last check and the end.
  EXPECT_LT(result->metrics().training_seconds(), 1.5);
  EXPECT_THAT(LogLines(),
              Contains(AllOf(HasSubstr(" event=trained "),
                             HasSubstr(" stopped_at_time_limit=yes"))));
}

TEST_F(InheritingLeaseTest, RefitTrainsOnEveryRowAndReportsThem) {
  // No validation rows (a refit, continuing from its member's weights):
  // the training rows stand in for them, in the metrics, the int8 metrics
  // and the model card.
  v1::Lease lease = MakeLease(ParentGenome(), v1::MORPHISM_KIND_CONTINUE);
  lease.mutable_validation_split()->set_fraction(0);
  FakeController controller(lease, dataset_, checkpoint_);
  RunWorker(controller);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  ASSERT_EQ(result->failure_reason(), "");
  const v1::Metrics& m = result->metrics();
  const int64_t rows = 300;  // all of ParentDataset's
  EXPECT_EQ(m.training_row_count(), rows);
  EXPECT_EQ(m.validation().row_count(), rows);
  EXPECT_EQ(m.int8().validation().row_count(), rows);
  // The parent fits every row exactly; continuing keeps it there.
  EXPECT_LT(m.validation().max_abs_error(), 1e-6);
  EXPECT_EQ(controller.checkpoint_fetches(), 1);
  EXPECT_THAT(controller.ReportedFile(v1::MODEL_FORMAT_MODEL_CARD),
              HasSubstr(R"("judged_on": "training")"));
}

TEST_F(InheritingLeaseTest, ShortRunTrainsOnItsSubsetOfTheTrainingRows) {
  v1::Lease lease =
      MakeLease(ParentGenome(), v1::MORPHISM_KIND_CONTINUE, false);
  lease.set_training_row_fraction(0.5);
  FakeController controller(lease, dataset_, checkpoint_);
  RunWorker(controller);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  ASSERT_EQ(result->failure_reason(), "");
  const RowPartition rows = PartitionRows(lease.validation_split(), 300);
  const size_t subset =
      TrainingRowSubset(rows.training, lease.validation_split().seed(), 0.5)
          .size();
  ASSERT_LT(subset, rows.training.size());
  EXPECT_EQ(result->metrics().training_row_count(),
            static_cast<int64_t>(subset));
  // Judged on all validation rows, as a full run is.
  EXPECT_EQ(result->metrics().validation().row_count(),
            static_cast<int64_t>(rows.validation.size()));
  EXPECT_THAT(LogLines(), Contains(AllOf(HasSubstr(" event=training "),
                                         HasSubstr(" row_fraction=0.5"))));
}

TEST_F(InheritingLeaseTest, JudgingRowsAreHeldOutAndEvaluated) {
  v1::Lease lease = MakeLease(ParentGenome(), v1::MORPHISM_KIND_CONTINUE);
  lease.mutable_judging_split()->set_seed(77);
  lease.mutable_judging_split()->set_fraction(0.3);
  FakeController controller(lease, dataset_, checkpoint_);
  RunWorker(controller);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  ASSERT_EQ(result->failure_reason(), "");
  const RowPartition rows =
      PartitionRows(lease.validation_split(), 300, lease.judging_split());
  ASSERT_FALSE(rows.judging.empty());
  const v1::Metrics& m = result->metrics();
  EXPECT_EQ(m.training_row_count(), static_cast<int64_t>(rows.training.size()));
  EXPECT_EQ(m.validation().row_count(),
            static_cast<int64_t>(rows.validation.size()));
  ASSERT_TRUE(m.has_judging());
  EXPECT_EQ(m.judging().row_count(), static_cast<int64_t>(rows.judging.size()));
  EXPECT_EQ(m.int8().judging().row_count(),
            static_cast<int64_t>(rows.judging.size()));
  // The parent fits every row; so does the child on rows it never saw.
  EXPECT_LT(m.judging().max_abs_error(), 1e-6);
  EXPECT_THAT(controller.ReportedFile(v1::MODEL_FORMAT_MODEL_CARD),
              HasSubstr(R"("judged_on": "judging")"));
}

TEST_F(InheritingLeaseTest, BogusJudgingFractionFailsTheLease) {
  v1::Lease lease =
      MakeLease(ParentGenome(), v1::MORPHISM_KIND_CONTINUE, false);
  lease.mutable_judging_split()->set_fraction(-0.5);
  FakeController controller(lease, dataset_, checkpoint_);
  RunWorker(controller);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  EXPECT_THAT(result->failure_reason(),
              HasSubstr("judging_split.fraction is -0.5"));
}

TEST_F(InheritingLeaseTest, BogusTrainingRowFractionFailsTheLease) {
  v1::Lease lease =
      MakeLease(ParentGenome(), v1::MORPHISM_KIND_CONTINUE, false);
  lease.set_training_row_fraction(1.5);
  FakeController controller(lease, dataset_, checkpoint_);
  RunWorker(controller);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  EXPECT_THAT(result->failure_reason(),
              HasSubstr("training_row_fraction is 1.5"));
}

// A lease of a 64-64 tanh network, one input and one output: large enough
// that the simulated error depends on the steps and the rows.
v1::Lease SimulatedMlpLease() {
  v1::Lease lease;
  lease.set_lease_id("lease-1");
  v1::Genome& genome = *lease.mutable_genome();
  for (int i = 0; i < 2; ++i) {
    v1::DenseLayer* layer = genome.add_hidden_layers();
    layer->set_width(64);
    layer->set_activation(v1::ACTIVATION_TANH);
  }
  genome.mutable_training()->set_learning_rate(3e-3);
  genome.mutable_training()->set_adam_steps(1000);
  lease.add_input_columns("a");
  lease.add_output_columns("y");
  return lease;
}

TEST(SimulateLeaseTest, StepFractionScalesTheSimulatedTraining) {
  v1::Lease lease = SimulatedMlpLease();
  const v1::Genome genome = lease.genome();
  const double full =
      SimulateLease(lease, "w").result.metrics().training_seconds();
  lease.set_step_fraction(0.25);
  const SimulatedReport short_run = SimulateLease(lease, "w");
  EXPECT_NEAR(short_run.result.metrics().training_seconds(), 0.25 * full,
              1e-12 * full);
  // Its promotion continues for the rest: three quarters of the time.
  lease.set_step_fraction(0.75);
  v1::Inheritance* inheritance = lease.mutable_inheritance();
  *inheritance->mutable_parent_genome() = genome;
  inheritance->mutable_morphism()->set_kind(v1::MORPHISM_KIND_CONTINUE);
  inheritance->set_step_fraction(0.75);
  inheritance->set_parent_step_fraction(0.25);
  const SimulatedReport promotion = SimulateLease(lease, "w");
  EXPECT_NEAR(promotion.result.metrics().training_seconds(), 0.75 * full,
              1e-12 * full);
  EXPECT_LT(promotion.result.metrics().validation().max_abs_error(),
            short_run.result.metrics().validation().max_abs_error());
}

TEST(SimulateLeaseTest, RequirementsTimeLimitStopsTheSimulatedTraining) {
  v1::Lease lease = SimulatedMlpLease();
  const SimulatedReport full = SimulateLease(lease, "w");
  const double seconds = full.result.metrics().training_seconds();
  lease.mutable_requirements()->set_max_training_seconds(0.5 * seconds);
  const SimulatedReport stopped = SimulateLease(lease, "w");
  EXPECT_TRUE(stopped.result.metrics().stopped_at_time_limit());
  EXPECT_EQ(stopped.result.metrics().training_seconds(), 0.5 * seconds);
  EXPECT_GT(stopped.result.metrics().validation().max_abs_error(),
            full.result.metrics().validation().max_abs_error());
}

TEST(SimulateLeaseTest, JudgingRowsAddTheJudgingEvaluation) {
  v1::Lease lease = SimulatedMlpLease();
  EXPECT_FALSE(SimulateLease(lease, "w").result.metrics().has_judging());
  lease.mutable_judging_split()->set_fraction(0.25);
  const v1::Metrics m = SimulateLease(lease, "w").result.metrics();
  ASSERT_TRUE(m.has_judging());
  EXPECT_GT(m.judging().max_abs_error(), 0);
}

TEST(SimulateLeaseTest, RowFractionScalesTheSimulatedTraining) {
  v1::Lease lease = SimulatedMlpLease();
  const v1::Metrics full = SimulateLease(lease, "w").result.metrics();
  lease.set_training_row_fraction(0.25);
  const v1::Metrics subset = SimulateLease(lease, "w").result.metrics();
  EXPECT_NEAR(subset.training_seconds(), 0.25 * full.training_seconds(),
              1e-12 * full.training_seconds());
  EXPECT_EQ(subset.training_row_count(), full.training_row_count() / 4);
  EXPECT_GT(subset.validation().max_abs_error(),
            full.validation().max_abs_error());
  lease.set_training_row_fraction(1.5);
  const SimulatedReport bad = SimulateLease(lease, "w");
  EXPECT_FALSE(bad.result.has_metrics());
  EXPECT_NE(bad.result.failure_reason().find("training_row_fraction is 1.5"),
            std::string::npos)
      << bad.result.failure_reason();
}

TEST(SimulateLeaseTest, ConvolutionalGenomesAreRefusedWithAReason) {
  v1::Lease lease;
  lease.set_lease_id("lease-1");
  v1::Genome& genome = *lease.mutable_genome();
  v1::ConvLayer* conv = genome.add_conv_layers();
  conv->set_channels(4);
  conv->set_kernel_size(3);
  conv->set_activation(v1::ACTIVATION_RELU);
  v1::DenseLayer* dense = genome.add_hidden_layers();
  dense->set_width(8);
  dense->set_activation(v1::ACTIVATION_RELU);
  genome.mutable_training()->set_learning_rate(1e-3);
  genome.mutable_training()->set_adam_steps(10);
  for (int i = 0; i < 16; ++i) lease.add_input_columns(absl::StrCat("p", i));
  lease.add_output_columns("y");
  lease.add_image_shape(4);
  lease.add_image_shape(4);
  const SimulatedReport report = SimulateLease(lease, "w");
  EXPECT_THAT(report.result.failure_reason(),
              HasSubstr("the simulated evaluator models MLPs only"));
}

TEST_F(InheritingLeaseTest, WidenedChildStartsFromTheWidenedParent) {
  v1::Genome child = ParentGenome();
  child.mutable_hidden_layers(0)->set_width(13);
  FakeController controller(MakeLease(child, v1::MORPHISM_KIND_WIDEN),
                            dataset_, checkpoint_);
  RunWorker(controller);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  ASSERT_EQ(result->failure_reason(), "");
  EXPECT_EQ(result->metrics().parameter_count(), 2 * 13 + 13 + 13 + 1);
  EXPECT_LT(result->metrics().validation().max_abs_error(), 1e-6);
}

TEST_F(InheritingLeaseTest, AddedStageTrainsAloneOnTopOfTheFrozenParent) {
  v1::Genome child = ParentGenome();
  v1::Stage* stage = child.add_residual_stages();
  v1::DenseLayer* layer = stage->add_hidden_layers();
  layer->set_width(4);
  layer->set_activation(v1::ACTIVATION_SINE);
  stage->mutable_training()->set_learning_rate(1e-3);
  stage->mutable_training()->set_adam_steps(40);
  v1::Lease lease = MakeLease(child, v1::MORPHISM_KIND_ADD_STAGE);
  lease.mutable_inheritance()->mutable_morphism()->set_stage(1);
  FakeController controller(lease, dataset_, checkpoint_);
  RunWorker(controller);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  ASSERT_EQ(result->failure_reason(), "");
  absl::StatusOr<model::NetworkParameters> trained = model::ParseCheckpoint(
      controller.ReportedFile(v1::MODEL_FORMAT_CHECKPOINT));
  ASSERT_TRUE(trained.ok()) << trained.status();
  ASSERT_EQ(trained->stages.size(), 2u);
  // The parent's stage is frozen: bit for bit its weights.
  const model::MlpParameters& first = trained->stages[0];
  const model::MlpParameters& inherited = parent_.stages[0];
  EXPECT_EQ(first.x_mean, inherited.x_mean);
  EXPECT_EQ(first.y_std, inherited.y_std);
  for (size_t l = 0; l < inherited.layers.size(); ++l) {
    EXPECT_EQ(first.layers[l].weight, inherited.layers[l].weight);
    EXPECT_EQ(first.layers[l].bias, inherited.layers[l].bias);
  }
  EXPECT_EQ(trained->stages[1].layers.size(), 2u);
  EXPECT_LT(result->metrics().validation().max_abs_error(), 1e-6);
}

TEST_F(InheritingLeaseTest, MorphismTheGenomesDoNotShowFailsTheCandidate) {
  v1::Genome child = ParentGenome();
  child.mutable_hidden_layers(0)->set_width(5);  // narrower, not wider
  FakeController controller(MakeLease(child, v1::MORPHISM_KIND_WIDEN),
                            dataset_, checkpoint_);
  RunWorker(controller);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  EXPECT_THAT(result->failure_reason(), HasSubstr("inheriting from parent"));
  EXPECT_THAT(result->failure_reason(), HasSubstr("it must grow"));
}

TEST_F(InheritingLeaseTest, CorruptCheckpointFailsTheCandidate) {
  v1::Lease lease = MakeLease(ParentGenome(), v1::MORPHISM_KIND_CONTINUE);
  lease.mutable_inheritance()->set_checkpoint_sha256(std::string(64, '0'));
  FakeController controller(lease, dataset_, checkpoint_);
  RunWorker(controller);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  EXPECT_THAT(result->failure_reason(), HasSubstr("SHA-256"));
  EXPECT_THAT(result->failure_reason(), HasSubstr("parent"));
}

TEST_F(InheritingLeaseTest, CheckpointOfAnotherSizeFailsTheCandidate) {
  v1::Lease lease = MakeLease(ParentGenome(), v1::MORPHISM_KIND_CONTINUE);
  lease.mutable_inheritance()->set_checkpoint_size_bytes(
      static_cast<int64_t>(checkpoint_.size()) - 1);
  FakeController controller(lease, dataset_, checkpoint_);
  RunWorker(controller);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  EXPECT_THAT(result->failure_reason(),
              HasSubstr(absl::StrCat("the controller announces ",
                                     checkpoint_.size(), " bytes, the lease "
                                     "says ", checkpoint_.size() - 1)));
}

TEST_F(InheritingLeaseTest, CheckpointOfAnotherGenomeFailsTheCandidate) {
  v1::Lease lease = MakeLease(ParentGenome(), v1::MORPHISM_KIND_CONTINUE);
  lease.mutable_inheritance()
      ->mutable_parent_genome()
      ->mutable_hidden_layers(0)
      ->set_activation(v1::ACTIVATION_SILU);
  *lease.mutable_genome()->mutable_hidden_layers(0) =
      lease.inheritance().parent_genome().hidden_layers(0);
  FakeController controller(lease, dataset_, checkpoint_);
  RunWorker(controller);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  EXPECT_THAT(result->failure_reason(),
              HasSubstr("weights do not fit its genome"));
}

TEST_F(InheritingLeaseTest, NonFiniteParentFailsTheCandidate) {
  model::NetworkParameters broken = parent_;
  broken.stages[0].layers[1].bias[0] = std::nan("");
  const std::string checkpoint = model::SerializeCheckpoint(broken);
  v1::Lease lease = MakeLease(ParentGenome(), v1::MORPHISM_KIND_CONTINUE);
  lease.mutable_inheritance()->set_checkpoint_size_bytes(
      static_cast<int64_t>(checkpoint.size()));
  lease.mutable_inheritance()->set_checkpoint_sha256(Sha256Hex(checkpoint));
  FakeController controller(lease, dataset_, checkpoint);
  RunWorker(controller);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  EXPECT_THAT(result->failure_reason(),
              HasSubstr("cannot check that MORPHISM_KIND_CONTINUE of parent "
                        "parent preserves its outputs"));
  EXPECT_THAT(result->failure_reason(), HasSubstr("is nan"));
}

TEST_F(InheritingLeaseTest, LostLeaseIsDropped) {
  FakeController controller(
      MakeLease(ParentGenome(), v1::MORPHISM_KIND_CONTINUE), dataset_,
      checkpoint_);
  controller.FailCheckpoint(
      grpc::Status(grpc::StatusCode::ABORTED, "lease expired"));
  RunWorker(controller);
  EXPECT_EQ(controller.checkpoint_fetches(), 1);
  EXPECT_FALSE(controller.result().has_value());
  EXPECT_FALSE(controller.released());
  const std::vector<std::string> lines = LogLines();
  EXPECT_THAT(lines,
              Contains(AllOf(HasSubstr(" level=warning event=lease_lost "),
                             HasSubstr(" candidate=child "),
                             HasSubstr("lease expired"))));
  EXPECT_THAT(lines, Not(Contains(HasSubstr(" event=gave_back "))));
}

TEST_F(InheritingLeaseTest, UnreachableCheckpointGivesTheLeaseBack) {
  FakeController controller(
      MakeLease(ParentGenome(), v1::MORPHISM_KIND_CONTINUE), dataset_,
      checkpoint_);
  controller.FailCheckpoint(
      grpc::Status(grpc::StatusCode::UNAVAILABLE, "blob store busy"));
  RunWorker(controller);
  EXPECT_FALSE(controller.result().has_value());
  EXPECT_TRUE(controller.released());
  // Why the lease went back, then that it did.
  const std::vector<std::string> lines = LogLines();
  EXPECT_THAT(lines,
              Contains(AllOf(HasSubstr(" level=warning event=giving_back "),
                             HasSubstr(" candidate=child "),
                             HasSubstr("blob store busy"))));
  EXPECT_THAT(lines, Contains(AllOf(HasSubstr(" level=info event=gave_back "),
                                    HasSubstr(" candidate=child"))));
}

// A genome of one 1x1 convolution on the lease's 2-pixel images.
v1::Genome ConvGenome() {
  v1::Genome genome = ParentGenome();
  v1::ConvLayer* conv = genome.add_conv_layers();
  conv->set_channels(2);
  conv->set_kernel_size(1);
  conv->set_activation(v1::ACTIVATION_RELU);
  return genome;
}

TEST_F(InheritingLeaseTest, ConvGenomeWithoutImageShapeFailsTheCandidate) {
  v1::Lease lease = MakeLease(ConvGenome(), v1::MORPHISM_KIND_CONTINUE, false);
  lease.set_task(v1::TASK_CLASSIFICATION);
  lease.set_class_count(2);
  FakeController controller(lease, dataset_, checkpoint_);
  RunWorker(controller);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  EXPECT_THAT(result->failure_reason(), HasSubstr("no image_shape"));
  EXPECT_THAT(result->failure_reason(), HasSubstr("convolutional"));
}

// 1x2 "images" (the columns a and b); the class is whether a > b.
std::string ComparisonDataset() {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> uniform(0.0, 255.0);
  std::string csv = "a,b,y\n";
  for (int r = 0; r < 200; ++r) {
    const double a = uniform(rng), b = uniform(rng);
    csv += absl::StrFormat("%.17g,%.17g,%d\n", a, b, a > b ? 1 : 0);
  }
  return csv;
}

TEST_F(InheritingLeaseTest, ConvGenomeTrainsOnTheLeasesImageShape) {
  const std::string csv = ComparisonDataset();
  const TrainedParent trained =
      TrainConvParent(ConvChildLease(ConvGenome(), csv), csv);
  ASSERT_EQ(trained.result.failure_reason(), "");
  EXPECT_GE(trained.result.metrics().validation().accuracy(), 0.9);
  EXPECT_GT(trained.result.model_size_bytes(), 0);
}

TEST_F(InheritingLeaseTest, ConvChildContinuesFromItsParentsCheckpoint) {
  const std::string csv = ComparisonDataset();
  v1::Genome genome = ConvGenome();
  genome.mutable_conv_layers(0)->set_batch_norm(true);
  v1::Lease lease = ConvChildLease(genome, csv);
  const TrainedParent parent = TrainConvParent(lease, csv);
  ASSERT_FALSE(parent.checkpoint.empty());
  absl::StatusOr<model::NetworkParameters> parent_weights =
      model::ParseCheckpoint(parent.checkpoint);
  ASSERT_TRUE(parent_weights.ok()) << parent_weights.status();
  ASSERT_EQ(parent_weights->stages.at(0).conv_layers.size(), 1u);
  EXPECT_TRUE(parent_weights->stages[0].conv_layers[0].batch_norm);

  // Four steps at a learning rate of 1e-9 from the parent's weights (which
  // compete for the best): the child is as good as its parent.
  Inherit(lease, genome, v1::MORPHISM_KIND_CONTINUE, parent.checkpoint);
  FakeController controller(lease, csv, parent.checkpoint);
  RunWorker(controller);
  std::optional<v1::WorkResult> child = controller.result();
  ASSERT_TRUE(child.has_value());
  ASSERT_EQ(child->failure_reason(), "");
  EXPECT_EQ(controller.checkpoint_fetches(), 1);
  EXPECT_GE(child->metrics().validation().accuracy(),
            parent.result.metrics().validation().accuracy());
}

// NARROW of a convolutional layer through a worker: the lease's rows, read
// as images, score the parent's channels; the child keeps the best two of
// four and, after four steps at a learning rate of 1e-9, classifies nearly
// as well as its parent (a fresh network that trained as little guesses).
TEST_F(InheritingLeaseTest, ConvChildNarrowsItsParentsChannels) {
  const std::string csv = ComparisonDataset();
  v1::Genome parent_genome = ConvGenome();
  parent_genome.mutable_conv_layers(0)->set_channels(4);
  parent_genome.mutable_conv_layers(0)->set_batch_norm(true);
  v1::Lease parent_lease = ConvChildLease(parent_genome, csv);
  const TrainedParent parent = TrainConvParent(parent_lease, csv);
  ASSERT_FALSE(parent.checkpoint.empty());
  const double parent_accuracy =
      parent.result.metrics().validation().accuracy();
  ASSERT_GE(parent_accuracy, 0.9);

  v1::Genome child_genome = parent_genome;
  child_genome.mutable_conv_layers(0)->set_channels(2);
  v1::Lease lease = ConvChildLease(child_genome, csv);
  Inherit(lease, parent_genome, v1::MORPHISM_KIND_NARROW, parent.checkpoint);
  lease.mutable_inheritance()->mutable_morphism()->set_conv(true);
  FakeController controller(lease, csv, parent.checkpoint);
  RunWorker(controller);
  std::optional<v1::WorkResult> child = controller.result();
  ASSERT_TRUE(child.has_value());
  ASSERT_EQ(child->failure_reason(), "");
  EXPECT_GE(child->metrics().validation().accuracy(), parent_accuracy - 0.1);
  EXPECT_THAT(LogLines(),
              Contains(AllOf(HasSubstr(" event=inherited "),
                             HasSubstr(" morphism=MORPHISM_KIND_NARROW "))));
  absl::StatusOr<model::NetworkParameters> child_weights =
      model::ParseCheckpoint(
          controller.ReportedFile(v1::MODEL_FORMAT_CHECKPOINT));
  ASSERT_TRUE(child_weights.ok()) << child_weights.status();
  EXPECT_EQ(child_weights->stages.at(0).conv_layers.at(0).out_channels, 2);
}

// ComparisonDataset's kind of rows as an IDX data set of 1x2 images (pixel
// values 0..255, label whether the first pixel is larger), and the same
// values as a CSV with the IDX column names.
struct ImagePair {
  std::string idx;
  std::string csv;
};
ImagePair ComparisonImages() {
  constexpr int kImages = 120;
  const auto big_endian = [](uint32_t v) {
    std::string out;
    for (int shift = 24; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>((v >> shift) & 0xFF));
    }
    return out;
  };
  std::mt19937_64 rng(13);
  std::uniform_int_distribution<int> pixel(0, 255);
  ImagePair pair;
  std::string pixels, labels;
  pair.csv = "pixel_0,pixel_1,label\n";
  for (int i = 0; i < kImages; ++i) {
    const int a = pixel(rng), b = pixel(rng);
    pixels.push_back(static_cast<char>(a));
    pixels.push_back(static_cast<char>(b));
    labels.push_back(static_cast<char>(a > b ? 1 : 0));
    pair.csv += absl::StrFormat("%d,%d,%d\n", a, b, a > b ? 1 : 0);
  }
  pair.idx = big_endian(0x803) + big_endian(kImages) + big_endian(1) +
             big_endian(2) + pixels + big_endian(0x801) +
             big_endian(kImages) + labels;
  return pair;
}

// A classification lease of `genome` on `data` (also its test set) with the
// columns of an IDX data set of 1x2 images.
v1::Lease ImageLease(v1::Lease lease, const std::string& data,
                     v1::DatasetFormat format) {
  lease.mutable_genome()->mutable_training()->set_learning_rate(1e-2);
  lease.mutable_genome()->mutable_training()->set_adam_steps(300);
  lease.set_dataset_id(Sha256Hex(data));
  lease.set_test_dataset_id(Sha256Hex(data));
  lease.set_dataset_format(format);
  lease.clear_input_columns();
  lease.add_input_columns("pixel_0");
  lease.add_input_columns("pixel_1");
  lease.clear_output_columns();
  lease.add_output_columns("label");
  lease.set_task(v1::TASK_CLASSIFICATION);
  lease.set_class_count(2);
  lease.add_image_shape(1);
  lease.add_image_shape(2);
  return lease;
}

// The worker keeps an IDX data set as its bytes and builds the job's rows
// from them: the trained model is bit for bit the one it trains on a CSV of
// the same values (which it keeps as doubles), for an MLP and a
// convolutional genome alike.
TEST_F(InheritingLeaseTest, IdxDataTrainsTheModelOfTheSameValuesAsCsv) {
  const ImagePair data = ComparisonImages();
  for (const v1::Genome& genome : {ParentGenome(), ConvGenome()}) {
    const v1::Lease base =
        MakeLease(genome, v1::MORPHISM_KIND_CONTINUE, /*inherit=*/false);
    std::optional<v1::WorkResult> results[2];
    int i = 0;
    for (const auto& [bytes, format] :
         {std::pair<std::string, v1::DatasetFormat>{data.idx,
                                                     v1::DATASET_FORMAT_IDX},
          {data.csv, v1::DATASET_FORMAT_CSV}}) {
      FakeController controller(ImageLease(base, bytes, format), bytes,
                                checkpoint_);
      RunWorker(controller);
      results[i] = controller.result();
      ASSERT_TRUE(results[i].has_value());
      ASSERT_EQ(results[i]->failure_reason(), "");
      ++i;
    }
    EXPECT_GE(results[0]->metrics().validation().accuracy(), 0.8);
    EXPECT_EQ(results[0]->model_sha256(), results[1]->model_sha256())
        << "conv layers: " << genome.conv_layers_size();
    EXPECT_EQ(results[0]->metrics().test().SerializeAsString(),
              results[1]->metrics().test().SerializeAsString());
    EXPECT_EQ(results[0]->metrics().validation().SerializeAsString(),
              results[1]->metrics().validation().SerializeAsString());
  }
}

TEST_F(InheritingLeaseTest, DataSetOverTheWorkersValueLimitFailsNamingTheFlag) {
  const ImagePair data = ComparisonImages();  // 120 x 3 = 360 values
  FakeController controller(
      ImageLease(MakeLease(ParentGenome(), v1::MORPHISM_KIND_CONTINUE, false),
                 data.idx, v1::DATASET_FORMAT_IDX),
      data.idx, checkpoint_);
  DatasetLimits limits;
  limits.idx.max_values = 359;
  RunWorker(controller, limits);
  std::optional<v1::WorkResult> result = controller.result();
  ASSERT_TRUE(result.has_value());
  EXPECT_THAT(result->failure_reason(),
              HasSubstr("120 images of 1x2 pixels and their labels are 360 "
                        "values, more than the limit of 359"));
  EXPECT_THAT(result->failure_reason(), HasSubstr("--max-dataset-values"));
}

}  // namespace
}  // namespace evonas::worker
