#include "server/controller.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/genome.h"
#include "common/latency_table.h"
#include "common/sha256.h"
#include "common/simulated_evaluator.h"
#include "common/timestamps.h"
#include "common/validation_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/testing_checkpoint.h"

namespace evonas {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kCsv[] =
    "x1,x2,y\n"
    "0,0,0\n0,1,1\n1,0,1\n1,1,2\n2,0,2\n0,2,2\n2,2,4\n3,0,3\n0,3,3\n3,3,6\n"
    "4,0,4\n0,4,4\n4,4,8\n5,0,5\n0,5,5\n5,5,10\n6,0,6\n0,6,6\n6,6,12\n7,7,14\n";

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    options_.db_path = (dir_ / "evonas.db").string();
    options_.data_dir = (dir_ / "data").string();
    options_.lease_timeout = absl::Seconds(30);
    options_.max_attempts = 2;
    options_.clock = [this] { return now_; };
    controller_ = Controller::Create(options_).value();
  }

  v1::Dataset Upload(const std::string& csv) {
    auto upload = controller_->BeginUpload("data.csv", csv.size()).value();
    EXPECT_TRUE(upload->Append(csv).ok());
    return upload->Finish().value();
  }

  v1::ExperimentSpec Spec(const std::string& dataset_id) {
    v1::ExperimentSpec spec;
    spec.set_dataset_id(dataset_id);
    spec.add_input_columns("x1");
    spec.add_input_columns("x2");
    spec.add_output_columns("y");
    spec.mutable_budget()->set_max_candidates(3);
    spec.mutable_requirements()->set_max_abs_error(0.1);
    spec.set_seed(5);
    return spec;
  }

  // A report that passes every check, for the given lease.
  std::pair<v1::WorkResult, std::string> GoodResult(const v1::Lease& lease,
                                                    const std::string& worker,
                                                    double max_error) {
    std::string model = "model-bytes-" + lease.candidate_id();
    v1::WorkResult result;
    result.set_worker_id(worker);
    result.set_lease_id(lease.lease_id());
    v1::Metrics* m = result.mutable_metrics();
    m->mutable_validation()->set_row_count(4);
    m->mutable_validation()->set_max_abs_error(max_error);
    m->mutable_validation()->set_rmse(max_error / 2);
    m->mutable_validation()->set_mae(max_error / 3);
    m->set_parameter_count(ParameterCount(lease.genome(), 2, 1));
    m->set_model_bytes(model.size());
    m->set_training_seconds(1.5);
    result.set_model_size_bytes(model.size());
    result.set_model_sha256(Sha256Hex(model));
    return {result, model};
  }

  std::filesystem::path dir_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  ControllerOptions options_;
  std::unique_ptr<Controller> controller_;
};

TEST_F(ControllerTest, UploadIsContentAddressedAndIdempotent) {
  v1::Dataset first = Upload(kCsv);
  EXPECT_EQ(first.id(), Sha256Hex(kCsv));
  EXPECT_EQ(first.row_count(), 20);
  EXPECT_EQ(first.columns_size(), 3);
  v1::Dataset second = Upload(kCsv);
  EXPECT_EQ(second.id(), first.id());
  EXPECT_EQ(controller_->ListDatasets().value().size(), 1u);
  EXPECT_EQ(controller_->ReadDataset(first.id()).value(), kCsv);
}

TEST_F(ControllerTest, InvalidUploadStoresNothing) {
  auto upload = controller_->BeginUpload("bad.csv", 0).value();
  ASSERT_TRUE(upload->Append("a,b\n1,2\n3,nan\n").ok());
  absl::StatusOr<v1::Dataset> result = upload->Finish();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(controller_->ListDatasets().value().empty());
}

