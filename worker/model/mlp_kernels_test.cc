#include "worker/model/mlp_kernels.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/genome.h"
#include "gtest/gtest.h"
#include "worker/model/reference_activation_for_test.h"

namespace evonas::model {
namespace {

constexpr v1::Activation kActivations[] = {
    v1::ACTIVATION_TANH, v1::ACTIVATION_RELU, v1::ACTIVATION_SILU,
    v1::ACTIVATION_GELU, v1::ACTIVATION_SINE, v1::ACTIVATION_GAUSSIAN};

std::vector<double> Random(int64_t n, double scale, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-scale, scale);
  std::vector<double> v(n);
  for (double& x : v) x = u(rng);
  return v;
}

// The network's outputs, one row and one neuron at a time; a hidden layer
// with a set `residual` flag adds its input, one with a set `layer_norm`
// flag normalises its affine outputs (two-pass mean and variance, divided
// by the standard deviation) before the activation.
std::vector<double> NaiveForward(const MlpKernels& k,
                                 const std::vector<int64_t>& sizes,
                                 const std::vector<v1::Activation>& acts,
                                 const std::vector<double>& params,
                                 const std::vector<double>& x, int64_t rows,
                                 const std::vector<bool>& residual = {},
                                 const std::vector<bool>& layer_norm = {}) {
  std::vector<double> out;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> h(x.begin() + r * sizes[0],
                          x.begin() + (r + 1) * sizes[0]);
    for (int l = 0; l < k.layer_count(); ++l) {
      const int64_t n = sizes[l + 1];
      std::vector<double> z(n);
      for (int64_t o = 0; o < n; ++o) {
        double sum = params[k.bias_offset(l) + o];
        for (int64_t i = 0; i < sizes[l]; ++i) {
          sum += params[k.weight_offset(l) + o * sizes[l] + i] * h[i];
        }
        z[o] = sum;
      }
      if (l < static_cast<int>(layer_norm.size()) && layer_norm[l]) {
        double mean = 0, var = 0;
        for (double v : z) mean += v / static_cast<double>(n);
        for (double v : z)
          var += (v - mean) * (v - mean) / static_cast<double>(n);
        for (int64_t o = 0; o < n; ++o) {
          z[o] = (z[o] - mean) / std::sqrt(var + 1e-5) *
                     params[k.scale_offset(l) + o] +
                 params[k.shift_offset(l) + o];
        }
      }
      for (int64_t o = 0; o < n; ++o) {
        if (l + 1 < k.layer_count()) z[o] = ReferenceActivation(acts[l], z[o]);
        if (l < static_cast<int>(residual.size()) && residual[l]) z[o] += h[o];
      }
      h = std::move(z);
    }
    out.insert(out.end(), h.begin(), h.end());
  }
  return out;
}

// Expects `grad`, the kernels' gradient at `params`, to match central
// differences (step 1e-6) of `loss` parameter by parameter, within
// absolute + relative * |grad_i|. `loss` evaluates the loss at the
// parameters it is given; `params` is restored after each probe.
void ExpectCentralDifferences(std::vector<double>& params,
                              const std::vector<double>& grad,
                              const std::function<double(const double*)>& loss,
                              double absolute, double relative = 0) {
  const double h = 1e-6;
  for (size_t i = 0; i < params.size(); ++i) {
    const double saved = params[i];
    params[i] = saved + h;
    const double up = loss(params.data());
    params[i] = saved - h;
    const double down = loss(params.data());
    params[i] = saved;
    EXPECT_NEAR(grad[i], (up - down) / (2 * h),
                absolute + relative * std::fabs(grad[i]))
        << "parameter " << i;
  }
}

TEST(MlpKernelsTest, LayoutIsPyTorchs) {
  absl::StatusOr<MlpKernels> k =
      MlpKernels::Create({3, 5, 2}, {v1::ACTIVATION_TANH});
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->parameter_count(), 3 * 5 + 5 + 5 * 2 + 2);
  EXPECT_EQ(k->layer_count(), 2);
  EXPECT_EQ(k->weight_offset(0), 0);
  EXPECT_EQ(k->bias_offset(0), 15);
  EXPECT_EQ(k->weight_offset(1), 20);
  EXPECT_EQ(k->bias_offset(1), 30);
}

TEST(MlpKernelsTest, RejectsBadShapes) {
  EXPECT_FALSE(MlpKernels::Create({3}, {}).ok());
  EXPECT_FALSE(MlpKernels::Create({3, 4, 1}, {}).ok());
  EXPECT_FALSE(MlpKernels::Create({3, 0, 1}, {v1::ACTIVATION_TANH}).ok());
  EXPECT_FALSE(
      MlpKernels::Create({3, 4, 1}, {v1::ACTIVATION_UNSPECIFIED}).ok());
  EXPECT_FALSE(MlpKernels::Create({3, 4, 1}, {v1::ACTIVATION_TANH}, 0).ok());
  EXPECT_FALSE(
      MlpKernels::Create({3, 4, 1}, {v1::ACTIVATION_TANH}, 512, 0).ok());
}

