#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/genome.h"
#include "common/metrics.h"
#include "gtest/gtest.h"
#include "worker/model/quantize.h"
#include "worker/model/reference_activation_for_test.h"
#include "worker/model/trainer.h"

namespace evonas::model {
namespace {

// Rows of y = sin(x1) + x2^2 with x uniform in [-2, 2]^2.
Samples SmoothFunction(int rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-2.0, 2.0);
  Samples s;
  s.x = {rows, 2, {}};
  s.y = {rows, 1, {}};
  for (int i = 0; i < rows; ++i) {
    const double x1 = u(rng), x2 = u(rng);
    s.x.data.insert(s.x.data.end(), {x1, x2});
    s.y.data.push_back(std::sin(x1) + x2 * x2);
  }
  return s;
}

v1::Genome MakeGenome(const std::vector<std::pair<int, v1::Activation>>& layers,
                      double learning_rate, int adam_steps, int lbfgs_steps,
                      int batch_size = 0) {
  v1::Genome g;
  for (const auto& [width, activation] : layers) {
    v1::DenseLayer* layer = g.add_hidden_layers();
    layer->set_width(width);
    layer->set_activation(activation);
  }
  g.mutable_training()->set_learning_rate(learning_rate);
  g.mutable_training()->set_adam_steps(adam_steps);
  g.mutable_training()->set_lbfgs_steps(lbfgs_steps);
  g.mutable_training()->set_batch_size(batch_size);
  return g;
}

TrainJob SmoothJob() {
  TrainJob job;
  job.genome = MakeGenome(
      {{32, v1::ACTIVATION_TANH}, {32, v1::ACTIVATION_TANH}}, 1e-2, 300, 200);
  job.training = SmoothFunction(500, 1);
  job.validation = SmoothFunction(150, 2);
  job.test = SmoothFunction(100, 3);
  job.judging = SmoothFunction(120, 4);
  job.seed = 7;
  job.within_tolerance = 1e-2;
  return job;
}

// The smooth-function job trained once and shared by several tests.
const TrainOutput& SmoothResult() {
  static const TrainOutput* const result = [] {
    absl::StatusOr<TrainOutput> out = Train(SmoothJob());
    EXPECT_TRUE(out.ok()) << out.status();
    return new TrainOutput(out.ok() ? *std::move(out) : TrainOutput{});
  }();
  return *result;
}

// Raw outputs of the network for the rows of `x`, one row and one neuron at
// a time, stage after stage: an independent check of what
// TrainOutput.parameters describes.
std::vector<double> PlainForward(const NetworkParameters& network,
                                 const Matrix& x) {
  std::vector<double> out;
  for (int64_t r = 0; r < x.rows; ++r) {
    std::vector<double> sum;
    for (const MlpParameters& p : network.stages) {
      std::vector<double> h(x.cols);
      for (int64_t c = 0; c < x.cols; ++c) {
        h[c] = (x.data[r * x.cols + c] - p.x_mean[c]) / p.x_std[c];
      }
      for (const DenseParameters& layer : p.layers) {
        std::vector<double> z(layer.outputs);
        for (int64_t o = 0; o < layer.outputs; ++o) {
          double s = layer.bias[o];
          for (int64_t i = 0; i < layer.inputs; ++i) {
            s += layer.weight[o * layer.inputs + i] * h[i];
          }
          z[o] = s;
        }
        if (layer.layer_norm()) {
          const double n = static_cast<double>(layer.outputs);
          double mean = 0, var = 0;
          for (double v : z) mean += v / n;
          for (double v : z) var += (v - mean) * (v - mean) / n;
          for (int64_t o = 0; o < layer.outputs; ++o) {
            z[o] = (z[o] - mean) / std::sqrt(var + 1e-5) * layer.ln_scale[o] +
                   layer.ln_shift[o];
          }
        }
        for (int64_t o = 0; o < layer.outputs; ++o) {
          z[o] = ReferenceActivation(layer.activation, z[o]);
          if (layer.residual) z[o] += h[o];
        }
        h = std::move(z);
      }
      for (size_t o = 0; o < h.size(); ++o) {
        h[o] = h[o] * p.y_std[o] + p.y_mean[o];
        if (sum.size() < h.size()) sum.push_back(0);
        sum[o] += h[o];
      }
    }
    out.insert(out.end(), sum.begin(), sum.end());
  }
  return out;
}

// Checks that `out.parameters` describes `genome` and computes what the
// exported model file computes on `x`, within `tolerance` (a float32 model
// computes in float32).
void ExpectParametersMatchModelFile(const TrainOutput& out,
                                    const v1::Genome& genome, const Matrix& x,
                                    double tolerance = 1e-12) {
  ASSERT_EQ(out.parameters.stages.size(), StageCount(genome));
  ASSERT_EQ(out.stages.size(), StageCount(genome));
  int64_t count = 0;
  for (size_t k = 0; k < out.parameters.stages.size(); ++k) {
    const MlpParameters& p = out.parameters.stages[k];
    const auto& hidden = k == 0 ? genome.hidden_layers()
                                : genome.residual_stages(k - 1).hidden_layers();
    ASSERT_EQ(p.layers.size(), hidden.size() + 1u);
    for (size_t i = 0; i < p.layers.size(); ++i) {
      const DenseParameters& layer = p.layers[i];
      const bool is_hidden = i + 1 < p.layers.size();
      EXPECT_EQ(layer.inputs, i == 0 ? x.cols : p.layers[i - 1].outputs);
      EXPECT_EQ(layer.activation, is_hidden ? hidden.Get(i).activation()
                                            : v1::ACTIVATION_UNSPECIFIED);
      EXPECT_EQ(layer.residual, is_hidden && hidden.Get(i).residual());
      EXPECT_EQ(layer.layer_norm(), is_hidden && hidden.Get(i).layer_norm());
      ASSERT_EQ(layer.weight.size(), layer.inputs * layer.outputs);
      ASSERT_EQ(layer.bias.size(), layer.outputs);
      count += layer.inputs * layer.outputs + layer.outputs;
      if (layer.layer_norm()) {
        ASSERT_EQ(layer.ln_scale.size(), layer.outputs);
        ASSERT_EQ(layer.ln_shift.size(), layer.outputs);
        count += 2 * layer.outputs;
      }
    }
    ASSERT_EQ(p.x_mean.size(), x.cols);
    ASSERT_EQ(p.x_std.size(), x.cols);
    ASSERT_EQ(p.y_mean.size(), p.layers.back().outputs);
    ASSERT_EQ(p.y_std.size(), p.layers.back().outputs);
  }
  EXPECT_EQ(count, out.metrics.parameter_count());
  absl::StatusOr<Matrix> predicted = Predict(out.model_file, x);
  ASSERT_TRUE(predicted.ok()) << predicted.status();
  const std::vector<double> plain = PlainForward(out.parameters, x);
  ASSERT_EQ(plain.size(), predicted->data.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_NEAR(plain[i], predicted->data[i], tolerance) << i;
  }
}

// Largest |y - mean(training y)| on the validation rows: the error of the
// best constant predictor's usual stand-in.
double ConstantPredictorError(const TrainJob& job) {
  double mean = 0;
  for (double y : job.training.y.data) mean += y;
  mean /= static_cast<double>(job.training.y.data.size());
  double worst = 0;
  for (double y : job.validation.y.data) {
    worst = std::max(worst, std::fabs(y - mean));
  }
  return worst;
}

TEST(TrainTest, ReportsTheInt8NetworksMetrics) {
  const TrainOutput& out = SmoothResult();
  EXPECT_TRUE(out.warnings.empty());
  const v1::Metrics& m = out.metrics;
  ASSERT_TRUE(m.has_int8());
  EXPECT_EQ(m.int8().validation().row_count(), 150);
  EXPECT_EQ(m.int8().test().row_count(), 100);
  // Every stage quantised on its own, then evaluated as the trained network.
  NetworkParameters dequantized;
  int64_t bytes = 0;
  for (const MlpParameters& stage : out.parameters.stages) {
    const QuantizedMlp quantized = Quantize(stage);
    dequantized.stages.push_back(Dequantize(quantized));
    bytes += Int8ModelBytes(quantized);
  }
  EXPECT_EQ(m.int8().model_bytes(), bytes);
  EXPECT_LT(m.int8().model_bytes(), m.model_bytes());
  const TrainJob job = SmoothJob();
  absl::StatusOr<Matrix> predicted =
      PredictNetwork(dequantized, job.validation.x);
  ASSERT_TRUE(predicted.ok()) << predicted.status();
  EXPECT_EQ(m.int8().validation().max_abs_error(),
            EvaluatePredictions(predicted->data, job.validation.y.data, 1,
                                job.within_tolerance)
                .max_abs_error());
  // Int8 weights cost accuracy, but not all of it.
  EXPECT_GT(m.int8().validation().max_abs_error(),
            m.validation().max_abs_error());
  EXPECT_LT(m.int8().validation().max_abs_error(), 1.0);
}

TEST(TrainTest, FitsSmoothFunction) {
  const TrainJob job = SmoothJob();
  const TrainOutput& out = SmoothResult();
  ASSERT_FALSE(out.model_file.empty());
  const v1::Metrics& m = out.metrics;
  const double naive = ConstantPredictorError(job);
  EXPECT_GT(naive, 2.0);
  EXPECT_LT(m.validation().max_abs_error(), 2e-2)
      << "naive constant predictor: " << naive;
  EXPECT_LT(m.test().max_abs_error(), 3e-2);
  EXPECT_LE(m.validation().rmse(), m.validation().max_abs_error());
  EXPECT_EQ(m.validation().row_count(), 150);
  EXPECT_EQ(m.test().row_count(), 100);
  EXPECT_EQ(m.training_row_count(), 500);
  EXPECT_EQ(m.model_bytes(), static_cast<int64_t>(out.model_file.size()));
  EXPECT_GT(m.training_seconds(), 0);
  EXPECT_GT(m.inference_latency_seconds(), 0);
  EXPECT_LT(m.inference_latency_seconds(), 0.1);
  EXPECT_GT(m.inference_latency_batch_seconds(), 0);
  EXPECT_GT(m.training_cpu_seconds(), 0);
  EXPECT_GT(m.validation().r_squared(), 0.99);
  std::printf(
      "validation max abs error %.3g (constant predictor %.3g), test %.3g, "
      "rmse %.3g, within 1e-2 %.3f; %.2f s; latency %.1f us; "
      "%lld bytes\n",
      m.validation().max_abs_error(), naive, m.test().max_abs_error(),
      m.validation().rmse(), m.validation().fraction_within(),
      m.training_seconds(), m.inference_latency_seconds() * 1e6,
      static_cast<long long>(m.model_bytes()));
}

TEST(TrainTest, ParameterCountMatchesGenome) {
  const TrainJob job = SmoothJob();
  EXPECT_EQ(SmoothResult().metrics.parameter_count(),
            evonas::ParameterCount(job.genome, 2, 1));
}

TEST(TrainTest, ExportedModelReproducesMetrics) {
  const TrainJob job = SmoothJob();
  const TrainOutput& out = SmoothResult();
  absl::StatusOr<Matrix> val = Predict(out.model_file, job.validation.x);
  ASSERT_TRUE(val.ok()) << val.status();
  EXPECT_EQ(val->rows, 150);
  EXPECT_EQ(val->cols, 1);
  const v1::Evaluation e = EvaluatePredictions(val->data, job.validation.y.data,
                                               1, job.within_tolerance);
  EXPECT_EQ(e.max_abs_error(), out.metrics.validation().max_abs_error());
  EXPECT_EQ(e.rmse(), out.metrics.validation().rmse());
  EXPECT_EQ(e.fraction_within(), out.metrics.validation().fraction_within());

  absl::StatusOr<Matrix> test = Predict(out.model_file, job.test->x);
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(
      EvaluatePredictions(test->data, job.test->y.data, 1, job.within_tolerance)
          .max_abs_error(),
      out.metrics.test().max_abs_error());

  absl::StatusOr<Matrix> judging = Predict(out.model_file, job.judging->x);
  ASSERT_TRUE(judging.ok()) << judging.status();
  const v1::Evaluation j = EvaluatePredictions(
      judging->data, job.judging->y.data, 1, job.within_tolerance);
  EXPECT_EQ(out.metrics.judging().row_count(), 120);
  EXPECT_EQ(j.max_abs_error(), out.metrics.judging().max_abs_error());
  EXPECT_EQ(j.fraction_within(), out.metrics.judging().fraction_within());
  EXPECT_EQ(out.metrics.int8().judging().row_count(), 120);
}

TEST(TrainTest, JudgingRowsAreOnlyEvaluated) {
  // Neither trained on nor used to choose the weights: without them the
  // same network comes out.
  TrainJob job = SmoothJob();
  job.judging.reset();
  absl::StatusOr<TrainOutput> out = Train(std::move(job));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->model_file, SmoothResult().model_file);
  EXPECT_FALSE(out->metrics.has_judging());
  EXPECT_FALSE(out->metrics.int8().has_judging());
}