TEST_F(ControllerTest, OversizedUploadIsResourceExhausted) {
  options_.max_upload_bytes = 10;
  controller_ = Controller::Create(options_).value();
  EXPECT_EQ(controller_->BeginUpload("big", 11).status().code(),
            absl::StatusCode::kResourceExhausted);
  auto upload = controller_->BeginUpload("big", 0).value();
  EXPECT_EQ(upload->Append("12345678901").code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(ControllerTest, CreateExperimentRejectsBadSpecs) {
  v1::Dataset dataset = Upload(kCsv);
  struct Case {
    std::string name;
    std::function<void(v1::ExperimentSpec&)> mutate;
    absl::StatusCode code;
    std::string message_part;
  };
  std::vector<Case> cases = {
      {"unknown data set", [](auto& s) { s.set_dataset_id("nope"); },
       absl::StatusCode::kNotFound, "upload it first"},
      {"unknown column", [](auto& s) { s.add_input_columns("x9"); },
       absl::StatusCode::kInvalidArgument, "no column \"x9\""},
      {"output is input", [](auto& s) { s.add_output_columns("x1"); },
       absl::StatusCode::kInvalidArgument, "both an input and an output"},
      {"no outputs", [](auto& s) { s.clear_output_columns(); },
       absl::StatusCode::kInvalidArgument, "output_columns"},
      {"no budget", [](auto& s) { s.clear_budget(); },
       absl::StatusCode::kInvalidArgument, "budget"},
      {"negative budget",
       [](auto& s) { s.mutable_budget()->set_max_candidates(-1); },
       absl::StatusCode::kInvalidArgument, "max_candidates"},
      {"negative requirement",
       [](auto& s) { s.mutable_requirements()->set_max_abs_error(-1); },
       absl::StatusCode::kInvalidArgument, "max_abs_error"},
      {"bad fraction", [](auto& s) { s.set_validation_fraction(0.95); },
       absl::StatusCode::kInvalidArgument, "validation_fraction"},
      {"judging fraction too large",
       [](auto& s) { s.set_judging_fraction(0.6); },
       absl::StatusCode::kInvalidArgument, "judging_fraction is 0.6"},
      {"judging fraction NaN", [](auto& s) { s.set_judging_fraction(NAN); },
       absl::StatusCode::kInvalidArgument, "judging_fraction"},
      {"judging fraction selecting no row",
       [](auto& s) { s.set_judging_fraction(1e-9); },
       absl::StatusCode::kInvalidArgument, "selects none of them"},
      {"bad search space",
       [](auto& s) { s.mutable_search_space()->set_min_width(-3); },
       absl::StatusCode::kInvalidArgument, "width"},
      {"unknown test data set", [](auto& s) { s.set_test_dataset_id("zz"); },
       absl::StatusCode::kNotFound, "test_dataset_id"},
      {"negative worker-seconds",
       [](auto& s) { s.mutable_budget()->set_max_worker_seconds(-1); },
       absl::StatusCode::kInvalidArgument,
       "budget.max_worker_seconds must be finite and non-negative"},
      {"NaN worker-seconds",
       [](auto& s) { s.mutable_budget()->set_max_worker_seconds(NAN); },
       absl::StatusCode::kInvalidArgument, "budget.max_worker_seconds"},
      {"only stop_when_feasible",
       [](auto& s) {
         s.clear_budget();
         s.mutable_budget()->set_stop_when_feasible(true);
       },
       absl::StatusCode::kInvalidArgument,
       "set max_candidates, max_wall_seconds or max_worker_seconds"},
      {"unknown objective",
       [](auto& s) { s.add_objectives(static_cast<v1::Objective>(42)); },
       absl::StatusCode::kInvalidArgument,
       "objectives[0]: unknown objective 42"},
      {"unspecified objective",
       [](auto& s) { s.add_objectives(v1::OBJECTIVE_UNSPECIFIED); },
       absl::StatusCode::kInvalidArgument,
       "objectives[0]: unknown objective 0"},
      {"objective twice",
       [](auto& s) {
         s.add_objectives(v1::OBJECTIVE_FLOPS);
         s.add_objectives(v1::OBJECTIVE_FLOPS);
       },
       absl::StatusCode::kInvalidArgument,
       "objectives[1]: OBJECTIVE_FLOPS given twice"},
      {"negative fitness weight",
       [](auto& s) {
         v1::ObjectiveWeight* w = s.add_fitness_weights();
         w->set_objective(v1::OBJECTIVE_PARAMETER_COUNT);
         w->set_weight(-0.5);
       },
       absl::StatusCode::kInvalidArgument,
       "fitness_weights[0].weight must be finite and >= 0, got -0.5"},
      {"fitness term twice",
       [](auto& s) {
         for (int i = 0; i < 2; ++i) {
           v1::ObjectiveWeight* w = s.add_fitness_weights();
           w->set_objective(v1::OBJECTIVE_MODEL_BYTES);
           w->set_weight(1);
         }
       },
       absl::StatusCode::kInvalidArgument,
       "fitness_weights[1].objective: OBJECTIVE_MODEL_BYTES given twice"},
      {"step fraction above one",
       [](auto& s) { s.mutable_inheritance()->set_step_fraction(1.5); },
       absl::StatusCode::kInvalidArgument, "inheritance.step_fraction is 1.5"},
      {"NaN step fraction",
       [](auto& s) { s.mutable_inheritance()->set_step_fraction(NAN); },
       absl::StatusCode::kInvalidArgument, "inheritance.step_fraction"},
  };
  for (const Case& c : cases) {
    v1::ExperimentSpec spec = Spec(dataset.id());
    c.mutate(spec);
    absl::StatusOr<v1::Experiment> result = controller_->CreateExperiment(spec);
    EXPECT_EQ(result.status().code(), c.code) << c.name;
    EXPECT_NE(result.status().message().find(c.message_part),
              std::string::npos)
        << c.name << ": " << result.status();
  }
  EXPECT_TRUE(controller_->ListExperiments().value().empty());
}

TEST_F(ControllerTest, RunsAnExperimentToCompletion) {
  v1::Dataset dataset = Upload(kCsv);
  v1::Experiment experiment =
      controller_->CreateExperiment(Spec(dataset.id())).value();
  EXPECT_EQ(experiment.state(), v1::EXPERIMENT_STATE_RUNNING);
  EXPECT_EQ(experiment.spec().validation_fraction(), 0.2);  // default

  const double errors[] = {0.5, 0.05, 0.01};
  for (double error : errors) {
    auto lease = controller_->LeaseWork("w1").value();
    ASSERT_TRUE(lease.has_value());
    EXPECT_EQ(lease->dataset_id(), dataset.id());
    EXPECT_EQ(lease->input_columns_size(), 2);
    auto [result, model] = GoodResult(*lease, "w1", error);
    EXPECT_EQ(controller_->Report(result, model).value(), error < 0.1);
  }
  EXPECT_FALSE(controller_->LeaseWork("w1").value().has_value());
  experiment = controller_->GetExperiment(experiment.id()).value();
  EXPECT_EQ(experiment.state(), v1::EXPERIMENT_STATE_COMPLETED);
  EXPECT_EQ(experiment.counts().succeeded(), 3);
  EXPECT_EQ(experiment.feasible_count(), 2);

  v1::ParetoFront front = controller_->GetParetoFront(experiment.id()).value();
  EXPECT_TRUE(front.has_feasible());
  ASSERT_GE(front.candidates_size(), 1);
  for (const auto& c : front.candidates()) EXPECT_TRUE(c.feasible());
  EXPECT_EQ(front.candidates(0).metrics().validation().max_abs_error(), 0.01);

  std::string model =
      controller_->ReadModel(front.candidates(0).id()).value();
  EXPECT_EQ(model, "model-bytes-" + front.candidates(0).id());
}

TEST_F(ControllerTest, RetriedLeaseReturnsTheSameWork) {
  v1::Dataset dataset = Upload(kCsv);
  controller_->CreateExperiment(Spec(dataset.id())).value();
  auto first = controller_->LeaseWork("w1").value();
  auto again = controller_->LeaseWork("w1").value();
  ASSERT_TRUE(first && again);
  EXPECT_EQ(first->lease_id(), again->lease_id());
  auto other = controller_->LeaseWork("w2").value();
  ASSERT_TRUE(other);
  EXPECT_NE(other->candidate_id(), first->candidate_id());
}

TEST_F(ControllerTest, ExpiredLeaseIsRequeuedThenFails) {
  v1::Dataset dataset = Upload(kCsv);
  controller_->CreateExperiment(Spec(dataset.id())).value();
  auto lease = controller_->LeaseWork("w1").value();
  ASSERT_TRUE(lease);
  now_ += absl::Seconds(31);
  ASSERT_TRUE(controller_->Maintain().ok());
  // The dead worker's heartbeat and report are refused.
  EXPECT_EQ(controller_->Heartbeat("w1", lease->lease_id()).status().code(),
            absl::StatusCode::kAborted);
  auto [result, model] = GoodResult(*lease, "w1", 0.01);
  EXPECT_EQ(controller_->Report(result, model).status().code(),
            absl::StatusCode::kAborted);
  // Another worker gets the same candidate.
  auto retry = controller_->LeaseWork("w2").value();
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->candidate_id(), lease->candidate_id());
  // Second expiry exhausts max_attempts = 2.
  now_ += absl::Seconds(31);
  ASSERT_TRUE(controller_->Maintain().ok());
  v1::Candidate c = controller_->GetCandidate(lease->candidate_id()).value();
  EXPECT_EQ(c.state(), v1::CANDIDATE_STATE_FAILED);
  EXPECT_EQ(c.attempts(), 2);
  EXPECT_NE(c.failure_reason().find("lease expired"), std::string::npos);
}

TEST_F(ControllerTest, HeartbeatKeepsTheLeaseAlive) {
  v1::Dataset dataset = Upload(kCsv);
  controller_->CreateExperiment(Spec(dataset.id())).value();
  auto lease = controller_->LeaseWork("w1").value();
  for (int i = 0; i < 5; ++i) {
    now_ += absl::Seconds(20);
    ASSERT_TRUE(controller_->Heartbeat("w1", lease->lease_id()).ok());
    ASSERT_TRUE(controller_->Maintain().ok());
  }
  auto [result, model] = GoodResult(*lease, "w1", 0.01);
  EXPECT_TRUE(controller_->Report(result, model).ok());
}

TEST_F(ControllerTest, ReportsAreCheckedAndIdempotent) {
  v1::Dataset dataset = Upload(kCsv);
  controller_->CreateExperiment(Spec(dataset.id())).value();
  auto lease = controller_->LeaseWork("w1").value();
  auto good = GoodResult(*lease, "w1", 0.01);

  auto forged = good;
  forged.first.mutable_metrics()->set_parameter_count(7);
  EXPECT_EQ(controller_->Report(forged.first, forged.second).status().code(),
            absl::StatusCode::kInvalidArgument);
  forged = good;
  forged.first.mutable_metrics()->mutable_validation()->set_max_abs_error(NAN);
  EXPECT_EQ(controller_->Report(forged.first, forged.second).status().code(),
            absl::StatusCode::kInvalidArgument);
  forged = good;
  // The experiment has no training time limit to stop at.
  forged.first.mutable_metrics()->set_stopped_at_time_limit(true);
  EXPECT_EQ(controller_->Report(forged.first, forged.second).status().code(),
            absl::StatusCode::kInvalidArgument);
  forged = good;
  // The experiment has no judging rows to have measured.
  forged.first.mutable_metrics()->mutable_judging()->set_row_count(4);
  EXPECT_THAT(
      controller_->Report(forged.first, forged.second).status().message(),
      HasSubstr("the lease has no judging rows"));
  forged = good;
  forged.second[0] ^= 1;  // bytes do not match the hash
  EXPECT_EQ(controller_->Report(forged.first, forged.second).status().code(),
            absl::StatusCode::kInvalidArgument);
  forged = good;
  forged.first.set_worker_id("w2");  // another worker's lease
  EXPECT_EQ(controller_->Report(forged.first, forged.second).status().code(),
            absl::StatusCode::kAborted);
  // None of that changed the candidate.
  EXPECT_EQ(controller_->GetCandidate(lease->candidate_id()).value().state(),
            v1::CANDIDATE_STATE_RUNNING);

  EXPECT_TRUE(controller_->Report(good.first, good.second).ok());
  EXPECT_EQ(controller_->Report(good.first, good.second).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(ControllerTest, ACandidateStoppedAtTheTrainingTimeLimitIsFeasible) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  spec.mutable_requirements()->set_max_training_seconds(1.5);
  controller_->CreateExperiment(spec).value();
  auto lease = controller_->LeaseWork("w1").value();
  EXPECT_EQ(lease->requirements().max_training_seconds(), 1.5);
  auto [result, model] = GoodResult(*lease, "w1", 0.01);
  result.mutable_metrics()->set_stopped_at_time_limit(true);
  ASSERT_TRUE(controller_->Report(result, model).ok());
  const v1::Candidate c =
      controller_->GetCandidate(lease->candidate_id()).value();
  EXPECT_EQ(c.state(), v1::CANDIDATE_STATE_SUCCEEDED);
  EXPECT_TRUE(c.metrics().stopped_at_time_limit());
  EXPECT_TRUE(c.feasible());
}

TEST_F(ControllerTest, JudgingRowsJudgeTheRequirementsAndRankTheFront) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  spec.set_judging_fraction(0.5);
  spec.mutable_budget()->set_max_candidates(2);
  const v1::Experiment experiment = controller_->CreateExperiment(spec).value();
  EXPECT_EQ(experiment.spec().judging_fraction(), 0.5);

  const v1::Lease first = *controller_->LeaseWork("w1").value();
  EXPECT_EQ(first.judging_split().fraction(), 0.5);
  EXPECT_NE(first.judging_split().seed(), first.validation_split().seed());
  const RowPartition rows =
      PartitionRows(first.validation_split(), 20, first.judging_split());
  ASSERT_FALSE(rows.judging.empty());
  ASSERT_FALSE(rows.training.empty());
  auto judged = [&](const v1::Lease& lease, double validation_error,
                    double judging_error) {
    auto reported = GoodResult(lease, "w1", validation_error);
    v1::Evaluation* j = reported.first.mutable_metrics()->mutable_judging();
    j->set_row_count(static_cast<int64_t>(rows.judging.size()));
    j->set_max_abs_error(judging_error);
    j->set_rmse(judging_error / 2);
    j->set_mae(judging_error / 3);
    return reported;
  };

  // A worker that ignored the judging rows cannot be judged.
  const auto unjudged = GoodResult(first, "w1", 0.01);
  const absl::Status refused =
      controller_->Report(unjudged.first, unjudged.second).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("metrics.judging is missing"));
  auto bad = judged(first, 0.01, NAN);
  EXPECT_EQ(controller_->Report(bad.first, bad.second).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Fine on the validation rows that chose its weights, not on new points.
  auto flattered = judged(first, 0.01, 0.3);
  ASSERT_TRUE(controller_->Report(flattered.first, flattered.second).ok());
  const v1::Candidate c =
      controller_->GetCandidate(first.candidate_id()).value();
  EXPECT_FALSE(c.feasible());
  EXPECT_THAT(c.violations(),
              ElementsAre("judging max abs error 3.0e-01 > 1.0e-01"));

  // Worse on validation, better on the judging rows: it ranks first.
  const v1::Lease second = *controller_->LeaseWork("w1").value();
  auto honest = judged(second, 0.05, 0.02);
  ASSERT_TRUE(controller_->Report(honest.first, honest.second).ok());
  const v1::ParetoFront front =
      controller_->GetParetoFront(experiment.id()).value();
  EXPECT_TRUE(front.has_feasible());
  ASSERT_GE(front.candidates_size(), 1);
  EXPECT_EQ(front.candidates(0).id(), second.candidate_id());
}

TEST_F(ControllerTest, ArtifactsAreCheckedStoredAndDownloadable) {
  v1::Dataset dataset = Upload(kCsv);
  controller_->CreateExperiment(Spec(dataset.id())).value();
  auto lease = controller_->LeaseWork("w1").value();
  EXPECT_EQ(lease->requirements().max_abs_error(), 0.1);
  auto [result, model] = GoodResult(*lease, "w1", 0.01);
  const std::string onnx = "onnx-bytes";
  v1::Artifact* artifact = result.add_artifacts();
  artifact->set_format(v1::MODEL_FORMAT_ONNX);
  artifact->set_size_bytes(onnx.size());
  artifact->set_sha256(Sha256Hex(onnx));

  // Bytes that do not match the declaration are refused; nothing stored.
  EXPECT_EQ(controller_->Report(result, model, {"other-bytes"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(controller_->Report(result, model, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto twice = result;
  *twice.add_artifacts() = *artifact;
  EXPECT_EQ(controller_->BeginReport(twice).code(),
            absl::StatusCode::kInvalidArgument);
  auto torchscript = result;
  torchscript.mutable_artifacts(0)->set_format(v1::MODEL_FORMAT_TORCHSCRIPT);
  EXPECT_EQ(controller_->BeginReport(torchscript).code(),
            absl::StatusCode::kInvalidArgument);

  ASSERT_TRUE(controller_->Report(result, model, {onnx}).ok());
  const std::string id = lease->candidate_id();
  EXPECT_EQ(controller_->ReadModel(id).value(), model);
  EXPECT_EQ(controller_->ReadModel(id, v1::MODEL_FORMAT_ONNX).value(), onnx);
  EXPECT_EQ(
      controller_->ReadModel(id, v1::MODEL_FORMAT_MODEL_CARD).status().code(),
      absl::StatusCode::kNotFound);
}

TEST_F(ControllerTest, FailureReportMarksCandidateFailed) {
  v1::Dataset dataset = Upload(kCsv);
  controller_->CreateExperiment(Spec(dataset.id())).value();
  auto lease = controller_->LeaseWork("w1").value();
  v1::WorkResult result;
  result.set_worker_id("w1");
  result.set_lease_id(lease->lease_id());
  result.set_failure_reason("training diverged: loss became NaN");
  EXPECT_FALSE(controller_->Report(result, "").value());
  v1::Candidate c = controller_->GetCandidate(lease->candidate_id()).value();
  EXPECT_EQ(c.state(), v1::CANDIDATE_STATE_FAILED);
  EXPECT_EQ(c.failure_reason(), "training diverged: loss became NaN");
}

TEST_F(ControllerTest, ReleasedLeaseGoesBackToTheQueue) {
  v1::Dataset dataset = Upload(kCsv);
  controller_->CreateExperiment(Spec(dataset.id())).value();
  auto lease = controller_->LeaseWork("w1").value();
  ASSERT_TRUE(controller_->ReleaseLease("w1", lease->lease_id()).ok());
  auto next = controller_->LeaseWork("w2").value();
  EXPECT_EQ(next->candidate_id(), lease->candidate_id());
  EXPECT_EQ(controller_->GetCandidate(next->candidate_id()).value().attempts(),
            1);
}

TEST_F(ControllerTest, WallBudgetStopsTheSearch) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  spec.mutable_budget()->set_max_candidates(0);
  spec.mutable_budget()->set_max_wall_seconds(60);
  v1::Experiment experiment = controller_->CreateExperiment(spec).value();
  auto lease = controller_->LeaseWork("w1").value();
  ASSERT_TRUE(lease);
  for (int i = 0; i < 3; ++i) {  // 63 s, heartbeating within the 30 s lease
    now_ += absl::Seconds(21);
    ASSERT_TRUE(controller_->Heartbeat("w1", lease->lease_id()).ok());
  }
  // Out of time: no new work, but the running candidate may still report.
  EXPECT_FALSE(controller_->LeaseWork("w2").value().has_value());
  EXPECT_EQ(controller_->GetExperiment(experiment.id()).value().state(),
            v1::EXPERIMENT_STATE_RUNNING);
  ASSERT_TRUE(controller_->Heartbeat("w1", lease->lease_id()).ok());
  auto [result, model] = GoodResult(*lease, "w1", 0.01);
  ASSERT_TRUE(controller_->Report(result, model).ok());
  EXPECT_EQ(controller_->GetExperiment(experiment.id()).value().state(),
            v1::EXPERIMENT_STATE_COMPLETED);
}

TEST_F(ControllerTest, StateSurvivesARestart) {
  v1::Dataset dataset = Upload(kCsv);
  v1::Experiment experiment =
      controller_->CreateExperiment(Spec(dataset.id())).value();
  auto lease = controller_->LeaseWork("w1").value();
  auto [result, model] = GoodResult(*lease, "w1", 0.01);
  ASSERT_TRUE(controller_->Report(result, model).ok());
  controller_.reset();
  controller_ = Controller::Create(options_).value();
  v1::Experiment reopened = controller_->GetExperiment(experiment.id()).value();
  EXPECT_EQ(reopened.counts().succeeded(), 1);
  // The search goes on where it stopped: the next candidate is number 1.
  auto next = controller_->LeaseWork("w1").value();
  EXPECT_EQ(controller_->GetCandidate(next->candidate_id()).value().sequence(),
            1);
  EXPECT_EQ(controller_->ReadModel(lease->candidate_id()).value(), model);
}

TEST_F(ControllerTest, WorkersLatencyTablesEstimateEveryProposal) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  spec.add_objectives(v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR);
  spec.add_objectives(v1::OBJECTIVE_ESTIMATED_LATENCY);
  v1::Experiment experiment = controller_->CreateExperiment(spec).value();

  // A forged table is refused before anything is leased or stored.
  v1::WorkerInfo forged;
  *forged.mutable_latency_table() = SimulatedLatencyTable();
  forged.mutable_latency_table()->mutable_layers(1)->set_intercept_seconds(
      -1);
  absl::Status refused = controller_->LeaseWork("w1", forged).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("non-negative"), std::string::npos)
      << refused;
  EXPECT_TRUE(controller_->LatencyTables().value().empty());
  EXPECT_EQ(controller_->GetExperiment(experiment.id()).value().counts().running(),
            0);

  v1::WorkerInfo fast;
  *fast.mutable_latency_table() = SimulatedLatencyTable();
  fast.mutable_latency_table()->set_hardware_class("fast CPU x1");
  v1::WorkerInfo slow = fast;
  slow.mutable_latency_table()->set_hardware_class("slow CPU x1");
  for (v1::LayerLatencyModel& m :
       *slow.mutable_latency_table()->mutable_layers()) {
    m.set_seconds_per_multiply_add(4 * m.seconds_per_multiply_add());
  }
  auto first = controller_->LeaseWork("w1", fast).value();
  ASSERT_TRUE(first.has_value());
  const v1::Candidate c0 =
      controller_->GetCandidate(first->candidate_id()).value();
  EXPECT_DOUBLE_EQ(c0.cost().estimated_latency_seconds(),
                   EstimateLatencySeconds(c0.genome(), 2, 1,
                                          fast.latency_table())
                       .value());
  // A slower class joins: later estimates are those of the slowest.
  auto second = controller_->LeaseWork("w2", slow).value();
  ASSERT_TRUE(second.has_value());
  const v1::Candidate c1 =
      controller_->GetCandidate(second->candidate_id()).value();
  EXPECT_DOUBLE_EQ(c1.cost().estimated_latency_seconds(),
                   EstimateLatencySeconds(c1.genome(), 2, 1,
                                          slow.latency_table())
                       .value());
  // And so is the earlier proposal's now: a front compares its candidates
  // under the same tables.
  const auto stored_estimate = [&](const std::string& id) {
    return controller_->GetCandidate(id)
        .value()
        .cost()
        .estimated_latency_seconds();
  };
  const double c0_slow =
      EstimateLatencySeconds(c0.genome(), 2, 1, slow.latency_table()).value();
  EXPECT_GT(c0_slow, c0.cost().estimated_latency_seconds());
  EXPECT_DOUBLE_EQ(stored_estimate(c0.id()), c0_slow);
  // A re-measurement of a known class is stored and estimates what comes
  // next, but leaves the existing estimates: workers of one class take
  // turns reporting their tables.
  v1::WorkerInfo remeasured = fast;
  for (v1::LayerLatencyModel& m :
       *remeasured.mutable_latency_table()->mutable_layers()) {
    m.set_seconds_per_multiply_add(10 * m.seconds_per_multiply_add());
  }
  ASSERT_TRUE(controller_->LeaseWork("w1", remeasured).ok());
  EXPECT_DOUBLE_EQ(stored_estimate(c0.id()), c0_slow);
  EXPECT_EQ(controller_->LatencyTables().value()[0].SerializeAsString(),
            remeasured.latency_table().SerializeAsString());
  // Both tables survive a restart.
  controller_.reset();
  controller_ = Controller::Create(options_).value();
  std::vector<v1::LatencyTable> tables = controller_->LatencyTables().value();
  ASSERT_EQ(tables.size(), 2u);
  EXPECT_EQ(tables[0].hardware_class(), "fast CPU x1");
  EXPECT_EQ(tables[1].hardware_class(), "slow CPU x1");

  // A finished experiment keeps the estimates it ended with.
  ASSERT_TRUE(controller_->CancelExperiment(experiment.id()).ok());
  v1::WorkerInfo slower = slow;
  slower.mutable_latency_table()->set_hardware_class("slower CPU x1");
  for (v1::LayerLatencyModel& m :
       *slower.mutable_latency_table()->mutable_layers()) {
    m.set_seconds_per_multiply_add(4 * m.seconds_per_multiply_add());
  }
  ASSERT_TRUE(controller_->LeaseWork("w3", slower).ok());
  EXPECT_EQ(controller_->LatencyTables().value().size(), 3u);
  EXPECT_DOUBLE_EQ(stored_estimate(c0.id()), c0_slow);
}

// Sets the modification time of every blob to an hour ago.
void AgeBlobs(const std::string& blob_dir) {
  const auto past =
      std::filesystem::file_time_type::clock::now() - std::chrono::hours(1);
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(blob_dir)) {
    if (entry.is_regular_file()) {
      std::filesystem::last_write_time(entry.path(), past);
    }
  }
}

TEST_F(ControllerTest, RestartSweepsBlobsThatACrashLeftUnreferenced) {
  v1::Dataset dataset = Upload(kCsv);
  controller_->CreateExperiment(Spec(dataset.id())).value();
  auto lease = controller_->LeaseWork("w1").value();
  auto [result, model] = GoodResult(*lease, "w1", 0.01);
  const std::string onnx = "onnx-bytes";
  v1::Artifact* artifact = result.add_artifacts();
  artifact->set_format(v1::MODEL_FORMAT_ONNX);
  artifact->set_size_bytes(onnx.size());
  artifact->set_sha256(Sha256Hex(onnx));
  ASSERT_TRUE(controller_->Report(result, model, {onnx}).ok());

  // A controller killed after writing the blobs of a report (or an upload)
  // but before the rows that refer to them commit leaves exactly this: the
  // blobs are durable, no row names them.
  controller_.reset();
  const std::string blob_dir = options_.data_dir + "/blobs";
  auto blobs = store::BlobStore::Open(blob_dir).value();
  const std::string orphan_model = blobs->Put("model never committed").value();
  const std::string orphan_csv = blobs->Put("x,y\n1,2\n").value();
  AgeBlobs(blob_dir);
  // Written moments ago: within the grace period, spared.
  const std::string young = blobs->Put("written a moment ago").value();

  controller_ = Controller::Create(options_).value();
  EXPECT_FALSE(blobs->Contains(orphan_model));
  EXPECT_FALSE(blobs->Contains(orphan_csv));
  EXPECT_TRUE(blobs->Contains(young));
  // Every referenced blob survives, however old.
  EXPECT_EQ(controller_->ReadDataset(dataset.id()).value(), kCsv);
  EXPECT_EQ(controller_->ReadModel(lease->candidate_id()).value(), model);
  EXPECT_EQ(
      controller_->ReadModel(lease->candidate_id(), v1::MODEL_FORMAT_ONNX)
          .value(),
      onnx);

  // Once it is old enough, the next start removes it too.
  controller_.reset();
  AgeBlobs(blob_dir);
  controller_ = Controller::Create(options_).value();
  EXPECT_FALSE(blobs->Contains(young));
  EXPECT_EQ(controller_->ReadDataset(dataset.id()).value(), kCsv);
}

TEST_F(ControllerTest, CancelDropsQueuedWork) {
  v1::Dataset dataset = Upload(kCsv);
  v1::Experiment experiment =
      controller_->CreateExperiment(Spec(dataset.id())).value();
  v1::Experiment cancelled =
      controller_->CancelExperiment(experiment.id()).value();
  EXPECT_EQ(cancelled.state(), v1::EXPERIMENT_STATE_CANCELLED);
  EXPECT_FALSE(controller_->LeaseWork("w1").value().has_value());
  EXPECT_EQ(controller_->CancelExperiment(experiment.id()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(ControllerTest, UnknownIdsAreNotFound) {
  EXPECT_EQ(controller_->GetExperiment("exp-x").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(controller_->GetCandidate("c-x").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(controller_->GetParetoFront("exp-x").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(controller_->ReadModel("c-x").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(controller_->GetDataset("d").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ControllerTest, DuplicateGenomesGetTheStoredResult) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  // A search space of exactly three genomes: one tanh layer of width 8, 9
  // or 10 with fixed training genes.
  v1::SearchSpace* space = spec.mutable_search_space();
  space->set_min_depth(1);
  space->set_max_depth(1);
  space->set_min_width(8);
  space->set_max_width(10);
  space->add_activations(v1::ACTIVATION_TANH);
  space->set_min_learning_rate(3e-3);
  space->set_max_learning_rate(3e-3);
  space->set_min_adam_steps(100);
  space->set_max_adam_steps(100);
  spec.mutable_budget()->set_max_candidates(5);
  v1::Experiment experiment = controller_->CreateExperiment(spec).value();
  // Queued and running candidates count as taken, not only finished ones.
  std::set<std::string> keys;
  std::vector<v1::Lease> leases;
  for (int i = 0; i < 3; ++i) {
    auto lease = controller_->LeaseWork("w" + std::to_string(i)).value();
    ASSERT_TRUE(lease);
    keys.insert(GenomeKey(lease->genome()));
    leases.push_back(*lease);
  }
  EXPECT_EQ(keys.size(), 3u);
  // The space is exhausted and every genome is still in training: no work,
  // and no candidate is made, rather than training a genome twice.
  EXPECT_FALSE(controller_->LeaseWork("w3").value().has_value());
  EXPECT_EQ(controller_->ListCandidates(experiment.id()).value().size(), 3u);

  for (int i = 0; i < 2; ++i) {
    auto [result, model] = GoodResult(leases[i], "w" + std::to_string(i),
                                    0.01 * (i + 1));
    ASSERT_TRUE(controller_->Report(result, model).ok());
  }
  v1::WorkResult failure;
  failure.set_worker_id("w2");
  failure.set_lease_id(leases[2].lease_id());
  failure.set_failure_reason("diverged");
  ASSERT_TRUE(controller_->Report(failure, "").ok());

  // Now every re-draw is a trained genome: the two remaining candidates are
  // recorded as copies of the earlier results, never leased.
  EXPECT_FALSE(controller_->LeaseWork("w3").value().has_value());
  auto candidates = controller_->ListCandidates(experiment.id()).value();
  ASSERT_EQ(candidates.size(), 5u);
  for (int i = 3; i < 5; ++i) {
    const v1::Candidate& copy = candidates[i];
    ASSERT_FALSE(copy.duplicate_of().empty()) << i;
    EXPECT_EQ(copy.attempts(), 0);
    EXPECT_TRUE(copy.worker_id().empty());
    const v1::Candidate original =
        controller_->GetCandidate(copy.duplicate_of()).value();
    EXPECT_TRUE(original.duplicate_of().empty());
    EXPECT_EQ(GenomeKey(copy.genome()), GenomeKey(original.genome()));
    EXPECT_EQ(copy.state(), original.state());
    if (original.state() == v1::CANDIDATE_STATE_SUCCEEDED) {
      EXPECT_EQ(copy.metrics().SerializeAsString(),
                original.metrics().SerializeAsString());
      EXPECT_EQ(copy.feasible(), original.feasible());
      EXPECT_EQ(controller_->ReadModel(copy.id()).value(),
                controller_->ReadModel(original.id()).value());
    } else {
      EXPECT_EQ(copy.failure_reason(),
                "same genome as " + original.id() + ", which failed: diverged");
    }
  }
  experiment = controller_->GetExperiment(experiment.id()).value();
  EXPECT_EQ(experiment.state(), v1::EXPERIMENT_STATE_COMPLETED);
  // Copies never join the front: each point is there once.
  v1::ParetoFront front = controller_->GetParetoFront(experiment.id()).value();
  for (const v1::Candidate& member : front.candidates()) {
    EXPECT_TRUE(member.duplicate_of().empty());
  }
}

TEST_F(ControllerTest, RunsRegularizedEvolutionWithoutDuplicates) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  spec.set_strategy(v1::STRATEGY_REGULARIZED_EVOLUTION);
  spec.mutable_evolution()->set_population_size(3);
  spec.mutable_evolution()->set_tournament_size(2);
  spec.mutable_budget()->set_max_candidates(12);
  v1::Experiment experiment = controller_->CreateExperiment(spec).value();
  std::set<std::string> keys;
  for (int i = 0; i < 12; ++i) {
    auto lease = controller_->LeaseWork("w1").value();
    ASSERT_TRUE(lease) << i;
    EXPECT_TRUE(keys.insert(GenomeKey(lease->genome())).second) << i;
    auto [result, model] = GoodResult(*lease, "w1", 0.5 / (i + 1));
    ASSERT_TRUE(controller_->Report(result, model).ok());
  }
  EXPECT_EQ(controller_->GetExperiment(experiment.id()).value().state(),
            v1::EXPERIMENT_STATE_COMPLETED);

  // Bad evolution settings are refused when the experiment is created.
  spec.mutable_evolution()->set_tournament_size(4);
  absl::StatusOr<v1::Experiment> bad = controller_->CreateExperiment(spec);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("tournament_size"), std::string::npos);
}

TEST_F(ControllerTest, StoresTheStrategySettingsInEffect) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  spec.set_strategy(v1::STRATEGY_LEMONADE);
  spec.mutable_budget()->set_max_candidates(5);
  const std::string id = controller_->CreateExperiment(spec).value().id();
  const v1::ExperimentSpec stored =
      controller_->GetExperiment(id).value().spec();
  EXPECT_EQ(stored.lemonade().children_per_proposal(), 16);
  EXPECT_EQ(stored.lemonade().initial_population(), 10);
  EXPECT_TRUE(stored.lemonade().has_random_fraction());
  EXPECT_FALSE(stored.has_evolution());  // not this strategy's

  spec.set_strategy(v1::STRATEGY_NSGA2);
  const v1::ExperimentSpec nsga2 =
      controller_
          ->GetExperiment(controller_->CreateExperiment(spec).value().id())
          .value()
          .spec();
  EXPECT_EQ(nsga2.evolution().population_size(), 20);
  EXPECT_EQ(nsga2.evolution().tournament_size(), 5);

  spec.set_strategy(v1::STRATEGY_LEMONADE);
  spec.mutable_lemonade()->set_random_fraction(2);
  absl::StatusOr<v1::Experiment> bad = controller_->CreateExperiment(spec);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("lemonade.random_fraction"),
            std::string::npos);
}

// Adds a MODEL_FORMAT_CHECKPOINT artifact of `bytes` to `result`.
void AddCheckpoint(v1::WorkResult& result, const std::string& bytes) {
  v1::Artifact* artifact = result.add_artifacts();
  artifact->set_format(v1::MODEL_FORMAT_CHECKPOINT);
  artifact->set_size_bytes(static_cast<int64_t>(bytes.size()));
  artifact->set_sha256(Sha256Hex(bytes));
}

TEST_F(ControllerTest, CheckpointsAreCheckedStoredAndDownloadable) {
  v1::Dataset dataset = Upload(kCsv);
  controller_->CreateExperiment(Spec(dataset.id())).value();
  auto lease = controller_->LeaseWork("w1").value();
  ASSERT_TRUE(lease);
  const v1::Genome& genome = lease->genome();
  struct Case {
    std::string name;
    std::function<std::string()> bytes;
    std::string message_part;
  };
  auto forged = [&](std::function<void(v1::NetworkWeights&)> forge) {
    return [&genome, forge] {
      v1::NetworkWeights w = testing::CheckpointWeights(genome, 2, 1);
      forge(w);
      return w.SerializeAsString();
    };
  };
  const int last = genome.hidden_layers_size();  // the output layer
  std::vector<Case> cases = {
      {"garbage", [] { return std::string("\xff\xff\xff\x07garbage", 11); },
       "is not a binary-serialised evonas.v1.NetworkWeights"},
      {"extra stage",
       forged([](auto& w) { *w.add_stages() = w.stages(0); }),
       "has 2 stages but the genome has 1"},
      {"wrong input count",
       forged([](auto& w) { w.mutable_stages(0)->add_x_mean(0); }),
       "stage 0 standardises 3/2 inputs"},
      {"missing layer",
       forged([](auto& w) { w.mutable_stages(0)->mutable_layers()->RemoveLast(); }),
       "layers; the genome has"},
      {"wrong layer shape",
       forged([](auto& w) {
         v1::LayerWeights* l = w.mutable_stages(0)->mutable_layers(0);
         l->set_outputs(l->outputs() + 1);
       }),
       "stage 0 layer 0 is 2x"},
      {"weights of the wrong count",
       forged([last](auto& w) {
         w.mutable_stages(0)->mutable_layers(last)->add_weight(1);
       }),
       absl::StrCat("stage 0 layer ", last, " is ")},
      {"wrong activation",
       forged([](auto& w) {
         v1::LayerWeights* l = w.mutable_stages(0)->mutable_layers(0);
         l->set_activation(l->activation() == v1::ACTIVATION_SINE
                               ? v1::ACTIVATION_TANH
                               : v1::ACTIVATION_SINE);
       }),
       "stage 0 layer 0 has activation"},
      {"NaN weight",
       forged([](auto& w) {
         w.mutable_stages(0)->mutable_layers(0)->set_weight(0, NAN);
       }),
       "stage 0 layer 0 weight holds nan; values must be finite"},
      {"infinite bias",
       forged([last](auto& w) {
         w.mutable_stages(0)->mutable_layers(last)->set_bias(0, INFINITY);
       }),
       "bias holds inf"},
      {"zero standard deviation",
       forged([](auto& w) { w.mutable_stages(0)->set_x_std(1, 0); }),
       "stage 0 x_std holds 0; values must be finite and positive"},
  };
  for (const Case& c : cases) {
    auto [result, model] = GoodResult(*lease, "w1", 0.01);
    const std::string bytes = c.bytes();
    AddCheckpoint(result, bytes);
    absl::Status status = controller_->Report(result, model, {bytes}).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(status.message().find(c.message_part), std::string::npos)
        << c.name << ": " << status;
  }
  // Nothing was stored by the refused reports.
  EXPECT_EQ(controller_->GetCandidate(lease->candidate_id()).value().state(),
            v1::CANDIDATE_STATE_RUNNING);
  EXPECT_EQ(controller_->RowCounts().value().at("artifacts"), 0);

  auto [result, model] = GoodResult(*lease, "w1", 0.01);
  const std::string checkpoint = testing::Checkpoint(genome, 2, 1);
  AddCheckpoint(result, checkpoint);
  ASSERT_TRUE(controller_->Report(result, model, {checkpoint}).ok());
  EXPECT_EQ(controller_->ReadModel(lease->candidate_id(),
                                   v1::MODEL_FORMAT_CHECKPOINT)
                .value(),
            checkpoint);
}

// Proposes width 4 + sequence; every candidate after the first names the
// first succeeded candidate as its parent (a WIDEN morphism of layer 0).
class InheritingStrategy : public search::Strategy {
 public:
  search::Proposal Propose(
      int64_t sequence, const std::vector<v1::Candidate>& finished) override {
    search::Proposal proposal;
    v1::DenseLayer* layer = proposal.genome.add_hidden_layers();
    layer->set_width(static_cast<int>(4 + sequence % 100));
    layer->set_activation(v1::ACTIVATION_TANH);
    v1::TrainingConfig* training = proposal.genome.mutable_training();
    training->set_learning_rate(1e-3);
    training->set_adam_steps(100);
    for (const v1::Candidate& c : finished) {
      if (c.state() != v1::CANDIDATE_STATE_SUCCEEDED) continue;
      proposal.parent_id = c.id();
      proposal.morphism.set_kind(v1::MORPHISM_KIND_WIDEN);
      break;
    }
    return proposal;
  }
};

// ControllerOptions.make_strategy for InheritingStrategy.
absl::StatusOr<std::unique_ptr<search::Strategy>> MakeInheritingStrategy(
    const v1::ExperimentSpec&, absl::Span<const v1::LatencyTable>, int64_t,
    const ImageShape&) {
  return std::make_unique<InheritingStrategy>();
}

class InheritanceTest : public ControllerTest {
 protected:
  void SetUp() override {
    ControllerTest::SetUp();
    options_.make_strategy = MakeInheritingStrategy;
    controller_ = Controller::Create(options_).value();
    dataset_ = Upload(kCsv);
  }

  v1::ExperimentSpec InheritingSpec() {
    v1::ExperimentSpec spec = Spec(dataset_.id());
    spec.mutable_budget()->set_max_candidates(10);
    spec.mutable_inheritance()->set_enabled(true);
    return spec;
  }

  // Leases the first candidate and reports it, with `checkpoint` unless
  // that is empty; returns its lease.
  v1::Lease TrainParent(bool with_checkpoint) {
    auto lease = controller_->LeaseWork("w1").value();
    EXPECT_TRUE(lease);
    EXPECT_FALSE(lease->has_inheritance());
    auto [result, model] = GoodResult(*lease, "w1", 0.5);
    std::vector<std::string> artifacts;
    if (with_checkpoint) {
      artifacts.push_back(testing::Checkpoint(lease->genome(), 2, 1));
      AddCheckpoint(result, artifacts.back());
    }
    EXPECT_TRUE(controller_->Report(result, model, artifacts).ok());
    return *lease;
  }

  v1::Dataset dataset_;
};

TEST_F(InheritanceTest, ChildLeaseCarriesTheParentAndItsCheckpoint) {
  v1::Experiment experiment =
      controller_->CreateExperiment(InheritingSpec()).value();
  EXPECT_EQ(experiment.spec().inheritance().step_fraction(), 1);  // default
  const v1::Lease parent = TrainParent(/*with_checkpoint=*/true);
  const std::string checkpoint = testing::Checkpoint(parent.genome(), 2, 1);

  auto child = controller_->LeaseWork("w2").value();
  ASSERT_TRUE(child);
  ASSERT_TRUE(child->has_inheritance());
  const v1::Inheritance& inheritance = child->inheritance();
  EXPECT_EQ(inheritance.parent_candidate_id(), parent.candidate_id());
  EXPECT_EQ(GenomeKey(inheritance.parent_genome()),
            GenomeKey(parent.genome()));
  EXPECT_EQ(inheritance.morphism().kind(), v1::MORPHISM_KIND_WIDEN);
  EXPECT_EQ(inheritance.checkpoint_size_bytes(),
            static_cast<int64_t>(checkpoint.size()));
  EXPECT_EQ(inheritance.checkpoint_sha256(), Sha256Hex(checkpoint));
  EXPECT_EQ(inheritance.step_fraction(), 1);
  v1::Candidate c = controller_->GetCandidate(child->candidate_id()).value();
  EXPECT_EQ(c.parent_id(), parent.candidate_id());
  EXPECT_EQ(c.morphism().kind(), v1::MORPHISM_KIND_WIDEN);
  // A retried LeaseWork returns the same inheritance.
  auto again = controller_->LeaseWork("w2").value();
  EXPECT_EQ(again->inheritance().SerializeAsString(),
            inheritance.SerializeAsString());

  EXPECT_EQ(controller_->FetchCheckpoint("w2", child->lease_id()).value(),
            checkpoint);
  // Only the worker holding the lease may fetch.
  absl::Status other =
      controller_->FetchCheckpoint("w3", child->lease_id()).status();
  EXPECT_EQ(other.code(), absl::StatusCode::kAborted);
  EXPECT_NE(other.message().find("is not held by worker w3"),
            std::string::npos);
  // A lease that does not inherit has nothing to fetch; nor has a
  // reported one.
  EXPECT_EQ(
      controller_->FetchCheckpoint("w1", parent.lease_id()).status().code(),
      absl::StatusCode::kFailedPrecondition);
}

TEST_F(InheritanceTest, ShortRunsOfInheritingChildrenMultiplyTheFractions) {
  v1::ExperimentSpec spec = InheritingSpec();
  spec.mutable_inheritance()->set_step_fraction(0.25);
  spec.mutable_multi_fidelity()->set_enabled(true);
  controller_->CreateExperiment(spec).value();
  const v1::Lease parent = TrainParent(/*with_checkpoint=*/true);
  EXPECT_EQ(parent.step_fraction(), 0.25);
  auto child = controller_->LeaseWork("w2").value();
  ASSERT_TRUE(child);
  ASSERT_TRUE(child->has_inheritance());
  // A quarter of the inherited quarter, from a parent that trained a
  // quarter of its own steps.
  EXPECT_EQ(child->step_fraction(), 0.0625);
  EXPECT_EQ(child->inheritance().step_fraction(), 0.0625);
  EXPECT_EQ(child->inheritance().parent_step_fraction(), 0.25);
  EXPECT_EQ(controller_->GetCandidate(child->candidate_id())
                .value()
                .evaluation_level(),
            v1::EVALUATION_LEVEL_SHORT);
}

TEST_F(InheritanceTest, LeaseWithoutParentHasNothingToFetch) {
  controller_->CreateExperiment(InheritingSpec()).value();
  auto lease = controller_->LeaseWork("w1").value();
  ASSERT_TRUE(lease);
  absl::Status status =
      controller_->FetchCheckpoint("w1", lease->lease_id()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("does not inherit"), std::string::npos);
}

TEST_F(InheritanceTest, ParentWithoutCheckpointMeansTrainingFromScratch) {
  controller_->CreateExperiment(InheritingSpec()).value();
  TrainParent(/*with_checkpoint=*/false);
  auto child = controller_->LeaseWork("w2").value();
  ASSERT_TRUE(child);
  EXPECT_FALSE(child->has_inheritance());
  v1::Candidate c = controller_->GetCandidate(child->candidate_id()).value();
  EXPECT_TRUE(c.parent_id().empty());
  EXPECT_FALSE(c.has_morphism());
}

TEST_F(InheritanceTest, DisabledInheritanceDropsTheParent) {
  v1::ExperimentSpec spec = InheritingSpec();
  spec.mutable_inheritance()->set_enabled(false);
  controller_->CreateExperiment(spec).value();
  TrainParent(/*with_checkpoint=*/true);
  auto child = controller_->LeaseWork("w2").value();
  ASSERT_TRUE(child);
  EXPECT_FALSE(child->has_inheritance());
  EXPECT_TRUE(
      controller_->GetCandidate(child->candidate_id()).value().parent_id().empty());
}

class MultiFidelityTest : public ControllerTest {
 protected:
  void SetUp() override {
    ControllerTest::SetUp();
    dataset_ = Upload(kCsv);
  }

  v1::ExperimentSpec MultiFidelitySpec() {
    v1::ExperimentSpec spec = Spec(dataset_.id());
    spec.mutable_budget()->set_max_candidates(20);
    spec.mutable_multi_fidelity()->set_enabled(true);
    return spec;
  }

  // Reports `lease` with validation max abs error `error` and a checkpoint.
  void ReportWithCheckpoint(const v1::Lease& lease, const std::string& worker,
                            double error) {
    auto [result, model] = GoodResult(lease, worker, error);
    const std::string checkpoint = testing::Checkpoint(lease.genome(), 2, 1);
    AddCheckpoint(result, checkpoint);
    ASSERT_TRUE(controller_->Report(result, model, {checkpoint}).ok());
  }

  // Leases three short runs to workers w0..w2 and reports them with errors
  // 0.05, 0.10 and 0.15 (with checkpoints unless `without_checkpoints`, as
  // an older worker would); returns their leases.
  std::vector<v1::Lease> ThreeShortRuns(bool without_checkpoints = false) {
    std::vector<v1::Lease> leases;
    for (int i = 0; i < 3; ++i) {
      leases.push_back(
          *controller_->LeaseWork("w" + std::to_string(i)).value());
    }
    for (int i = 0; i < 3; ++i) {
      const std::string worker = "w" + std::to_string(i);
      if (without_checkpoints) {
        auto [result, model] = GoodResult(leases[i], worker, 0.05 * (i + 1));
        EXPECT_TRUE(controller_->Report(result, model).ok());
      } else {
        ReportWithCheckpoint(leases[i], worker, 0.05 * (i + 1));
      }
    }
    return leases;
  }

  v1::Dataset dataset_;
};

TEST_F(MultiFidelityTest, SettingsAreDefaultedAndChecked) {
  v1::Experiment experiment =
      controller_->CreateExperiment(MultiFidelitySpec()).value();
  EXPECT_EQ(experiment.spec().multi_fidelity().short_step_fraction(), 0.25);
  EXPECT_EQ(experiment.spec().multi_fidelity().reduction_factor(), 3);
  EXPECT_EQ(experiment.spec().multi_fidelity().short_row_fraction(), 1);
  const int64_t before = controller_->ListExperiments().value().size();
  for (auto [fraction, eta, rows, field] :
       std::vector<std::tuple<double, int, double, std::string>>{
           {1.0, 3, 1, "multi_fidelity.short_step_fraction"},
           {0.25, 1, 1, "multi_fidelity.reduction_factor"},
           {0.25, 3, 1.5, "multi_fidelity.short_row_fraction"}}) {
    v1::ExperimentSpec spec = MultiFidelitySpec();
    spec.mutable_multi_fidelity()->set_short_step_fraction(fraction);
    spec.mutable_multi_fidelity()->set_reduction_factor(eta);
    spec.mutable_multi_fidelity()->set_short_row_fraction(rows);
    absl::Status status = controller_->CreateExperiment(spec).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find(field), std::string::npos) << status;
  }
  EXPECT_EQ(controller_->ListExperiments().value().size(), before);
}

TEST_F(MultiFidelityTest, BestShortRunIsPromotedAndReplacesItOnTheFront) {
  v1::ExperimentSpec spec = MultiFidelitySpec();
  spec.mutable_multi_fidelity()->set_short_row_fraction(0.5);
  const v1::Experiment experiment = controller_->CreateExperiment(spec).value();
  // Level 1: three short runs; only the second meets max_abs_error 0.1.
  std::vector<v1::Lease> short_runs;
  for (int i = 0; i < 3; ++i) {
    auto lease = controller_->LeaseWork("w" + std::to_string(i)).value();
    ASSERT_TRUE(lease);
    EXPECT_EQ(lease->step_fraction(), 0.25);
    EXPECT_EQ(lease->training_row_fraction(), 0.5);
    EXPECT_FALSE(lease->has_inheritance());
    EXPECT_EQ(controller_->GetCandidate(lease->candidate_id())
                  .value()
                  .evaluation_level(),
              v1::EVALUATION_LEVEL_SHORT);
    short_runs.push_back(*lease);
  }
  ReportWithCheckpoint(short_runs[0], "w0", 0.3);
  ReportWithCheckpoint(short_runs[1], "w1", 0.08);
  ReportWithCheckpoint(short_runs[2], "w2", 0.2);

  // One in three is promoted: the feasible one, continuing from its weights.
  auto promoted = controller_->LeaseWork("w3").value();
  ASSERT_TRUE(promoted);
  const v1::Candidate level2 =
      controller_->GetCandidate(promoted->candidate_id()).value();
  EXPECT_EQ(level2.evaluation_level(), v1::EVALUATION_LEVEL_FULL);
  EXPECT_EQ(level2.promoted_from(), short_runs[1].candidate_id());
  EXPECT_EQ(level2.parent_id(), short_runs[1].candidate_id());
  EXPECT_EQ(level2.morphism().kind(), v1::MORPHISM_KIND_CONTINUE);
  EXPECT_EQ(GenomeKey(level2.genome()), GenomeKey(short_runs[1].genome()));
  EXPECT_EQ(promoted->step_fraction(), 0.75);
  EXPECT_EQ(promoted->training_row_fraction(), 0);  // every training row
  ASSERT_TRUE(promoted->has_inheritance());
  EXPECT_EQ(promoted->inheritance().step_fraction(), 0.75);
  EXPECT_EQ(promoted->inheritance().parent_step_fraction(), 0.25);
  EXPECT_EQ(promoted->inheritance().morphism().kind(),
            v1::MORPHISM_KIND_CONTINUE);

  // The quota (3 / 3) is used: the next worker gets a new short run.
  auto next = controller_->LeaseWork("w4").value();
  ASSERT_TRUE(next);
  EXPECT_EQ(controller_->GetCandidate(next->candidate_id())
                .value()
                .evaluation_level(),
            v1::EVALUATION_LEVEL_SHORT);

  // While the promotion runs, the short run stands on the front.
  auto front_ids = [&] {
    std::set<std::string> ids;
    const v1::ParetoFront front =
        controller_->GetParetoFront(experiment.id()).value();
    for (const v1::Candidate& c : front.candidates()) ids.insert(c.id());
    return ids;
  };
  EXPECT_EQ(front_ids(), std::set<std::string>{short_runs[1].candidate_id()});
  ReportWithCheckpoint(*promoted, "w3", 0.02);
  EXPECT_EQ(front_ids(), std::set<std::string>{promoted->candidate_id()});
}

TEST_F(MultiFidelityTest, FailedPromotionLeavesTheShortRunStanding) {
  const v1::Experiment experiment =
      controller_->CreateExperiment(MultiFidelitySpec()).value();
  const std::vector<v1::Lease> short_runs = ThreeShortRuns();
  auto promoted = controller_->LeaseWork("w3").value();
  ASSERT_TRUE(promoted);
  v1::WorkResult failure;
  failure.set_worker_id("w3");
  failure.set_lease_id(promoted->lease_id());
  failure.set_failure_reason("diverged");
  ASSERT_TRUE(controller_->Report(failure, "").ok());

  const v1::ParetoFront front =
      controller_->GetParetoFront(experiment.id()).value();
  ASSERT_GE(front.candidates_size(), 1);
  EXPECT_EQ(front.candidates(0).id(), short_runs[0].candidate_id());
  // Promoted once, whatever became of it: the next lease is a new short run.
  auto next = controller_->LeaseWork("w4").value();
  ASSERT_TRUE(next);
  const v1::Candidate c =
      controller_->GetCandidate(next->candidate_id()).value();
  EXPECT_EQ(c.evaluation_level(), v1::EVALUATION_LEVEL_SHORT);
  EXPECT_TRUE(c.promoted_from().empty());
}

TEST_F(MultiFidelityTest, ShortRunWithoutCheckpointIsPromotedFromScratch) {
  controller_->CreateExperiment(MultiFidelitySpec()).value();
  ThreeShortRuns(/*without_checkpoints=*/true);
  auto promoted = controller_->LeaseWork("w3").value();
  ASSERT_TRUE(promoted);
  const v1::Candidate level2 =
      controller_->GetCandidate(promoted->candidate_id()).value();
  EXPECT_EQ(level2.evaluation_level(), v1::EVALUATION_LEVEL_FULL);
  EXPECT_FALSE(level2.promoted_from().empty());
  EXPECT_TRUE(level2.parent_id().empty());
  EXPECT_FALSE(promoted->has_inheritance());
  EXPECT_EQ(promoted->step_fraction(), 1);
}

TEST_F(MultiFidelityTest, PromotionsSurviveARestart) {
  controller_->CreateExperiment(MultiFidelitySpec()).value();
  ThreeShortRuns();
  auto promoted = controller_->LeaseWork("w3").value();
  ASSERT_TRUE(promoted);
  // A new controller rebuilds the search state from the database: the
  // short run is not promoted a second time.
  controller_.reset();
  controller_ = Controller::Create(options_).value();
  auto next = controller_->LeaseWork("w4").value();
  ASSERT_TRUE(next);
  EXPECT_NE(next->candidate_id(), promoted->candidate_id());
  EXPECT_EQ(controller_->GetCandidate(next->candidate_id())
                .value()
                .evaluation_level(),
            v1::EVALUATION_LEVEL_SHORT);
}

class RefitTest : public ControllerTest {
 protected:
  void SetUp() override {
    ControllerTest::SetUp();
    dataset_ = Upload(kCsv);
    // Same columns, other rows: a test data set of its own.
    test_ = Upload("x1,x2,y\n8,8,16\n9,0,9\n0,9,9\n9,9,18\n");
  }

  v1::ExperimentSpec RefitSpec(int front_members) {
    v1::ExperimentSpec spec = Spec(dataset_.id());
    spec.set_test_dataset_id(test_.id());
    spec.mutable_refit()->set_front_members(front_members);
    return spec;
  }

  // A good report whose test rows have max abs error `test_error`.
  std::pair<v1::WorkResult, std::string> ResultWithTest(
      const v1::Lease& lease, const std::string& worker, double error,
      double test_error) {
    auto reported = GoodResult(lease, worker, error);
    v1::Evaluation* test = reported.first.mutable_metrics()->mutable_test();
    test->set_row_count(4);
    test->set_max_abs_error(test_error);
    return reported;
  }

  v1::Dataset dataset_;
  v1::Dataset test_;
};

TEST_F(RefitTest, FrontMembersAreTrainedAgainOnAllRowsAfterTheSearch) {
  const v1::Experiment experiment =
      controller_->CreateExperiment(RefitSpec(2)).value();
  std::map<std::string, v1::Lease> searched;
  for (double error : {0.5, 0.05, 0.01}) {
    const v1::Lease lease = *controller_->LeaseWork("w1").value();
    EXPECT_EQ(lease.validation_split().fraction(), 0.2);
    searched[lease.candidate_id()] = lease;
    auto [result, model] = ResultWithTest(lease, "w1", error, error);
    ASSERT_TRUE(controller_->Report(result, model).ok());
  }
  // The search is over; its front's best two are queued again.
  v1::Experiment running = controller_->GetExperiment(experiment.id()).value();
  EXPECT_EQ(running.state(), v1::EXPERIMENT_STATE_RUNNING);
  EXPECT_EQ(running.counts().queued(), 2);
  const v1::ParetoFront searched_front =
      controller_->GetParetoFront(experiment.id()).value();
  ASSERT_GE(searched_front.candidates_size(), 2);
  ASSERT_EQ(searched_front.refits_size(), 2);

  // The queued refits survive a restart, and are not queued twice.
  controller_.reset();
  controller_ = Controller::Create(options_).value();
  std::vector<v1::Lease> refits;
  for (int i = 0; i < 2; ++i) {
    const v1::Lease lease =
        *controller_->LeaseWork("r" + std::to_string(i)).value();
    const v1::Candidate refit =
        controller_->GetCandidate(lease.candidate_id()).value();
    const v1::Candidate& member = searched_front.candidates(i);
    EXPECT_EQ(refit.evaluation_level(), v1::EVALUATION_LEVEL_REFIT);
    EXPECT_EQ(refit.refit_of(), member.id());
    EXPECT_EQ(refit.sequence(), 3 + i);
    // All rows, all steps, the member's genome and seed; from scratch,
    // since the members sent no checkpoint.
    EXPECT_EQ(lease.validation_split().fraction(), 0);
    EXPECT_EQ(lease.step_fraction(), 1);
    EXPECT_FALSE(lease.has_inheritance());
    EXPECT_EQ(GenomeKey(lease.genome()), GenomeKey(member.genome()));
    EXPECT_EQ(lease.seed(), searched.at(member.id()).seed());
    refits.push_back(lease);
  }
  EXPECT_FALSE(controller_->LeaseWork("w2").value().has_value());

  // Judged on the test rows: the first refit fits its training rows but
  // misses the limit of 0.1 on the test rows.
  auto [missed, missed_model] = ResultWithTest(refits[0], "r0", 1e-4, 0.2);
  EXPECT_FALSE(controller_->Report(missed, missed_model).value());
  auto [met, met_model] = ResultWithTest(refits[1], "r1", 1e-4, 0.05);
  EXPECT_TRUE(controller_->Report(met, met_model).value());
  const v1::Candidate judged =
      controller_->GetCandidate(refits[0].candidate_id()).value();
  ASSERT_EQ(judged.violations_size(), 1);
  EXPECT_THAT(judged.violations(0), ::testing::HasSubstr("test max abs error"));

  const v1::Experiment done = controller_->GetExperiment(experiment.id()).value();
  EXPECT_EQ(done.state(), v1::EXPERIMENT_STATE_COMPLETED);
  EXPECT_EQ(done.counts().succeeded(), 5);
  EXPECT_FALSE(controller_->LeaseWork("w1").value().has_value());
  // The front is the search's; the refits stand beside it, in its order.
  const v1::ParetoFront front =
      controller_->GetParetoFront(experiment.id()).value();
  ASSERT_EQ(front.candidates_size(), searched_front.candidates_size());
  for (int i = 0; i < front.candidates_size(); ++i) {
    EXPECT_EQ(front.candidates(i).id(), searched_front.candidates(i).id());
  }
  ASSERT_EQ(front.refits_size(), 2);
  EXPECT_EQ(front.refits(0).refit_of(), front.candidates(0).id());
  EXPECT_EQ(front.refits(1).refit_of(), front.candidates(1).id());
  EXPECT_FALSE(front.refits(0).feasible());
  EXPECT_TRUE(front.refits(1).feasible());
}

TEST_F(RefitTest, TheWallBudgetEndsTheSearchNotItsRefits) {
  v1::ExperimentSpec spec = RefitSpec(1);
  spec.mutable_budget()->set_max_candidates(0);
  spec.mutable_budget()->set_max_wall_seconds(60);
  const v1::Experiment experiment = controller_->CreateExperiment(spec).value();
  const v1::Lease lease = *controller_->LeaseWork("w1").value();
  for (int i = 0; i < 3; ++i) {  // 63 s, heartbeating within the 30 s lease
    now_ += absl::Seconds(21);
    ASSERT_TRUE(controller_->Heartbeat("w1", lease.lease_id()).ok());
  }
  auto [result, model] = ResultWithTest(lease, "w1", 0.01, 0.02);
  ASSERT_TRUE(controller_->Report(result, model).ok());
  // Past the budget, maintenance runs and the refit is still handed out.
  now_ += absl::Seconds(60);
  ASSERT_TRUE(controller_->Maintain().ok());
  const std::optional<v1::Lease> refit = controller_->LeaseWork("w2").value();
  ASSERT_TRUE(refit.has_value());
  EXPECT_EQ(refit->validation_split().fraction(), 0);
  auto [refit_result, refit_model] = ResultWithTest(*refit, "w2", 0.001, 0.01);
  ASSERT_TRUE(controller_->Report(refit_result, refit_model).ok());
  EXPECT_EQ(controller_->GetExperiment(experiment.id()).value().state(),
            v1::EXPERIMENT_STATE_COMPLETED);
}

TEST_F(RefitTest, WithoutRefitsOrWithAnEmptyFrontTheSearchJustEnds) {
  // Every candidate fails: no front, nothing to refit.
  const v1::Experiment experiment =
      controller_->CreateExperiment(RefitSpec(3)).value();
  for (int i = 0; i < 3; ++i) {
    const v1::Lease lease = *controller_->LeaseWork("w1").value();
    v1::WorkResult failed;
    failed.set_worker_id("w1");
    failed.set_lease_id(lease.lease_id());
    failed.set_failure_reason("diverged");
    ASSERT_TRUE(controller_->Report(failed, "").ok());
  }
  EXPECT_EQ(controller_->GetExperiment(experiment.id()).value().state(),
            v1::EXPERIMENT_STATE_COMPLETED);
  EXPECT_EQ(controller_->GetParetoFront(experiment.id()).value().refits_size(),
            0);
}

TEST_F(RefitTest, WhereARefitStartsDependsOnHowItsMemberWasTrained) {
  // Each experiment trains a candidate from scratch and a child of it that
  // inherits its weights (InheritingStrategy), both sending checkpoints;
  // the better one, first on the front, is refitted.
  struct Case {
    v1::RefitStart start;
    bool member_inherited;
    bool continues;
  };
  const Case cases[] = {
      {v1::REFIT_START_AUTO, false, false},
      {v1::REFIT_START_AUTO, true, true},
      {v1::REFIT_START_CONTINUE, false, true},
      {v1::REFIT_START_SCRATCH, true, false},
  };
  options_.make_strategy = MakeInheritingStrategy;
  controller_ = Controller::Create(options_).value();
  const auto report = [&](const v1::Lease& lease, double error) {
    auto [result, model] = ResultWithTest(lease, "w1", error, error);
    const std::string checkpoint = testing::Checkpoint(lease.genome(), 2, 1);
    AddCheckpoint(result, checkpoint);
    ASSERT_TRUE(controller_->Report(result, model, {checkpoint}).ok());
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(v1::RefitStart_Name(c.start), " ",
                              c.member_inherited));
    v1::ExperimentSpec spec = RefitSpec(1);
    spec.mutable_refit()->set_start(c.start);
    spec.mutable_budget()->set_max_candidates(2);
    spec.mutable_inheritance()->set_enabled(true);
    const v1::Experiment experiment =
        controller_->CreateExperiment(spec).value();
    EXPECT_DOUBLE_EQ(experiment.spec().refit().step_fraction(), 0.25);
    const v1::Lease first = *controller_->LeaseWork("w1").value();
    // The better member: the child when it inherited, else the first.
    report(first, c.member_inherited ? 0.1 : 0.01);
    const v1::Lease second = *controller_->LeaseWork("w1").value();
    EXPECT_TRUE(second.has_inheritance());
    report(second, c.member_inherited ? 0.01 : 0.1);
    const v1::Lease refit = *controller_->LeaseWork("w1").value();
    const v1::Candidate member =
        controller_->GetParetoFront(experiment.id()).value().candidates(0);
    EXPECT_EQ(member.id(), c.member_inherited ? second.candidate_id()
                                              : first.candidate_id());
    EXPECT_EQ(refit.validation_split().fraction(), 0);
    if (c.continues) {
      ASSERT_TRUE(refit.has_inheritance());
      EXPECT_EQ(refit.inheritance().parent_candidate_id(), member.id());
      EXPECT_EQ(refit.inheritance().morphism().kind(),
                v1::MORPHISM_KIND_CONTINUE);
      EXPECT_EQ(refit.inheritance().morphism().stage(), 0);
      EXPECT_DOUBLE_EQ(refit.step_fraction(), 0.25);
      EXPECT_EQ(GenomeKey(refit.inheritance().parent_genome()),
                GenomeKey(refit.genome()));
    } else {
      EXPECT_FALSE(refit.has_inheritance());
      EXPECT_EQ(refit.step_fraction(), 1);
    }
    report(refit, 0.01);
    EXPECT_EQ(controller_->GetExperiment(experiment.id()).value().state(),
              v1::EXPERIMENT_STATE_COMPLETED);
  }
}

TEST_F(RefitTest, SettingsOutOfRangeAreRefused) {
  for (int members : {-1, 101}) {
    const absl::Status status =
        controller_->CreateExperiment(RefitSpec(members)).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << members;
    EXPECT_THAT(status.message(), ::testing::HasSubstr("refit.front_members"));
  }
  for (double fraction : {-0.5, 1.5, std::nan("")}) {
    v1::ExperimentSpec spec = RefitSpec(1);
    spec.mutable_refit()->set_step_fraction(fraction);
    const absl::Status status = controller_->CreateExperiment(spec).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << fraction;
    EXPECT_THAT(status.message(), ::testing::HasSubstr("refit.step_fraction"));
  }
}

// One hidden layer of `width` tanh neurons, trained as the genome says.
v1::Genome DesignedGenome(int width) {
  v1::Genome genome;
  v1::DenseLayer* layer = genome.add_hidden_layers();
  layer->set_width(width);
  layer->set_activation(v1::ACTIVATION_TANH);
  genome.mutable_training()->set_learning_rate(1e-2);
  genome.mutable_training()->set_adam_steps(100);
  return genome;
}

TEST_F(ControllerTest, InitialGenomesAreTrainedFirstAsGiven) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  spec.mutable_budget()->set_max_candidates(4);
  // Wider than the search space allows (128): a design may lie outside it.
  *spec.add_initial_genomes() = DesignedGenome(300);
  *spec.add_initial_genomes() = DesignedGenome(5);
  *spec.add_initial_genomes() = DesignedGenome(300);
  const v1::Experiment experiment = controller_->CreateExperiment(spec).value();
  for (int i = 0; i < 2; ++i) {
    const v1::Lease lease = *controller_->LeaseWork("w1").value();
    EXPECT_EQ(GenomeKey(lease.genome()), GenomeKey(spec.initial_genomes(i)))
        << i;
    auto [result, model] = GoodResult(lease, "w1", 0.05);
    ASSERT_TRUE(controller_->Report(result, model).ok());
  }
  // The third design repeats the first: a copy of its result, no training.
  const v1::Lease searched = *controller_->LeaseWork("w1").value();
  EXPECT_NE(GenomeKey(searched.genome()), GenomeKey(DesignedGenome(300)));
  const v1::Candidate copy =
      controller_->GetCandidate(absl::StrCat(experiment.id(), "-c00002"))
          .value();
  EXPECT_EQ(copy.duplicate_of(), absl::StrCat(experiment.id(), "-c00000"));
  EXPECT_EQ(copy.state(), v1::CANDIDATE_STATE_SUCCEEDED);
  EXPECT_EQ(
      controller_->GetCandidate(searched.candidate_id()).value().sequence(), 3);
}

TEST_F(ControllerTest, InitialGenomesMustFitTheDataAndTask) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  *spec.add_initial_genomes() = DesignedGenome(8);
  *spec.add_initial_genomes() = DesignedGenome(0);
  absl::Status status = controller_->CreateExperiment(spec).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              ::testing::StartsWith("initial_genomes[1]: hidden_layers[0]"));

  // Convolutions need an image data set.
  *spec.mutable_initial_genomes(1) = DesignedGenome(8);
  v1::ConvLayer* conv = spec.mutable_initial_genomes(1)->add_conv_layers();
  conv->set_channels(4);
  conv->set_kernel_size(3);
  conv->set_activation(v1::ACTIVATION_RELU);
  status = controller_->CreateExperiment(spec).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              ::testing::StartsWith("initial_genomes[1]: "));

  // A classifier has one stage.
  v1::Dataset labelled =
      Upload("x1,x2,class\n0,0,0\n1,0,1\n0,1,1\n1,1,0\n2,0,0\n0,2,1\n");
  v1::ExperimentSpec classifier = Spec(labelled.id());
  classifier.set_task(v1::TASK_CLASSIFICATION);
  classifier.set_output_columns(0, "class");
  classifier.clear_requirements();
  v1::Genome staged = DesignedGenome(8);
  *staged.add_residual_stages()->add_hidden_layers() =
      DesignedGenome(8).hidden_layers(0);
  staged.mutable_residual_stages(0)->mutable_training()->set_learning_rate(
      1e-2);
  staged.mutable_residual_stages(0)->mutable_training()->set_adam_steps(100);
  *classifier.add_initial_genomes() = staged;
  status = controller_->CreateExperiment(classifier).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              ::testing::HasSubstr("initial_genomes[0]: residual_stages"));
}

