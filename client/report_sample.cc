#include "client/report_sample.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>

#include "absl/strings/str_format.h"
#include "common/genome.h"
#include "common/requirements.h"

namespace evonas::client {
namespace {

constexpr int64_t kCreated = 1714554000;  // 2024-05-01 09:00:00 UTC
constexpr int kCandidates = 80;
constexpr double kWallSeconds = 900;

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

// Constraint domination over (error, parameters, training seconds).
bool Dominates(const v1::Candidate& a, const v1::Candidate& b) {
  if (a.feasible() != b.feasible()) return a.feasible();
  const v1::Metrics& x = a.metrics();
  const v1::Metrics& y = b.metrics();
  const double ax[] = {x.validation().max_abs_error(),
                       static_cast<double>(x.parameter_count()),
                       x.training_seconds()};
  const double by[] = {y.validation().max_abs_error(),
                       static_cast<double>(y.parameter_count()),
                       y.training_seconds()};
  bool better = false;
  for (int i = 0; i < 3; ++i) {
    if (ax[i] > by[i]) return false;
    better = better || ax[i] < by[i];
  }
  return better;
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
  static const int kWidths[] = {8, 16, 24, 32, 48, 64, 96, 128};
  static const v1::Activation kActivations[] = {
      v1::ACTIVATION_TANH, v1::ACTIVATION_SILU, v1::ACTIVATION_GELU};
  for (int i = 0; i < kCandidates; ++i) {
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
    const double finished = kWallSeconds * (i + 0.6 + 0.3 * random.Uniform()) /
                            kCandidates;
    *c.mutable_created_at() = At(std::max(0.0, finished - 25));
    *c.mutable_finished_at() = At(finished);
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
                           0.004 * t->adam_steps() * (1 + 0.1 * depth));
    m.set_inference_latency_seconds(
        (1.2e-5 + 6e-9 * params + 4e-6 * depth) *
        (1 + 0.15 * random.Uniform()));
    m.set_training_row_count(1600);
    const Assessment assessment = Assess(req, m);
    c.set_feasible(assessment.feasible);
    for (const std::string& v : assessment.violations) c.add_violations(v);
    if (c.feasible()) e.set_feasible_count(e.feasible_count() + 1);
    input.candidates.push_back(c);
  }

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
  front.add_objectives(v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR);
  front.add_objectives(v1::OBJECTIVE_PARAMETER_COUNT);
  front.add_objectives(v1::OBJECTIVE_TRAINING_SECONDS);
  front.set_has_feasible(e.feasible_count() > 0);
  std::vector<v1::Candidate> members;
  for (const v1::Candidate& c : input.candidates) {
    if (c.state() != v1::CANDIDATE_STATE_SUCCEEDED) continue;
    const bool dominated = std::any_of(
        input.candidates.begin(), input.candidates.end(),
        [&](const v1::Candidate& o) {
          return o.state() == v1::CANDIDATE_STATE_SUCCEEDED && Dominates(o, c);
        });
    if (!dominated) members.push_back(c);
  }
  std::sort(members.begin(), members.end(),
            [](const v1::Candidate& a, const v1::Candidate& b) {
              return a.metrics().validation().max_abs_error() <
                     b.metrics().validation().max_abs_error();
            });
  for (const v1::Candidate& c : members) *front.add_candidates() = c;
  return input;
}

}  // namespace evonas::client