TEST(TrainTest, PredictNetworkRunsTheModelTrainWouldExport) {
  const TrainJob job = SmoothJob();
  const TrainOutput& out = SmoothResult();
  absl::StatusOr<Matrix> from_file = Predict(out.model_file, job.validation.x);
  absl::StatusOr<Matrix> from_network =
      PredictNetwork(out.parameters, job.validation.x);
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  ASSERT_TRUE(from_network.ok()) << from_network.status();
  EXPECT_EQ(from_network->data, from_file->data);
  NetworkParameters broken = out.parameters;
  broken.stages[0].layers[0].bias.pop_back();
  EXPECT_EQ(PredictNetwork(broken, job.validation.x).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PredictNetwork(out.parameters, Matrix{1, 5, std::vector<double>(5)})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TrainTest, ParametersAreThoseOfTheModelFile) {
  const TrainJob job = SmoothJob();
  ExpectParametersMatchModelFile(SmoothResult(), job.genome, job.test->x);
}

TEST(TrainTest, EveryActivationTrainsWithMiniBatches) {
  // Two outputs, a constant input column and a constant output column.
  Samples data = SmoothFunction(200, 4);
  Samples s;
  s.x = {200, 3, {}};
  s.y = {200, 2, {}};
  for (int i = 0; i < 200; ++i) {
    s.x.data.insert(s.x.data.end(),
                    {data.x.data[2 * i], 5.0, data.x.data[2 * i + 1]});
    s.y.data.insert(s.y.data.end(), {data.y.data[i], -3.0});
  }
  for (v1::Activation a :
       {v1::ACTIVATION_TANH, v1::ACTIVATION_RELU, v1::ACTIVATION_SILU,
        v1::ACTIVATION_GELU, v1::ACTIVATION_SINE, v1::ACTIVATION_GAUSSIAN}) {
    SCOPED_TRACE(ActivationName(a));
    TrainJob job;
    job.genome = MakeGenome({{16, a}, {8, a}}, 1e-2, 30, 5, /*batch_size=*/64);
    job.training = s;
    job.validation = {{20, 3, {s.x.data.begin(), s.x.data.begin() + 60}},
                      {20, 2, {s.y.data.begin(), s.y.data.begin() + 40}}};
    absl::StatusOr<TrainOutput> out = Train(job);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE(std::isfinite(out->metrics.validation().max_abs_error()));
    EXPECT_LT(out->metrics.validation().max_abs_error(), 5.0);
    EXPECT_EQ(out->metrics.parameter_count(),
              evonas::ParameterCount(job.genome, 3, 2));
    absl::StatusOr<Matrix> p = Predict(out->model_file, job.validation.x);
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_EQ(p->cols, 2);
    // A constant output column has standardised target 0 and a unit scale,
    // so even a few steps keep the model near the constant.
    EXPECT_NEAR(p->data[1], -3.0, 1.0);
    ExpectParametersMatchModelFile(*out, job.genome, job.validation.x);
  }
}

TEST(TrainTest, EmptyValidationSetMeasuresTheTrainingRows) {
  // A refit: no validation rows, so the training rows are reported.
  TrainJob job;
  job.genome = MakeGenome({{8, v1::ACTIVATION_TANH}}, 1e-2, 20, 5);
  job.training = SmoothFunction(50, 5);
  job.validation = {{0, 2, {}}, {0, 1, {}}};
  absl::StatusOr<TrainOutput> out = Train(job);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->metrics.validation().row_count(), 50);
  EXPECT_EQ(out->metrics.training_row_count(), 50);
}

