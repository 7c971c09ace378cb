#ifndef EVONAS_COMMON_SIMULATED_EVALUATOR_H_
#define EVONAS_COMMON_SIMULATED_EVALUATOR_H_

#include <cstdint>
#include <string>

#include "evonas/v1/types.pb.h"

namespace evonas {

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
};

// The outcome of a simulated training run.
struct SimulatedTraining {
  v1::Metrics metrics;
  // A short text that says it is a simulated model (not a TorchScript
  // file); metrics.model_bytes is its size.
  std::string model_file;
};

// A stand-in for training (NASE's "simulator"), for testing strategies and
// load-testing the platform without LibTorch. A deterministic function of
// (genome, options), cheap, and shaped like accuracy against size on a
// smooth regression task such as hartmann3:
//   error = (2.5 sqrt(inputs * outputs / 3) P^-0.8       capacity
//            + 0.004 sqrt(P) S^-0.8)                        optimisation
//           * (1 + 1.5 log10(lr / 3e-3)^2)                  learning rate
//           * geometric mean of per-layer activation factors
//             (gelu 0.8, silu 0.85, sine 0.95, tanh 1, relu 1.5)
//           * (1 + 0.1 (depth - 3)^2) * (1 + 2 / narrowest width)
//           * lognormal noise (sigma 0.15, seeded by seed and GenomeKey)
// with P = ParameterCount and S = adam_steps + 4 lbfgs_steps; so error
// falls with parameters and steps with diminishing returns, and a large
// network needs more steps. That error is the validation max absolute
// error; RMSE is a quarter of it, MAE 0.8 RMSE, and fraction_within assumes
// normally distributed errors. training_seconds = 1e-7 P S, inference
// latency 2e-6 + 1e-9 P seconds. parameter_count is exactly
// ParameterCount(genome, inputs, outputs). Row counts are nominal (1000
// validation and test rows, 4000 training rows); batch size is ignored. The
// genome must be valid (ValidateGenome).
SimulatedTraining SimulateTraining(const v1::Genome& genome,
                                   const SimulationOptions& options);

// The noise-free validation max absolute error of SimulateTraining (the
// formula above without the lognormal factor); options.seed is unused.
double SimulatedExpectedError(const v1::Genome& genome,
                              const SimulationOptions& options);

}  // namespace evonas

#endif  // EVONAS_COMMON_SIMULATED_EVALUATOR_H_
