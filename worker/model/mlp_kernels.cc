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
#include "worker/model/mlp.h"

// glibc's libmvec has vector variants of these functions (_ZGVdN4v_tanh and
// friends; tanh within about 1 ulp, as accurate as the scalar one), and of
// their float versions (_ZGVdN8v_tanhf, _ZGVeN16v_tanhf, ...; glibc 2.36 has
// all five in SSE, AVX, AVX2 and AVX-512 forms, tanhf and erff since 2.35).
// math.h declares them only under -ffast-math, which we do not want, so we
// declare them here; with -fopenmp-simd GCC then calls them from the `omp
// simd` loops below (link libmvec).
extern "C" {
__attribute__((simd("notinbranch"))) double tanh(double) noexcept;
__attribute__((simd("notinbranch"))) double exp(double) noexcept;
__attribute__((simd("notinbranch"))) double erf(double) noexcept;
__attribute__((simd("notinbranch"))) double sin(double) noexcept;
__attribute__((simd("notinbranch"))) double cos(double) noexcept;
__attribute__((simd("notinbranch"))) float tanhf(float) noexcept;
__attribute__((simd("notinbranch"))) float expf(float) noexcept;
__attribute__((simd("notinbranch"))) float erff(float) noexcept;
__attribute__((simd("notinbranch"))) float sinf(float) noexcept;
__attribute__((simd("notinbranch"))) float cosf(float) noexcept;
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
// Elementwise kernels run over whole multiples of this many values (128
// bytes: two AVX-512 vectors); the remainder goes through a padded copy, so
// that every value takes the same vector code path whatever its position.
template <typename Scalar>
constexpr int64_t kChunk = 128 / sizeof(Scalar);
constexpr double kSqrtHalf = 0.70710678118654752440;
// 1 / sqrt(2 pi), the standard normal density's constant.
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

// The math functions for each scalar type, by overloading. Inlined into the
// `omp simd` loops, they become calls of libmvec's variants declared above.
[[gnu::always_inline]] inline double Tanh(double x) { return tanh(x); }
[[gnu::always_inline]] inline float Tanh(float x) { return tanhf(x); }
[[gnu::always_inline]] inline double Exp(double x) { return exp(x); }
[[gnu::always_inline]] inline float Exp(float x) { return expf(x); }
[[gnu::always_inline]] inline double Erf(double x) { return erf(x); }
[[gnu::always_inline]] inline float Erf(float x) { return erff(x); }
[[gnu::always_inline]] inline double Sin(double x) { return sin(x); }
[[gnu::always_inline]] inline float Sin(float x) { return sinf(x); }
[[gnu::always_inline]] inline double Cos(double x) { return cos(x); }
[[gnu::always_inline]] inline float Cos(float x) { return cosf(x); }

bool NeedsDerivativeBuffer(v1::Activation a) {
  return a == v1::ACTIVATION_SILU || a == v1::ACTIVATION_GELU ||
         a == v1::ACTIVATION_SINE || a == v1::ACTIVATION_GAUSSIAN;
}

// h = activation(h) over n values; d = activation'(input) when the
// activation needs a derivative buffer and d is not null. n must be a
// multiple of kChunk, h and d aligned to kAlignment. The constants are
// rounded to Scalar, so that float runs in float throughout.
template <typename Scalar>
EVONAS_VECTORISED void ActivateChunks(v1::Activation a, Scalar* __restrict h,
                                      Scalar* __restrict d, int64_t n) {
  constexpr Scalar kZero = 0, kOne = 1, kHalf = 0.5;
  constexpr auto kSqrtHalfS = static_cast<Scalar>(kSqrtHalf);
  constexpr auto kInvSqrt2PiS = static_cast<Scalar>(kInvSqrt2Pi);
  switch (a) {
    case v1::ACTIVATION_TANH:
#pragma omp simd aligned(h : kAlignment)
      for (int64_t i = 0; i < n; ++i) h[i] = Tanh(h[i]);
      break;
    case v1::ACTIVATION_RELU:
      // NaN stays NaN, as in torch.relu.
#pragma omp simd aligned(h : kAlignment)
      for (int64_t i = 0; i < n; ++i) h[i] = h[i] < 0 ? kZero : h[i];
      break;
    case v1::ACTIVATION_SILU:
      // silu(z) = z / (1 + exp(-z)) as torch.silu; its derivative is
      // s (1 + z (1 - s)) with s = sigmoid(z).
      if (d == nullptr) {
#pragma omp simd aligned(h : kAlignment)
        for (int64_t i = 0; i < n; ++i) h[i] = h[i] / (kOne + Exp(-h[i]));
      } else {
#pragma omp simd aligned(h, d : kAlignment)
        for (int64_t i = 0; i < n; ++i) {
          const Scalar z = h[i];
          const Scalar e = kOne + Exp(-z);
          const Scalar s = kOne / e;
          h[i] = z / e;
          d[i] = s * (kOne + z * (kOne - s));
        }
      }
      break;
    case v1::ACTIVATION_GELU:
      // The exact GELU, z Phi(z), as torch.gelu; its derivative is
      // Phi(z) + z phi(z).
      if (d == nullptr) {
#pragma omp simd aligned(h : kAlignment)
        for (int64_t i = 0; i < n; ++i) {
          h[i] = h[i] * kHalf * (kOne + Erf(h[i] * kSqrtHalfS));
        }
      } else {
#pragma omp simd aligned(h, d : kAlignment)
        for (int64_t i = 0; i < n; ++i) {
          const Scalar z = h[i];
          const Scalar e = kOne + Erf(z * kSqrtHalfS);
          h[i] = z * kHalf * e;
          d[i] = kHalf * e + z * (kInvSqrt2PiS * Exp(-kHalf * z * z));
        }
      }
      break;
    case v1::ACTIVATION_SINE:
      if (d != nullptr) {
#pragma omp simd aligned(h, d : kAlignment)
        for (int64_t i = 0; i < n; ++i) d[i] = Cos(h[i]);
      }
#pragma omp simd aligned(h : kAlignment)
      for (int64_t i = 0; i < n; ++i) h[i] = Sin(h[i]);
      break;
    case v1::ACTIVATION_GAUSSIAN:
      // exp(-z^2); its derivative is -2 z exp(-z^2).
      if (d == nullptr) {
#pragma omp simd aligned(h : kAlignment)
        for (int64_t i = 0; i < n; ++i) h[i] = Exp(-h[i] * h[i]);
      } else {
#pragma omp simd aligned(h, d : kAlignment)
        for (int64_t i = 0; i < n; ++i) {
          const Scalar z = h[i];
          const Scalar e = Exp(-z * z);
          h[i] = e;
          d[i] = -(z + z) * e;
        }
      }
      break;
    default:
      break;
  }
}

// ActivateChunks over any n: whole chunks in place, the rest through a
// padded copy.
template <typename Scalar>
void Activate(v1::Activation a, Scalar* h, Scalar* d, int64_t n) {
  constexpr int64_t kChunkS = kChunk<Scalar>;
  if (!NeedsDerivativeBuffer(a)) d = nullptr;
  const int64_t whole = n - n % kChunkS;
  ActivateChunks(a, h, d, whole);
  if (whole == n) return;
  alignas(kAlignment) Scalar th[kChunkS] = {};
  alignas(kAlignment) Scalar td[kChunkS] = {};
  const int64_t rest = n - whole;
  std::copy(h + whole, h + n, th);
  ActivateChunks(a, th, d == nullptr ? nullptr : td, kChunkS);
  std::copy(th, th + rest, h + whole);
  if (d != nullptr) std::copy(td, td + rest, d + whole);
}

// d = activation'(z) over n values from h = activation(z), for tanh and
// relu, whose derivative the forward pass does not store otherwise.
template <typename Scalar>
EVONAS_VECTORISED void StoreDerivative(v1::Activation a,
                                       const Scalar* __restrict h,
                                       Scalar* __restrict d, int64_t n) {
  constexpr Scalar kZero = 0, kOne = 1;
  if (a == v1::ACTIVATION_TANH) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) d[i] = kOne - h[i] * h[i];
  } else if (a == v1::ACTIVATION_RELU) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) d[i] = h[i] > 0 ? kOne : kZero;
  }
}

