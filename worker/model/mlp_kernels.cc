#include "worker/model/mlp_kernels.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

// glibc's libmvec has vector variants of these functions (_ZGVdN4v_tanh and
// friends; tanh within about 1 ulp, as accurate as the scalar one). math.h
// declares them only under -ffast-math, which we do not want, so we declare
// them here; with -fopenmp-simd GCC then calls them from the `omp simd` loops
// below (link libmvec).
extern "C" {
__attribute__((simd("notinbranch"))) double tanh(double) noexcept;
__attribute__((simd("notinbranch"))) double exp(double) noexcept;
__attribute__((simd("notinbranch"))) double erf(double) noexcept;
__attribute__((simd("notinbranch"))) double sin(double) noexcept;
__attribute__((simd("notinbranch"))) double cos(double) noexcept;
}

// Compiles a function for AVX-512, AVX2+FMA and baseline x86-64 and picks one
// at load time, so one binary runs everywhere and uses the widest vectors.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define EVONAS_VECTORISED \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define EVONAS_VECTORISED
#endif

namespace evonas::model {
namespace {

constexpr int64_t kAlignment = 64;  // bytes
// Elementwise kernels run over whole multiples of this many values; the
// remainder goes through a padded copy, so that every value takes the same
// vector code path whatever its position.
constexpr int64_t kChunk = 16;
constexpr double kSqrtHalf = 0.70710678118654752440;
// 1 / sqrt(2 pi), the standard normal density's constant.
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

bool NeedsDerivativeBuffer(v1::Activation a) {
  return a == v1::ACTIVATION_SILU || a == v1::ACTIVATION_GELU ||
         a == v1::ACTIVATION_SINE;
}

// h = activation(h) over n values; d = activation'(input) when the
// activation needs a derivative buffer and d is not null. n must be a
// multiple of kChunk, h and d aligned to kAlignment.
EVONAS_VECTORISED
void ActivateChunks(v1::Activation a, double* __restrict h,
                    double* __restrict d, int64_t n) {
  switch (a) {
    case v1::ACTIVATION_TANH:
#pragma omp simd aligned(h : kAlignment)
      for (int64_t i = 0; i < n; ++i) h[i] = tanh(h[i]);
      break;
    case v1::ACTIVATION_RELU:
      // NaN stays NaN, as in torch.relu.
#pragma omp simd aligned(h : kAlignment)
      for (int64_t i = 0; i < n; ++i) h[i] = h[i] < 0 ? 0.0 : h[i];
      break;
    case v1::ACTIVATION_SILU:
      // silu(z) = z / (1 + exp(-z)) as torch.silu; its derivative is
      // s (1 + z (1 - s)) with s = sigmoid(z).
      if (d == nullptr) {
#pragma omp simd aligned(h : kAlignment)
        for (int64_t i = 0; i < n; ++i) h[i] = h[i] / (1.0 + exp(-h[i]));
      } else {
#pragma omp simd aligned(h, d : kAlignment)
        for (int64_t i = 0; i < n; ++i) {
          const double z = h[i];
          const double e = 1.0 + exp(-z);
          const double s = 1.0 / e;
          h[i] = z / e;
          d[i] = s * (1.0 + z * (1.0 - s));
        }
      }
      break;
    case v1::ACTIVATION_GELU:
      // The exact GELU, z Phi(z), as torch.gelu; its derivative is
      // Phi(z) + z phi(z).
      if (d == nullptr) {
#pragma omp simd aligned(h : kAlignment)
        for (int64_t i = 0; i < n; ++i) {
          h[i] = h[i] * 0.5 * (1.0 + erf(h[i] * kSqrtHalf));
        }
      } else {
#pragma omp simd aligned(h, d : kAlignment)
        for (int64_t i = 0; i < n; ++i) {
          const double z = h[i];
          const double e = 1.0 + erf(z * kSqrtHalf);
          h[i] = z * 0.5 * e;
          d[i] = 0.5 * e + z * (kInvSqrt2Pi * exp(-0.5 * z * z));
        }
      }
      break;
    case v1::ACTIVATION_SINE:
      if (d != nullptr) {
#pragma omp simd aligned(h, d : kAlignment)
        for (int64_t i = 0; i < n; ++i) d[i] = cos(h[i]);
      }
#pragma omp simd aligned(h : kAlignment)
      for (int64_t i = 0; i < n; ++i) h[i] = sin(h[i]);
      break;
    default:
      break;
  }
}

// ActivateChunks over any n: whole chunks in place, the rest through a
// padded copy.
void Activate(v1::Activation a, double* h, double* d, int64_t n) {
  if (!NeedsDerivativeBuffer(a)) d = nullptr;
  const int64_t whole = n - n % kChunk;
  ActivateChunks(a, h, d, whole);
  if (whole == n) return;
  alignas(kAlignment) double th[kChunk] = {};
  alignas(kAlignment) double td[kChunk] = {};
  const int64_t rest = n - whole;
  std::copy(h + whole, h + n, th);
  ActivateChunks(a, th, d == nullptr ? nullptr : td, kChunk);
  std::copy(th, th + rest, h + whole);
  if (d != nullptr) std::copy(td, td + rest, d + whole);
}

// d = activation'(z) over n values from h = activation(z), for tanh and
// relu, whose derivative the forward pass does not store otherwise.
EVONAS_VECTORISED
void StoreDerivative(v1::Activation a, const double* __restrict h,
                     double* __restrict d, int64_t n) {
  if (a == v1::ACTIVATION_TANH) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) d[i] = 1.0 - h[i] * h[i];
  } else if (a == v1::ACTIVATION_RELU) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) d[i] = h[i] > 0 ? 1.0 : 0.0;
  }
}