// Widths that are not multiples of the vector length, blocks that do not
// divide the rows, outputs of 1 (the dgemv paths) and 2.
TEST(MlpKernelsTest, ForwardMatchesNaiveForward) {
  for (v1::Activation a : kActivations) {
    for (int64_t outputs : {1, 2}) {
      for (int64_t block : {1, 7, 512}) {
        SCOPED_TRACE(ActivationName(a) + " outputs " + std::to_string(outputs) +
                     " block " + std::to_string(block));
        const std::vector<int64_t> sizes = {3, 19, 33, outputs};
        const std::vector<v1::Activation> acts = {a, a};
        absl::StatusOr<MlpKernels> k = MlpKernels::Create(sizes, acts, block);
        ASSERT_TRUE(k.ok()) << k.status();
        const int64_t rows = 45;
        const std::vector<double> params = Random(k->parameter_count(), 0.5, 1);
        const std::vector<double> x = Random(rows * 3, 2.0, 2);
        std::vector<double> out(rows * outputs);
        k->Forward(params.data(), x.data(), rows, out.data());
        const std::vector<double> want =
            NaiveForward(*k, sizes, acts, params, x, rows);
        for (size_t i = 0; i < out.size(); ++i) {
          EXPECT_NEAR(out[i], want[i], 1e-13 * (1 + std::fabs(want[i]))) << i;
        }
      }
    }
  }
}

// The hand-derived gradient against central differences of the loss, which
// the forward pass above pins.
TEST(MlpKernelsTest, GradientMatchesFiniteDifferences) {
  for (v1::Activation a : kActivations) {
    SCOPED_TRACE(ActivationName(a));
    const std::vector<int64_t> sizes = {3, 7, 5, 2};
    absl::StatusOr<MlpKernels> k = MlpKernels::Create(sizes, {a, a}, 8);
    ASSERT_TRUE(k.ok()) << k.status();
    const int64_t rows = 37;
    std::vector<double> params = Random(k->parameter_count(), 0.7, 3);
    const std::vector<double> x = Random(rows * 3, 2.0, 4);
    const std::vector<double> y = Random(rows * 2, 1.0, 5);
    std::vector<double> grad(params.size()), scratch(params.size());
    const double loss = k->LossAndGradient(params.data(), x.data(), y.data(),
                                           rows, grad.data());
    // The loss is the mean squared error of the forward pass.
    const std::vector<double> out =
        NaiveForward(*k, sizes, {a, a}, params, x, rows);
    double sse = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      sse += (out[i] - y[i]) * (out[i] - y[i]);
    }
    EXPECT_NEAR(loss, sse / out.size(), 1e-14 * loss);

    ExpectCentralDifferences(
        params, grad,
        [&](const double* p) {
          return k->LossAndGradient(p, x.data(), y.data(), rows,
                                    scratch.data());
        },
        1e-8);
  }
}

// Softmax cross-entropy against a direct evaluation from the forward pass,
// its gradient against central differences, and the block and thread split
// not changing it: blocks of 8 rows, one and two threads.
TEST(MlpKernelsTest, CrossEntropyAndGradientMatchFiniteDifferences) {
  const std::vector<int64_t> sizes = {4, 9, 5};
  const std::vector<v1::Activation> acts = {v1::ACTIVATION_RELU};
  absl::StatusOr<MlpKernels> k = MlpKernels::Create(sizes, acts, 8);
  absl::StatusOr<MlpKernels> two = MlpKernels::Create(sizes, acts, 8, 2);
  ASSERT_TRUE(k.ok()) << k.status();
  ASSERT_TRUE(two.ok()) << two.status();
  const int64_t rows = 27;
  std::vector<double> params = Random(k->parameter_count(), 1.5, 61);
  const std::vector<double> x = Random(rows * 4, 2.0, 62);
  std::vector<double> labels(rows);
  for (int64_t r = 0; r < rows; ++r) labels[r] = static_cast<double>(r % 5);
  std::vector<double> grad(params.size()), scratch(params.size());
  const double loss = k->CrossEntropyAndGradient(params.data(), x.data(),
                                                 labels.data(), rows,
                                                 grad.data());
  const std::vector<double> out = NaiveForward(*k, sizes, acts, params, x, rows);
  double want = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int c = 0; c < 5; ++c) sum += std::exp(out[r * 5 + c]);
    want += std::log(sum) - out[r * 5 + static_cast<int>(labels[r])];
  }
  want /= rows;
  EXPECT_GT(loss, 0.1);
  EXPECT_NEAR(loss, want, 1e-13 * want);
  EXPECT_NEAR(two->CrossEntropyAndGradient(params.data(), x.data(),
                                           labels.data(), rows, scratch.data()),
              loss, 1e-14 * loss);
  ExpectCentralDifferences(
      params, grad,
      [&](const double* p) {
        return k->CrossEntropyAndGradient(p, x.data(), labels.data(), rows,
                                          scratch.data());
      },
      1e-8);
}

// Huge logits: the shifted log-sum-exp stays finite and exact.
TEST(MlpKernelsTest, CrossEntropyOfHugeLogitsIsFinite) {
  absl::StatusOr<MlpKernels> k =
      MlpKernels::Create({1, 2}, {}, 8);  // a single linear layer
  ASSERT_TRUE(k.ok()) << k.status();
  // W = [1000, -1000], b = 0: logits (1000 x, -1000 x).
  const std::vector<double> params = {1000, -1000, 0, 0};
  const std::vector<double> x = {1.0, 1.0};
  const std::vector<double> labels = {0, 1};
  std::vector<double> grad(4);
  const double loss = k->CrossEntropyAndGradient(params.data(), x.data(),
                                                 labels.data(), 2, grad.data());
  // Row 0 is right with certainty (loss 0), row 1 wrong by 2000 nats.
  EXPECT_DOUBLE_EQ(loss, 1000.0);
  for (double g : grad) EXPECT_TRUE(std::isfinite(g));
}

