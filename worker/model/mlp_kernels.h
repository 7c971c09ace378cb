#ifndef EVONAS_WORKER_MODEL_MLP_KERNELS_H_
#define EVONAS_WORKER_MODEL_MLP_KERNELS_H_

// The trainer's hot loop in plain C++, in float64 or float32: forward and
// hand-derived backward passes of an MLP on OpenBLAS dgemm/sgemm with fused,
// vectorised activation kernels, and Adam. No LibTorch here; trainer.cc
// drives these and exports the result through TorchScript.
//
// Every class is a template on the scalar type; mlp_kernels.cc instantiates
// double (MlpKernels, Adam) and float (MlpKernels32, Adam32) and no other.

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "evonas/v1/types.pb.h"

namespace evonas::model {

// An array of Scalar aligned to a cache line, for the kernels' buffers.
template <typename Scalar>
class BasicAlignedBuffer {
 public:
  BasicAlignedBuffer() = default;
  explicit BasicAlignedBuffer(int64_t size);  // zero-filled
  Scalar* data() { return data_.get(); }
  const Scalar* data() const { return data_.get(); }
  int64_t size() const { return size_; }

 private:
  struct Free {
    void operator()(Scalar* p) const { std::free(p); }
  };
  std::unique_ptr<Scalar[], Free> data_;
  int64_t size_ = 0;
};
using AlignedBuffer = BasicAlignedBuffer<double>;

// The values [begin, end) of a flat parameter vector.
struct ParameterRange {
  int64_t begin = 0;
  int64_t end = 0;
};

// Forward and backward passes of a fully connected network whose parameters
// live in one flat vector, layer after layer: [W_0, b_0, W_1, b_1, ...], each
// W_i row-major [outputs_i, inputs_i] (PyTorch's nn.Linear layout), so the
// vector is the concatenation of the flattened PyTorch parameters; a
// layer-normalised layer's scale and shift follow its bias (nn.Linear then
// nn.LayerNorm). Hidden layer i computes activation_i(W_i h + b_i), or
// h + activation_i(W_i h + b_i) when it is residual, with W_i h + b_i layer-
// normalised first when it is (mlp.h, DenseParameters); the last layer is
// linear.
//
// Rows are processed in blocks of at most `rows_per_block`, which bounds the
// scratch memory (about rows_per_block * 3 * sum(widths) doubles per thread)
// and keeps a block's activations in cache. With `threads` > 1 the blocks
// are shared out among that many OpenMP threads (each block then has at
// most rows / threads rows), every thread sums the gradients of its blocks
// and the threads' sums are added in thread order. Results are therefore a
// deterministic function of the inputs, `rows_per_block` and `threads`.
// Matrix products run on OpenBLAS, single-threaded inside the threads.
// Not thread-safe: an instance owns its scratch memory.
//
// Scalar is double or float: parameters, inputs, targets, gradients and all
// the arithmetic of the layers are in Scalar (OpenBLAS dgemm or sgemm,
// libmvec's double or float functions), as PyTorch computes a float32 or
// float64 network. The loss terms are computed and summed in double in
// either case (see GradientBlock) and the loss is returned as a double.
template <typename Scalar>
class BasicMlpKernels {
 public:
  static constexpr int64_t kDefaultRowsPerBlock = 512;

  // `sizes`: inputs, the hidden widths, outputs (at least two entries, all
  // positive); `activations`: one per hidden layer (tanh, relu, silu, gelu
  // or sine); `rows_per_block` and `threads` at least 1; `residual`: empty
  // (no residual layer) or one flag per hidden layer, set only on hidden
  // layers after the first whose width equals the previous one's;
  // `layer_norm`: empty or one flag per hidden layer, set only on layers of
  // width 2 or more. InvalidArgument otherwise.
  static absl::StatusOr<BasicMlpKernels> Create(
      std::vector<int64_t> sizes, std::vector<v1::Activation> activations,
      int64_t rows_per_block = kDefaultRowsPerBlock, int threads = 1,
      std::vector<bool> residual = {}, std::vector<bool> layer_norm = {});