// Layer normalisation on a plain and a residual layer, in float64 and
// float32: the kernels' backward pass trains it, and the model file (its
// torch.layer_norm) computes what the parameters say.
TEST(TrainTest, LayerNormTrainsAndExports) {
  for (v1::Precision precision :
       {v1::PRECISION_FLOAT64, v1::PRECISION_FLOAT32}) {
    SCOPED_TRACE(v1::Precision_Name(precision));
    TrainJob job = SmoothJob();
    job.genome.mutable_hidden_layers(0)->set_layer_norm(true);
    job.genome.mutable_hidden_layers(1)->set_layer_norm(true);
    job.genome.mutable_hidden_layers(1)->set_residual(true);
    job.genome.set_precision(precision);
    absl::StatusOr<TrainOutput> out = Train(job);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_LT(out->metrics.validation().max_abs_error(),
              0.1 * ConstantPredictorError(job));
    EXPECT_EQ(out->metrics.parameter_count(),
              evonas::ParameterCount(job.genome, 2, 1));
    // Trained: the scales moved away from their start at 1.
    const DenseParameters& first = out->parameters.stages[0].layers[0];
    ASSERT_EQ(first.ln_scale.size(), 32u);
    double moved = 0;
    for (double g : first.ln_scale) moved = std::max(moved, std::fabs(g - 1));
    EXPECT_GT(moved, 1e-3);
    ExpectParametersMatchModelFile(
        *out, job.genome, job.validation.x,
        precision == v1::PRECISION_FLOAT32 ? 1e-4 : 1e-12);
    std::printf("%s layer norm: validation max abs error %.3g\n",
                v1::Precision_Name(precision).c_str(),
                out->metrics.validation().max_abs_error());
  }
}