// g *= activation'(z) over n values, from the activation h = activation(z)
// (tanh, relu) or the derivative d stored by the forward pass.
EVONAS_VECTORISED
void MultiplyByDerivative(v1::Activation a, const double* __restrict h,
                          const double* __restrict d, double* __restrict g,
                          int64_t n) {
  switch (a) {
    case v1::ACTIVATION_TANH:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) g[i] = g[i] * (1.0 - h[i] * h[i]);
      break;
    case v1::ACTIVATION_RELU:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) g[i] = h[i] > 0 ? g[i] : 0.0;
      break;
    default:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) g[i] = g[i] * d[i];
      break;
  }
}

// z[r, :] = b over rows x n.
EVONAS_VECTORISED
void FillRows(double* __restrict z, const double* __restrict b, int64_t rows,
              int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    double* zr = z + r * n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) zr[j] = b[j];
  }
}

// sums[j] += sum over r of g[r, j], rows in order.
EVONAS_VECTORISED
void AddColumnSums(const double* __restrict g, int64_t rows, int64_t n,
                   double* __restrict sums) {
  for (int64_t r = 0; r < rows; ++r) {
    const double* gr = g + r * n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) sums[j] += gr[j];
  }
}

// sum[i] += v[i] for i < n.
EVONAS_VECTORISED
void AddTo(const double* __restrict v, int64_t n, double* __restrict sum) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) sum[i] += v[i];
}

// C = a b^T + beta C, C [m, n], a and b strided vectors.
EVONAS_VECTORISED
void OuterProduct(int64_t m, int64_t n, const double* a, int64_t inc_a,
                  const double* b, int64_t inc_b, double beta, double* c,
                  int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    const double ai = a[i * inc_a];
    double* __restrict ci = c + i * ldc;
    if (inc_b != 1) {
      for (int64_t j = 0; j < n; ++j) {
        ci[j] = (beta == 0 ? 0.0 : beta * ci[j]) + ai * b[j * inc_b];
      }
    } else if (beta == 0) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) ci[j] = ai * b[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) ci[j] = beta * ci[j] + ai * b[j];
    }
  }
}