// g *= activation'(z) over n values, from the activation h = activation(z)
// (tanh, relu) or the derivative d stored by the forward pass.
template <typename Scalar>
EVONAS_VECTORISED void MultiplyByDerivative(v1::Activation a,
                                            const Scalar* __restrict h,
                                            const Scalar* __restrict d,
                                            Scalar* __restrict g, int64_t n) {
  constexpr Scalar kZero = 0, kOne = 1;
  switch (a) {
    case v1::ACTIVATION_TANH:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) g[i] = g[i] * (kOne - h[i] * h[i]);
      break;
    case v1::ACTIVATION_RELU:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) g[i] = h[i] > 0 ? g[i] : kZero;
      break;
    default:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) g[i] = g[i] * d[i];
      break;
  }
}

// z[r, :] = b over rows x n.
template <typename Scalar>
EVONAS_VECTORISED void FillRows(Scalar* __restrict z,
                                const Scalar* __restrict b, int64_t rows,
                                int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    Scalar* zr = z + r * n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) zr[j] = b[j];
  }
}

// sums[j] += sum over r of g[r, j], rows in order.
template <typename Scalar>
EVONAS_VECTORISED void AddColumnSums(const Scalar* __restrict g, int64_t rows,
                                     int64_t n, Scalar* __restrict sums) {
  for (int64_t r = 0; r < rows; ++r) {
    const Scalar* gr = g + r * n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) sums[j] += gr[j];
  }
}