TEST(TrainTest, DivergenceIsAborted) {
  // After one Adam step every weight has moved by about the learning rate,
  // so the output, and with it the loss, overflows.
  for (v1::Activation a : {v1::ACTIVATION_RELU, v1::ACTIVATION_TANH}) {
    TrainJob job;
    job.genome = MakeGenome({{16, a}, {16, a}}, 1e300, 20, 0);
    job.training = SmoothFunction(100, 6);
    job.validation = SmoothFunction(20, 7);
    absl::StatusOr<TrainOutput> out = Train(job);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), absl::StatusCode::kAborted) << out.status();
    EXPECT_TRUE(absl::StrContains(out.status().message(),
                                  "training diverged: loss became"))
        << out.status().message();
    EXPECT_TRUE(absl::StrContains(out.status().message(), "adam step"))
        << out.status().message();
  }
}

TEST(TrainTest, CancelFlagCancels) {
  std::atomic<bool> cancel{true};
  TrainJob job = SmoothJob();
  job.cancel = &cancel;
  absl::StatusOr<TrainOutput> out = Train(job);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kCancelled) << out.status();
  // Also during the L-BFGS phase.
  job.genome.mutable_training()->set_adam_steps(0);
  out = Train(job);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kCancelled) << out.status();
  EXPECT_TRUE(absl::StrContains(out.status().message(), "lbfgs"))
      << out.status().message();
}