// C = op(A) op(B) + beta C, row-major, C [m, n], op(A) [m, k], op(B) [k, n].
// OpenBLAS dgemm, or dgemv when m or n is 1, or an outer product when k is 1:
// the shapes of a network's first and last layers, where dgemm is slow.
void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          const double* a, int64_t lda, const double* b, int64_t ldb,
          double beta, double* c, int64_t ldc) {
  const CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
  if (n == 1) {
    // c[:, 0] = op(A) times the column op(B)[:, 0].
    const int64_t inc_b = trans_b ? 1 : ldb;
    cblas_dgemv(CblasRowMajor, ta, trans_a ? k : m, trans_a ? m : k, 1.0, a,
                lda, b, inc_b, beta, c, ldc);
  } else if (m == 1) {
    // The row c[0, :] = op(A)[0, :] op(B), i.e. op(B)^T times that row.
    const int64_t inc_a = trans_a ? lda : 1;
    cblas_dgemv(CblasRowMajor, trans_b ? CblasNoTrans : CblasTrans,
                trans_b ? n : k, trans_b ? k : n, 1.0, b, ldb, a, inc_a, beta,
                c, 1);
  } else if (k == 1) {
    const int64_t inc_a = trans_a ? 1 : lda;
    const int64_t inc_b = trans_b ? ldb : 1;
    OuterProduct(m, n, a, inc_a, b, inc_b, beta, c, ldc);
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, a, lda, b, ldb, beta, c,
                ldc);
  }
}

}  // namespace

AlignedBuffer::AlignedBuffer(int64_t size) : size_(size) {
  // Rounded up to whole cache lines, as aligned_alloc requires.
  const size_t bytes =
      (static_cast<size_t>(std::max<int64_t>(size, 1)) * sizeof(double) +
       kAlignment - 1) /
      kAlignment * kAlignment;
  data_.reset(static_cast<double*>(std::aligned_alloc(kAlignment, bytes)));
  if (data_ == nullptr) throw std::bad_alloc();
  std::memset(data_.get(), 0, bytes);
}

absl::StatusOr<MlpKernels> MlpKernels::Create(
    std::vector<int64_t> sizes, std::vector<v1::Activation> activations,
    int64_t rows_per_block, int threads, std::vector<bool> residual) {
  if (sizes.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "an MLP needs inputs and outputs, got ", sizes.size(), " layer sizes"));
  }
  if (activations.size() != sizes.size() - 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(activations.size(), " activations for ", sizes.size() - 2,
                     " hidden layers"));
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer size ", i, " is ", sizes[i]));
    }
  }
  for (size_t i = 0; i < activations.size(); ++i) {
    switch (activations[i]) {
      case v1::ACTIVATION_TANH:
      case v1::ACTIVATION_RELU:
      case v1::ACTIVATION_SILU:
      case v1::ACTIVATION_GELU:
      case v1::ACTIVATION_SINE:
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("hidden layer ", i, ": unsupported activation ",
                         static_cast<int>(activations[i])));
    }
  }
  if (rows_per_block < 1 || threads < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rows_per_block is ", rows_per_block, " and threads ", threads));
  }
  if (!residual.empty() && residual.size() != activations.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(residual.size(), " residual flags for ",
                     activations.size(), " hidden layers"));
  }
  for (size_t i = 0; i < residual.size(); ++i) {
    // Hidden layer i maps sizes[i] to sizes[i + 1].
    if (residual[i] && (i == 0 || sizes[i] != sizes[i + 1])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "hidden layer ", i, " is residual but maps ", sizes[i], " to ",
          sizes[i + 1], " values", i == 0 ? " and is the first layer" : ""));
    }
  }
  return MlpKernels(std::move(sizes), std::move(activations), rows_per_block,
                    threads, std::move(residual));
}