// Two residual layers in a row: the gradient flows through both skips.
TEST(MlpKernelsTest, ResidualForwardAndGradientMatchReference) {
  const std::vector<int64_t> sizes = {3, 7, 7, 7, 2};
  const std::vector<bool> residual = {false, true, true};
  for (v1::Activation a : kActivations) {
    SCOPED_TRACE(ActivationName(a));
    const std::vector<v1::Activation> acts = {a, a, a};
    absl::StatusOr<MlpKernels> k = MlpKernels::Create(sizes, acts, 8, 1,
                                                      residual);
    ASSERT_TRUE(k.ok()) << k.status();
    const int64_t rows = 29;
    std::vector<double> params = Random(k->parameter_count(), 0.7, 31);
    const std::vector<double> x = Random(rows * 3, 2.0, 32);
    const std::vector<double> y = Random(rows * 2, 1.0, 33);
    std::vector<double> out(rows * 2);
    k->Forward(params.data(), x.data(), rows, out.data());
    const std::vector<double> want =
        NaiveForward(*k, sizes, acts, params, x, rows, residual);
    const std::vector<double> plain =
        NaiveForward(*k, sizes, acts, params, x, rows);
    EXPECT_NE(want, plain);
    for (size_t i = 0; i < out.size(); ++i) {
      EXPECT_NEAR(out[i], want[i], 1e-13 * (1 + std::fabs(want[i]))) << i;
    }
    std::vector<double> grad(params.size()), scratch(params.size());
    k->LossAndGradient(params.data(), x.data(), y.data(), rows, grad.data());
    ExpectCentralDifferences(
        params, grad,
        [&](const double* p) {
          return k->LossAndGradient(p, x.data(), y.data(), rows,
                                    scratch.data());
        },
        1e-7);
  }
}

// Layer normalisation on the first layer, on a residual layer and on a
// plain one after it; the output layer never has it.
TEST(MlpKernelsTest, LayerNormForwardAndGradientMatchReference) {
  const std::vector<int64_t> sizes = {3, 7, 7, 5, 2};
  const std::vector<bool> residual = {false, true, false};
  const std::vector<bool> layer_norm = {true, true, true};
  for (v1::Activation a : kActivations) {
    SCOPED_TRACE(ActivationName(a));
    const std::vector<v1::Activation> acts = {a, a, a};
    absl::StatusOr<MlpKernels> k =
        MlpKernels::Create(sizes, acts, 8, 1, residual, layer_norm);
    ASSERT_TRUE(k.ok()) << k.status();
    // nn.Linear then nn.LayerNorm: [W, b, scale, shift] per hidden layer.
    EXPECT_EQ(k->parameter_count(), (3 * 7 + 3 * 7) + (7 * 7 + 3 * 7) +
                                        (7 * 5 + 3 * 5) + (5 * 2 + 2));
    EXPECT_EQ(k->scale_offset(0), 3 * 7 + 7);
    EXPECT_EQ(k->shift_offset(0), 3 * 7 + 14);
    EXPECT_EQ(k->weight_offset(1), 3 * 7 + 21);
    const int64_t rows = 29;
    std::vector<double> params = Random(k->parameter_count(), 0.7, 41);
    const std::vector<double> x = Random(rows * 3, 2.0, 42);
    const std::vector<double> y = Random(rows * 2, 1.0, 43);
    std::vector<double> out(rows * 2);
    k->Forward(params.data(), x.data(), rows, out.data());
    const std::vector<double> want =
        NaiveForward(*k, sizes, acts, params, x, rows, residual, layer_norm);
    for (size_t i = 0; i < out.size(); ++i) {
      EXPECT_NEAR(out[i], want[i], 1e-13 * (1 + std::fabs(want[i]))) << i;
    }
    std::vector<double> grad(params.size()), scratch(params.size());
    k->LossAndGradient(params.data(), x.data(), y.data(), rows, grad.data());
    ExpectCentralDifferences(
        params, grad,
        [&](const double* p) {
          return k->LossAndGradient(p, x.data(), y.data(), rows,
                                    scratch.data());
        },
        1e-7);
    double largest = 0;
    for (double g : grad) largest = std::max(largest, std::fabs(g));
    // The scale and shift gradients are not all 0.
    EXPECT_GT(std::fabs(grad[k->scale_offset(1)]) +
                  std::fabs(grad[k->shift_offset(1)]),
              1e-6);
    EXPECT_GT(largest, 1e-3);
  }
}

TEST(MlpKernelsTest, RejectsBadLayerNormFlags) {
  const std::vector<v1::Activation> acts = {v1::ACTIVATION_TANH,
                                            v1::ACTIVATION_TANH};
  // One output: normalised, it would always be 0.
  EXPECT_FALSE(
      MlpKernels::Create({3, 1, 5, 1}, acts, 8, 1, {}, {true, false}).ok());
  EXPECT_FALSE(MlpKernels::Create({3, 5, 5, 1}, acts, 8, 1, {}, {true}).ok());
  EXPECT_TRUE(
      MlpKernels::Create({3, 5, 5, 1}, acts, 8, 1, {}, {true, true}).ok());
}

TEST(MlpKernelsTest, RejectsBadResidualFlags) {
  const std::vector<v1::Activation> acts = {v1::ACTIVATION_TANH,
                                            v1::ACTIVATION_TANH};
  EXPECT_FALSE(MlpKernels::Create({3, 5, 5, 1}, acts, 8, 1, {true}).ok());
  EXPECT_FALSE(
      MlpKernels::Create({3, 5, 5, 1}, acts, 8, 1, {true, false}).ok());
  EXPECT_FALSE(
      MlpKernels::Create({3, 5, 6, 1}, acts, 8, 1, {false, true}).ok());
  EXPECT_TRUE(MlpKernels::Create({3, 5, 5, 1}, acts, 8, 1, {false, true}).ok());
}

