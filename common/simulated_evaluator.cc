#include "common/simulated_evaluator.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/genome.h"
#include "common/validation_split.h"

namespace evonas {
namespace {

constexpr int64_t kValidationRows = 1000;
constexpr int64_t kTrainingRows = 4000;
constexpr double kNoiseSigma = 0.15;

// FNV-1a: a hash that is the same on every platform and compiler.
uint64_t Fnv1a(const std::string& text) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

// A deterministic stream of standard normal numbers (Box-Muller on
// SplitMix64), identical on every standard library.
class Normal {
 public:
  explicit Normal(uint64_t seed) : state_(seed) {}
  double Next() {
    const double u1 = Uniform();
    const double u2 = Uniform();
    return std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
  }

 private:
  // Uniform in (0, 1].
  double Uniform() {
    state_ = SplitMix64(state_);
    return (static_cast<double>(state_ >> 11) + 1) * 0x1.0p-53;
  }
  uint64_t state_;
};

double ActivationFactor(v1::Activation activation) {
  switch (activation) {
    case v1::ACTIVATION_GELU:
      return 0.8;
    case v1::ACTIVATION_SILU:
      return 0.85;
    case v1::ACTIVATION_SINE:
      return 0.95;
    case v1::ACTIVATION_RELU:
      return 1.5;
    default:
      return 1.0;
  }
}

v1::Evaluation MakeEvaluation(double max_abs_error, double tolerance) {
  v1::Evaluation e;
  e.set_row_count(kValidationRows);
  e.set_max_abs_error(max_abs_error);
  const double rmse = max_abs_error / 4;
  e.set_rmse(rmse);
  e.set_mae(0.8 * rmse);
  // Normal errors with standard deviation rmse: P(|e| <= tol).
  e.set_fraction_within(
      std::clamp(std::erf(tolerance / (rmse * std::sqrt(2.0))), 0.0, 1.0));
  return e;
}

}  // namespace

double SimulatedExpectedError(const v1::Genome& genome,
                              const SimulationOptions& options) {
  const double p = static_cast<double>(
      ParameterCount(genome, options.inputs, options.outputs));
  const v1::TrainingConfig& training = genome.training();
  const double steps = training.adam_steps() + 4.0 * training.lbfgs_steps();
  const double capacity = 2.5 *
                          std::sqrt(options.inputs * options.outputs / 3.0) *
                          std::pow(p, -0.8);
  const double optimisation = 0.004 * std::sqrt(p) * std::pow(steps, -0.8);
  const double lr_distance = std::log10(training.learning_rate() / 3e-3);
  const double lr_factor = 1 + 1.5 * lr_distance * lr_distance;
  double log_activation = 0;
  int narrowest = genome.hidden_layers(0).width();
  for (const v1::DenseLayer& layer : genome.hidden_layers()) {
    log_activation += std::log(ActivationFactor(layer.activation()));
    narrowest = std::min(narrowest, layer.width());
  }
  const int depth = genome.hidden_layers_size();
  const double activation_factor = std::exp(log_activation / depth);
  const double depth_factor = 1 + 0.1 * (depth - 3) * (depth - 3);
  const double width_factor = 1 + 2.0 / narrowest;
  return (capacity + optimisation) * lr_factor * activation_factor *
         depth_factor * width_factor;
}

SimulatedTraining SimulateTraining(const v1::Genome& genome,
                                   const SimulationOptions& options) {
  const int64_t params =
      ParameterCount(genome, options.inputs, options.outputs);
  const double p = static_cast<double>(params);
  const v1::TrainingConfig& training = genome.training();
  const double steps = training.adam_steps() + 4.0 * training.lbfgs_steps();
  const double error = SimulatedExpectedError(genome, options);
  const std::string key = GenomeKey(genome);
  Normal noise(SplitMix64(options.seed ^ Fnv1a(key)));

  SimulatedTraining out;
  out.model_file = absl::StrCat(
      "evonas simulated model: not a TorchScript file; written by "
      "evonas-worker --simulate without training.\ngenome: ",
      DescribeGenome(genome), "\nkey: ", key, "\ninputs: ", options.inputs,
      "\noutputs: ", options.outputs, "\nparameters: ", params,
      "\nseed: ", options.seed, "\n");
  v1::Metrics& m = out.metrics;
  *m.mutable_validation() = MakeEvaluation(
      error * std::exp(kNoiseSigma * noise.Next()), options.within_tolerance);
  if (options.with_test) {
    // Held-out data: a little worse than validation, with its own noise.
    *m.mutable_test() =
        MakeEvaluation(1.1 * error * std::exp(kNoiseSigma * noise.Next()),
                       options.within_tolerance);
  }
  m.set_parameter_count(params);
  m.set_model_bytes(static_cast<int64_t>(out.model_file.size()));
  m.set_training_seconds(1e-7 * p * steps);
  m.set_inference_latency_seconds(2e-6 + 1e-9 * p);
  m.set_training_row_count(kTrainingRows);
  return out;
}

}  // namespace evonas
