#include "server/grpc_services.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "common/genome.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "server/testing_checkpoint.h"

namespace evonas {
namespace {

constexpr char kCsv[] = "x,y\n0,0\n1,1\n2,2\n3,3\n4,4\n5,5\n6,6\n7,7\n";

// EvonasServiceImpl over a real Controller, served in process.
class WatchExperimentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("grpc_services_" + std::string(::testing::UnitTest::GetInstance()
                                               ->current_test_info()
                                               ->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ControllerOptions options;
    options.db_path = (dir_ / "evonas.db").string();
    options.data_dir = (dir_ / "data").string();
    controller_ = Controller::Create(options).value();
    service_ = std::make_unique<EvonasServiceImpl>(controller_.get());
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    stub_ = v1::EvonasService::NewStub(
        server_->InProcessChannel(grpc::ChannelArguments()));
  }

  void TearDown() override {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(5));
    std::filesystem::remove_all(dir_);
  }

  std::string CreateExperiment() {
    auto upload = controller_->BeginUpload("data.csv", sizeof(kCsv) - 1);
    EXPECT_TRUE((*upload)->Append(kCsv).ok());
    const v1::Dataset dataset = (*upload)->Finish().value();
    v1::ExperimentSpec spec;
    spec.set_dataset_id(dataset.id());
    spec.add_input_columns("x");
    spec.add_output_columns("y");
    spec.mutable_budget()->set_max_candidates(3);
    return controller_->CreateExperiment(spec).value().id();
  }

  std::unique_ptr<grpc::ClientReader<v1::Experiment>> Watch(
      grpc::ClientContext* context, const std::string& id) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(30));
    v1::WatchExperimentRequest request;
    request.set_experiment_id(id);
    return stub_->WatchExperiment(context, request);
  }

  std::filesystem::path dir_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<EvonasServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::EvonasService::Stub> stub_;
};

