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

namespace {

using Layers = google::protobuf::RepeatedPtrField<v1::DenseLayer>;

int64_t StageParameters(const Layers& layers, int64_t inputs,
                        int64_t outputs) {
  int64_t total = 0;
  int64_t fan_in = inputs;
  for (const v1::DenseLayer& layer : layers) {
    total += (fan_in + 1) * layer.width();
    fan_in = layer.width();
  }
  return total + (fan_in + 1) * outputs;
}

double StageSteps(const v1::TrainingConfig& training) {
  return training.adam_steps() + 4.0 * training.lbfgs_steps() +
         4.0 * training.max_error_steps();
}

// F_s of the header comment, with the stage's steps times `step_multiplier`.
double StageError(const Layers& layers, const v1::TrainingConfig& training,
                  const SimulationOptions& options, double step_multiplier) {
  const double p = static_cast<double>(
      StageParameters(layers, options.inputs, options.outputs));
  const double steps = StageSteps(training) * step_multiplier;
  const double capacity = 2.5 *
                          std::sqrt(options.inputs * options.outputs / 3.0) *
                          std::pow(p, -0.8);
  const double optimisation = 0.004 * std::sqrt(p) * std::pow(steps, -0.8);
  const double lr_distance = std::log10(training.learning_rate() / 3e-3);
  const double lr_factor = 1 + 1.5 * lr_distance * lr_distance;
  double log_activation = 0;
  int narrowest = layers[0].width();
  double depth = 0;
  for (const v1::DenseLayer& layer : layers) {
    log_activation += std::log(ActivationFactor(layer.activation()));
    narrowest = std::min(narrowest, layer.width());
    depth += layer.residual() ? 0.25 : 1;
  }
  const double activation_factor = std::exp(log_activation / layers.size());
  const double depth_factor = 1 + 0.1 * (depth - 3) * (depth - 3);
  const double width_factor = 1 + 2.0 / narrowest;
  const double max_error_factor =
      1 - 0.3 * std::min(1.0, training.max_error_steps() / 300.0);
  return (capacity + optimisation) * lr_factor * activation_factor *
         depth_factor * width_factor * max_error_factor;
}

double ExpectedErrorWithSteps(const v1::Genome& genome,
                              const SimulationOptions& options,
                              double step_multiplier) {
  double error = StageError(genome.hidden_layers(), genome.training(), options,
                            step_multiplier);
  for (const v1::Stage& stage : genome.residual_stages()) {
    const double f = StageError(stage.hidden_layers(), stage.training(),
                                options, step_multiplier);
    error *= std::clamp(4 * f, 0.05, 1.0);
  }
  return error;
}

// options.row_fraction, with anything outside (0, 1] meaning every row.
double RowFraction(const SimulationOptions& options) {
  return options.row_fraction > 0 && options.row_fraction < 1
             ? options.row_fraction
             : 1.0;
}

bool FunctionPreserving(v1::MorphismKind kind) {
  return kind != v1::MORPHISM_KIND_NARROW &&
         kind != v1::MORPHISM_KIND_REMOVE_LAYER;
}

// Training seconds of the stages that train: 1e-7 sum P_s S_s.
double TrainingSeconds(const v1::Genome& genome,
                       const SimulationOptions& options) {
  auto seconds = [&](const Layers& layers,
                     const v1::TrainingConfig& training) {
    return 1e-7 *
           static_cast<double>(
               StageParameters(layers, options.inputs, options.outputs)) *
           StageSteps(training);
  };
  const int stages = 1 + genome.residual_stages_size();
  if (options.inheritance.has_value()) {
    const SimulatedInheritance& inherit = *options.inheritance;
    if (inherit.morphism.kind() == v1::MORPHISM_KIND_ADD_STAGE &&
        stages > 1) {
      const v1::Stage& added = genome.residual_stages(stages - 2);
      return options.step_fraction * RowFraction(options) *
             seconds(added.hidden_layers(), added.training());
    }
  }
  double total = seconds(genome.hidden_layers(), genome.training());
  for (const v1::Stage& stage : genome.residual_stages()) {
    total += seconds(stage.hidden_layers(), stage.training());
  }
  return total * options.step_fraction * RowFraction(options);
}

// `options` as the run trains them: the step fraction cut to what fits in
// options.max_training_seconds (then 0, applied).
SimulationOptions AsTrained(const v1::Genome& genome,
                            const SimulationOptions& options) {
  SimulationOptions run = options;
  const double seconds = TrainingSeconds(genome, options);
  if (options.max_training_seconds > 0 &&
      seconds > options.max_training_seconds) {
    run.step_fraction *= options.max_training_seconds / seconds;
  }
  run.max_training_seconds = 0;
  return run;
}

// The error factor of training on options.row_fraction of the rows.
double RowFactor(const SimulationOptions& options) {
  return std::pow(
      RowFraction(options),
      -1.0 / static_cast<double>(std::max<int64_t>(1, options.inputs)));
}

}  // namespace

