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
  // Rows neither trained on nor used to choose weights (Lease.judging_split):
  // the trained network is evaluated on them into Metrics.judging. When set,
  // at least one row.
  std::optional<Samples> judging;
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
  // Wall-clock seconds training may take (Requirements.max_training_seconds),
  // 0 for no limit. Training stops before a step that would end past it
  // (time_limit.h) and the best weights so far are the result: the stage in
  // progress keeps its best-on-validation weights, later stages are not
  // trained (inherited ones keep their weights, fresh ones add 0).
  double max_training_seconds = 0;

  // Inheritance (Lamarckian): when set, training starts from these weights
  // instead of a random initialisation. They must have the genome's shape:
  // one stage per genome stage, each with the genome's layer widths,
  // activations and residual flags, the training data's inputs and outputs;
  // for a convolutional genome also its conv layers (channels, kernel,
  // activation, pooling, residual, batch norm with running statistics) and
  // the job's image shape.
  // A trainable stage after the first whose output layer is all zero (a
  // stage just added by a morphism) outputs 0 whatever its standardisation,
  // so the trainer gives it the data's (as for a fresh stage: the training
  // inputs' mean and deviation, y_mean 0, y_std the residual's RMS) before
  // training it.
  std::optional<NetworkParameters> initial;
  // Stages before this one are not trained: their weights are kept
  // bit-exactly. 0..stages-1; above 0 only with `initial`.
  int first_trainable_stage = 0;
  // (0, 1]: the fraction of every trainable stage's adam_steps, warmup_steps,
  // lbfgs_steps and max_error_steps that runs (rounded to nearest, at least
  // 1 of a positive count). An inheriting child starts near a good solution.
  double step_fraction = 1.0;

  // Classification when positive: the network has class_count outputs
  // (logits); `y` of the training, validation and test samples holds one
  // class index per row, an integer in [0, class_count). Training minimises
  // the softmax cross-entropy with Adam (the L-BFGS and max-error genes are
  // for regression and ignored), and the best weights are those with the
  // fewest misclassified selection rows, then the lowest cross-entropy. The
  // genome must have one stage. 0: regression.
  int class_count = 0;

  // The image shape of the inputs (Lease.image_shape): every input is a
  // pixel, row-major, and image_height * image_width == training.x.cols.
  // Needed, and used only, when the genome has conv_layers; 0 otherwise.
  int64_t image_height = 0;
  int64_t image_width = 0;
};

// The rows the best weights are chosen on and Metrics.validation is measured
// on: the validation rows, or the training rows when there are none (a
// refit, trained on every row).
inline const Samples& SelectionRows(const TrainJob& job) {
  return job.validation.x.rows > 0 ? job.validation : job.training;
}

// What the training of one stage did. The errors are the best validation
// max abs errors (raw units, of the stages up to this one) after each phase;
// 0 for a stage that did not train (frozen, or the time limit came first).
struct StageReport {
  bool frozen = false;  // inherited and not trained
  // Stopped by TrainJob.max_training_seconds before its steps were done (or
  // before it started).
  bool time_limited = false;
  double seconds = 0;   // wall-clock seconds of the stage's training
  int adam_steps = 0;   // run; fewer than the gene when patience stopped it
  // L-BFGS iterations granted before the phase ended (in chunks of 10; fewer
  // than the gene when L-BFGS stalled even after restarts).
  int lbfgs_iterations = 0;
  int max_error_iterations = 0;
  double after_adam = 0;
  double after_lbfgs = 0;
  double after_max_error = 0;
  // The step (Adam) or iteration (L-BFGS, max-error; counted over all
  // rounds) of the phase after which the weights that were best when it
  // ended were found; 0 when the phase found nothing better than the
  // weights it started from (one past lbfgs_iterations or
  // max_error_iterations when the time limit cut an iteration short and its
  // weights were best). What ran after it bought nothing on the selection
  // rows.
  int adam_best_step = 0;
  int lbfgs_best_iteration = 0;
  int max_error_best_iteration = 0;
  // Wall-clock seconds of each phase.
  double adam_seconds = 0;
  double lbfgs_seconds = 0;
  double max_error_seconds = 0;
};

struct TrainOutput {
  v1::Metrics metrics;
  // The TorchScript model file: raw float64 inputs [N, in] -> raw float64
  // outputs [N, out], standardisation built in.
  std::string model_file;
  // The same trained network as plain numbers, for the other exporters and
  // the checkpoint (checkpoint.h): one entry per genome stage.
  NetworkParameters parameters;
  // One per genome stage.
  std::vector<StageReport> stages;
  // What Train left out and why (e.g. the int8 metrics).
  std::vector<std::string> warnings;
};