TEST_F(ControllerTest, WorkerSecondsAccumulateOverEveryEndedLease) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  spec.mutable_budget()->set_max_candidates(0);
  spec.mutable_budget()->set_max_worker_seconds(100);
  v1::Experiment experiment = controller_->CreateExperiment(spec).value();

  // Reported after 20 s.
  auto first = controller_->LeaseWork("w1").value();
  ASSERT_TRUE(first);
  v1::Candidate c = controller_->GetCandidate(first->candidate_id()).value();
  EXPECT_EQ(ToTime(c.leased_at()), now_);
  now_ += absl::Seconds(20);
  auto [result, model] = GoodResult(*first, "w1", 0.5);
  ASSERT_TRUE(controller_->Report(result, model).ok());
  EXPECT_EQ(controller_->GetCandidate(first->candidate_id())
                .value()
                .worker_seconds(),
            20);
  // Released after 15 s, then expired after 31 s, by two workers.
  auto second = controller_->LeaseWork("w1").value();
  now_ += absl::Seconds(15);
  ASSERT_TRUE(controller_->ReleaseLease("w1", second->lease_id()).ok());
  auto retry = controller_->LeaseWork("w2").value();
  EXPECT_EQ(retry->candidate_id(), second->candidate_id());
  now_ += absl::Seconds(31);
  ASSERT_TRUE(controller_->Maintain().ok());
  EXPECT_EQ(controller_->GetCandidate(second->candidate_id())
                .value()
                .worker_seconds(),
            46);
  experiment = controller_->GetExperiment(experiment.id()).value();
  EXPECT_EQ(experiment.worker_seconds(), 66);
  EXPECT_EQ(experiment.state(), v1::EXPERIMENT_STATE_RUNNING);

  // Two workers at once; the first report crosses 100 worker-seconds: no
  // more work is handed out, the other lease may still finish.
  auto a = controller_->LeaseWork("w1").value();
  auto b = controller_->LeaseWork("w2").value();
  ASSERT_TRUE(a && b);
  now_ += absl::Seconds(20);
  auto [result_a, model_a] = GoodResult(*a, "w1", 0.5);
  ASSERT_TRUE(controller_->Report(result_a, model_a).ok());
  EXPECT_EQ(controller_->GetExperiment(experiment.id()).value().worker_seconds(),
            86);
  EXPECT_TRUE(controller_->LeaseWork("w1").value().has_value());
  now_ += absl::Seconds(20);
  auto [result_b, model_b] = GoodResult(*b, "w2", 0.5);
  ASSERT_TRUE(controller_->Report(result_b, model_b).ok());
  experiment = controller_->GetExperiment(experiment.id()).value();
  EXPECT_EQ(experiment.worker_seconds(), 126);
  // w1's lease from above is still running; nothing new is handed out.
  EXPECT_EQ(experiment.state(), v1::EXPERIMENT_STATE_RUNNING);
  EXPECT_FALSE(controller_->LeaseWork("w3").value().has_value());
  auto held = controller_->LeaseWork("w1").value();
  ASSERT_TRUE(held);
  ASSERT_TRUE(controller_->ReleaseLease("w1", held->lease_id()).ok());
  experiment = controller_->GetExperiment(experiment.id()).value();
  // The released candidate was cancelled with the rest of the queue.
  EXPECT_EQ(experiment.state(), v1::EXPERIMENT_STATE_COMPLETED);
  EXPECT_EQ(controller_->GetCandidate(held->candidate_id()).value().state(),
            v1::CANDIDATE_STATE_CANCELLED);
  EXPECT_EQ(experiment.worker_seconds(), 146);  // its 20 s count too

  // The numbers are durable.
  controller_.reset();
  controller_ = Controller::Create(options_).value();
  EXPECT_EQ(controller_->GetExperiment(experiment.id()).value().worker_seconds(),
            146);
  EXPECT_EQ(controller_->ListExperiments().value()[0].worker_seconds(), 146);
}

