#include "worker/model/mlp_kernels.h"

#include <cmath>
#include <random>
#include <vector>

#include "common/genome.h"
#include "gtest/gtest.h"
#include "worker/model/reference_activation_for_test.h"

namespace evonas::model {
namespace {

constexpr v1::Activation kActivations[] = {
    v1::ACTIVATION_TANH, v1::ACTIVATION_RELU, v1::ACTIVATION_SILU,
    v1::ACTIVATION_GELU, v1::ACTIVATION_SINE};

std::vector<double> Random(int64_t n, double scale, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-scale, scale);
  std::vector<double> v(n);
  for (double& x : v) x = u(rng);
  return v;
}

// The network's outputs, one row and one neuron at a time; a hidden layer
// with a set `residual` flag adds its input.
std::vector<double> NaiveForward(const MlpKernels& k,
                                 const std::vector<int64_t>& sizes,
                                 const std::vector<v1::Activation>& acts,
                                 const std::vector<double>& params,
                                 const std::vector<double>& x, int64_t rows,
                                 const std::vector<bool>& residual = {}) {
  std::vector<double> out;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> h(x.begin() + r * sizes[0],
                          x.begin() + (r + 1) * sizes[0]);
    for (int l = 0; l < k.layer_count(); ++l) {
      std::vector<double> z(sizes[l + 1]);
      for (int64_t o = 0; o < sizes[l + 1]; ++o) {
        double sum = params[k.bias_offset(l) + o];
        for (int64_t i = 0; i < sizes[l]; ++i) {
          sum += params[k.weight_offset(l) + o * sizes[l] + i] * h[i];
        }
        z[o] = l + 1 < k.layer_count() ? ReferenceActivation(acts[l], sum)
                                       : sum;
        if (l < static_cast<int>(residual.size()) && residual[l]) z[o] += h[o];
      }
      h = std::move(z);
    }
    out.insert(out.end(), h.begin(), h.end());
  }
  return out;
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

    const double h = 1e-6;
    for (size_t i = 0; i < params.size(); ++i) {
      const double saved = params[i];
      params[i] = saved + h;
      const double up = k->LossAndGradient(params.data(), x.data(), y.data(),
                                           rows, scratch.data());
      params[i] = saved - h;
      const double down = k->LossAndGradient(params.data(), x.data(), y.data(),
                                             rows, scratch.data());
      params[i] = saved;
      EXPECT_NEAR(grad[i], (up - down) / (2 * h), 1e-8) << "parameter " << i;
    }
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
  const double h = 1e-6;
  for (size_t i = 0; i < params.size(); ++i) {
    const double saved = params[i];
    params[i] = saved + h;
    const double up = k->CrossEntropyAndGradient(
        params.data(), x.data(), labels.data(), rows, scratch.data());
    params[i] = saved - h;
    const double down = k->CrossEntropyAndGradient(
        params.data(), x.data(), labels.data(), rows, scratch.data());
    params[i] = saved;
    EXPECT_NEAR(grad[i], (up - down) / (2 * h), 1e-8) << "parameter " << i;
  }
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
    const double h = 1e-6;
    for (size_t i = 0; i < params.size(); ++i) {
      const double saved = params[i];
      params[i] = saved + h;
      const double up = k->LossAndGradient(params.data(), x.data(), y.data(),
                                           rows, scratch.data());
      params[i] = saved - h;
      const double down = k->LossAndGradient(params.data(), x.data(), y.data(),
                                             rows, scratch.data());
      params[i] = saved;
      EXPECT_NEAR(grad[i], (up - down) / (2 * h), 1e-7) << "parameter " << i;
    }
  }
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
  const double h = 1e-6;
  for (size_t i = 0; i < params.size(); ++i) {
    const double saved = params[i];
    params[i] = saved + h;
    const double up = k->LossAndGradient(params.data(), x.data(), y.data(),
                                         rows, scratch.data(), power, s);
    params[i] = saved - h;
    const double down = k->LossAndGradient(params.data(), x.data(), y.data(),
                                           rows, scratch.data(), power, s);
    params[i] = saved;
    EXPECT_NEAR(grad[i], (up - down) / (2 * h),
                1e-6 * (1 + std::fabs(grad[i])))
        << "parameter " << i;
  }
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

}  // namespace
}  // namespace evonas::model
