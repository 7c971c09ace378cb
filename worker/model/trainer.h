#ifndef EVONAS_WORKER_MODEL_TRAINER_H_
#define EVONAS_WORKER_MODEL_TRAINER_H_

// The only interface through which the rest of evonas reaches LibTorch. It
// passes plain structs and protos; no torch header may be included here.

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "evonas/v1/types.pb.h"
#include "worker/model/mlp.h"

namespace evonas::model {

// A row-major matrix of doubles.
struct Matrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<double> data;  // rows * cols
};

// Inputs and targets of one set of rows.
struct Samples {
  Matrix x;
  Matrix y;
};

struct TrainJob {
  v1::Genome genome;   // normally one that passes ValidateGenome
  Samples training;    // at least one row; fixes the input and output counts
  Samples validation;  // may have no rows
  std::optional<Samples> test;
  uint64_t seed = 0;
  // Tolerance for Evaluation.fraction_within.
  double within_tolerance = 1e-6;
  // Threads for training: OpenMP threads that share each step's row blocks,
  // and LibTorch's intra-op threads. The model depends on it (the gradient
  // is summed in another order). One thread per worker and one worker per
  // core trains the most candidates per hour (BENCHMARKS.md).
  int threads = 1;
  // Polled during training; when it becomes true, Train returns Cancelled.
  const std::atomic<bool>* cancel = nullptr;
};

struct TrainOutput {
  v1::Metrics metrics;
  // The TorchScript model file: raw float64 inputs [N, in] -> raw float64
  // outputs [N, out], standardisation built in.
  std::string model_file;
  // The same trained network as plain numbers, for the other exporters.
  MlpParameters parameters;
};

// Trains the MLP of `job.genome` in float64: standardised inputs and outputs,
// Adam (cosine-decayed learning rate), then an L-BFGS polish with strong-Wolfe
// line search; keeps the weights with the smallest validation max abs error
// (training rows when there are no validation rows). The forward and backward
// passes and Adam run on MlpKernels (mlp_kernels.h), L-BFGS is LibTorch's. Evaluates the exported
// model on the validation (and test) rows, so the metrics are those of the
// file a user downloads. The result depends only on the job (same job, same
// thread count -> same model).
//
// Returns Cancelled when `*job.cancel` became true (polled every 10 steps),
// Aborted when training diverged (non-finite loss), InvalidArgument for a bad
// job: mismatched shapes, non-finite data, or a genome the trainer cannot
// build (it accepts any finite positive learning rate; ValidateGenome's upper
// bound is search policy), ResourceExhausted when out of memory, Internal for
// any other LibTorch error. Never throws. Sets LibTorch's process-wide
// intra-op thread count to `job.threads`.
absl::StatusOr<TrainOutput> Train(const TrainJob& job);

// Loads a TorchScript model file and predicts `x` (raw units in and out).
// InvalidArgument when `model_file` is not a TorchScript model or `x` does
// not have the model's number of inputs. Never throws.
absl::StatusOr<Matrix> Predict(const std::string& model_file, const Matrix& x);

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_TRAINER_H_