TEST_F(ControllerTest, StopWhenFeasibleEndsTheSearch) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  spec.mutable_budget()->set_max_candidates(50);
  spec.mutable_budget()->set_stop_when_feasible(true);
  v1::Experiment experiment = controller_->CreateExperiment(spec).value();
  auto a = controller_->LeaseWork("w1").value();
  auto b = controller_->LeaseWork("w2").value();
  auto queued = controller_->LeaseWork("w3").value();
  ASSERT_TRUE(a && b && queued);
  ASSERT_TRUE(controller_->ReleaseLease("w3", queued->lease_id()).ok());
  // Infeasible: the search goes on.
  auto [infeasible, model_a] = GoodResult(*a, "w1", 0.5);
  ASSERT_FALSE(controller_->Report(infeasible, model_a).value());
  EXPECT_EQ(controller_->GetCandidate(queued->candidate_id()).value().state(),
            v1::CANDIDATE_STATE_QUEUED);
  // Feasible (max_abs_error 0.1 is required): queued work is cancelled,
  // nothing new is handed out.
  auto [feasible, model_b] = GoodResult(*b, "w2", 0.01);
  ASSERT_TRUE(controller_->Report(feasible, model_b).value());
  EXPECT_EQ(controller_->GetCandidate(queued->candidate_id()).value().state(),
            v1::CANDIDATE_STATE_CANCELLED);
  EXPECT_FALSE(controller_->LeaseWork("w3").value().has_value());
  EXPECT_EQ(controller_->GetExperiment(experiment.id()).value().state(),
            v1::EXPERIMENT_STATE_COMPLETED);
}