MlpKernels::MlpKernels(std::vector<int64_t> sizes,
                       std::vector<v1::Activation> activations,
                       int64_t rows_per_block, int threads,
                       std::vector<bool> residual)
    : sizes_(std::move(sizes)),
      activations_(std::move(activations)),
      residual_(std::move(residual)),
      rows_per_block_(rows_per_block),
      threads_(threads),
      workspaces_(threads) {
  offsets_.push_back(0);
  for (size_t i = 0; i + 1 < sizes_.size(); ++i) {
    offsets_.push_back(offsets_.back() + sizes_[i] * sizes_[i + 1] +
                       sizes_[i + 1]);
  }
}

int64_t MlpKernels::BlockRows(int64_t rows) const {
  const int64_t per_thread = (rows + threads_ - 1) / threads_;
  return std::max<int64_t>(1, std::min(rows_per_block_, per_thread));
}

void MlpKernels::Reserve(int threads, int64_t rows, bool gradient) {
  for (int t = 0; t < threads; ++t) {
    Workspace& ws = workspaces_[t];
    if (rows > ws.rows) {
      ws.act.resize(layer_count());
      ws.deriv.resize(layer_count());
      ws.delta.resize(layer_count());
      ws.skip.resize(layer_count());
      for (int l = 0; l < layer_count(); ++l) {
        const int64_t n = rows * sizes_[l + 1];
        ws.act[l] = AlignedBuffer(n);
        ws.delta[l] = AlignedBuffer(n);
        if (l + 1 < layer_count() &&
            (NeedsDerivativeBuffer(activations_[l]) || residual(l))) {
          ws.deriv[l] = AlignedBuffer(n);
        }
        if (residual(l)) ws.skip[l] = AlignedBuffer(n);
      }
      ws.rows = rows;
    }
    if (gradient && t > 0 && ws.grad.size() == 0) {
      ws.grad = AlignedBuffer(parameter_count());
    }
  }
}

void MlpKernels::ForwardBlock(Workspace& ws, const double* params,
                              const double* x, int64_t rows, bool train) {
  const double* in = x;
  for (int l = 0; l < layer_count(); ++l) {
    const int64_t fan_in = sizes_[l], fan_out = sizes_[l + 1];
    double* z = ws.act[l].data();
    // z = b + in W^T: starting from the bias saves OpenBLAS's pass that
    // zeroes C and a pass that adds the bias.
    FillRows(z, params + bias_offset(l), rows, fan_out);
    Gemm(false, true, rows, fan_out, fan_in, in, fan_in,
         params + weight_offset(l), fan_in, 1.0, z, fan_out);
    if (l + 1 < layer_count()) {
      const int64_t n = rows * fan_out;
      Activate(activations_[l], z, train ? ws.deriv[l].data() : nullptr, n);
      if (residual(l)) {
        if (train) StoreDerivative(activations_[l], z, ws.deriv[l].data(), n);
        // The layer's input has its shape: z = activation + input.
        AddTo(in, n, z);
      }
    }
    in = z;
  }
}

