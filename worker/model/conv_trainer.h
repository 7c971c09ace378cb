#ifndef EVONAS_WORKER_MODEL_CONV_TRAINER_H_
#define EVONAS_WORKER_MODEL_CONV_TRAINER_H_

// Training of convolutional image networks (v1::Genome.conv_layers) with
// LibTorch modules in float32, for trainer.cc. Kept in its own translation
// unit so that only two files compile the LibTorch module headers; this
// header includes no torch header.

#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "evonas/v1/types.pb.h"
#include "worker/model/mlp.h"
#include "worker/model/time_limit.h"
#include "worker/model/trainer.h"

namespace evonas::model {

// Batch normalisation's epsilon, in training and in the exported model.
inline constexpr double kBatchNormEps = 1e-5;

// The best-weights rule of classification, shared by the MLP and the
// convolutional trainers: fewest misclassified selection rows, then the
// lowest cross-entropy. Not thread-safe.
class ClassifierSelection {
 public:
  // Records `e` (an evaluation of the current weights on the selection rows)
  // and returns whether it is the best so far; a non-finite cross-entropy
  // never is.
  bool Offer(const v1::Evaluation& e);
  // 1 - accuracy of the best evaluation; infinity before the first.
  double error_rate() const { return error_rate_; }

 private:
  double error_rate_ = std::numeric_limits<double>::infinity();
  double cross_entropy_ = std::numeric_limits<double>::infinity();
};

// While it lives, glibc's malloc keeps freed memory in the heap instead of
// returning it to the kernel, which would fault LibTorch's large buffers
// back in page by page on every step (a quarter of the CPU time on
// Fashion-MNIST; training runs 1.5x faster without it). The destructor sets
// glibc's initial thresholds again and returns the free memory. Process-wide:
// for one training at a time (as LibTorch's thread count).
class KeepFreedMemory {
 public:
  KeepFreedMemory();
  ~KeepFreedMemory();
  KeepFreedMemory(const KeepFreedMemory&) = delete;
  KeepFreedMemory& operator=(const KeepFreedMemory&) = delete;
};

// OK when `job` (whose genome has conv_layers) describes a convolutional
// network this trainer can build: an image shape with height * width equal
// to the inputs, every pooling leaving both sides at least 1, channels
// 1..512, kernel 1, 3, 5 or 7, a known activation, dropout in [0, 0.5],
// residual layers only after the first with the input's channels and no
// pooling, one stage, and `job.initial` (if any) of the genome's shape.
// InvalidArgument saying what to change otherwise.
absl::Status CheckConvJob(const TrainJob& job);

// Step counts of the stage (the genes times TrainJob.step_fraction).
struct ConvSteps {
  int adam = 0;
  int warmup = 0;
  int patience = 0;
};

// Trains the network of a job that passed CheckConvJob: Adam (AdamW when
// weight_decay > 0) on mini-batches (batch_size, 0: 256) of the
// cross-entropy (classification) or of the mean squared error of the
// standardised targets (regression: per column, as the MLP trainer), with
// the learning rate of ScheduledLearningRate, starting from job.initial when
// set. No L-BFGS or max-error phase. Every 50 steps (and after the last) the
// network is evaluated in eval mode on `select` and the best weights are
// kept: by ClassifierSelection, or the smallest maximum absolute error of a
// regression; the starting weights compete too. Stops
// early after `steps.patience` steps without improvement, and before a step
// `limit` refuses (after one more evaluation). With `release_inputs`
// (job.training.x.data, which the caller no longer needs) it is freed once
// the training images are made from it. Returns the best
// weights (float32 values widened to double, batch normalisation unfolded
// with its running statistics) and fills `report`. Cancelled when
// *job.cancel became true (polled every 10 steps), Aborted when the loss
// became non-finite. May throw LibTorch's exceptions: the caller guards it.
absl::StatusOr<MlpParameters> TrainConvStage(
    const TrainJob& job, const ConvSteps& steps, const Samples& select,
    std::vector<double>* release_inputs, TimeLimit& limit, StageReport& report);

// The raw outputs of a convolutional `stage` on raw inputs `x`, computed
// by LibTorch modules in eval mode in float32 (batch normalisation as its
// own module, not folded): what training evaluates. For tests of the
// exported model. InvalidArgument for a stage without conv layers or
// inconsistent sizes; never throws.
absl::StatusOr<Matrix> ConvModuleForward(const MlpParameters& stage,
                                         const Matrix& x);

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_CONV_TRAINER_H_