TEST_F(ControllerTest, StopWhenFeasibleLetsRunningWorkFinish) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  spec.mutable_budget()->set_max_candidates(50);
  spec.mutable_budget()->set_stop_when_feasible(true);
  v1::Experiment experiment = controller_->CreateExperiment(spec).value();
  auto a = controller_->LeaseWork("w1").value();
  auto b = controller_->LeaseWork("w2").value();
  auto [feasible, model_a] = GoodResult(*a, "w1", 0.01);
  ASSERT_TRUE(controller_->Report(feasible, model_a).value());
  EXPECT_FALSE(controller_->LeaseWork("w3").value().has_value());
  EXPECT_EQ(controller_->GetExperiment(experiment.id()).value().state(),
            v1::EXPERIMENT_STATE_RUNNING);
  auto [result_b, model_b] = GoodResult(*b, "w2", 0.001);
  ASSERT_TRUE(controller_->Report(result_b, model_b).ok());
  experiment = controller_->GetExperiment(experiment.id()).value();
  EXPECT_EQ(experiment.state(), v1::EXPERIMENT_STATE_COMPLETED);
  EXPECT_EQ(experiment.counts().succeeded(), 2);
}

TEST_F(ControllerTest, ProposalsCarryTheirCheapObjectives) {
  v1::Dataset dataset = Upload(kCsv);
  controller_->CreateExperiment(Spec(dataset.id())).value();
  auto lease = controller_->LeaseWork("w1").value();
  ASSERT_TRUE(lease);
  const v1::Candidate c =
      controller_->GetCandidate(lease->candidate_id()).value();
  EXPECT_EQ(c.cost().parameter_count(), ParameterCount(c.genome(), 2, 1));
  EXPECT_GT(c.cost().flops_per_sample(), 0);
  EXPECT_EQ(c.cost().float64_bytes(), 8 * c.cost().parameter_count());
}