// sum[i] += v[i] for i < n.
template <typename Scalar>
EVONAS_VECTORISED void AddTo(const Scalar* __restrict v, int64_t n,
                             Scalar* __restrict sum) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) sum[i] += v[i];
}

// C = a b^T + beta C, C [m, n], a and b strided vectors.
template <typename Scalar>
EVONAS_VECTORISED void OuterProduct(int64_t m, int64_t n, const Scalar* a,
                                    int64_t inc_a, const Scalar* b,
                                    int64_t inc_b, Scalar beta, Scalar* c,
                                    int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    const Scalar ai = a[i * inc_a];
    Scalar* __restrict ci = c + i * ldc;
    if (inc_b != 1) {
      for (int64_t j = 0; j < n; ++j) {
        ci[j] = (beta == 0 ? Scalar{0} : beta * ci[j]) + ai * b[j * inc_b];
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

// Layer normalisation of each of `rows` rows of z [rows, n] in place, as
// torch.layer_norm: z = (z - mean) * rstd * scale + shift, rstd = 1 /
// sqrt(var + eps) with the biased variance. Means and variances are summed
// in double also for float (n terms, next to nothing against the product
// before). With `xhat` and `rstd_out` not null, keeps (z - mean) * rstd
// [rows, n] and rstd [rows] for the backward pass.
template <typename Scalar>
void LayerNormRows(Scalar* z, int64_t rows, int64_t n, const Scalar* scale,
                   const Scalar* shift, Scalar* xhat, Scalar* rstd_out) {
  for (int64_t r = 0; r < rows; ++r) {
    Scalar* zr = z + r * n;
    double mean = 0;
    for (int64_t j = 0; j < n; ++j) mean += zr[j];
    mean /= static_cast<double>(n);
    double var = 0;
    for (int64_t j = 0; j < n; ++j) {
      const double c = zr[j] - mean;
      var += c * c;
    }
    var /= static_cast<double>(n);
    const auto rstd =
        static_cast<Scalar>(1.0 / std::sqrt(var + kLayerNormEpsilon));
    const auto m = static_cast<Scalar>(mean);
    Scalar* xr = xhat == nullptr ? nullptr : xhat + r * n;
    for (int64_t j = 0; j < n; ++j) {
      const Scalar x = (zr[j] - m) * rstd;
      if (xr != nullptr) xr[j] = x;
      zr[j] = x * scale[j] + shift[j];
    }
    if (rstd_out != nullptr) rstd_out[r] = rstd;
  }
}

// The backward pass of LayerNormRows: g holds d loss / d (normalised
// output) [rows, n] and becomes d loss / d z; the gradients of scale and
// shift are added to grad_scale and grad_shift. With g' = g * scale,
// d loss / d z = rstd (g' - mean(g') - xhat mean(g' xhat)), means over a
// row.
template <typename Scalar>
void LayerNormBackward(Scalar* g, int64_t rows, int64_t n, const Scalar* scale,
                       const Scalar* xhat, const Scalar* rstd,
                       Scalar* grad_scale, Scalar* grad_shift) {
  for (int64_t r = 0; r < rows; ++r) {
    Scalar* gr = g + r * n;
    const Scalar* xr = xhat + r * n;
    double sum_g = 0, sum_gx = 0;
    for (int64_t j = 0; j < n; ++j) {
      grad_scale[j] += gr[j] * xr[j];
      grad_shift[j] += gr[j];
      gr[j] *= scale[j];
      sum_g += gr[j];
      sum_gx += static_cast<double>(gr[j]) * xr[j];
    }
    const auto mean_g = static_cast<Scalar>(sum_g / static_cast<double>(n));
    const auto mean_gx = static_cast<Scalar>(sum_gx / static_cast<double>(n));
    for (int64_t j = 0; j < n; ++j) {
      gr[j] = rstd[r] * (gr[j] - mean_g - xr[j] * mean_gx);
    }
  }
}

// OpenBLAS's matrix-vector and matrix-matrix products for each scalar type,
// by overloading; alpha is always 1.
void BlasGemv(CBLAS_TRANSPOSE t, int64_t m, int64_t n, const double* a,
              int64_t lda, const double* x, int64_t inc_x, double beta,
              double* y, int64_t inc_y) {
  cblas_dgemv(CblasRowMajor, t, m, n, 1.0, a, lda, x, inc_x, beta, y, inc_y);
}
void BlasGemv(CBLAS_TRANSPOSE t, int64_t m, int64_t n, const float* a,
              int64_t lda, const float* x, int64_t inc_x, float beta, float* y,
              int64_t inc_y) {
  cblas_sgemv(CblasRowMajor, t, m, n, 1.0f, a, lda, x, inc_x, beta, y, inc_y);
}
void BlasGemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n,
              int64_t k, const double* a, int64_t lda, const double* b,
              int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, a, lda, b, ldb, beta, c,
              ldc);
}
void BlasGemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n,
              int64_t k, const float* a, int64_t lda, const float* b,
              int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c,
              ldc);
}

