#ifndef EVONAS_COMMON_SIMULATED_EVALUATOR_H_
#define EVONAS_COMMON_SIMULATED_EVALUATOR_H_

#include <cstdint>
#include <optional>
#include <string>

#include "evonas/v1/types.pb.h"

namespace evonas {

// What an inheriting run starts from (Lease.inheritance).
struct SimulatedInheritance {
  // The parent's genome and how the run's genome derives from it.
  v1::Genome parent_genome;
  v1::Morphism morphism;
  // Fraction (0, 1] of parent_genome's steps the parent was trained for
  // (below 1 for a level-1 run of multi-fidelity evaluation).
  double parent_step_fraction = 1;
};

// What a simulated training run needs besides the genome.
struct SimulationOptions {
  // Number of input and output columns.
  int64_t inputs = 1;
  int64_t outputs = 1;
  // Seed of the run's noise (the lease seed, in the worker).
  uint64_t seed = 0;
  // Tolerance of Evaluation.fraction_within.
  double within_tolerance = 1e-6;
  // Whether to fill Metrics.test as well.
  bool with_test = false;
  // Whether to fill Metrics.judging as well (Lease.judging_split).
  bool with_judging = false;
  // Fraction (0, 1] of the genome's steps the run trains (Lease.step_fraction:
  // an inheriting child, a level-1 run of multi-fidelity evaluation).
  double step_fraction = 1;
  // Fraction (0, 1] of the training rows the run trains on
  // (Lease.training_row_fraction: a level-1 run on a subset of the rows).
  double row_fraction = 1;
  // Set when the run starts from a parent's trained weights.
  std::optional<SimulatedInheritance> inheritance;
  // Requirements.max_training_seconds, 0 for none: a run that would take
  // longer stops at it, as the worker's trainer does.
  double max_training_seconds = 0;
};

// The outcome of a simulated training run.
struct SimulatedTraining {
  v1::Metrics metrics;
  // A short text that says it is a simulated model (not a TorchScript
  // file); metrics.model_bytes is its size.
  std::string model_file;
  // A binary-serialised v1::NetworkWeights of the genome's shape with zero
  // weights (and unit scales): a simulated run has no weights, but a
  // checkpoint lets its children take the controller's inheritance path
  // exactly as trained ones do.
  std::string checkpoint;
};

// A stand-in for training (NASE's "simulator"), for testing strategies and
// load-testing the platform without LibTorch. A deterministic function of
// (genome, options), cheap, and shaped like accuracy against size on a
// smooth regression task such as hartmann3. Each stage s (the first:
// Genome.hidden_layers; then Genome.residual_stages) has a stage error
//   F_s = (2.5 sqrt(inputs * outputs / 3) P_s^-0.8               capacity
//          + 0.004 sqrt(P_s) S_s^-0.8)                            optimisation
//         * (1 + 1.5 log10(lr / 3e-3)^2)                          learning rate
//         * geometric mean of per-layer activation factors
//           (gelu 0.8, silu 0.85, sine 0.95, tanh 1, relu 1.5)
//         * (1 + 0.1 (D - 3)^2) * (1 + 2 / narrowest width)
//         * (1 - 0.3 min(1, max_error_steps / 300))               max-error
//         phase
// with P_s the stage's parameters, S_s = adam_steps + 4 lbfgs_steps + 4
// max_error_steps of its training, and D its plain layers plus a quarter of
// its residual layers (skips make depth cheap). The error is
//   F_0 * product over later stages of clamp(4 F_s, 0.05, 1)
// (a later stage fits the normalised residual of the earlier ones, a harder
// target, and at best removes 95% of it), times lognormal noise (sigma
// 0.15, seeded by seed and GenomeKey). So error falls with parameters and
// steps with diminishing returns, a large network needs more steps, and a
// small extra stage is a cheap way down. Warm-up, weight decay and
// patience have no effect. That error is the validation max absolute
// error; RMSE is a quarter of it, MAE 0.8 RMSE, and fraction_within assumes
// normally distributed errors. training_seconds = 1e-7 sum_s P_s S_s,
// inference latency 2e-6 + 1e-9 P seconds (P all stages). parameter_count
// is exactly ParameterCount(genome, inputs, outputs).
//
// A run of options.step_fraction f of the steps from scratch multiplies
// every S_s by f, and costs f of the training seconds. A run on
// options.row_fraction r of the rows costs r of the training seconds (a
// full-batch step's cost is proportional to its rows) and multiplies the
// error by r^(-1 / inputs): the rows' spacing in the input space grows by
// that factor, and the error between them with it.
//
// Inheritance (options.inheritance): the run continues from the parent's
// training, worth S_eff = f S + r g S_parent steps (first stage's S; g the
// parent's parent_step_fraction; r = 1 for the function-preserving
// morphisms CONTINUE, WIDEN, DEEPEN, ADD_STAGE, 0.5 for the approximate
// NARROW and REMOVE_LAYER), so every stage's S_s is multiplied by max(g,
// S_eff / S); the error is that times 1.1 (function-preserving) or 1.2
// (approximate): never worse than 1.1 or 1.2 times a from-scratch run of
// the parent's length. It costs f of the from-scratch training seconds;
// after ADD_STAGE only the new stage trains, so f of its own P_s S_s.
// A run whose training seconds would exceed options.max_training_seconds
// stops at the limit, as the worker does: it trains limit / seconds of its
// step fraction (so costs exactly the limit) and reports
// stopped_at_time_limit.
// Row counts are nominal (1000 validation and test rows, 4000 training
// rows, times r); batch size is ignored. The genome must be valid
// (ValidateGenome).
SimulatedTraining SimulateTraining(const v1::Genome& genome,
                                   const SimulationOptions& options);

// The noise-free validation max absolute error of SimulateTraining (the
// formula above without the lognormal factor, with inheritance when
// options.inheritance is set); options.seed is unused.
double SimulatedExpectedError(const v1::Genome& genome,
                              const SimulationOptions& options);

// The latency table of the simulator's "hardware" (class "simulated"): 1e-9
// s per multiply-add in every layer and 2e-6 s for the output layer, in
// float64 and float32 alike, so its
// estimates are SimulateTraining's latency without the biases' share (less
// than 1 / fan-in of it). A simulating worker reports it in place of a
// calibration.
v1::LatencyTable SimulatedLatencyTable();

}  // namespace evonas

#endif  // EVONAS_COMMON_SIMULATED_EVALUATOR_H_