TEST_F(ControllerTest, FrontIsOverTheExperimentsObjectives) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  spec.mutable_budget()->set_max_candidates(4);
  spec.mutable_requirements()->clear_max_abs_error();
  // The same four results in both: error falls as training time grows.
  std::vector<v1::Experiment> experiments;
  for (int e = 0; e < 2; ++e) {
    if (e == 1) spec.add_objectives(v1::OBJECTIVE_TRAINING_SECONDS);
    const v1::Experiment experiment =
        controller_->CreateExperiment(spec).value();
    experiments.push_back(experiment);
    for (int i = 0; i < 4; ++i) {
      auto lease = controller_->LeaseWork("w1").value();
      ASSERT_TRUE(lease);
      ASSERT_EQ(lease->experiment_id(), experiment.id());
      auto [result, model] = GoodResult(*lease, "w1", 0.5 / (i + 1));
      result.mutable_metrics()->set_training_seconds(10.0 * (i + 1));
      ASSERT_TRUE(controller_->Report(result, model).ok());
    }
  }
  const v1::Experiment& by_error = experiments[0];
  const v1::Experiment& by_time = experiments[1];
  // Default objectives: error, parameters and time trade off, so all four
  // or most of them stand on the front.
  v1::ParetoFront front = controller_->GetParetoFront(by_error.id()).value();
  ASSERT_EQ(front.objectives_size(), 3);
  EXPECT_EQ(front.objectives(0), v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR);
  EXPECT_GE(front.candidates_size(), 2);
  // Training time alone: only the fastest candidate.
  front = controller_->GetParetoFront(by_time.id()).value();
  ASSERT_EQ(front.objectives_size(), 1);
  EXPECT_EQ(front.objectives(0), v1::OBJECTIVE_TRAINING_SECONDS);
  ASSERT_EQ(front.candidates_size(), 1);
  EXPECT_EQ(front.candidates(0).metrics().training_seconds(), 10.0);
}

TEST_F(ControllerTest, ExhaustedSearchSpaceCompletesTheExperiment) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  // One genome only, and a budget that copies never spend.
  v1::SearchSpace* space = spec.mutable_search_space();
  space->set_min_depth(1);
  space->set_max_depth(1);
  space->set_min_width(8);
  space->set_max_width(8);
  space->add_activations(v1::ACTIVATION_TANH);
  space->set_min_learning_rate(3e-3);
  space->set_max_learning_rate(3e-3);
  space->set_min_adam_steps(100);
  space->set_max_adam_steps(100);
  spec.mutable_budget()->set_max_candidates(0);
  spec.mutable_budget()->set_max_worker_seconds(1000);
  v1::Experiment experiment = controller_->CreateExperiment(spec).value();
  auto lease = controller_->LeaseWork("w1").value();
  ASSERT_TRUE(lease);
  auto [result, model] = GoodResult(*lease, "w1", 0.01);
  ASSERT_TRUE(controller_->Report(result, model).ok());
  for (int call = 0; call < 100; ++call) {
    ASSERT_FALSE(controller_->LeaseWork("w1").value().has_value());
    if (controller_->GetExperiment(experiment.id()).value().state() ==
        v1::EXPERIMENT_STATE_COMPLETED) {
      break;
    }
  }
  experiment = controller_->GetExperiment(experiment.id()).value();
  EXPECT_EQ(experiment.state(), v1::EXPERIMENT_STATE_COMPLETED);
  // The trained candidate and 100 copies of it.
  EXPECT_EQ(experiment.counts().succeeded(), 101);
  EXPECT_EQ(controller_->GetParetoFront(experiment.id()).value().candidates_size(),
            1);
}

TEST_F(ControllerTest, ExhaustedSearchSpaceCompletesWhenItsRefitReports) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  v1::SearchSpace* space = spec.mutable_search_space();
  space->set_min_depth(1);
  space->set_max_depth(1);
  space->set_min_width(8);
  space->set_max_width(8);
  space->add_activations(v1::ACTIVATION_TANH);
  space->set_min_learning_rate(3e-3);
  space->set_max_learning_rate(3e-3);
  space->set_min_adam_steps(100);
  space->set_max_adam_steps(100);
  spec.mutable_budget()->set_max_candidates(0);
  spec.mutable_budget()->set_max_worker_seconds(1000);
  spec.mutable_refit()->set_front_members(1);
  v1::Experiment experiment = controller_->CreateExperiment(spec).value();
  auto lease = controller_->LeaseWork("w1").value();
  ASSERT_TRUE(lease);
  auto [result, model] = GoodResult(*lease, "w1", 0.01);
  ASSERT_TRUE(controller_->Report(result, model).ok());
  // Copies until the space counts as exhausted; then the refit.
  std::optional<v1::Lease> refit;
  for (int call = 0; call < 100 && !refit; ++call) {
    refit = controller_->LeaseWork("w1").value();
  }
  ASSERT_TRUE(refit);
  EXPECT_EQ(controller_->GetCandidate(refit->candidate_id())
                .value()
                .evaluation_level(),
            v1::EVALUATION_LEVEL_REFIT);
  EXPECT_EQ(controller_->GetExperiment(experiment.id()).value().state(),
            v1::EXPERIMENT_STATE_RUNNING);
  auto [refit_result, refit_model] = GoodResult(*refit, "w1", 0.005);
  ASSERT_TRUE(controller_->Report(refit_result, refit_model).ok());
  // Done with the refit's report, not at some later worker's request.
  EXPECT_EQ(controller_->GetExperiment(experiment.id()).value().state(),
            v1::EXPERIMENT_STATE_COMPLETED);
}