// C = op(A) op(B) + beta C, row-major, C [m, n], op(A) [m, k], op(B) [k, n].
// OpenBLAS gemm, or gemv when m or n is 1, or an outer product when k is 1:
// the shapes of a network's first and last layers, where gemm is slow.
template <typename Scalar>
void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          const Scalar* a, int64_t lda, const Scalar* b, int64_t ldb,
          Scalar beta, Scalar* c, int64_t ldc) {
  const CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
  if (n == 1) {
    // c[:, 0] = op(A) times the column op(B)[:, 0].
    const int64_t inc_b = trans_b ? 1 : ldb;
    BlasGemv(ta, trans_a ? k : m, trans_a ? m : k, a, lda, b, inc_b, beta, c,
             ldc);
  } else if (m == 1) {
    // The row c[0, :] = op(A)[0, :] op(B), i.e. op(B)^T times that row.
    const int64_t inc_a = trans_a ? lda : 1;
    BlasGemv(trans_b ? CblasNoTrans : CblasTrans, trans_b ? n : k,
             trans_b ? k : n, b, ldb, a, inc_a, beta, c, 1);
  } else if (k == 1) {
    const int64_t inc_a = trans_a ? 1 : lda;
    const int64_t inc_b = trans_b ? ldb : 1;
    OuterProduct(m, n, a, inc_a, b, inc_b, beta, c, ldc);
  } else {
    BlasGemm(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
  }
}

}  // namespace