TEST(TrainTest, SameSeedGivesIdenticalModel) {
  TrainJob job;
  job.genome = MakeGenome({{16, v1::ACTIVATION_SILU}}, 1e-2, 50, 10,
                          /*batch_size=*/32);
  job.training = SmoothFunction(100, 8);
  job.validation = SmoothFunction(30, 9);
  job.seed = 42;
  absl::StatusOr<TrainOutput> a = Train(job);
  absl::StatusOr<TrainOutput> b = Train(job);
  job.seed = 43;
  absl::StatusOr<TrainOutput> c = Train(job);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  absl::StatusOr<Matrix> pa = Predict(a->model_file, job.validation.x);
  absl::StatusOr<Matrix> pb = Predict(b->model_file, job.validation.x);
  absl::StatusOr<Matrix> pc = Predict(c->model_file, job.validation.x);
  ASSERT_TRUE(pa.ok() && pb.ok() && pc.ok());
  EXPECT_EQ(pa->data, pb->data);
  EXPECT_NE(pa->data, pc->data);
  EXPECT_EQ(a->metrics.validation().max_abs_error(),
            b->metrics.validation().max_abs_error());
}

TEST(TrainTest, TwoThreadsGiveIdenticalModelsAndAgreeWithOne) {
  TrainJob job;
  job.genome = MakeGenome(
      {{24, v1::ACTIVATION_TANH}, {24, v1::ACTIVATION_GELU}}, 1e-2, 60, 10);
  job.training = SmoothFunction(1500, 15);
  job.validation = SmoothFunction(300, 16);
  job.seed = 5;
  job.threads = 2;
  absl::StatusOr<TrainOutput> a = Train(job);
  absl::StatusOr<TrainOutput> b = Train(job);
  ASSERT_TRUE(a.ok() && b.ok());
  absl::StatusOr<Matrix> pa = Predict(a->model_file, job.validation.x);
  absl::StatusOr<Matrix> pb = Predict(b->model_file, job.validation.x);
  ASSERT_TRUE(pa.ok() && pb.ok());
  EXPECT_EQ(pa->data, pb->data);
  // One thread sums the gradient in another order: the same training up to
  // rounding, which Adam's few steps here hardly amplify.
  job.threads = 1;
  absl::StatusOr<TrainOutput> c = Train(job);
  ASSERT_TRUE(c.ok());
  EXPECT_NEAR(a->metrics.validation().max_abs_error(),
              c->metrics.validation().max_abs_error(), 1e-6);
}

// Throughput of a 3-64-64-1 tanh net on 5600 rows, full batch, one thread.
// Not run by default: --gtest_also_run_disabled_tests
// --gtest_filter=*Throughput*
TEST(TrainTest, DISABLED_Throughput) {
  std::mt19937_64 rng(12);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  TrainJob job;
  for (Samples* s : {&job.training, &job.validation}) {
    const int rows = s == &job.training ? 5600 : 1400;
    s->x = {rows, 3, {}};
    s->y = {rows, 1, {}};
    for (int i = 0; i < rows; ++i) {
      const double a = u(rng), b = u(rng), c = u(rng);
      s->x.data.insert(s->x.data.end(), {a, b, c});
      s->y.data.push_back(std::sin(3 * a) * b + c * c);
    }
  }
  job.genome = MakeGenome(
      {{64, v1::ACTIVATION_TANH}, {64, v1::ACTIVATION_TANH}}, 3e-3, 1000, 0);
  absl::StatusOr<TrainOutput> adam = Train(job);
  ASSERT_TRUE(adam.ok()) << adam.status();
  job.genome.mutable_training()->set_adam_steps(0);
  job.genome.mutable_training()->set_lbfgs_steps(200);
  absl::StatusOr<TrainOutput> lbfgs = Train(job);
  ASSERT_TRUE(lbfgs.ok()) << lbfgs.status();
  std::printf(
      "adam: %.0f steps/s; lbfgs: %.0f iterations/s (upper bound "
      "if it converged early)\n",
      1000 / adam->metrics.training_seconds(),
      200 / lbfgs->metrics.training_seconds());
}