// Group commit: calls from many threads share transactions, and each report
// is acknowledged only after its transaction commits. A controller reopened
// on the database (the search state rebuilt from it) sees every
// acknowledged result and continues the search without reusing a sequence
// or a genome.
TEST_F(ControllerTest, ConcurrentReportsAreDurableOnceAcknowledged) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  spec.mutable_budget()->set_max_candidates(48);
  const std::string experiment_id =
      controller_->CreateExperiment(spec).value().id();
  absl::Mutex mu;
  std::set<std::string> acknowledged;
  // Each round's workers run until `limit` results are acknowledged in all.
  auto run_workers = [&](int round, size_t limit) {
    std::vector<std::thread> threads;
    for (int w = 0; w < 8; ++w) {
      threads.emplace_back([&, w] {
        const std::string worker = absl::StrCat("w", round, "-", w);
        while (true) {
          {
            absl::MutexLock lock(&mu);
            if (acknowledged.size() >= limit) return;
          }
          absl::StatusOr<std::optional<v1::Lease>> lease =
              controller_->LeaseWork(worker);
          ASSERT_TRUE(lease.ok()) << lease.status();
          if (!lease->has_value()) return;
          auto [result, model] = GoodResult(**lease, worker, 0.5);
          absl::StatusOr<bool> reported = controller_->Report(result, model);
          ASSERT_TRUE(reported.ok()) << reported.status();
          absl::MutexLock lock(&mu);
          EXPECT_TRUE(acknowledged.insert((*lease)->candidate_id()).second);
        }
      });
    }
    for (std::thread& t : threads) t.join();
  };
  run_workers(0, 24);
  controller_.reset();
  controller_ = Controller::Create(options_).value();
  run_workers(1, 48);

  std::vector<v1::Candidate> candidates =
      controller_->ListCandidates(experiment_id).value();
  ASSERT_EQ(candidates.size(), 48u);
  std::set<std::string> keys;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const v1::Candidate& c = candidates[i];
    EXPECT_EQ(c.sequence(), static_cast<int64_t>(i));
    EXPECT_EQ(c.state(), v1::CANDIDATE_STATE_SUCCEEDED) << c.id();
    EXPECT_TRUE(acknowledged.count(c.id())) << c.id();
    EXPECT_TRUE(keys.insert(GenomeKey(c.genome())).second) << c.id();
  }
  EXPECT_EQ(acknowledged.size(), 48u);
  EXPECT_EQ(controller_->GetExperiment(experiment_id).value().state(),
            v1::EXPERIMENT_STATE_COMPLETED);
  EXPECT_TRUE(controller_->IntegrityCheck().ok());
}

// Every experiment in the database and whether it has an owner.
std::map<std::string, bool> OwnedExperiments(const std::string& db_path) {
  auto store = store::Store::Open(db_path).value();
  std::map<std::string, bool> owned;
  const std::vector<v1::Experiment> experiments =
      store->ListExperiments().value();
  for (const v1::Experiment& e : experiments) {
    owned[e.id()] = store->ExperimentOwner(e.id()).value().has_value();
  }
  return owned;
}

TEST_F(ControllerTest, ExperimentAndItsOwnerAreWrittenTogether) {
  v1::Dataset dataset = Upload(kCsv);
  const ExperimentOwnership acme{"acme", 10};
  v1::Experiment created =
      controller_->CreateExperiment(Spec(dataset.id()), acme).value();
  EXPECT_EQ(store::Store::Open(options_.db_path)
                .value()
                ->ExperimentOwner(created.id())
                .value(),
            "acme");

  // A write of the owner that fails stands for a crash between the two
  // writes: the experiment must not be stored without it.
  auto db = store::Database::Open(options_.db_path).value();
  ASSERT_TRUE(db->Exec("CREATE TRIGGER fail_owner BEFORE INSERT ON "
                       "experiment_owners BEGIN SELECT RAISE(ABORT, "
                       "'injected failure'); END")
                  .ok());
  const auto before = controller_->RowCounts().value();
  absl::Status failed =
      controller_->CreateExperiment(Spec(dataset.id()), acme).status();
  EXPECT_EQ(failed.code(), absl::StatusCode::kUnavailable) << failed;
  EXPECT_NE(failed.message().find("injected failure"), absl::string_view::npos);
  EXPECT_EQ(controller_->RowCounts().value(), before);
  for (const auto& [id, has_owner] : OwnedExperiments(options_.db_path)) {
    EXPECT_TRUE(has_owner) << id << " has no owner";
  }

  ASSERT_TRUE(db->Exec("DROP TRIGGER fail_owner").ok());
  v1::Experiment again =
      controller_->CreateExperiment(Spec(dataset.id()), acme).value();
  const auto owned = OwnedExperiments(options_.db_path);
  EXPECT_EQ(owned.size(), 2u);
  EXPECT_TRUE(owned.at(again.id()));
  // Without authentication an experiment has no owner, as before.
  v1::Experiment unowned =
      controller_->CreateExperiment(Spec(dataset.id())).value();
  EXPECT_FALSE(OwnedExperiments(options_.db_path).at(unowned.id()));
  EXPECT_TRUE(controller_->IntegrityCheck().ok());
}

TEST_F(ControllerTest, TenantLimitOfRunningExperimentsHoldsUnderConcurrency) {
  v1::Dataset dataset = Upload(kCsv);
  const ExperimentOwnership acme{"acme", 3};
  std::vector<absl::Status> results(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      results[i] =
          controller_->CreateExperiment(Spec(dataset.id()), acme).status();
    });
  }
  for (std::thread& t : threads) t.join();
  int created = 0;
  for (const absl::Status& status : results) {
    if (status.ok()) {
      ++created;
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
      EXPECT_NE(status.message().find("--max-running-experiments"),
                absl::string_view::npos);
    }
  }
  EXPECT_EQ(created, 3);
  auto store = store::Store::Open(options_.db_path).value();
  std::vector<std::string> mine = store->ExperimentIdsOf("acme").value();
  ASSERT_EQ(mine.size(), 3u);
  // Another tenant has its own limit; a finished experiment frees a place.
  EXPECT_TRUE(
      controller_->CreateExperiment(Spec(dataset.id()), ExperimentOwnership{"beta", 3}).ok());
  ASSERT_TRUE(controller_->CancelExperiment(mine[0]).ok());
  EXPECT_TRUE(controller_->CreateExperiment(Spec(dataset.id()), acme).ok());
  EXPECT_EQ(
      controller_->CreateExperiment(Spec(dataset.id()), acme).status().code(),
      absl::StatusCode::kResourceExhausted);
}

TEST_F(ControllerTest, FullTenantIsRefusedBeforeItsClassesAreCounted) {
  std::string halves = "x1,x2,y\n";
  for (int i = 0; i < 20; ++i) absl::StrAppend(&halves, i, ",", i % 3, ",0.5\n");
  v1::Dataset dataset = Upload(halves);
  const ExperimentOwnership acme{"acme", 1};
  ASSERT_TRUE(controller_->CreateExperiment(Spec(dataset.id()), acme).ok());
  // 0.5 is not a class index: counting the classes would fail with
  // INVALID_ARGUMENT, after reading the data set; the limit comes first.
  v1::ExperimentSpec classifier = Spec(dataset.id());
  classifier.set_task(v1::TASK_CLASSIFICATION);
  classifier.clear_requirements();
  const absl::Status full =
      controller_->CreateExperiment(classifier, acme).status();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  // With room, the labels are checked as before.
  const absl::Status labels =
      controller_->CreateExperiment(classifier, ExperimentOwnership{"beta", 1})
          .status();
  EXPECT_EQ(labels.code(), absl::StatusCode::kInvalidArgument) << labels;
}