// The max-error loss mean(((out - y) / s)^p) and its gradient.
TEST(MlpKernelsTest, PowerLossAndGradientMatchFiniteDifferences) {
  const std::vector<int64_t> sizes = {2, 6, 6, 1};
  const std::vector<v1::Activation> acts = {v1::ACTIVATION_TANH,
                                            v1::ACTIVATION_SINE};
  absl::StatusOr<MlpKernels> k =
      MlpKernels::Create(sizes, acts, 8, 1, {false, true});
  ASSERT_TRUE(k.ok()) << k.status();
  const int64_t rows = 23;
  std::vector<double> params = Random(k->parameter_count(), 0.5, 41);
  const std::vector<double> x = Random(rows * 2, 1.5, 42);
  const std::vector<double> y = Random(rows, 1.0, 43);
  const int power = 8;
  const double s = 0.7;
  std::vector<double> grad(params.size()), scratch(params.size());
  const double loss = k->LossAndGradient(params.data(), x.data(), y.data(),
                                         rows, grad.data(), power, s);
  const std::vector<double> out =
      NaiveForward(*k, sizes, acts, params, x, rows, {false, true});
  double sum = 0;
  for (int64_t i = 0; i < rows; ++i) sum += std::pow((out[i] - y[i]) / s, 8);
  EXPECT_NEAR(loss, sum / rows, 1e-12 * loss);
  ExpectCentralDifferences(
      params, grad,
      [&](const double* p) {
        return k->LossAndGradient(p, x.data(), y.data(), rows, scratch.data(),
                                  power, s);
      },
      1e-6, 1e-6);
}

// A row of integer weight w counts as w copies of the row, in both
// branches of the regression loss, over blocks shared by two threads.
TEST(MlpKernelsTest, RowWeightsCountAsRepeatedRows) {
  const std::vector<int64_t> sizes = {3, 7, 2};
  const std::vector<v1::Activation> acts = {v1::ACTIVATION_TANH};
  absl::StatusOr<MlpKernels> k = MlpKernels::Create(sizes, acts, 4, 2);
  ASSERT_TRUE(k.ok()) << k.status();
  const int64_t rows = 19;
  const std::vector<double> params = Random(k->parameter_count(), 0.5, 51);
  const std::vector<double> x = Random(rows * 3, 1.0, 52);
  const std::vector<double> y = Random(rows * 2, 1.0, 53);
  std::vector<double> weights(rows), repeated_x, repeated_y;
  for (int64_t r = 0; r < rows; ++r) {
    weights[r] = static_cast<double>(r % 4);  // 0, 1, 2 or 3 copies
    for (int copy = 0; copy < r % 4; ++copy) {
      repeated_x.insert(repeated_x.end(), x.begin() + r * 3,
                        x.begin() + (r + 1) * 3);
      repeated_y.insert(repeated_y.end(), y.begin() + r * 2,
                        y.begin() + (r + 1) * 2);
    }
  }
  const auto repeated_rows = static_cast<int64_t>(repeated_y.size()) / 2;
  // The weighted mean is over `rows` rows, the repeated one over more.
  const double ratio = static_cast<double>(repeated_rows) / rows;
  for (auto [power, scale] : {std::pair{2, 1.0}, std::pair{4, 0.7}}) {
    std::vector<double> g(params.size()), g_repeated(params.size());
    const double loss =
        k->LossAndGradient(params.data(), x.data(), y.data(), rows, g.data(),
                           power, scale, weights.data());
    const double loss_repeated =
        k->LossAndGradient(params.data(), repeated_x.data(), repeated_y.data(),
                           repeated_rows, g_repeated.data(), power, scale);
    EXPECT_NEAR(loss, loss_repeated * ratio, 1e-12 * loss) << power;
    for (size_t i = 0; i < g.size(); ++i) {
      EXPECT_NEAR(g[i], g_repeated[i] * ratio, 1e-12 * (1 + std::fabs(g[i])))
          << power << " " << i;
    }
  }
  // All weights 1 is the unweighted loss.
  const std::vector<double> ones(rows, 1.0);
  std::vector<double> g1(params.size()), g2(params.size());
  EXPECT_NEAR(
      k->LossAndGradient(params.data(), x.data(), y.data(), rows, g1.data(), 2,
                         1.0, ones.data()),
      k->LossAndGradient(params.data(), x.data(), y.data(), rows, g2.data()),
      1e-14);
  for (size_t i = 0; i < g1.size(); ++i) EXPECT_NEAR(g1[i], g2[i], 1e-14);
}

TEST(MlpKernelsTest, BlockSizeOnlyChangesRounding) {
  const std::vector<int64_t> sizes = {3, 40, 40, 1};
  const std::vector<v1::Activation> acts = {v1::ACTIVATION_GELU,
                                            v1::ACTIVATION_TANH};
  absl::StatusOr<MlpKernels> whole = MlpKernels::Create(sizes, acts, 10000);
  absl::StatusOr<MlpKernels> blocks = MlpKernels::Create(sizes, acts, 64);
  ASSERT_TRUE(whole.ok() && blocks.ok());
  const int64_t rows = 1000;
  const std::vector<double> params = Random(whole->parameter_count(), 0.3, 6);
  const std::vector<double> x = Random(rows * 3, 1.0, 7);
  const std::vector<double> y = Random(rows, 1.0, 8);
  std::vector<double> g1(params.size()), g2(params.size());
  const double l1 = whole->LossAndGradient(params.data(), x.data(), y.data(),
                                           rows, g1.data());
  const double l2 = blocks->LossAndGradient(params.data(), x.data(), y.data(),
                                            rows, g2.data());
  EXPECT_NEAR(l1, l2, 1e-14 * l1);
  for (size_t i = 0; i < g1.size(); ++i) {
    EXPECT_NEAR(g1[i], g2[i], 1e-13 * (1 + std::fabs(g1[i]))) << i;
  }
  // And the same inputs give bit-identical results again.
  std::vector<double> g3(params.size());
  EXPECT_EQ(blocks->LossAndGradient(params.data(), x.data(), y.data(), rows,
                                    g3.data()),
            l2);
  EXPECT_EQ(g2, g3);
}