// Trains the network of `job.genome` in float64, stage after stage. Stage
// 0 sees standardised inputs and targets; stage k > 0 is trained, with the
// stages before it frozen, on the residual r_k = y - sum_{j<k} f_j(x),
// divided by its root mean square (so its targets are of order one; its
// y_mean is 0, so a stage whose output layer is zero adds exactly 0). Later
// stages' sine layers get SIREN initialisation (Sitzmann et al. 2020) with
// omega_0 = their TrainingConfig.siren_omega (0: 10).
//
// Each stage runs, with the genes of its TrainingConfig: Adam (AdamW when
// weight_decay > 0, on the weight matrices only) with linear warm-up over
// warmup_steps and a cosine decay, stopped early when the validation max abs
// error has not improved for patience_steps (checked every 50 steps); an L-BFGS
// polish on the mean squared error with strong-Wolfe line search (restarted
// with a fresh history when it stalls); then max_error_steps L-BFGS iterations
// on the mean of (|error| / e0)^p, p = max_error_power (default 8), in
// max_error_rounds rounds (default 1), e0 the largest training error when a
// round starts; before every round after the first, each row's weight in
// that mean is multiplied by its error over e0 (Lawson's re-weighting of
// the worst rows). Throughout, the weights with
// the smallest validation max abs error (training rows when there are no
// validation rows) are kept; with inherited weights, the starting weights
// compete too, and a fresh stage after the first competes with adding
// nothing (when none of its weights beats that, its output layer is
// zeroed). The forward and backward passes and Adam run on MlpKernels
// (mlp_kernels.h), L-BFGS is LibTorch's.
//
// Classification (job.class_count > 0) trains one stage on the
// cross-entropy, its outputs the logits (y_mean 0, y_std 1).
//
// A genome with conv_layers is trained by conv_trainer.h in float32 with
// LibTorch modules: the convolutional trunk on the image standardised by
// one mean and deviation over all training pixels, then the dense layers;
// Adam on mini-batches (batch_size 0: 256) with the same schedule, early
// stopping and best-weights rule as an MLP (classifier), evaluated in eval
// mode (batch-norm running statistics, no dropout), without the L-BFGS and
// max-error phases. Its TorchScript model folds batch normalisation into the
// convolutions and computes in float32 between the float64 standardisation
// and output. It needs job.image_height and image_width.
//
// The TorchScript model computes the sum of the stages, standardisation
// included; the metrics are evaluated on it (validation, test), so they are
// those of the file a user downloads. Metrics also hold training wall and
// CPU seconds (process CPU time, all threads) and the median latency for 1
// row and for 1024 rows; Metrics.stopped_at_time_limit says whether
// job.max_training_seconds ended training early. Metrics.int8 is the same
// network with every stage quantised weight-only to int8 (quantize.h),
// evaluated on the same rows (a warning instead when that fails). The
// result depends only on the job (same job, same thread count -> same
// model), unless the time limit stopped it.
//
// The job is taken by value: a caller that moves its job in lets Train free
// the raw training inputs once the last stage has its standardised copy
// (in place in float64) or its float32 images, unless they are the
// selection rows; a large data set is then not held twice.
//
// Returns Cancelled when `*job.cancel` became true (polled every 10 steps),
// Aborted when training diverged (non-finite loss), InvalidArgument for a bad
// job: mismatched shapes, non-finite data, a genome the trainer cannot build
// (it accepts any finite positive learning rate; ValidateGenome's upper
// bound is search policy; a convolutional genome needs an image shape of
// the inputs that every pooling leaves at least 1 pixel high and wide),
// initial weights that do not fit the genome, a first_trainable_stage,
// step_fraction or max_training_seconds out of range; ResourceExhausted when
// out of memory, Internal for any other LibTorch error. Never throws. Sets
// LibTorch's process-wide intra-op thread count to `job.threads`.
absl::StatusOr<TrainOutput> Train(TrainJob job);

// Loads a TorchScript model file and predicts `x` (raw units in and out);
// an image network (one with convolutional layers) 1024 rows at a time.
// InvalidArgument when `model_file` is not a TorchScript model or `x` does
// not have the model's number of inputs. Never throws.
absl::StatusOr<Matrix> Predict(const std::string& model_file, const Matrix& x);

// The outputs of `network` on raw inputs `x`, computed by the TorchScript
// model Train would export for it (float64 for MLPs; float32 inside for a
// convolutional network), on LibTorch's current intra-op threads: how the
// worker evaluates a derived network (the int8 one) as fast as the trained
// one. InvalidArgument when ValidateNetwork refuses `network` or `x` does
// not have its inputs. Never throws.
absl::StatusOr<Matrix> PredictNetwork(const NetworkParameters& network,
                                      const Matrix& x);

// The median batch-1 forward seconds of `network` exported as Train exports
// a trained network, timed as Train times Metrics.inference_latency_seconds
// (warm-up calls, then the median of `runs` calls on `threads` intra-op
// threads, which becomes LibTorch's process-wide count). For latency
// calibration: the weights' values do not matter. InvalidArgument when
// ValidateNetwork refuses `network` or runs < 1. Never throws.
absl::StatusOr<double> MeasureLatency(const NetworkParameters& network,
                                      int threads, int runs);

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_TRAINER_H_