TEST_F(WatchExperimentTest, SendsTheExperimentThenItsChangesUntilItEnds) {
  const std::string id = CreateExperiment();
  grpc::ClientContext context;
  auto reader = Watch(&context, id);
  v1::Experiment experiment;
  ASSERT_TRUE(reader->Read(&experiment));
  EXPECT_EQ(experiment.id(), id);
  EXPECT_EQ(experiment.state(), v1::EXPERIMENT_STATE_RUNNING);

  ASSERT_TRUE(controller_->CancelExperiment(id).ok());
  ASSERT_TRUE(reader->Read(&experiment));
  EXPECT_EQ(experiment.state(), v1::EXPERIMENT_STATE_CANCELLED);
  EXPECT_FALSE(reader->Read(&experiment));
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(WatchExperimentTest, AFinishedExperimentIsSentOnce) {
  const std::string id = CreateExperiment();
  ASSERT_TRUE(controller_->CancelExperiment(id).ok());
  grpc::ClientContext context;
  auto reader = Watch(&context, id);
  v1::Experiment experiment;
  ASSERT_TRUE(reader->Read(&experiment));
  EXPECT_EQ(experiment.state(), v1::EXPERIMENT_STATE_CANCELLED);
  EXPECT_FALSE(reader->Read(&experiment));
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(WatchExperimentTest, UnknownExperimentIsNotFound) {
  grpc::ClientContext context;
  auto reader = Watch(&context, "exp-nope");
  v1::Experiment experiment;
  EXPECT_FALSE(reader->Read(&experiment));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(WatchExperimentTest, ClientCancellationEndsTheStream) {
  const std::string id = CreateExperiment();
  grpc::ClientContext context;
  auto reader = Watch(&context, id);
  v1::Experiment experiment;
  ASSERT_TRUE(reader->Read(&experiment));
  context.TryCancel();
  while (reader->Read(&experiment)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // TearDown's Shutdown returns promptly: the handler noticed and left.
}

// Proposes two hidden layers of width 400 + sequence; every candidate after
// the first inherits from the first succeeded one (WIDEN), so its
// checkpoint is about 1.3 MB: more than one 1 MiB chunk.
class WideInheritingStrategy : public search::Strategy {
 public:
  search::Proposal Propose(
      int64_t sequence, const std::vector<v1::Candidate>& finished) override {
    search::Proposal proposal;
    for (int i = 0; i < 2; ++i) {
      v1::DenseLayer* layer = proposal.genome.add_hidden_layers();
      layer->set_width(static_cast<int>(400 + sequence % 100));
      layer->set_activation(v1::ACTIVATION_TANH);
    }
    proposal.genome.mutable_training()->set_learning_rate(1e-3);
    proposal.genome.mutable_training()->set_adam_steps(100);
    for (const v1::Candidate& c : finished) {
      if (c.state() != v1::CANDIDATE_STATE_SUCCEEDED) continue;
      proposal.parent_id = c.id();
      proposal.morphism.set_kind(v1::MORPHISM_KIND_WIDEN);
      break;
    }
    return proposal;
  }
};

TEST(FetchCheckpointTest, StreamsTheParentsCheckpointInChunksOfAtMostOneMiB) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / "grpc_services_fetch";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  ControllerOptions options;
  options.db_path = (dir / "evonas.db").string();
  options.data_dir = (dir / "data").string();
  options.make_strategy = [](const v1::ExperimentSpec&,
                                 absl::Span<const v1::LatencyTable>, int64_t,
                                 const ImageShape&)
      -> absl::StatusOr<std::unique_ptr<search::Strategy>> {
    return std::make_unique<WideInheritingStrategy>();
  };
  auto controller = Controller::Create(options).value();
  WorkerServiceImpl service(controller.get());
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  auto stub = v1::WorkerService::NewStub(
      server->InProcessChannel(grpc::ChannelArguments()));

  auto upload = controller->BeginUpload("data.csv", sizeof(kCsv) - 1).value();
  ASSERT_TRUE(upload->Append(kCsv).ok());
  v1::ExperimentSpec spec;
  spec.set_dataset_id(upload->Finish().value().id());
  spec.add_input_columns("x");
  spec.add_output_columns("y");
  spec.mutable_budget()->set_max_candidates(3);
  spec.mutable_inheritance()->set_enabled(true);
  spec.mutable_search_space()->set_max_width(1000);
  ASSERT_TRUE(controller->CreateExperiment(spec).ok());

  // The parent reports a checkpoint; its child's lease inherits it.
  const v1::Lease parent = controller->LeaseWork("w1").value().value();
  const std::string model = "torchscript";
  const std::string checkpoint = testing::Checkpoint(parent.genome(), 1, 1);
  ASSERT_GT(checkpoint.size(), size_t{1} << 20);
  v1::WorkResult result;
  result.set_worker_id("w1");
  result.set_lease_id(parent.lease_id());
  v1::Metrics* m = result.mutable_metrics();
  m->mutable_validation()->set_row_count(2);
  m->mutable_validation()->set_max_abs_error(0.1);
  m->set_parameter_count(ParameterCount(parent.genome(), 1, 1));
  m->set_model_bytes(model.size());
  result.set_model_size_bytes(model.size());
  result.set_model_sha256(Sha256Hex(model));
  v1::Artifact* artifact = result.add_artifacts();
  artifact->set_format(v1::MODEL_FORMAT_CHECKPOINT);
  artifact->set_size_bytes(checkpoint.size());
  artifact->set_sha256(Sha256Hex(checkpoint));
  const absl::Status reported =
      controller->Report(result, model, {checkpoint}).status();
  ASSERT_TRUE(reported.ok()) << reported;
  const v1::Lease child = controller->LeaseWork("w2").value().value();
  ASSERT_EQ(child.inheritance().parent_candidate_id(), parent.candidate_id());

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
  v1::FetchCheckpointRequest request;
  request.set_worker_id("w2");
  request.set_lease_id(child.lease_id());
  auto reader = stub->FetchCheckpoint(&context, request);
  v1::FetchCheckpointResponse response;
  std::string received;
  int messages = 0;
  while (reader->Read(&response)) {
    if (messages++ == 0) {
      EXPECT_EQ(response.total_bytes(),
                static_cast<int64_t>(checkpoint.size()));
    }
    EXPECT_LE(response.chunk().size(), size_t{1} << 20);
    received += response.chunk();
  }
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(messages, 2);
  EXPECT_EQ(Sha256Hex(received), child.inheritance().checkpoint_sha256());
  EXPECT_EQ(received, checkpoint);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace evonas