template <typename Scalar>
BasicAlignedBuffer<Scalar>::BasicAlignedBuffer(int64_t size) : size_(size) {
  // Rounded up to whole cache lines, as aligned_alloc requires.
  const size_t bytes =
      (static_cast<size_t>(std::max<int64_t>(size, 1)) * sizeof(Scalar) +
       kAlignment - 1) /
      kAlignment * kAlignment;
  data_.reset(static_cast<Scalar*>(std::aligned_alloc(kAlignment, bytes)));
  if (data_ == nullptr) throw std::bad_alloc();
  std::memset(data_.get(), 0, bytes);
}

template <typename Scalar>
absl::StatusOr<BasicMlpKernels<Scalar>> BasicMlpKernels<Scalar>::Create(
    std::vector<int64_t> sizes, std::vector<v1::Activation> activations,
    int64_t rows_per_block, int threads, std::vector<bool> residual,
    std::vector<bool> layer_norm) {
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
      case v1::ACTIVATION_GAUSSIAN:
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
  if (!layer_norm.empty() && layer_norm.size() != activations.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(layer_norm.size(), " layer-norm flags for ",
                     activations.size(), " hidden layers"));
  }
  for (size_t i = 0; i < layer_norm.size(); ++i) {
    if (layer_norm[i] && sizes[i + 1] < 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("hidden layer ", i, " is layer-normalised but has ",
                       sizes[i + 1], " output; it needs at least 2"));
    }
  }
  return BasicMlpKernels(std::move(sizes), std::move(activations),
                         rows_per_block, threads, std::move(residual),
                         std::move(layer_norm));
}

template <typename Scalar>
BasicMlpKernels<Scalar>::BasicMlpKernels(
    std::vector<int64_t> sizes, std::vector<v1::Activation> activations,
    int64_t rows_per_block, int threads, std::vector<bool> residual,
    std::vector<bool> layer_norm)
    : sizes_(std::move(sizes)),
      activations_(std::move(activations)),
      residual_(std::move(residual)),
      layer_norm_(std::move(layer_norm)),
      rows_per_block_(rows_per_block),
      threads_(threads),
      workspaces_(threads) {
  offsets_.push_back(0);
  for (size_t i = 0; i + 1 < sizes_.size(); ++i) {
    offsets_.push_back(offsets_.back() + sizes_[i] * sizes_[i + 1] +
                       (this->layer_norm(static_cast<int>(i)) ? 3 : 1) *
                           sizes_[i + 1]);
  }
}

template <typename Scalar>
int64_t BasicMlpKernels<Scalar>::BlockRows(int64_t rows) const {
  const int64_t per_thread = (rows + threads_ - 1) / threads_;
  return std::max<int64_t>(1, std::min(rows_per_block_, per_thread));
}