TEST(TrainTest, RejectsBadJobs) {
  TrainJob good;
  good.genome = MakeGenome({{4, v1::ACTIVATION_TANH}}, 1e-2, 5, 0);
  good.training = SmoothFunction(20, 10);
  good.validation = SmoothFunction(5, 11);

  TrainJob job = good;
  job.training.y.data.pop_back();
  EXPECT_EQ(Train(job).status().code(), absl::StatusCode::kInvalidArgument);

  job = good;
  job.validation.x = {5, 3, std::vector<double>(15, 0.0)};
  EXPECT_EQ(Train(job).status().code(), absl::StatusCode::kInvalidArgument);

  job = good;
  job.training.x.data[3] = std::nan("");
  EXPECT_EQ(Train(job).status().code(), absl::StatusCode::kInvalidArgument);

  job = good;
  job.training.y.data[0] = 1e300;
  job.training.y.data[1] = -1e300;  // the variance overflows
  EXPECT_EQ(Train(job).status().code(), absl::StatusCode::kInvalidArgument);

  job = good;
  job.genome.mutable_hidden_layers(0)->set_width(0);
  EXPECT_EQ(Train(job).status().code(), absl::StatusCode::kInvalidArgument);

  job = good;
  job.genome.mutable_hidden_layers(0)->set_activation(
      v1::ACTIVATION_UNSPECIFIED);
  EXPECT_EQ(Train(job).status().code(), absl::StatusCode::kInvalidArgument);

  job = good;
  job.genome.clear_hidden_layers();
  EXPECT_EQ(Train(job).status().code(), absl::StatusCode::kInvalidArgument);

  job = good;
  job.training = {{0, 2, {}}, {0, 1, {}}};
  EXPECT_EQ(Train(job).status().code(), absl::StatusCode::kInvalidArgument);

  job = good;
  job.judging = Samples{{0, 2, {}}, {0, 1, {}}};
  EXPECT_EQ(Train(job).status().code(), absl::StatusCode::kInvalidArgument);
  job.judging = SmoothFunction(5, 12);
  job.judging->y.data[2] = std::nan("");
  EXPECT_EQ(Train(job).status().code(), absl::StatusCode::kInvalidArgument);

  for (double seconds : {-1.0, std::nan(""), HUGE_VAL}) {
    job = good;
    job.max_training_seconds = seconds;
    const absl::Status status = Train(job).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << seconds;
    EXPECT_NE(status.message().find("max_training_seconds"), std::string::npos)
        << status;
  }

  // The training genes the trainer cannot run safely, also without
  // ValidateGenome in front of it.
  const auto refused = [&](const std::function<void(v1::TrainingConfig&)>& set,
                           const std::string& message) {
    TrainJob bad = good;
    set(*bad.genome.mutable_training());
    const absl::Status status = Train(bad).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << message;
    EXPECT_NE(status.message().find(message), std::string::npos) << status;
  };
  refused([](auto& t) { t.set_max_error_rounds(21); },
          "max_error_rounds: 21, want 0..20");
  refused([](auto& t) { t.set_siren_omega(101); },
          "siren_omega: 101, want [0, 100]");
  refused([](auto& t) { t.set_siren_omega(std::nan("")); }, "siren_omega: nan");
  refused([](auto& t) { t.set_weight_penalty(-1); }, "weight_penalty: -1");
}