double MlpKernels::GradientBlock(Workspace& ws, const double* params,
                                 const double* x, const double* y, int64_t rows,
                                 double scale, Loss loss, double* grad) {
  ForwardBlock(ws, params, x, rows, /*train=*/true);
  const int last = layer_count() - 1;
  // d loss / d output.
  const double* out = ws.act[last].data();
  double* g = ws.delta[last].data();
  double sse = 0;
  const int power = loss.power;
  const double error_scale = loss.error_scale;
  if (loss.cross_entropy()) {
    // Per row: log-sum-exp of the logits (shifted by their maximum, so exp
    // cannot overflow) minus the labelled logit; its gradient is
    // softmax - one_hot(label).
    const int64_t classes = outputs();
    for (int64_t r = 0; r < rows; ++r) {
      const double* logits = out + r * classes;
      double* grow = g + r * classes;
      const double top = *std::max_element(logits, logits + classes);
      double sum = 0;
      for (int64_t c = 0; c < classes; ++c) {
        grow[c] = std::exp(logits[c] - top);
        sum += grow[c];
      }
      const auto label = static_cast<int64_t>(y[r]);
      assert(label >= 0 && label < classes);
      sse += std::log(sum) + top - logits[label];
      for (int64_t c = 0; c < classes; ++c) grow[c] *= scale / sum;
      grow[label] -= scale;
    }
  } else if (power == 2 && error_scale == 1.0) {
    for (int64_t i = 0; i < rows * outputs(); ++i) {
      const double diff = out[i] - y[i];
      sse += diff * diff;
      g[i] = scale * diff;
    }
  } else {
    // d/d out of (diff / s)^p is p (diff / s)^(p - 1) / s; `scale` holds
    // the 1 / count of the mean.
    const double factor = scale * power / error_scale;
    for (int64_t i = 0; i < rows * outputs(); ++i) {
      const double e = (out[i] - y[i]) / error_scale;
      const double e_pm1 = std::pow(e, power - 1);
      sse += e_pm1 * e;
      g[i] = factor * e_pm1;
    }
  }
  for (int l = last; l >= 0; --l) {
    const int64_t fan_in = sizes_[l], fan_out = sizes_[l + 1];
    const double* in = l == 0 ? x : ws.act[l - 1].data();
    const double* delta = ws.delta[l].data();
    // dW_l += delta^T in; db_l += column sums of delta.
    Gemm(true, false, fan_out, fan_in, rows, delta, fan_out, in, fan_in, 1.0,
         grad + weight_offset(l), fan_in);
    AddColumnSums(delta, rows, fan_out, grad + bias_offset(l));
    if (l > 0) {
      // The gradient with respect to layer l-1's output: delta W_l, plus the
      // gradient with respect to layer l's output when layer l adds its
      // input to it.
      double* prev = ws.delta[l - 1].data();
      const int64_t n = rows * fan_in;
      double beta = 0.0;
      if (residual(l)) {
        std::copy(ws.skip[l].data(), ws.skip[l].data() + n, prev);
        beta = 1.0;
      }
      Gemm(false, false, rows, fan_in, fan_out, delta, fan_out,
           params + weight_offset(l), fan_in, beta, prev, fan_in);
      if (residual(l - 1)) {
        std::copy(prev, prev + n, ws.skip[l - 1].data());
        // A residual layer's output is not its activation: use the stored
        // derivative (the default branch).
        MultiplyByDerivative(v1::ACTIVATION_UNSPECIFIED, nullptr,
                             ws.deriv[l - 1].data(), prev, n);
      } else {
        // delta_{l-1} = (delta W_l) * activation'.
        MultiplyByDerivative(activations_[l - 1], ws.act[l - 1].data(),
                             ws.deriv[l - 1].data(), prev, n);
      }
    }
  }
  return sse;
}

void MlpKernels::Forward(const double* params, const double* x, int64_t rows,
                         double* out) {
  if (rows == 0) return;
  const int64_t block = BlockRows(rows);
  const int64_t blocks = (rows + block - 1) / block;
  const int threads = static_cast<int>(std::min<int64_t>(threads_, blocks));
  Reserve(threads, block, /*gradient=*/false);
  const int last = layer_count() - 1;
  const auto run = [&](int t) {
    Workspace& ws = workspaces_[t];
    for (int64_t b = t * blocks / threads; b < (t + 1) * blocks / threads;
         ++b) {
      const int64_t start = b * block;
      const int64_t n = std::min(block, rows - start);
      ForwardBlock(ws, params, x + start * inputs(), n, /*train=*/false);
      std::copy(ws.act[last].data(), ws.act[last].data() + n * outputs(),
                out + start * outputs());
    }
  };
  if (threads == 1) {
    run(0);
    return;
  }
#pragma omp parallel num_threads(threads)
  run(omp_get_thread_num());
}