template <typename Scalar>
void BasicMlpKernels<Scalar>::Reserve(int threads, int64_t rows,
                                      bool gradient) {
  for (int t = 0; t < threads; ++t) {
    Workspace& ws = workspaces_[t];
    if (rows > ws.rows) {
      ws.act.resize(layer_count());
      ws.deriv.resize(layer_count());
      ws.delta.resize(layer_count());
      ws.skip.resize(layer_count());
      ws.xhat.resize(layer_count());
      ws.rstd.resize(layer_count());
      for (int l = 0; l < layer_count(); ++l) {
        const int64_t n = rows * sizes_[l + 1];
        ws.act[l] = BasicAlignedBuffer<Scalar>(n);
        ws.delta[l] = BasicAlignedBuffer<Scalar>(n);
        if (l + 1 < layer_count() &&
            (NeedsDerivativeBuffer(activations_[l]) || residual(l))) {
          ws.deriv[l] = BasicAlignedBuffer<Scalar>(n);
        }
        if (residual(l)) ws.skip[l] = BasicAlignedBuffer<Scalar>(n);
        if (layer_norm(l)) {
          ws.xhat[l] = BasicAlignedBuffer<Scalar>(n);
          ws.rstd[l] = BasicAlignedBuffer<Scalar>(rows);
        }
      }
      ws.rows = rows;
    }
    if (gradient && t > 0 && ws.grad.size() == 0) {
      ws.grad = BasicAlignedBuffer<Scalar>(parameter_count());
    }
  }
}