TEST(PredictTest, RejectsBadInput) {
  EXPECT_EQ(Predict("not a model", Matrix{1, 2, {0, 0}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::string& model = SmoothResult().model_file;
  EXPECT_EQ(Predict(model, Matrix{1, 3, {0, 0, 0}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Predict(model, Matrix{2, 2, {0, 0}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<Matrix> empty = Predict(model, Matrix{0, 2, {}});
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->rows, 0);
}

constexpr char kPython[] = "/usr/bin/python3";

bool PythonHasTorch() {
  return std::system(absl::StrCat(kPython, " -c 'import torch' >/dev/null 2>&1")
                         .c_str()) == 0;
}

// Loads `out`'s model file in Debian's PyTorch, checks that it predicts 5
// test rows of `job` as Predict does, and returns the dtype of its first
// weight ("torch.float64").
std::string ExpectPythonReproduces(const TrainJob& job, const TrainOutput& out) {
  // Named after the test: ctest runs the tests of this file in parallel.
  const std::string dir = ::testing::TempDir();
  const std::string stem = absl::StrCat(
      dir, "/evonas_model_test_",
      ::testing::UnitTest::GetInstance()->current_test_info()->name());
  const std::string model_path = stem + ".pt";
  {
    std::ofstream f(model_path, std::ios::binary);
    f.write(out.model_file.data(),
            static_cast<std::streamsize>(out.model_file.size()));
    EXPECT_TRUE(f.good());
  }
  Matrix x{5, 2, {job.test->x.data.begin(), job.test->x.data.begin() + 10}};
  std::string rows;
  for (int64_t r = 0; r < x.rows; ++r) {
    absl::StrAppend(&rows, "[", absl::StrFormat("%.17g", x.data[2 * r]), ",",
                    absl::StrFormat("%.17g", x.data[2 * r + 1]), "],");
  }
  const std::string script = absl::StrCat(
      "import torch\n"
      "m = torch.jit.load('",
      model_path, "')\n", "x = torch.tensor([", rows,
      "], dtype=torch.float64)\n",
      "with torch.no_grad():\n"
      "    y = m(x)\n"
      "print(m.W0.dtype)\n"
      "print(' '.join(repr(v) for v in y.flatten().tolist()))\n");
  const std::string script_path = stem + ".py";
  {
    std::ofstream f(script_path);
    f << script;
  }
  FILE* pipe = popen(absl::StrCat(kPython, " ", script_path).c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run " << kPython;
    return "";
  }
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) {
    output.append(buffer, n);
  }
  EXPECT_EQ(pclose(pipe), 0) << output;
  std::istringstream in(output);
  std::string dtype;
  in >> dtype;
  std::vector<double> python;
  for (double v; in >> v;) python.push_back(v);

  absl::StatusOr<Matrix> cpp = Predict(out.model_file, x);
  EXPECT_TRUE(cpp.ok()) << cpp.status();
  if (!cpp.ok()) return dtype;
  EXPECT_EQ(python.size(), cpp->data.size()) << output;
  for (size_t i = 0; i < python.size() && i < cpp->data.size(); ++i) {
    EXPECT_NEAR(python[i], cpp->data[i], 1e-12) << i;
  }
  std::remove(model_path.c_str());
  std::remove(script_path.c_str());
  return dtype;
}

TEST(PredictTest, PythonLoadsTheModelFile) {
  if (!PythonHasTorch()) GTEST_SKIP() << kPython << " cannot import torch";
  EXPECT_EQ(ExpectPythonReproduces(SmoothJob(), SmoothResult()),
            "torch.float64");
}

TrainJob Float32SmoothJob() {
  TrainJob job = SmoothJob();
  job.genome.set_precision(v1::PRECISION_FLOAT32);
  return job;
}

const TrainOutput& Float32SmoothResult() {
  static const TrainOutput* const result = [] {
    absl::StatusOr<TrainOutput> out = Train(Float32SmoothJob());
    EXPECT_TRUE(out.ok()) << out.status();
    return new TrainOutput(out.ok() ? *std::move(out) : TrainOutput{});
  }();
  return *result;
}

TEST(TrainFloat32Test, FitsSmoothFunctionWithFloat32Weights) {
  const TrainJob job = Float32SmoothJob();
  const TrainOutput& out = Float32SmoothResult();
  ASSERT_EQ(out.parameters.stages.size(), 1u);
  const MlpParameters& p = out.parameters.stages[0];
  EXPECT_TRUE(p.float32);
  for (const DenseParameters& layer : p.layers) {
    for (const std::vector<double>* values : {&layer.weight, &layer.bias}) {
      for (double v : *values) {
        ASSERT_EQ(static_cast<double>(static_cast<float>(v)), v);
      }
    }
  }
  const v1::Metrics& m = out.metrics;
  EXPECT_LT(m.validation().max_abs_error(), 2e-2);
  EXPECT_LT(m.test().max_abs_error(), 3e-2);
  EXPECT_GT(out.stages.at(0).lbfgs_iterations, 0);  // L-BFGS in float32
  // Half the bytes per weight.
  EXPECT_LT(m.model_bytes(), SmoothResult().metrics.model_bytes());
  EXPECT_EQ(m.parameter_count(), SmoothResult().metrics.parameter_count());
  std::printf("float32: validation max abs error %.3g (float64 %.3g), "
              "%lld bytes (float64 %lld)\n",
              m.validation().max_abs_error(),
              SmoothResult().metrics.validation().max_abs_error(),
              static_cast<long long>(m.model_bytes()),
              static_cast<long long>(SmoothResult().metrics.model_bytes()));
}

TEST(TrainFloat32Test, ModelFileComputesInFloat32AndReproducesMetrics) {
  const TrainJob job = Float32SmoothJob();
  const TrainOutput& out = Float32SmoothResult();
  absl::StatusOr<Matrix> val = Predict(out.model_file, job.validation.x);
  ASSERT_TRUE(val.ok()) << val.status();
  const v1::Evaluation e = EvaluatePredictions(val->data, job.validation.y.data,
                                               1, job.within_tolerance);
  EXPECT_EQ(e.max_abs_error(), out.metrics.validation().max_abs_error());
  absl::StatusOr<Matrix> again = PredictNetwork(out.parameters, job.validation.x);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->data, val->data);
  // The same weights in float64 differ by float32 rounding only, but do
  // differ: the file really computes in float32.
  const std::vector<double> wide = PlainForward(out.parameters, job.validation.x);
  ASSERT_EQ(wide.size(), val->data.size());
  double largest = 0;
  for (size_t i = 0; i < wide.size(); ++i) {
    largest = std::max(largest, std::fabs(wide[i] - val->data[i]));
  }
  EXPECT_GT(largest, 0);
  EXPECT_LT(largest, 1e-5);
  if (PythonHasTorch()) {
    EXPECT_EQ(ExpectPythonReproduces(job, out), "torch.float32");
  }
}

TEST(TrainFloat32Test, DeterministicAndRefusedWithStages) {
  absl::StatusOr<TrainOutput> twice = Train(Float32SmoothJob());
  ASSERT_TRUE(twice.ok()) << twice.status();
  EXPECT_EQ(twice->model_file, Float32SmoothResult().model_file);

  TrainJob staged = Float32SmoothJob();
  *staged.genome.add_residual_stages()->mutable_hidden_layers() =
      staged.genome.hidden_layers();
  *staged.genome.mutable_residual_stages(0)->mutable_training() =
      staged.genome.training();
  EXPECT_EQ(Train(staged).status().message(),
            "genome.precision: float32 networks have one stage");
  staged.genome.set_precision(static_cast<v1::Precision>(9));
  staged.genome.clear_residual_stages();
  EXPECT_EQ(Train(staged).status().code(), absl::StatusCode::kInvalidArgument);
}


// Three classes of points in the plane: the angular sector of (x1, x2),
// rotated by the radius so that no linear model separates them.
Samples SpiralClasses(int rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Samples s;
  s.x = {rows, 2, {}};
  s.y = {rows, 1, {}};
  for (int i = 0; i < rows; ++i) {
    const double x1 = u(rng), x2 = u(rng);
    const double angle = std::atan2(x2, x1) + 2.0 * std::hypot(x1, x2);
    const double turns = (angle + 3 * M_PI) / (2 * M_PI / 3);
    s.x.data.insert(s.x.data.end(), {x1, x2});
    s.y.data.push_back(static_cast<double>(static_cast<int>(turns) % 3));
  }
  return s;
}

TrainJob ClassificationJob() {
  TrainJob job;
  job.genome = MakeGenome(
      {{32, v1::ACTIVATION_RELU}, {32, v1::ACTIVATION_RELU}}, 1e-2, 1500,
      /*lbfgs_steps=*/50, /*batch_size=*/64);
  job.training = SpiralClasses(1500, 11);
  job.validation = SpiralClasses(500, 12);
  job.test = SpiralClasses(500, 13);
  job.class_count = 3;
  job.seed = 5;
  return job;
}

TEST(TrainClassificationTest, LearnsANonlinearBoundary) {
  const TrainJob job = ClassificationJob();
  absl::StatusOr<TrainOutput> out = Train(job);
  ASSERT_TRUE(out.ok()) << out.status();
  const v1::Metrics& m = out->metrics;
  // A linear classifier gets about a third of this data right.
  EXPECT_GT(m.validation().accuracy(), 0.9);
  EXPECT_GT(m.test().accuracy(), 0.9);
  EXPECT_GT(m.validation().cross_entropy(), 0);
  EXPECT_LT(m.validation().cross_entropy(), 0.35);
  EXPECT_EQ(m.validation().max_abs_error(), 0);  // regression fields unset
  EXPECT_EQ(m.validation().row_count(), 500);
  // 2-32-32-3: the output layer has one logit per class.
  EXPECT_EQ(m.parameter_count(), 2 * 32 + 32 + 32 * 32 + 32 + 32 * 3 + 3);
  // L-BFGS is a regression phase: none ran.
  EXPECT_EQ(out->stages.at(0).lbfgs_iterations, 0);
  // The downloaded model outputs the logits its metrics were computed from.
  absl::StatusOr<Matrix> logits = Predict(out->model_file, job.test->x);
  ASSERT_TRUE(logits.ok()) << logits.status();
  EXPECT_EQ(logits->cols, 3);
  const v1::Evaluation again =
      EvaluateClassification(logits->data, job.test->y.data, 3);
  EXPECT_EQ(again.accuracy(), m.test().accuracy());
  EXPECT_EQ(again.cross_entropy(), m.test().cross_entropy());
  // Deterministic for a given job.
  absl::StatusOr<TrainOutput> twice = Train(job);
  ASSERT_TRUE(twice.ok()) << twice.status();
  EXPECT_EQ(twice->model_file, out->model_file);
}

TEST(TrainClassificationTest, RejectsLabelsThatAreNotClassIndices) {
  for (double bad : {3.0, -1.0, 0.5}) {
    TrainJob job = ClassificationJob();
    job.genome.mutable_training()->set_adam_steps(10);
    job.validation.y.data[7] = bad;
    absl::StatusOr<TrainOutput> out = Train(job);
    ASSERT_FALSE(out.ok()) << bad;
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(out.status().message(),
                                  "validation row 7: label"))
        << out.status();
  }
}

TEST(TrainClassificationTest, RejectsStagedGenomesAndSeveralLabelColumns) {
  TrainJob staged = ClassificationJob();
  v1::Stage* stage = staged.genome.add_residual_stages();
  *stage->add_hidden_layers() = staged.genome.hidden_layers(0);
  *stage->mutable_training() = staged.genome.training();
  const absl::Status status = Train(staged).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(status.message(), "one stage")) << status;
  TrainJob two_columns = ClassificationJob();
  for (Samples* s : {&two_columns.training, &two_columns.validation,
                     &*two_columns.test}) {
    s->y.cols = 2;
    s->y.data.insert(s->y.data.end(), s->y.data.begin(), s->y.data.end());
  }
  EXPECT_EQ(Train(two_columns).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TrainFloat32Test, ClassifiesInFloat32) {
  TrainJob job = ClassificationJob();
  job.genome.set_precision(v1::PRECISION_FLOAT32);
  absl::StatusOr<TrainOutput> out = Train(job);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->parameters.stages.at(0).float32);
  EXPECT_GT(out->metrics.validation().accuracy(), 0.9);
  absl::StatusOr<Matrix> logits = Predict(out->model_file, job.test->x);
  ASSERT_TRUE(logits.ok()) << logits.status();
  EXPECT_EQ(EvaluateClassification(logits->data, job.test->y.data, 3).accuracy(),
            out->metrics.test().accuracy());
}

}  // namespace
}  // namespace evonas::model