double MlpKernels::LossAndGradient(const double* params, const double* x,
                                   const double* y, int64_t rows, double* grad,
                                   int power, double error_scale) {
  assert(power > 0);
  return Gradient(params, x, y, rows, grad, Loss{power, error_scale});
}

double MlpKernels::CrossEntropyAndGradient(const double* params,
                                           const double* x,
                                           const double* labels, int64_t rows,
                                           double* grad) {
  return Gradient(params, x, labels, rows, grad, Loss{0, 1.0});
}

double MlpKernels::Gradient(const double* params, const double* x,
                            const double* y, int64_t rows, double* grad,
                            Loss loss) {
  const int64_t size = parameter_count();
  std::fill(grad, grad + size, 0.0);
  if (rows == 0) return std::numeric_limits<double>::quiet_NaN();
  const int64_t block = BlockRows(rows);
  const int64_t blocks = (rows + block - 1) / block;
  const int threads = static_cast<int>(std::min<int64_t>(threads_, blocks));
  Reserve(threads, block, /*gradient=*/true);
  // Cross-entropy has one term per row and one label per row in y.
  const int64_t y_stride = loss.cross_entropy() ? 1 : outputs();
  const double count =
      static_cast<double>(rows) * static_cast<double>(y_stride);
  const double scale =
      loss.power == 2 && loss.error_scale == 1.0 ? 2.0 / count : 1.0 / count;
  std::vector<double> sse(threads, 0.0);
  const auto run = [&](int t) {
    Workspace& ws = workspaces_[t];
    double* g = grad;
    if (t > 0) {
      g = ws.grad.data();
      std::fill(g, g + size, 0.0);
    }
    for (int64_t b = t * blocks / threads; b < (t + 1) * blocks / threads;
         ++b) {
      const int64_t start = b * block;
      const int64_t n = std::min(block, rows - start);
      sse[t] += GradientBlock(ws, params, x + start * inputs(),
                              y + start * y_stride, n, scale, loss, g);
    }
  };
  if (threads == 1) {
    run(0);
  } else {
#pragma omp parallel num_threads(threads)
    run(omp_get_thread_num());
    for (int t = 1; t < threads; ++t)
      AddTo(workspaces_[t].grad.data(), size, grad);
  }
  double total = 0;
  for (double s : sse) total += s;
  return total / count;
}

Adam::Adam(int64_t size, double weight_decay)
    : size_(size),
      weight_decay_(weight_decay),
      exp_avg_(size),
      exp_avg_sq_(size) {}

void Adam::Step(double lr, const double* grad, double* params) {
  ++step_;
  const double bias_correction1 = 1 - std::pow(kBeta1, step_);
  const double bias_correction2 = 1 - std::pow(kBeta2, step_);
  const double step_size = lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  double* m = exp_avg_.data();
  double* v = exp_avg_sq_.data();
  if (weight_decay_ != 0) {
    const double keep = 1 - lr * weight_decay_;
#pragma omp simd
    for (int64_t i = 0; i < size_; ++i) params[i] *= keep;
  }
  // The operations and their order of torch::optim::Adam::step.
#pragma omp simd
  for (int64_t i = 0; i < size_; ++i) {
    const double g = grad[i];
    m[i] = m[i] * kBeta1 + (1 - kBeta1) * g;
    v[i] = v[i] * kBeta2 + (1 - kBeta2) * g * g;
    const double denom = std::sqrt(v[i]) / bias_correction2_sqrt + kEps;
    params[i] = params[i] + (-step_size) * m[i] / denom;
  }
}

double ScheduledLearningRate(double lr0, int step, int steps, int warmup,
                             double final_fraction) {
  if (step < warmup) return lr0 * static_cast<double>(step + 1) / warmup;
  constexpr double kPi = 3.14159265358979323846;
  const double progress =
      static_cast<double>(step - warmup) / static_cast<double>(steps - warmup);
  return lr0 * (final_fraction +
                (1 - final_fraction) * 0.5 * (1 + std::cos(kPi * progress)));
}

}  // namespace evonas::model