TEST_F(ControllerTest, DataSetAndItsOwnerAreWrittenTogether) {
  auto upload_as = [&](const std::string& tenant, const std::string& name) {
    auto upload = controller_->BeginUpload(name, 0).value();
    EXPECT_TRUE(upload->Append(kCsv).ok());
    return upload->Finish(tenant);
  };
  const v1::Dataset dataset = upload_as("acme", "acme.csv").value();
  auto store = store::Store::Open(options_.db_path).value();
  EXPECT_EQ(store->FindDatasetOwnership("acme", dataset.id()).value()->name,
            "acme.csv");

  // A write of the owner that fails stands for a crash between the two
  // writes: neither a new data set nor a second tenant's ownership of a
  // stored one may be written alone.
  auto db = store::Database::Open(options_.db_path).value();
  ASSERT_TRUE(db->Exec("CREATE TRIGGER fail_owner BEFORE INSERT ON "
                       "dataset_owners BEGIN SELECT RAISE(ABORT, "
                       "'injected failure'); END")
                  .ok());
  const auto before = controller_->RowCounts().value();
  EXPECT_EQ(upload_as("beta", "beta.csv").status().code(),
            absl::StatusCode::kUnavailable);
  auto other = controller_->BeginUpload("other.csv", 0).value();
  ASSERT_TRUE(other->Append("a,b\n1,2\n").ok());
  EXPECT_EQ(other->Finish("beta").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(controller_->RowCounts().value(), before);

  ASSERT_TRUE(db->Exec("DROP TRIGGER fail_owner").ok());
  EXPECT_EQ(upload_as("beta", "beta.csv").value().id(), dataset.id());
  EXPECT_EQ(store->FindDatasetOwnership("beta", dataset.id()).value()->name,
            "beta.csv");
  EXPECT_EQ(store->FindDatasetOwnership("acme", dataset.id()).value()->name,
            "acme.csv");
  EXPECT_EQ(controller_->ListDatasets().value().size(), 1u);
}

// Small files of a report are rows written with the report, large ones blob
// files; both are served, and a file written by a controller that stored
// every file as a file (inline_blob_max_bytes 0, as before schema v5) is
// still served after a restart with inlining on.
TEST_F(InheritanceTest, SmallFilesAreStoredInTheDatabaseLargeOnesAsFiles) {
  options_.inline_blob_max_bytes = 0;
  controller_ = Controller::Create(options_).value();
  controller_->CreateExperiment(InheritingSpec()).value();
  const v1::Lease parent = TrainParent(/*with_checkpoint=*/true);
  const std::string checkpoint = testing::Checkpoint(parent.genome(), 2, 1);
  auto blobs = store::BlobStore::Open(options_.data_dir + "/blobs").value();
  EXPECT_TRUE(blobs->Contains(Sha256Hex(checkpoint)));

  options_.inline_blob_max_bytes = 64 << 10;
  controller_ = Controller::Create(options_).value();
  auto child = controller_->LeaseWork("w2").value();
  ASSERT_TRUE(child && child->has_inheritance());
  EXPECT_EQ(child->inheritance().checkpoint_size_bytes(),
            static_cast<int64_t>(checkpoint.size()));
  EXPECT_EQ(controller_->FetchCheckpoint("w2", child->lease_id()).value(),
            checkpoint);

  // The child's small model and checkpoint go into the database, its large
  // ONNX file into a file.
  auto [result, model] = GoodResult(*child, "w2", 0.01);
  const std::string child_checkpoint =
      testing::Checkpoint(child->genome(), 2, 1);
  AddCheckpoint(result, child_checkpoint);
  const std::string onnx(options_.inline_blob_max_bytes + 1, 'o');
  v1::Artifact* artifact = result.add_artifacts();
  artifact->set_format(v1::MODEL_FORMAT_ONNX);
  artifact->set_size_bytes(onnx.size());
  artifact->set_sha256(Sha256Hex(onnx));
  const int64_t inline_before =
      controller_->RowCounts().value().at("inline_blobs");
  ASSERT_TRUE(
      controller_->Report(result, model, {child_checkpoint, onnx}).ok());
  EXPECT_EQ(controller_->RowCounts().value().at("inline_blobs"),
            inline_before + 2);
  EXPECT_FALSE(blobs->Contains(Sha256Hex(model)));
  EXPECT_FALSE(blobs->Contains(Sha256Hex(child_checkpoint)));
  EXPECT_TRUE(blobs->Contains(Sha256Hex(onnx)));

  // Served the same way from either place, also after a restart (whose
  // orphan sweep must spare the large file).
  controller_.reset();
  AgeBlobs(options_.data_dir + "/blobs");
  controller_ = Controller::Create(options_).value();
  const std::string id = child->candidate_id();
  EXPECT_EQ(controller_->ReadModel(id).value(), model);
  EXPECT_EQ(controller_->ReadModel(id, v1::MODEL_FORMAT_CHECKPOINT).value(),
            child_checkpoint);
  EXPECT_EQ(controller_->ReadModel(id, v1::MODEL_FORMAT_ONNX).value(), onnx);
  EXPECT_EQ(controller_->ReadModel(parent.candidate_id(),
                                   v1::MODEL_FORMAT_CHECKPOINT)
                .value(),
            checkpoint);
  auto grandchild = controller_->LeaseWork("w3").value();
  ASSERT_TRUE(grandchild && grandchild->has_inheritance());
  EXPECT_EQ(
      controller_->FetchCheckpoint("w3", grandchild->lease_id()).value(),
      grandchild->inheritance().parent_candidate_id() == id ? child_checkpoint
                                                            : checkpoint);
  EXPECT_TRUE(controller_->IntegrityCheck().ok());
}

// A report whose rows fail to commit leaves neither its result nor its
// small files behind: they are written in the same transaction.
TEST_F(ControllerTest, SmallFilesRollBackWithTheirReport) {
  v1::Dataset dataset = Upload(kCsv);
  controller_->CreateExperiment(Spec(dataset.id())).value();
  auto lease = controller_->LeaseWork("w1").value();
  auto [result, model] = GoodResult(*lease, "w1", 0.01);
  const std::string onnx = "onnx-bytes";
  v1::Artifact* artifact = result.add_artifacts();
  artifact->set_format(v1::MODEL_FORMAT_ONNX);
  artifact->set_size_bytes(onnx.size());
  artifact->set_sha256(Sha256Hex(onnx));

  auto db = store::Database::Open(options_.db_path).value();
  ASSERT_TRUE(db->Exec("CREATE TRIGGER fail_artifact BEFORE INSERT ON "
                       "artifacts BEGIN SELECT RAISE(ABORT, 'injected "
                       "failure'); END")
                  .ok());
  const auto before = controller_->RowCounts().value();
  EXPECT_EQ(controller_->Report(result, model, {onnx}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(controller_->RowCounts().value(), before);
  EXPECT_EQ(controller_->GetCandidate(lease->candidate_id()).value().state(),
            v1::CANDIDATE_STATE_RUNNING);

  ASSERT_TRUE(db->Exec("DROP TRIGGER fail_artifact").ok());
  ASSERT_TRUE(controller_->Report(result, model, {onnx}).ok());
  EXPECT_EQ(controller_->RowCounts().value().at("inline_blobs"),
            before.at("inline_blobs") + 2);
  EXPECT_EQ(controller_->ReadModel(lease->candidate_id()).value(), model);
}

// Labels 0..2 in column "class"; the test data set lacks class 1.
constexpr char kLabelledCsv[] =
    "x1,x2,class\n0,0,0\n1,0,1\n0,1,2\n1,1,0\n2,0,1\n0,2,2\n2,2,0\n3,1,1\n"
    "1,3,2\n3,3,0\n";

TEST_F(ControllerTest, ClassificationCountsClassesAndLeasesLogits) {
  v1::Dataset dataset = Upload(kLabelledCsv);
  v1::Dataset test = Upload("x1,x2,class\n0,0,0\n5,5,2\n");
  v1::ExperimentSpec spec = Spec(dataset.id());
  spec.set_task(v1::TASK_CLASSIFICATION);
  spec.set_output_columns(0, "class");
  spec.clear_requirements();
  spec.mutable_requirements()->set_min_accuracy(0.9);
  spec.set_test_dataset_id(test.id());
  v1::Experiment experiment = controller_->CreateExperiment(spec).value();
  EXPECT_EQ(experiment.class_count(), 3);

  auto lease = controller_->LeaseWork("w1").value();
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(lease->task(), v1::TASK_CLASSIFICATION);
  EXPECT_EQ(lease->class_count(), 3);
  EXPECT_EQ(lease->dataset_format(), v1::DATASET_FORMAT_CSV);
  // Classifiers train on mini-batches unless the space says otherwise.
  EXPECT_EQ(experiment.spec().search_space().batch_size(), 256);
  EXPECT_EQ(lease->genome().training().batch_size(), 256);
  // Nor does a classifier carry L-BFGS steps it would never run.
  EXPECT_EQ(experiment.spec().search_space().lbfgs_steps(), 0);
  EXPECT_EQ(lease->genome().training().lbfgs_steps(), 0);
  // The network has one output per class: the cheap cost counts them.
  const int64_t params = ParameterCount(lease->genome(), 2, 3);
  EXPECT_EQ(controller_->GetCandidate(lease->candidate_id())
                .value()
                .cost()
                .parameter_count(),
            params);

  std::string model = "model-bytes";
  v1::WorkResult result;
  result.set_worker_id("w1");
  result.set_lease_id(lease->lease_id());
  v1::Metrics* m = result.mutable_metrics();
  for (v1::Evaluation* e : {m->mutable_validation(), m->mutable_test()}) {
    e->set_row_count(2);
    e->set_accuracy(0.95);
    e->set_cross_entropy(0.2);
  }
  m->set_parameter_count(params);
  m->set_model_bytes(model.size());
  result.set_model_size_bytes(model.size());
  result.set_model_sha256(Sha256Hex(model));
  // A forged accuracy or a regression-sized parameter count is refused.
  v1::WorkResult forged = result;
  forged.mutable_metrics()->mutable_validation()->set_accuracy(1.5);
  EXPECT_EQ(controller_->Report(forged, model).status().code(),
            absl::StatusCode::kInvalidArgument);
  forged = result;
  forged.mutable_metrics()->set_parameter_count(
      ParameterCount(lease->genome(), 2, 1));
  EXPECT_EQ(controller_->Report(forged, model).status().code(),
            absl::StatusCode::kInvalidArgument);
  // The real report is feasible (accuracy 95% >= 90%) and on the front,
  // which ranks by error rate.
  EXPECT_TRUE(controller_->Report(result, model).value());
  v1::ParetoFront front = controller_->GetParetoFront(experiment.id()).value();
  ASSERT_GE(front.objectives_size(), 1);
  EXPECT_EQ(front.objectives(0), v1::OBJECTIVE_VALIDATION_ERROR_RATE);
  ASSERT_EQ(front.candidates_size(), 1);
  EXPECT_TRUE(front.candidates(0).feasible());

  // A later, more accurate but slower candidate joins the front, ahead of
  // the first: the front is sorted by error rate (every classifier's max
  // abs error is 0).
  auto second = controller_->LeaseWork("w1").value();
  ASSERT_TRUE(second.has_value());
  v1::WorkResult better = result;
  better.set_lease_id(second->lease_id());
  v1::Metrics* b = better.mutable_metrics();
  b->set_parameter_count(ParameterCount(second->genome(), 2, 3));
  b->set_training_seconds(m->training_seconds() + 100);
  b->mutable_validation()->set_accuracy(0.99);
  EXPECT_TRUE(controller_->Report(better, model).value());
  front = controller_->GetParetoFront(experiment.id()).value();
  ASSERT_EQ(front.candidates_size(), 2);
  EXPECT_EQ(front.candidates(0).id(), second->candidate_id());
  EXPECT_EQ(front.candidates(1).id(), lease->candidate_id());
}

// An IDX data set of `count` 8 x 8 images with labels 0..3 (images file,
// then labels file, as stored).
std::string EightByEightIdx(uint32_t count) {
  const auto big_endian = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  std::string images = big_endian(0x803) + big_endian(count) + big_endian(8) +
                       big_endian(8);
  std::string labels = big_endian(0x801) + big_endian(count);
  for (uint32_t i = 0; i < count; ++i) {
    for (int p = 0; p < 64; ++p) images += static_cast<char>((i * 7 + p) % 256);
    labels += static_cast<char>(i % 4);
  }
  return images + labels;
}

TEST_F(ControllerTest, IdxValueLimitIsAnOption) {
  const std::string idx = EightByEightIdx(40);  // 40 x (64 + 1) values
  for (int64_t limit : {40 * 65 - 1, 40 * 65}) {
    options_.max_dataset_values = limit;
    controller_.reset();
    controller_ = Controller::Create(options_).value();
    auto upload = controller_
                      ->BeginUpload("images.idx", idx.size(),
                                    v1::DATASET_FORMAT_IDX)
                      .value();
    ASSERT_TRUE(upload->Append(idx).ok());
    const absl::StatusOr<v1::Dataset> dataset = upload->Finish();
    if (limit < 40 * 65) {
      EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(std::string(dataset.status().message()),
                  ::testing::HasSubstr("raise --max-dataset-values"));
    } else {
      EXPECT_TRUE(dataset.ok()) << dataset.status();
    }
  }
}

TEST_F(ControllerTest, ConvolutionalExperimentLeasesTheImageShape) {
  const std::string idx = EightByEightIdx(40);
  auto upload = controller_
                    ->BeginUpload("images.idx", idx.size(),
                                  v1::DATASET_FORMAT_IDX)
                    .value();
  ASSERT_TRUE(upload->Append(idx).ok());
  const v1::Dataset dataset = upload->Finish().value();
  v1::ExperimentSpec spec;
  spec.set_dataset_id(dataset.id());
  spec.add_output_columns("label");
  spec.set_task(v1::TASK_CLASSIFICATION);
  spec.mutable_budget()->set_max_candidates(6);
  spec.set_seed(3);
  spec.mutable_search_space()->set_min_conv_layers(1);
  spec.mutable_search_space()->set_max_conv_layers(3);
  spec.mutable_search_space()->set_max_channels(8);
  const v1::Experiment experiment = controller_->CreateExperiment(spec).value();
  // 8 -> 4 -> 2 -> 1: three poolings at most.
  EXPECT_EQ(experiment.spec().search_space().max_pooling_layers(), 3);
  EXPECT_EQ(experiment.spec().input_columns_size(), 64);

  auto lease = controller_->LeaseWork("w1").value();
  ASSERT_TRUE(lease.has_value());
  ASSERT_GE(lease->genome().conv_layers_size(), 1);
  EXPECT_THAT(lease->image_shape(), ::testing::ElementsAre(8, 8));
  EXPECT_TRUE(ValidateGenomeForImage(lease->genome(), 64, {8, 8}).ok());
  const int64_t params = ParameterCount(lease->genome(), 64, 4, {8, 8});
  EXPECT_EQ(controller_->GetCandidate(lease->candidate_id())
                .value()
                .cost()
                .parameter_count(),
            params);

  // A report whose checkpoint has the genome's trunk is accepted; one
  // whose trunk lost a layer, or counts the parameters of an MLP, is not.
  const std::string model = "model-bytes";
  v1::NetworkWeights weights =
      ZeroWeights(lease->genome(), 64, 4, {8, 8});
  v1::WorkResult result;
  result.set_worker_id("w1");
  result.set_lease_id(lease->lease_id());
  v1::Metrics* m = result.mutable_metrics();
  m->mutable_validation()->set_row_count(8);
  m->mutable_validation()->set_accuracy(0.5);
  m->mutable_validation()->set_cross_entropy(1.2);
  m->set_parameter_count(params);
  m->set_model_bytes(model.size());
  result.set_model_size_bytes(model.size());
  result.set_model_sha256(Sha256Hex(model));
  auto with_checkpoint = [&](const v1::NetworkWeights& w) {
    v1::WorkResult r = result;
    const std::string bytes = w.SerializeAsString();
    v1::Artifact* artifact = r.add_artifacts();
    artifact->set_format(v1::MODEL_FORMAT_CHECKPOINT);
    artifact->set_size_bytes(bytes.size());
    artifact->set_sha256(Sha256Hex(bytes));
    return std::make_pair(r, bytes);
  };
  v1::NetworkWeights forged = weights;
  forged.mutable_stages(0)->mutable_conv_layers()->RemoveLast();
  auto [bad, bad_bytes] = with_checkpoint(forged);
  const absl::Status refused = controller_->Report(bad, model, {bad_bytes}).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), ::testing::HasSubstr("convolutional layers"));
  v1::WorkResult mlp_count = result;
  mlp_count.mutable_metrics()->set_parameter_count(
      ParameterCount(lease->genome(), 64, 4));
  EXPECT_EQ(controller_->Report(mlp_count, model).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto [good, good_bytes] = with_checkpoint(weights);
  EXPECT_TRUE(controller_->Report(good, model, {good_bytes}).ok());

  // Convolutions need images and all of their pixels.
  v1::ExperimentSpec table = Spec(Upload(kCsv).id());
  table.mutable_search_space()->set_max_conv_layers(2);
  absl::Status status = controller_->CreateExperiment(table).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), ::testing::HasSubstr("needs an image data set"));
  v1::ExperimentSpec some_pixels = spec;
  some_pixels.add_input_columns("pixel_1");
  some_pixels.add_input_columns("pixel_0");
  status = controller_->CreateExperiment(some_pixels).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), ::testing::HasSubstr("need all 64 pixels"));
  v1::ExperimentSpec too_many_poolings = spec;
  too_many_poolings.mutable_search_space()->set_max_pooling_layers(4);
  EXPECT_THAT(controller_->CreateExperiment(too_many_poolings)
                  .status()
                  .message(),
              ::testing::HasSubstr("max_pooling_layers 4 is more than"));
}

TEST_F(ControllerTest, SearchSpaceBatchSizeReachesEveryGenome) {
  v1::Dataset dataset = Upload(kCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  spec.mutable_search_space()->set_batch_size(3);
  controller_->CreateExperiment(spec).value();
  auto lease = controller_->LeaseWork("w1").value();
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(lease->genome().training().batch_size(), 3);
  spec.mutable_search_space()->set_batch_size(-1);
  EXPECT_EQ(controller_->CreateExperiment(spec).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A regression keeps full batches by default.
  EXPECT_EQ(controller_->CreateExperiment(Spec(dataset.id()))
                .value()
                .spec()
                .search_space()
                .batch_size(),
            0);
}

TEST_F(ControllerTest, NoInputColumnsMeansEveryColumnButTheOutputs) {
  v1::Dataset dataset = Upload(kLabelledCsv);
  v1::ExperimentSpec spec = Spec(dataset.id());
  spec.clear_input_columns();
  spec.set_output_columns(0, "x2");
  v1::Experiment experiment = controller_->CreateExperiment(spec).value();
  ASSERT_EQ(experiment.spec().input_columns_size(), 2);
  EXPECT_EQ(experiment.spec().input_columns(0), "x1");
  EXPECT_EQ(experiment.spec().input_columns(1), "class");
}

TEST_F(ControllerTest, ClassificationSpecsAreChecked) {
  v1::Dataset dataset = Upload(kLabelledCsv);
  v1::Dataset fractional = Upload("x1,x2,class\n0,0,0\n1,0,1.5\n0,1,1\n1,1,0\n");
  v1::Dataset one_class = Upload(
      "x1,x2,class\n0,0,1\n1,0,1\n0,1,1\n1,1,1\n2,0,1\n0,2,1\n2,2,1\n");
  v1::Dataset unseen = Upload("x1,x2,class\n0,0,0\n1,0,7\n");
  const auto classification = [&](const std::string& id) {
    v1::ExperimentSpec spec = Spec(id);
    spec.set_task(v1::TASK_CLASSIFICATION);
    spec.set_output_columns(0, "class");
    spec.clear_requirements();
    return spec;
  };
  struct Case {
    std::string name;
    v1::ExperimentSpec spec;
    absl::StatusCode code;
    std::string message;
  };
  std::vector<Case> cases;
  cases.push_back({"fractional label", classification(fractional.id()),
                   absl::StatusCode::kInvalidArgument,
                   "row 2, column \"class\": 1.5 is not a class label"});
  cases.push_back({"one class", classification(one_class.id()),
                   absl::StatusCode::kInvalidArgument,
                   "holds a single class"});
  {
    v1::ExperimentSpec spec = classification(dataset.id());
    spec.set_test_dataset_id(unseen.id());
    cases.push_back({"test label unseen in training", spec,
                     absl::StatusCode::kInvalidArgument,
                     "7 is not a class of the training data set"});
  }
  {
    v1::ExperimentSpec spec = classification(dataset.id());
    spec.add_output_columns("x2");
    spec.clear_input_columns();
    spec.add_input_columns("x1");
    cases.push_back({"two label columns", spec,
                     absl::StatusCode::kInvalidArgument,
                     "a classification predicts one column"});
  }
  {
    v1::ExperimentSpec spec = classification(dataset.id());
    spec.mutable_requirements()->set_max_abs_error(0.1);
    cases.push_back({"regression requirement", spec,
                     absl::StatusCode::kInvalidArgument,
                     "a classification is judged by min_accuracy"});
  }
  {
    v1::ExperimentSpec spec = Spec(dataset.id());
    spec.mutable_requirements()->set_min_accuracy(0.9);
    cases.push_back({"accuracy for a regression", spec,
                     absl::StatusCode::kInvalidArgument,
                     "min_accuracy judges classifiers"});
  }
  {
    v1::ExperimentSpec spec = classification(dataset.id());
    spec.mutable_search_space()->set_max_residual_stages(2);
    cases.push_back({"stages", spec, absl::StatusCode::kInvalidArgument,
                     "classification networks have one stage"});
  }
  {
    v1::ExperimentSpec spec = classification(dataset.id());
    spec.set_output_columns(0, "nope");
    cases.push_back({"unknown label column", spec,
                     absl::StatusCode::kInvalidArgument, "nope"});
  }
  {
    v1::ExperimentSpec spec = classification(dataset.id());
    spec.set_task(static_cast<v1::Task>(9));
    cases.push_back({"unknown task", spec, absl::StatusCode::kInvalidArgument,
                     "task: unknown task 9"});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<v1::Experiment> created =
        controller_->CreateExperiment(c.spec);
    ASSERT_FALSE(created.ok());
    EXPECT_EQ(created.status().code(), c.code) << created.status();
    EXPECT_NE(created.status().message().find(c.message), std::string::npos)
        << created.status();
  }
  EXPECT_TRUE(controller_->ListExperiments().value().empty());
}

}  // namespace
}  // namespace evonas
