#include "client/report_sample.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/genome.h"
#include "common/requirements.h"

namespace evonas::client {
namespace {

constexpr int64_t kCreated = 1714554000;  // 2024-05-01 09:00:00 UTC
// The regression sample's search.
constexpr int kCandidates = 80;
constexpr double kWallSeconds = 900;
// The classification sample's search.
constexpr int kClassifierCandidates = 60;
constexpr double kClassifierWallSeconds = 2400;

google::protobuf::Timestamp At(double seconds) {
  google::protobuf::Timestamp t;
  t.set_seconds(kCreated + static_cast<int64_t>(std::floor(seconds)));
  t.set_nanos(static_cast<int32_t>((seconds - std::floor(seconds)) * 1e9));
  return t;
}

// Uniform in [0, 1) and standard normal from a fixed engine; the standard
// distributions differ between libraries, the engine does not.
class Random {
 public:
  double Uniform() {
    return static_cast<double>(engine_() >> 11) * 0x1.0p-53;
  }
  double Normal() {
    const double u = std::max(Uniform(), 1e-300);
    return std::sqrt(-2 * std::log(u)) * std::cos(2 * M_PI * Uniform());
  }
  int Pick(int n) { return static_cast<int>(Uniform() * n); }

 private:
  std::mt19937_64 engine_{20240501};
};

v1::Dataset Dataset(const std::string& name, const std::string& id,
                    int64_t rows) {
  v1::Dataset d;
  d.set_id(id);
  d.set_name(name);
  for (const char* column : {"x1", "x2", "x3", "y"}) d.add_columns(column);
  d.set_row_count(rows);
  d.set_size_bytes(rows * 49 + 12);
  *d.mutable_created_at() = At(-600);
  return d;
}

// 28x28 images and their labels in the IDX format, as the controller
// describes Fashion-MNIST.
v1::Dataset ImageDataset(const std::string& name, const std::string& id,
                         int64_t rows) {
  v1::Dataset d;
  d.set_id(id);
  d.set_name(name);
  for (int i = 0; i < 28 * 28; ++i) d.add_columns(absl::StrCat("pixel_", i));
  d.add_columns("label");
  d.set_row_count(rows);
  d.set_size_bytes(16 + rows * 28 * 28 + 8 + rows);
  d.set_format(v1::DATASET_FORMAT_IDX);
  d.add_image_shape(28);
  d.add_image_shape(28);
  *d.mutable_created_at() = At(-600);
  return d;
}

// The validation error that the sample's front is ranked by.
using ErrorOf = double (*)(const v1::Metrics&);

// Constraint domination over (error, parameters, training seconds).
bool Dominates(const v1::Candidate& a, const v1::Candidate& b, ErrorOf error) {
  if (a.feasible() != b.feasible()) return a.feasible();
  const v1::Metrics& x = a.metrics();
  const v1::Metrics& y = b.metrics();
  const double ax[] = {error(x), static_cast<double>(x.parameter_count()),
                       x.training_seconds()};
  const double by[] = {error(y), static_cast<double>(y.parameter_count()),
                       y.training_seconds()};
  bool better = false;
  for (int i = 0; i < 3; ++i) {
    if (ax[i] > by[i]) return false;
    better = better || ax[i] < by[i];
  }
  return better;
}

// Candidate `i` of `count` in a search of `wall_seconds`: a random genome
// of 1 to 4 dense layers, and when it was created and finished.
v1::Candidate RandomCandidate(const v1::Experiment& e, int i, int count,
                              double wall_seconds, Random& random) {
  static const int kWidths[] = {8, 16, 24, 32, 48, 64, 96, 128};
  static const v1::Activation kActivations[] = {
      v1::ACTIVATION_TANH, v1::ACTIVATION_SILU, v1::ACTIVATION_GELU};
  v1::Candidate c;
  c.set_id(absl::StrFormat("c-%06d-%04x", i, (i * 40503 + 17) & 0xffff));
  c.set_experiment_id(e.id());
  c.set_sequence(i);
  const int depth = 1 + random.Pick(4);
  for (int l = 0; l < depth; ++l) {
    v1::DenseLayer* layer = c.mutable_genome()->add_hidden_layers();
    layer->set_width(kWidths[random.Pick(8)]);
    layer->set_activation(kActivations[random.Pick(3)]);
  }
  v1::TrainingConfig* t = c.mutable_genome()->mutable_training();
  t->set_learning_rate(1e-3 * std::pow(20.0, random.Uniform()));
  t->set_adam_steps(500 + 100 * random.Pick(26));
  t->set_lbfgs_steps(200);
  c.set_attempts(1);
  c.set_worker_id(i % 2 == 0 ? "worker-a" : "worker-b");
  const double finished =
      wall_seconds * (i + 0.6 + 0.3 * random.Uniform()) / count;
  *c.mutable_created_at() = At(std::max(0.0, finished - 25));
  *c.mutable_finished_at() = At(finished);
  return c;
}

// Judges a trained candidate as the controller would and counts it.
void Judge(v1::Experiment& e, v1::Candidate& c) {
  const Assessment assessment = Assess(e.spec().requirements(), c.metrics());
  c.set_feasible(assessment.feasible);
  for (const std::string& v : assessment.violations) c.add_violations(v);
  if (c.feasible()) e.set_feasible_count(e.feasible_count() + 1);
}

// Fills the experiment's counts and the front (over `objectives`, ranked
// by `error`) from input.candidates.
void FinishSample(ReportInput& input,
                  const std::vector<v1::Objective>& objectives, ErrorOf error) {
  v1::Experiment& e = input.experiment;
  v1::CandidateCounts& counts = *e.mutable_counts();
  for (const v1::Candidate& c : input.candidates) {
    if (c.state() == v1::CANDIDATE_STATE_SUCCEEDED) {
      counts.set_succeeded(counts.succeeded() + 1);
    } else {
      counts.set_failed(counts.failed() + 1);
    }
  }

  v1::ParetoFront& front = input.front;
  front.set_experiment_id(e.id());
  for (v1::Objective objective : objectives) front.add_objectives(objective);
  front.set_has_feasible(e.feasible_count() > 0);
  std::vector<v1::Candidate> members;
  for (const v1::Candidate& c : input.candidates) {
    if (c.state() != v1::CANDIDATE_STATE_SUCCEEDED) continue;
    const bool dominated =
        std::any_of(input.candidates.begin(), input.candidates.end(),
                    [&](const v1::Candidate& o) {
                      return o.state() == v1::CANDIDATE_STATE_SUCCEEDED &&
                             Dominates(o, c, error);
                    });
    if (!dominated) members.push_back(c);
  }
  std::sort(members.begin(), members.end(),
            [&](const v1::Candidate& a, const v1::Candidate& b) {
              return error(a.metrics()) < error(b.metrics());
            });
  for (const v1::Candidate& c : members) *front.add_candidates() = c;
}

}  // namespace

ReportInput SampleReportInput() {
  ReportInput input;
  input.generated_at = absl::FromUnixSeconds(kCreated + 1000);
  input.time_zone = absl::UTCTimeZone();
  input.dataset = Dataset(
      "hartmann3/train.csv",
      "9c1f0e5b7a2d4c8e6f3b1a0d9e8c7b6a5f4e3d2c1b0a99887766554433221100",
      2000);
  input.test_dataset = Dataset(
      "hartmann3/holdout.csv",
      "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9", 500);

  v1::Experiment& e = input.experiment;
  e.set_id("exp-000007-5c2e");
  e.set_state(v1::EXPERIMENT_STATE_COMPLETED);
  *e.mutable_created_at() = At(0);
  *e.mutable_finished_at() = At(kWallSeconds + 12);
  v1::ExperimentSpec& spec = *e.mutable_spec();
  spec.set_name("Hartmann-3 surrogate for the test bench");
  spec.set_dataset_id(input.dataset.id());
  spec.set_test_dataset_id(input.test_dataset->id());
  for (const char* x : {"x1", "x2", "x3"}) spec.add_input_columns(x);
  spec.add_output_columns("y");
  spec.set_seed(1);
  spec.set_strategy(v1::STRATEGY_REGULARIZED_EVOLUTION);
  spec.set_validation_fraction(0.2);
  spec.mutable_budget()->set_max_candidates(kCandidates);
  spec.mutable_budget()->set_max_wall_seconds(kWallSeconds);
  v1::Requirements& req = *spec.mutable_requirements();
  req.set_max_abs_error(2e-3);
  req.set_within_tolerance(1e-4);
  req.set_min_fraction_within(0.25);
  req.set_max_parameters(6000);
  req.set_max_inference_latency_seconds(6e-5);

  Random random;
  for (int i = 0; i < kCandidates; ++i) {
    v1::Candidate c = RandomCandidate(e, i, kCandidates, kWallSeconds, random);
    const int adam_steps = c.genome().training().adam_steps();
    const int depth = c.genome().hidden_layers_size();
    if (i % 27 == 13) {
      c.set_state(v1::CANDIDATE_STATE_FAILED);
      c.set_failure_reason("training diverged: loss is NaN after 812 steps");
      input.candidates.push_back(c);
      continue;
    }
    c.set_state(v1::CANDIDATE_STATE_SUCCEEDED);
    const int64_t params = ParameterCount(c.genome(), 3, 1);
    // Larger networks fit better, and the search improves over time.
    const double error = 0.35 * std::pow(static_cast<double>(params), -0.72) *
                         std::pow(10.0, 0.28 * random.Normal() -
                                            0.45 * i / kCandidates);
    v1::Metrics& m = *c.mutable_metrics();
    v1::Evaluation& val = *m.mutable_validation();
    val.set_row_count(400);
    val.set_max_abs_error(error);
    val.set_fraction_within(1 / (1 + std::pow(error / 1.2e-3, 1.4)));
    val.set_rmse(error * 0.21);
    val.set_mae(error * 0.14);
    v1::Evaluation& test = *m.mutable_test();
    test.set_row_count(500);
    test.set_max_abs_error(error * (1.1 + 0.2 * random.Uniform()));
    test.set_fraction_within(val.fraction_within() * 0.97);
    test.set_rmse(val.rmse() * 1.08);
    test.set_mae(val.mae() * 1.06);
    m.set_parameter_count(params);
    m.set_model_bytes(5200 + params * 8);
    m.set_training_seconds(1.5 + 0.0012 * params +
                           0.004 * adam_steps * (1 + 0.1 * depth));
    m.set_inference_latency_seconds(
        (1.2e-5 + 6e-9 * params + 4e-6 * depth) *
        (1 + 0.15 * random.Uniform()));
    m.set_training_row_count(1600);
    Judge(e, c);
    input.candidates.push_back(c);
  }
  FinishSample(
      input,
      {v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR, v1::OBJECTIVE_PARAMETER_COUNT,
       v1::OBJECTIVE_TRAINING_SECONDS},
      [](const v1::Metrics& m) { return m.validation().max_abs_error(); });
  return input;
}

ReportInput SampleClassificationReportInput() {
  ReportInput input;
  input.generated_at = absl::FromUnixSeconds(kCreated + 2600);
  input.time_zone = absl::UTCTimeZone();
  input.dataset = ImageDataset(
      "fashion-mnist/train.idx",
      "5e1b3c7d9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c",
      60000);
  input.test_dataset = ImageDataset(
      "fashion-mnist/t10k.idx",
      "d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3",
      10000);

  v1::Experiment& e = input.experiment;
  e.set_id("exp-000012-9a41");
  e.set_state(v1::EXPERIMENT_STATE_COMPLETED);
  e.set_class_count(10);
  *e.mutable_created_at() = At(0);
  *e.mutable_finished_at() = At(kClassifierWallSeconds + 30);
  v1::ExperimentSpec& spec = *e.mutable_spec();
  spec.set_name("Fashion-MNIST classifier for the sorting line");
  spec.set_task(v1::TASK_CLASSIFICATION);
  spec.set_dataset_id(input.dataset.id());
  spec.set_test_dataset_id(input.test_dataset->id());
  for (int i = 0; i < 28 * 28; ++i) {
    spec.add_input_columns(absl::StrCat("pixel_", i));
  }
  spec.add_output_columns("label");
  spec.set_seed(3);
  spec.set_strategy(v1::STRATEGY_REGULARIZED_EVOLUTION);
  spec.set_validation_fraction(0.2);
  spec.mutable_budget()->set_max_candidates(kClassifierCandidates);
  spec.mutable_budget()->set_max_wall_seconds(kClassifierWallSeconds);
  v1::Requirements& req = *spec.mutable_requirements();
  req.set_min_accuracy(0.855);
  req.set_max_parameters(60000);
  req.set_max_inference_latency_seconds(1.2e-4);

  Random random;
  for (int i = 0; i < kClassifierCandidates; ++i) {
    v1::Candidate c = RandomCandidate(e, i, kClassifierCandidates,
                                      kClassifierWallSeconds, random);
    // Classifiers train on mini-batches, with Adam only.
    c.mutable_genome()->mutable_training()->set_lbfgs_steps(0);
    c.mutable_genome()->mutable_training()->set_batch_size(256);
    const int adam_steps = c.genome().training().adam_steps();
    const int depth = c.genome().hidden_layers_size();
    if (i % 23 == 11) {
      c.set_state(v1::CANDIDATE_STATE_FAILED);
      c.set_failure_reason("worker lost its lease: no heartbeat for 60 s");
      input.candidates.push_back(c);
      continue;
    }
    c.set_state(v1::CANDIDATE_STATE_SUCCEEDED);
    const int64_t params = ParameterCount(c.genome(), 28 * 28, 10);
    // Wider networks classify better, up to the data's noise, and the
    // search improves over time.
    const double error_rate =
        0.095 + 2.4 * std::pow(static_cast<double>(params), -0.35) *
                    std::pow(10.0, 0.12 * random.Normal() -
                                       0.15 * i / kClassifierCandidates);
    v1::Metrics& m = *c.mutable_metrics();
    v1::Evaluation& val = *m.mutable_validation();
    val.set_row_count(12000);
    val.set_accuracy(1 - error_rate);
    val.set_cross_entropy(error_rate * (2.6 + 0.3 * random.Uniform()));
    v1::Evaluation& test = *m.mutable_test();
    test.set_row_count(10000);
    test.set_accuracy(val.accuracy() - 0.002 - 0.006 * random.Uniform());
    test.set_cross_entropy(val.cross_entropy() * 1.05);
    m.set_parameter_count(params);
    m.set_model_bytes(6400 + params * 4);
    m.set_training_seconds(20 + 0.0004 * static_cast<double>(params) +
                           0.012 * adam_steps);
    m.set_inference_latency_seconds(
        (1.8e-5 + 1.2e-9 * static_cast<double>(params) + 5e-6 * depth) *
        (1 + 0.15 * random.Uniform()));
    m.set_training_row_count(48000);
    Judge(e, c);
    input.candidates.push_back(c);
  }
  FinishSample(
      input,
      {v1::OBJECTIVE_VALIDATION_ERROR_RATE, v1::OBJECTIVE_PARAMETER_COUNT,
       v1::OBJECTIVE_TRAINING_SECONDS},
      [](const v1::Metrics& m) { return 1 - m.validation().accuracy(); });
  return input;
}

}  // namespace evonas::client