TEST(MlpKernelsTest, ThreadsOnlyChangeRoundingAndAreDeterministic) {
  const std::vector<int64_t> sizes = {3, 24, 17, 2};
  const std::vector<v1::Activation> acts = {v1::ACTIVATION_SILU,
                                            v1::ACTIVATION_SINE};
  absl::StatusOr<MlpKernels> one = MlpKernels::Create(sizes, acts, 64, 1);
  absl::StatusOr<MlpKernels> two = MlpKernels::Create(sizes, acts, 64, 2);
  absl::StatusOr<MlpKernels> three = MlpKernels::Create(sizes, acts, 64, 3);
  ASSERT_TRUE(one.ok() && two.ok() && three.ok());
  const std::vector<double> params = Random(one->parameter_count(), 0.4, 12);
  for (int64_t rows : {1, 2, 5, 700}) {
    SCOPED_TRACE(rows);
    const std::vector<double> x = Random(rows * 3, 1.0, 13);
    const std::vector<double> y = Random(rows * 2, 1.0, 14);
    std::vector<double> g1(params.size()), g2(params.size()), g3(params.size()),
        again(params.size());
    const double l1 = one->LossAndGradient(params.data(), x.data(), y.data(),
                                           rows, g1.data());
    const double l2 = two->LossAndGradient(params.data(), x.data(), y.data(),
                                           rows, g2.data());
    const double l3 = three->LossAndGradient(params.data(), x.data(), y.data(),
                                             rows, g3.data());
    EXPECT_NEAR(l1, l2, 1e-14 * l1);
    EXPECT_NEAR(l1, l3, 1e-14 * l1);
    for (size_t i = 0; i < g1.size(); ++i) {
      EXPECT_NEAR(g1[i], g2[i], 1e-13 * (1 + std::fabs(g1[i]))) << i;
      EXPECT_NEAR(g1[i], g3[i], 1e-13 * (1 + std::fabs(g1[i]))) << i;
    }
    EXPECT_EQ(two->LossAndGradient(params.data(), x.data(), y.data(), rows,
                                   again.data()),
              l2);
    EXPECT_EQ(again, g2);

    std::vector<double> f1(rows * 2), f2(rows * 2);
    one->Forward(params.data(), x.data(), rows, f1.data());
    two->Forward(params.data(), x.data(), rows, f2.data());
    for (size_t i = 0; i < f1.size(); ++i) {
      EXPECT_NEAR(f1[i], f2[i], 1e-14 * (1 + std::fabs(f1[i]))) << i;
    }
  }
}

TEST(MlpKernelsTest, NonFiniteLossIsReported) {
  absl::StatusOr<MlpKernels> k =
      MlpKernels::Create({2, 4, 1}, {v1::ACTIVATION_RELU});
  ASSERT_TRUE(k.ok());
  std::vector<double> params(k->parameter_count(), 1e300);
  const std::vector<double> x = {1, 1, 2, 2};
  const std::vector<double> y = {0, 0};
  std::vector<double> grad(params.size());
  EXPECT_FALSE(std::isfinite(
      k->LossAndGradient(params.data(), x.data(), y.data(), 2, grad.data())));
  params[0] = std::nan("");
  EXPECT_TRUE(std::isnan(
      k->LossAndGradient(params.data(), x.data(), y.data(), 2, grad.data())));
}

// torch.optim.Adam's update, written out.
TEST(AdamTest, MatchesTorchFormula) {
  const int64_t n = 37;
  std::vector<double> params = Random(n, 1.0, 9), want = params;
  std::vector<double> m(n), v(n);
  Adam adam(n);
  for (int step = 1; step <= 5; ++step) {
    const std::vector<double> grad = Random(n, 0.1 * step, 10 + step);
    const double lr = 1e-2 / step;
    adam.Step(lr, grad.data(), params.data());
    for (int64_t i = 0; i < n; ++i) {
      m[i] = 0.9 * m[i] + 0.1 * grad[i];
      v[i] = 0.999 * v[i] + 0.001 * grad[i] * grad[i];
      const double m_hat = m[i] / (1 - std::pow(0.9, step));
      const double v_hat = v[i] / (1 - std::pow(0.999, step));
      want[i] -= lr * m_hat / (std::sqrt(v_hat) + 1e-8);
    }
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(params[i], want[i], 1e-14) << "step " << step << " " << i;
    }
  }
}