template <typename Scalar>
void BasicMlpKernels<Scalar>::ForwardBlock(Workspace& ws, const Scalar* params,
                                           const Scalar* x, int64_t rows,
                                           bool train) {
  const Scalar* in = x;
  for (int l = 0; l < layer_count(); ++l) {
    const int64_t fan_in = sizes_[l], fan_out = sizes_[l + 1];
    Scalar* z = ws.act[l].data();
    // z = b + in W^T: starting from the bias saves OpenBLAS's pass that
    // zeroes C and a pass that adds the bias.
    FillRows(z, params + bias_offset(l), rows, fan_out);
    Gemm<Scalar>(false, true, rows, fan_out, fan_in, in, fan_in,
                 params + weight_offset(l), fan_in, 1, z, fan_out);
    if (l + 1 < layer_count()) {
      const int64_t n = rows * fan_out;
      if (layer_norm(l)) {
        LayerNormRows(z, rows, fan_out, params + scale_offset(l),
                      params + shift_offset(l),
                      train ? ws.xhat[l].data() : nullptr,
                      train ? ws.rstd[l].data() : nullptr);
      }
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

template <typename Scalar>
double BasicMlpKernels<Scalar>::GradientBlock(Workspace& ws,
                                              const Scalar* params,
                                              const Scalar* x, const Scalar* y,
                                              int64_t rows, double scale,
                                              Loss loss, Scalar* grad) {
  ForwardBlock(ws, params, x, rows, /*train=*/true);
  const int last = layer_count() - 1;
  // d loss / d output. The loss terms are computed and summed in double
  // also for float networks: it is one scalar pass over rows * outputs
  // values (nothing next to the products), and a float sum of n terms
  // could be off by about n * 6e-8 relative -- 40% at a million terms --,
  // while the trainer compares these losses to select weights and to stop.
  // Only the gradient is rounded to Scalar.
  const Scalar* out = ws.act[last].data();
  Scalar* g = ws.delta[last].data();
  double sse = 0;
  const int power = loss.power;
  const double error_scale = loss.error_scale;
  if (loss.cross_entropy()) {
    // Per row: log-sum-exp of the logits (shifted by their maximum, so exp
    // cannot overflow) minus the labelled logit; its gradient is
    // softmax - one_hot(label).
    const int64_t classes = outputs();
    for (int64_t r = 0; r < rows; ++r) {
      const Scalar* logits = out + r * classes;
      Scalar* grow = g + r * classes;
      const double top = *std::max_element(logits, logits + classes);
      double sum = 0;
      for (int64_t c = 0; c < classes; ++c) {
        const double e = std::exp(logits[c] - top);
        grow[c] = static_cast<Scalar>(e);
        sum += e;
      }
      const auto label = static_cast<int64_t>(y[r]);
      assert(label >= 0 && label < classes);
      sse += std::log(sum) + top - logits[label];
      for (int64_t c = 0; c < classes; ++c) {
        grow[c] = static_cast<Scalar>(grow[c] * (scale / sum));
      }
      grow[label] = static_cast<Scalar>(grow[label] - scale);
    }
  } else if (loss.plain_mse()) {
    for (int64_t i = 0; i < rows * outputs(); ++i) {
      const double diff = static_cast<double>(out[i]) - y[i];
      sse += diff * diff;
      g[i] = static_cast<Scalar>(scale * diff);
    }
  } else {
    // d/d out of (diff / s)^p is p (diff / s)^(p - 1) / s; `scale` holds
    // the 1 / count of the mean.
    const int64_t width = outputs();
    for (int64_t r = 0; r < rows; ++r) {
      const double weight =
          loss.row_weights == nullptr ? 1.0 : loss.row_weights[r];
      const double factor = weight * scale * power / error_scale;
      for (int64_t i = r * width; i < (r + 1) * width; ++i) {
        const double e = (static_cast<double>(out[i]) - y[i]) / error_scale;
        const double e_pm1 = std::pow(e, power - 1);
        sse += weight * e_pm1 * e;
        g[i] = static_cast<Scalar>(factor * e_pm1);
      }
    }
  }
  for (int l = last; l >= 0; --l) {
    const int64_t fan_in = sizes_[l], fan_out = sizes_[l + 1];
    const Scalar* in = l == 0 ? x : ws.act[l - 1].data();
    if (layer_norm(l)) {
      // delta holds the gradient with respect to the normalised values;
      // make it the one with respect to W in + b.
      LayerNormBackward(ws.delta[l].data(), rows, fan_out,
                        params + scale_offset(l), ws.xhat[l].data(),
                        ws.rstd[l].data(), grad + scale_offset(l),
                        grad + shift_offset(l));
    }
    const Scalar* delta = ws.delta[l].data();
    // dW_l += delta^T in; db_l += column sums of delta.
    Gemm<Scalar>(true, false, fan_out, fan_in, rows, delta, fan_out, in, fan_in,
                 1, grad + weight_offset(l), fan_in);
    AddColumnSums(delta, rows, fan_out, grad + bias_offset(l));
    if (l > 0) {
      // The gradient with respect to layer l-1's output: delta W_l, plus the
      // gradient with respect to layer l's output when layer l adds its
      // input to it.
      Scalar* prev = ws.delta[l - 1].data();
      const int64_t n = rows * fan_in;
      Scalar beta = 0;
      if (residual(l)) {
        std::copy(ws.skip[l].data(), ws.skip[l].data() + n, prev);
        beta = 1;
      }
      Gemm<Scalar>(false, false, rows, fan_in, fan_out, delta, fan_out,
                   params + weight_offset(l), fan_in, beta, prev, fan_in);
      if (residual(l - 1)) {
        std::copy(prev, prev + n, ws.skip[l - 1].data());
        // A residual layer's output is not its activation: use the stored
        // derivative (the default branch).
        MultiplyByDerivative<Scalar>(v1::ACTIVATION_UNSPECIFIED, nullptr,
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

template <typename Scalar>
void BasicMlpKernels<Scalar>::Forward(const Scalar* params, const Scalar* x,
                                      int64_t rows, Scalar* out) {
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

template <typename Scalar>
double BasicMlpKernels<Scalar>::LossAndGradient(
    const Scalar* params, const Scalar* x, const Scalar* y, int64_t rows,
    Scalar* grad, int power, double error_scale, const double* row_weights) {
  assert(power > 0);
  return Gradient(params, x, y, rows, grad,
                  Loss{power, error_scale, row_weights});
}

template <typename Scalar>
double BasicMlpKernels<Scalar>::CrossEntropyAndGradient(const Scalar* params,
                                                        const Scalar* x,
                                                        const Scalar* labels,
                                                        int64_t rows,
                                                        Scalar* grad) {
  return Gradient(params, x, labels, rows, grad, Loss{0, 1.0, nullptr});
}

template <typename Scalar>
double BasicMlpKernels<Scalar>::Gradient(const Scalar* params, const Scalar* x,
                                         const Scalar* y, int64_t rows,
                                         Scalar* grad, Loss loss) {
  const int64_t size = parameter_count();
  std::fill(grad, grad + size, Scalar{0});
  if (rows == 0) return std::numeric_limits<double>::quiet_NaN();
  const int64_t block = BlockRows(rows);
  const int64_t blocks = (rows + block - 1) / block;
  const int threads = static_cast<int>(std::min<int64_t>(threads_, blocks));
  Reserve(threads, block, /*gradient=*/true);
  // Cross-entropy has one term per row and one label per row in y.
  const int64_t y_stride = loss.cross_entropy() ? 1 : outputs();
  const double count =
      static_cast<double>(rows) * static_cast<double>(y_stride);
  const double scale = loss.plain_mse() ? 2.0 / count : 1.0 / count;
  std::vector<double> sse(threads, 0.0);
  const auto run = [&](int t) {
    Workspace& ws = workspaces_[t];
    Scalar* g = grad;
    if (t > 0) {
      g = ws.grad.data();
      std::fill(g, g + size, Scalar{0});
    }
    for (int64_t b = t * blocks / threads; b < (t + 1) * blocks / threads;
         ++b) {
      const int64_t start = b * block;
      const int64_t n = std::min(block, rows - start);
      Loss block_loss = loss;
      if (loss.row_weights != nullptr) block_loss.row_weights += start;
      sse[t] += GradientBlock(ws, params, x + start * inputs(),
                              y + start * y_stride, n, scale, block_loss, g);
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

template <typename Scalar>
BasicAdam<Scalar>::BasicAdam(int64_t size, double weight_decay,
                             std::vector<ParameterRange> decayed)
    : size_(size),
      weight_decay_(weight_decay),
      decayed_(decayed.empty() ? std::vector<ParameterRange>{{0, size}}
                               : std::move(decayed)),
      exp_avg_(size),
      exp_avg_sq_(size) {}

template <typename Scalar>
void BasicAdam<Scalar>::Step(double lr, const Scalar* grad, Scalar* params) {
  ++step_;
  const double bias_correction1 = 1 - std::pow(kBeta1, step_);
  const double bias_correction2 = 1 - std::pow(kBeta2, step_);
  // The scalars torch passes to its float kernels, rounded to Scalar.
  const auto step_size = static_cast<Scalar>(lr / bias_correction1);
  const auto bias_correction2_sqrt =
      static_cast<Scalar>(std::sqrt(bias_correction2));
  constexpr auto beta1 = static_cast<Scalar>(kBeta1);
  constexpr auto beta2 = static_cast<Scalar>(kBeta2);
  constexpr auto one_minus_beta1 = static_cast<Scalar>(1 - kBeta1);
  constexpr auto one_minus_beta2 = static_cast<Scalar>(1 - kBeta2);
  constexpr auto eps = static_cast<Scalar>(kEps);
  Scalar* m = exp_avg_.data();
  Scalar* v = exp_avg_sq_.data();
  if (weight_decay_ != 0) {
    const auto keep = static_cast<Scalar>(1 - lr * weight_decay_);
    for (const ParameterRange& range : decayed_) {
#pragma omp simd
      for (int64_t i = range.begin; i < range.end; ++i) params[i] *= keep;
    }
  }
  // The operations and their order of torch::optim::Adam::step.
#pragma omp simd
  for (int64_t i = 0; i < size_; ++i) {
    const Scalar g = grad[i];
    m[i] = m[i] * beta1 + one_minus_beta1 * g;
    v[i] = v[i] * beta2 + one_minus_beta2 * g * g;
    const Scalar denom = std::sqrt(v[i]) / bias_correction2_sqrt + eps;
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

template class BasicAlignedBuffer<double>;
template class BasicAlignedBuffer<float>;
template class BasicMlpKernels<double>;
template class BasicMlpKernels<float>;
template class BasicAdam<double>;
template class BasicAdam<float>;

}  // namespace evonas::model