  int64_t inputs() const { return sizes_.front(); }
  int64_t outputs() const { return sizes_.back(); }
  // Affine layers, the output layer included.
  int layer_count() const { return static_cast<int>(sizes_.size()) - 1; }
  int64_t parameter_count() const { return offsets_.back(); }
  // Offsets of W_i and b_i in the flat parameter vector.
  int64_t weight_offset(int layer) const { return offsets_[layer]; }
  int64_t bias_offset(int layer) const {
    return offsets_[layer] + sizes_[layer] * sizes_[layer + 1];
  }
  // Offsets of a layer-normalised layer's scale and shift, which follow its
  // bias.
  int64_t scale_offset(int layer) const {
    return bias_offset(layer) + sizes_[layer + 1];
  }
  int64_t shift_offset(int layer) const {
    return scale_offset(layer) + sizes_[layer + 1];
  }
  bool layer_norm(int layer) const {
    return layer < static_cast<int>(layer_norm_.size()) && layer_norm_[layer];
  }
  // The weight matrices W_i, one range per layer: what weight decay
  // shrinks. Biases and layer-normalisation scales and shifts are left out,
  // as is usual: decay would pull a scale towards 0, not towards 1.
  std::vector<ParameterRange> weight_ranges() const {
    std::vector<ParameterRange> ranges;
    for (int l = 0; l < layer_count(); ++l) {
      ranges.push_back({weight_offset(l), bias_offset(l)});
    }
    return ranges;
  }

  // Writes the network's outputs for `rows` rows of `x` ([rows, inputs],
  // row-major) to `out` ([rows, outputs]).
  void Forward(const Scalar* params, const Scalar* x, int64_t rows,
               Scalar* out);

  // Returns the mean squared error of the network on (x, y) -- the mean over
  // all rows * outputs values, as torch.nn.functional.mse_loss -- and writes
  // its gradient with respect to `params` to `grad` (parameter_count()
  // values). With `power` p (an even number) and `error_scale` s it is the
  // mean of ((out - y) / s)^p instead: a smooth stand-in for the largest
  // error, whose terms stay representable when s is about that error. With
  // `row_weights` (one per row, non-negative), each row's terms are
  // multiplied by its weight before the mean over rows * outputs. A
  // non-finite loss leaves an unspecified gradient.
  double LossAndGradient(const Scalar* params, const Scalar* x, const Scalar* y,
                         int64_t rows, Scalar* grad, int power = 2,
                         double error_scale = 1.0,
                         const double* row_weights = nullptr);

  // Classification: the outputs are logits. Returns the mean over rows of
  // the softmax cross-entropy -log softmax(out)[label] (natural log), as
  // torch.nn.functional.cross_entropy, and writes its gradient to `grad`.
  // `labels` holds one class index per row, each an integer in [0,
  // outputs()) stored as a Scalar (checked only by assert; float holds
  // every integer up to 2^24 exactly).
  double CrossEntropyAndGradient(const Scalar* params, const Scalar* x,
                                 const Scalar* labels, int64_t rows,
                                 Scalar* grad);

 private:
  // One thread's scratch memory. Per affine layer, [block rows, outputs_i]:
  // the activation (the network output for the last layer), the
  // activation's derivative where it is not cheaper to recompute from the
  // activation (always for residual layers, whose output is not the
  // activation), the gradient of the loss with respect to the layer's
  // pre-activation and, for residual layers, with respect to its output
  // (`skip`, which flows on to the layer's input unchanged), and for
  // layer-normalised layers the normalised values before scale and shift
  // (`xhat`, [block rows, outputs_i]) and each row's 1 / standard deviation
  // (`rstd`). `grad` sums the gradients of the thread's blocks (not used by
  // thread 0, which sums into the caller's buffer).
  struct Workspace {
    int64_t rows = 0;
    std::vector<BasicAlignedBuffer<Scalar>> act, deriv, delta, skip, xhat, rstd;
    BasicAlignedBuffer<Scalar> grad;
  };

  BasicMlpKernels(std::vector<int64_t> sizes,
                  std::vector<v1::Activation> activations,
                  int64_t rows_per_block, int threads,
                  std::vector<bool> residual, std::vector<bool> layer_norm);
  bool residual(int layer) const {
    return layer < static_cast<int>(residual_.size()) && residual_[layer];
  }