// torch.optim.AdamW: the decay shrinks the parameters before the Adam step.
TEST(AdamTest, WeightDecayMatchesTorchAdamW) {
  const int64_t n = 11;
  const double decay = 0.05;
  std::vector<double> params = Random(n, 1.0, 51), want = params;
  std::vector<double> m(n), v(n);
  Adam adam(n, decay);
  for (int step = 1; step <= 4; ++step) {
    const std::vector<double> grad = Random(n, 0.1, 60 + step);
    const double lr = 1e-2;
    adam.Step(lr, grad.data(), params.data());
    for (int64_t i = 0; i < n; ++i) {
      want[i] *= 1 - lr * decay;
      m[i] = 0.9 * m[i] + 0.1 * grad[i];
      v[i] = 0.999 * v[i] + 0.001 * grad[i] * grad[i];
      const double m_hat = m[i] / (1 - std::pow(0.9, step));
      const double v_hat = v[i] / (1 - std::pow(0.999, step));
      want[i] -= lr * m_hat / (std::sqrt(v_hat) + 1e-8);
    }
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(params[i], want[i], 1e-14) << "step " << step << " " << i;
    }
  }
  // With a zero gradient only the decay acts: a steady shrink towards 0.
  Adam shrink(1, 0.1);
  std::vector<double> p = {1.0};
  const std::vector<double> zero = {0.0};
  for (int i = 0; i < 10; ++i) shrink.Step(0.1, zero.data(), p.data());
  EXPECT_NEAR(p[0], std::pow(1 - 0.1 * 0.1, 10), 1e-15);
}

// The float32 kernels and Adam.
//
// They are checked against the float64 kernels on the same weights and data
// (float values, which both represent exactly). float32's unit roundoff is
// u = 2^-24 = 6e-8; libmvec's float functions are within 4 ulp; every value
// here passes through at most four layers and sums of at most 45 terms, so
// float32 results should be within a few u of the float64 ones relative to
// the largest value of the vector compared (measured: at most 5u). kFloatTol
// = 50u allows ten times that, yet a wrong derivative or a layer not computed
// gives errors of order 1, and 16-bit arithmetic would give 4e-3 or more.
constexpr double kFloatTol = 50 * 5.96e-8;

std::vector<float> ToFloat(const std::vector<double>& v) {
  return std::vector<float>(v.begin(), v.end());
}

