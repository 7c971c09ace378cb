#include "server/controller.h"

#include <filesystem>
#include <set>
#include <string>

#include "common/genome.h"
#include "common/sha256.h"
#include "gtest/gtest.h"

namespace evonas {
namespace {

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
      {"bad search space",
       [](auto& s) { s.mutable_search_space()->set_min_width(-3); },
       absl::StatusCode::kInvalidArgument, "width"},
      {"unknown test data set", [](auto& s) { s.set_test_dataset_id("zz"); },
       absl::StatusCode::kNotFound, "test_dataset_id"},
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

TEST_F(ControllerTest, DuplicateGenomesAreReproposed) {
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
  spec.mutable_budget()->set_max_candidates(4);
  controller_->CreateExperiment(spec).value();
  // Queued and running candidates count as taken, not only finished ones.
  std::set<std::string> keys;
  for (int i = 0; i < 3; ++i) {
    auto lease = controller_->LeaseWork("w" + std::to_string(i)).value();
    ASSERT_TRUE(lease);
    keys.insert(GenomeKey(lease->genome()));
  }
  EXPECT_EQ(keys.size(), 3u);
  // The space is exhausted: the fourth candidate repeats a genome rather
  // than stalling the experiment.
  auto fourth = controller_->LeaseWork("w3").value();
  ASSERT_TRUE(fourth);
  EXPECT_EQ(keys.count(GenomeKey(fourth->genome())), 1u);
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

}  // namespace
}  // namespace evonas