  // Rows per block for a call on `rows` rows.
  int64_t BlockRows(int64_t rows) const;
  // Makes `threads` workspaces hold blocks of `rows` rows.
  void Reserve(int threads, int64_t rows, bool gradient);
  // The forward pass of one block of `rows` rows; leaves every layer's
  // output in ws.act and, when `train`, what the backward pass needs in
  // ws.deriv.
  void ForwardBlock(Workspace& ws, const Scalar* params, const Scalar* x,
                    int64_t rows, bool train);
  // The loss a gradient call minimises: the mean of ((out - y) /
  // error_scale)^power over all outputs, each row's terms times its entry
  // of row_weights when that is set, or (power 0) the mean softmax
  // cross-entropy over rows with one label per row in y.
  struct Loss {
    int power = 2;
    double error_scale = 1.0;
    const double* row_weights = nullptr;  // one per row of the call
    bool cross_entropy() const { return power == 0; }
    bool plain_mse() const {
      return power == 2 && error_scale == 1.0 && row_weights == nullptr;
    }
  };
  // Shares the rows' blocks out among the threads and sums their losses
  // and gradients; returns the mean loss.
  double Gradient(const Scalar* params, const Scalar* x, const Scalar* y,
                  int64_t rows, Scalar* grad, Loss loss);
  // Forward and backward pass of one block; adds the block's gradient of
  // `scale` times its summed loss terms to `grad` and returns that sum.
  // loss.row_weights, if set, points at the block's first row's weight.
  double GradientBlock(Workspace& ws, const Scalar* params, const Scalar* x,
                       const Scalar* y, int64_t rows, double scale, Loss loss,
                       Scalar* grad);

  std::vector<int64_t> sizes_;
  std::vector<v1::Activation> activations_;
  std::vector<bool> residual_;  // empty or one per hidden layer
  std::vector<bool> layer_norm_;  // empty or one per hidden layer
  std::vector<int64_t> offsets_;  // layer_count() + 1 entries
  int64_t rows_per_block_;
  int threads_;
  std::vector<Workspace> workspaces_;
};

using MlpKernels = BasicMlpKernels<double>;
using MlpKernels32 = BasicMlpKernels<float>;

// Adam exactly as torch.optim.Adam computes it with betas (0.9, 0.999),
// eps 1e-8 and no AMSGrad; with a weight decay, AdamW as torch.optim.AdamW
// computes it (decoupled: params *= 1 - lr * weight_decay before the Adam
// update), on the `decayed` ranges only (all `size` values when empty, as
// AdamW with one parameter group). Not thread-safe.
//
// Scalar is double or float. The moments are kept in Scalar and the update
// is computed in Scalar with the hyperparameters rounded to it, as
// torch.optim.Adam does for float32 parameters; only the bias corrections
// and the step size are computed in double, as in torch.
template <typename Scalar>
class BasicAdam {
 public:
  explicit BasicAdam(int64_t size, double weight_decay = 0.0,
                     std::vector<ParameterRange> decayed = {});

  // Takes one step with learning rate `lr`: updates the moments from `grad`
  // and `params` in place (size values each).
  void Step(double lr, const Scalar* grad, Scalar* params);

 private:
  static constexpr double kBeta1 = 0.9;
  static constexpr double kBeta2 = 0.999;
  static constexpr double kEps = 1e-8;
  int64_t size_;
  double weight_decay_;
  std::vector<ParameterRange> decayed_;
  int64_t step_ = 0;
  BasicAlignedBuffer<Scalar> exp_avg_, exp_avg_sq_;
};

using Adam = BasicAdam<double>;
using Adam32 = BasicAdam<float>;

// Defined and instantiated in mlp_kernels.cc for these types only.
extern template class BasicAlignedBuffer<double>;
extern template class BasicAlignedBuffer<float>;
extern template class BasicMlpKernels<double>;
extern template class BasicMlpKernels<float>;
extern template class BasicAdam<double>;
extern template class BasicAdam<float>;

// The learning rate of Adam step `step` (0-based) of `steps`: a linear
// warm-up from lr0 / warmup to lr0 over the first `warmup` steps, then a
// cosine decay from lr0 to final_fraction * lr0 over the rest.
double ScheduledLearningRate(double lr0, int step, int steps, int warmup,
                             double final_fraction);

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_MLP_KERNELS_H_