double SimulatedExpectedError(const v1::Genome& genome,
                              const SimulationOptions& as_given) {
  const SimulationOptions options = AsTrained(genome, as_given);
  if (!options.inheritance.has_value()) {
    return RowFactor(options) *
           ExpectedErrorWithSteps(genome, options, options.step_fraction);
  }
  const SimulatedInheritance& inherit = *options.inheritance;
  const bool exact = FunctionPreserving(inherit.morphism.kind());
  const double steps = StageSteps(genome.training());
  const double effective =
      options.step_fraction * steps +
      (exact ? 1.0 : 0.5) * inherit.parent_step_fraction *
          StageSteps(inherit.parent_genome.training());
  const double multiplier =
      std::max(inherit.parent_step_fraction, effective / steps);
  return (exact ? 1.1 : 1.2) * RowFactor(options) *
         ExpectedErrorWithSteps(genome, options, multiplier);
}

SimulatedTraining SimulateTraining(const v1::Genome& genome,
                                   const SimulationOptions& options) {
  const int64_t params =
      ParameterCount(genome, options.inputs, options.outputs);
  const double p = static_cast<double>(params);
  const SimulationOptions run = AsTrained(genome, options);
  const bool stopped = run.step_fraction != options.step_fraction;
  const double error = SimulatedExpectedError(genome, run);
  const std::string key = GenomeKey(genome);
  Normal noise(SplitMix64(options.seed ^ Fnv1a(key)));

  SimulatedTraining out;
  out.model_file = absl::StrCat(
      "evonas simulated model: not a TorchScript file; written by "
      "evonas-worker --simulate without training.\ngenome: ",
      DescribeGenome(genome), "\nkey: ", key, "\ninputs: ", options.inputs,
      "\noutputs: ", options.outputs, "\nparameters: ", params,
      "\nseed: ", options.seed, "\n");
  if (options.inheritance.has_value()) {
    absl::StrAppend(&out.model_file, "inherits from: ",
                    DescribeGenome(options.inheritance->parent_genome),
                    "\nmorphism: ",
                    v1::MorphismKind_Name(options.inheritance->morphism.kind()),
                    "\n");
  }
  if (run.step_fraction != 1) {
    absl::StrAppend(&out.model_file, "step fraction: ", run.step_fraction,
                    "\n");
  }
  if (options.row_fraction != 1) {
    absl::StrAppend(&out.model_file, "row fraction: ", options.row_fraction,
                    "\n");
  }
  v1::Metrics& m = out.metrics;
  *m.mutable_validation() = MakeEvaluation(
      error * std::exp(kNoiseSigma * noise.Next()), options.within_tolerance);
  if (options.with_test) {
    // Held-out data: a little worse than validation, with its own noise.
    *m.mutable_test() =
        MakeEvaluation(1.1 * error * std::exp(kNoiseSigma * noise.Next()),
                       options.within_tolerance);
  }
  if (options.with_judging) {
    // Like test: the weights were not chosen on these rows.
    *m.mutable_judging() =
        MakeEvaluation(1.1 * error * std::exp(kNoiseSigma * noise.Next()),
                       options.within_tolerance);
  }
  m.set_parameter_count(params);
  m.set_model_bytes(static_cast<int64_t>(out.model_file.size()));
  m.set_training_seconds(stopped ? options.max_training_seconds
                                 : TrainingSeconds(genome, run));
  m.set_stopped_at_time_limit(stopped);
  m.set_inference_latency_seconds(2e-6 + 1e-9 * p);
  m.set_training_row_count(static_cast<int64_t>(
      std::llround(static_cast<double>(kTrainingRows) * RowFraction(options))));
  out.checkpoint = ZeroWeights(genome, options.inputs, options.outputs)
                       .SerializeAsString();
  return out;
}

v1::LatencyTable SimulatedLatencyTable() {
  v1::LatencyTable table;
  table.set_hardware_class("simulated");
  for (v1::Activation activation :
       {v1::ACTIVATION_UNSPECIFIED, v1::ACTIVATION_TANH, v1::ACTIVATION_RELU,
        v1::ACTIVATION_SILU, v1::ACTIVATION_GELU, v1::ACTIVATION_SINE,
        v1::ACTIVATION_GAUSSIAN}) {
    // The simulator's latency does not depend on the precision.
    for (v1::LayerLatencyModel* model :
         {table.add_layers(), table.add_float32_layers()}) {
      model->set_activation(activation);
      model->set_intercept_seconds(
          activation == v1::ACTIVATION_UNSPECIFIED ? 2e-6 : 0);
      model->set_seconds_per_multiply_add(1e-9);
    }
  }
  return table;
}

}  // namespace evonas