std::vector<double> ToDouble(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// max_i |got_i - want_i| / max_i |want_i|.
double NormwiseError(const std::vector<float>& got,
                     const std::vector<double>& want) {
  double error = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    error = std::max(error, std::fabs(got[i] - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return error / scale;
}

// One float32 and float64 comparison: a network, its loss and the data.
struct PrecisionCase {
  std::vector<int64_t> sizes;
  std::vector<bool> residual;
  int64_t rows = 0;
  int power = 2;  // 0: cross-entropy with labels r % outputs
  double error_scale = 1.0;
  std::vector<bool> layer_norm = {};
};

// Runs `c` with every activation and one and two threads on MlpKernels32 and
// on MlpKernels with the same (float) weights and data, and expects the
// outputs, the loss and the gradient to agree within kFloatTol.
void ExpectFloat32MatchesFloat64(const PrecisionCase& c) {
  for (v1::Activation a : kActivations) {
    for (int threads : {1, 2}) {
      SCOPED_TRACE(ActivationName(a) + " threads " + std::to_string(threads));
      const std::vector<v1::Activation> acts(c.sizes.size() - 2, a);
      // Blocks of 8 rows: several blocks per thread, and a short last one.
      absl::StatusOr<MlpKernels> k64 = MlpKernels::Create(
          c.sizes, acts, 8, threads, c.residual, c.layer_norm);
      absl::StatusOr<MlpKernels32> k32 = MlpKernels32::Create(
          c.sizes, acts, 8, threads, c.residual, c.layer_norm);
      ASSERT_TRUE(k64.ok()) << k64.status();
      ASSERT_TRUE(k32.ok()) << k32.status();
      ASSERT_EQ(k32->parameter_count(), k64->parameter_count());
      const int64_t outputs = c.sizes.back();
      const std::vector<float> params32 =
          ToFloat(Random(k64->parameter_count(), 0.7, 71));
      const std::vector<float> x32 =
          ToFloat(Random(c.rows * c.sizes[0], 2, 72));
      std::vector<float> y32 = ToFloat(Random(c.rows * outputs, 1.0, 73));
      if (c.power == 0) {
        y32.resize(c.rows);
        for (int64_t r = 0; r < c.rows; ++r) {
          y32[r] = static_cast<float>(r % outputs);
        }
      }
      const std::vector<double> params = ToDouble(params32), x = ToDouble(x32),
                                y = ToDouble(y32);

      std::vector<double> out(c.rows * outputs);
      std::vector<float> out32(out.size());
      k64->Forward(params.data(), x.data(), c.rows, out.data());
      k32->Forward(params32.data(), x32.data(), c.rows, out32.data());
      EXPECT_LT(NormwiseError(out32, out), kFloatTol);

      std::vector<double> grad(params.size());
      std::vector<float> grad32(params.size());
      double loss, loss32;
      if (c.power == 0) {
        loss = k64->CrossEntropyAndGradient(params.data(), x.data(), y.data(),
                                            c.rows, grad.data());
        loss32 = k32->CrossEntropyAndGradient(
            params32.data(), x32.data(), y32.data(), c.rows, grad32.data());
      } else {
        loss = k64->LossAndGradient(params.data(), x.data(), y.data(), c.rows,
                                    grad.data(), c.power, c.error_scale);
        loss32 =
            k32->LossAndGradient(params32.data(), x32.data(), y32.data(),
                                 c.rows, grad32.data(), c.power, c.error_scale);
      }
      EXPECT_GT(loss, 0.1);
      EXPECT_NEAR(loss32, loss, kFloatTol * loss);
      EXPECT_LT(NormwiseError(grad32, grad), kFloatTol);
      // And the float32 path did round in float: a gradient computed in
      // double and rounded at the end would be within u of each value.
      double rounding = 0;
      for (size_t i = 0; i < grad.size(); ++i) {
        rounding = std::max(rounding, std::fabs(grad32[i] - grad[i]) /
                                          std::max(std::fabs(grad[i]), 1e-30));
      }
      EXPECT_GT(rounding, 2 * 5.96e-8);
    }
  }
}

TEST(MlpKernels32Test, LayoutAndValidationAreThoseOfFloat64) {
  absl::StatusOr<MlpKernels32> k =
      MlpKernels32::Create({3, 5, 2}, {v1::ACTIVATION_TANH});
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->parameter_count(), 3 * 5 + 5 + 5 * 2 + 2);
  EXPECT_EQ(k->bias_offset(1), 30);
  EXPECT_FALSE(MlpKernels32::Create({3, 4, 1}, {}).ok());
  EXPECT_FALSE(MlpKernels32::Create({3, 5, 6, 1},
                                    {v1::ACTIVATION_TANH, v1::ACTIVATION_TANH},
                                    8, 1, {false, true})
                   .ok());
}

// Widths that are no multiple of the vector length (the padded remainder of
// the activation kernels) and two outputs.
TEST(MlpKernels32Test, MeanSquaredErrorMatchesFloat64) {
  ExpectFloat32MatchesFloat64({{3, 19, 17, 2}, {}, 45});
}

// Two residual layers in a row.
TEST(MlpKernels32Test, ResidualLayersMatchFloat64) {
  ExpectFloat32MatchesFloat64({{3, 7, 7, 7, 2}, {false, true, true}, 29});
}

// Layer-normalised layers, one of them residual.
TEST(MlpKernels32Test, LayerNormMatchesFloat64) {
  ExpectFloat32MatchesFloat64(
      {{3, 19, 19, 2}, {false, true}, 45, 2, 1.0, {true, true}});
}

// The max-error loss mean(((out - y) / s)^8), one output (the gemv paths).
TEST(MlpKernels32Test, PowerLossMatchesFloat64) {
  ExpectFloat32MatchesFloat64({{2, 6, 6, 1}, {false, true}, 23, 8, 0.7});
}

TEST(MlpKernels32Test, CrossEntropyMatchesFloat64) {
  ExpectFloat32MatchesFloat64({{4, 9, 9, 5}, {}, 27, 0});
}

// Huge float logits: the shifted log-sum-exp stays finite and exact.
TEST(MlpKernels32Test, CrossEntropyOfHugeLogitsIsFinite) {
  absl::StatusOr<MlpKernels32> k = MlpKernels32::Create({1, 2}, {}, 8);
  ASSERT_TRUE(k.ok()) << k.status();
  const std::vector<float> params = {1000, -1000, 0, 0};
  const std::vector<float> x = {1, 1};
  const std::vector<float> labels = {0, 1};
  std::vector<float> grad(4);
  EXPECT_DOUBLE_EQ(k->CrossEntropyAndGradient(params.data(), x.data(),
                                              labels.data(), 2, grad.data()),
                   1000.0);
  for (float g : grad) EXPECT_TRUE(std::isfinite(g));
}

// Same inputs, same thread count: bit-identical results, also from a second
// instance; one and two threads differ by rounding only.
TEST(MlpKernels32Test, DeterministicForAThreadCount) {
  const std::vector<int64_t> sizes = {3, 24, 17, 2};
  const std::vector<v1::Activation> acts = {v1::ACTIVATION_GELU,
                                            v1::ACTIVATION_SINE};
  const int64_t rows = 700;
  const std::vector<float> params = ToFloat(
      Random(MlpKernels32::Create(sizes, acts)->parameter_count(), 0.4, 81));
  const std::vector<float> x = ToFloat(Random(rows * 3, 1.0, 82));
  const std::vector<float> y = ToFloat(Random(rows * 2, 1.0, 83));
  std::vector<float> first_grad[2];
  double first_loss[2];
  for (int threads : {1, 2}) {
    SCOPED_TRACE(threads);
    std::vector<float> grads[3], outs[3];
    double losses[3];
    absl::StatusOr<MlpKernels32> k =
        MlpKernels32::Create(sizes, acts, 64, threads);
    for (int run = 0; run < 3; ++run) {
      // Runs 0 and 1 on one instance, run 2 on a fresh one.
      if (run == 2) k = MlpKernels32::Create(sizes, acts, 64, threads);
      ASSERT_TRUE(k.ok()) << k.status();
      grads[run].resize(params.size());
      outs[run].resize(rows * 2);
      losses[run] = k->LossAndGradient(params.data(), x.data(), y.data(), rows,
                                       grads[run].data());
      k->Forward(params.data(), x.data(), rows, outs[run].data());
    }
    for (int run = 1; run < 3; ++run) {
      EXPECT_EQ(losses[run], losses[0]);
      EXPECT_EQ(grads[run], grads[0]);
      EXPECT_EQ(outs[run], outs[0]);
    }
    first_grad[threads - 1] = grads[0];
    first_loss[threads - 1] = losses[0];
  }
  EXPECT_NEAR(first_loss[1], first_loss[0], kFloatTol * first_loss[0]);
  EXPECT_LT(NormwiseError(first_grad[1], ToDouble(first_grad[0])), kFloatTol);
}

// A small regression problem: 500 steps of full-batch Adam32 on y = sin(2
// x1) + x2 x3 bring the mean squared error down by three orders of
// magnitude (measured: to 0.09% of the first loss), and to where float64
// training on the same data ends (measured: within 1e-5 relative).
TEST(MlpKernels32Test, TrainingReducesTheLoss) {
  const int64_t rows = 256;
  const std::vector<double> x = Random(rows * 3, 1.0, 91);
  std::vector<double> y(rows);
  for (int64_t r = 0; r < rows; ++r) {
    y[r] = std::sin(2 * x[3 * r]) + x[3 * r + 1] * x[3 * r + 2];
  }
  const std::vector<int64_t> sizes = {3, 16, 16, 1};
  const std::vector<v1::Activation> acts = {v1::ACTIVATION_TANH,
                                            v1::ACTIVATION_TANH};
  absl::StatusOr<MlpKernels32> k32 = MlpKernels32::Create(sizes, acts, 64);
  absl::StatusOr<MlpKernels> k64 = MlpKernels::Create(sizes, acts, 64);
  ASSERT_TRUE(k32.ok() && k64.ok());
  const std::vector<double> init = Random(k64->parameter_count(), 0.5, 92);
  std::vector<float> params32 = ToFloat(init), grad32(init.size());
  std::vector<double> params64 = ToDouble(params32), grad64(init.size());
  const std::vector<float> x32 = ToFloat(x), y32 = ToFloat(y);
  const std::vector<double> x64 = ToDouble(x32), y64 = ToDouble(y32);
  Adam32 adam32(k32->parameter_count());
  Adam adam64(k64->parameter_count());
  double first = 0, loss32 = 0, loss64 = 0;
  for (int step = 0; step < 500; ++step) {
    loss32 = k32->LossAndGradient(params32.data(), x32.data(), y32.data(), rows,
                                  grad32.data());
    loss64 = k64->LossAndGradient(params64.data(), x64.data(), y64.data(), rows,
                                  grad64.data());
    if (step == 0) first = loss32;
    adam32.Step(1e-2, grad32.data(), params32.data());
    adam64.Step(1e-2, grad64.data(), params64.data());
  }
  EXPECT_GT(first, 0.2);
  EXPECT_LT(loss32, 0.005 * first);
  // float32 rounding perturbs the path a little, not where it ends.
  EXPECT_NEAR(loss32, loss64, 0.01 * loss64);
}

// torch.optim.Adam's update for float32 parameters, written out in float:
// moments in float, hyperparameters rounded to float.
TEST(Adam32Test, MatchesTorchFormulaInFloat) {
  const int64_t n = 37;
  std::vector<float> params = ToFloat(Random(n, 1.0, 9)), want = params;
  std::vector<float> m(n), v(n);
  Adam32 adam(n);
  for (int step = 1; step <= 5; ++step) {
    const std::vector<float> grad = ToFloat(Random(n, 0.1 * step, 10 + step));
    const double lr = 1e-2 / step;
    adam.Step(lr, grad.data(), params.data());
    const auto step_size = static_cast<float>(lr / (1 - std::pow(0.9, step)));
    const auto bias_correction2_sqrt =
        static_cast<float>(std::sqrt(1 - std::pow(0.999, step)));
    for (int64_t i = 0; i < n; ++i) {
      m[i] = m[i] * 0.9f + 0.1f * grad[i];
      v[i] = v[i] * 0.999f + 0.001f * grad[i] * grad[i];
      const float denom = std::sqrt(v[i]) / bias_correction2_sqrt + 1e-8f;
      want[i] = want[i] - step_size * m[i] / denom;
    }
    for (int64_t i = 0; i < n; ++i) {
      // A few float ulps of values of about 1.
      EXPECT_NEAR(params[i], want[i], 4e-7) << "step " << step << " " << i;
    }
  }
  // Decoupled weight decay as AdamW: with a zero gradient only the decay
  // acts.
  Adam32 shrink(1, 0.1);
  std::vector<float> p = {1.0f};
  const std::vector<float> zero = {0.0f};
  for (int i = 0; i < 10; ++i) shrink.Step(0.1, zero.data(), p.data());
  EXPECT_NEAR(p[0], std::pow(1 - 0.1 * 0.1, 10), 1e-6);
}

// Weight decay shrinks the weight matrices of a layer-normalised network and
// leaves its biases, scales and shifts alone.
TEST(AdamTest, WeightDecayActsOnTheWeightMatricesOnly) {
  absl::StatusOr<MlpKernels> k = MlpKernels::Create(
      {3, 7, 5, 2}, {v1::ACTIVATION_TANH, v1::ACTIVATION_TANH}, 8, 1, {},
      {true, true});
  ASSERT_TRUE(k.ok()) << k.status();
  const std::vector<ParameterRange> ranges = k->weight_ranges();
  ASSERT_EQ(ranges.size(), 3u);
  const int64_t n = k->parameter_count();
  std::vector<bool> is_weight(n, false);
  for (int l = 0; l < k->layer_count(); ++l) {
    EXPECT_EQ(ranges[l].begin, k->weight_offset(l));
    EXPECT_EQ(ranges[l].end, k->bias_offset(l));
    for (int64_t i = ranges[l].begin; i < ranges[l].end; ++i) {
      is_weight[i] = true;
    }
  }
  EXPECT_EQ(std::count(is_weight.begin(), is_weight.end(), true),
            3 * 7 + 7 * 5 + 5 * 2);

  Adam adam(n, 0.1, ranges);
  const std::vector<double> start = Random(n, 1.0, 7);
  std::vector<double> params = start;
  const std::vector<double> zero(n, 0.0);  // only the decay acts
  for (int i = 0; i < 10; ++i) adam.Step(0.1, zero.data(), params.data());
  const double keep = std::pow(1 - 0.1 * 0.1, 10);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(params[i], is_weight[i] ? start[i] * keep : start[i], 1e-15)
        << i;
  }
}

}  // namespace
}  // namespace evonas::model
