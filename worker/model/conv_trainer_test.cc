#include "worker/model/conv_trainer.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/genome.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/model/mlp.h"
#include "worker/model/trainer.h"

namespace evonas::model {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kSide = 8;

// `rows` 8x8 grayscale images (0..255) of a bright bar on a noisy dark
// background: label 0 a vertical bar (a random column), 1 a horizontal bar
// (a random row). A dense layer on raw pixels needs many examples of every
// position; a convolution sees the orientation locally.
Samples Bars(int rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> noise(0.0, 60.0);
  std::uniform_int_distribution<int> position(0, kSide - 1);
  Samples s;
  s.x = {rows, kSide * kSide, {}};
  s.y = {rows, 1, {}};
  for (int r = 0; r < rows; ++r) {
    const int label = r % 2;
    const int at = position(rng);
    for (int i = 0; i < kSide; ++i) {
      for (int j = 0; j < kSide; ++j) {
        const bool bar = label == 0 ? j == at : i == at;
        s.x.data.push_back(bar ? 200.0 + noise(rng) / 2 : noise(rng));
      }
    }
    s.y.data.push_back(label);
  }
  return s;
}

v1::ConvLayer* AddConv(v1::Genome& genome, int channels, int kernel,
                       v1::Activation activation, v1::Pooling pooling) {
  v1::ConvLayer* layer = genome.add_conv_layers();
  layer->set_channels(channels);
  layer->set_kernel_size(kernel);
  layer->set_activation(activation);
  layer->set_pooling(pooling);
  return layer;
}

// c8k3relu.bn.max - c8k3relu+ > 16relu
v1::Genome BarsGenome() {
  v1::Genome genome;
  AddConv(genome, 8, 3, v1::ACTIVATION_RELU, v1::POOLING_MAX)
      ->set_batch_norm(true);
  AddConv(genome, 8, 3, v1::ACTIVATION_RELU, v1::POOLING_NONE)
      ->set_residual(true);
  v1::DenseLayer* dense = genome.add_hidden_layers();
  dense->set_width(16);
  dense->set_activation(v1::ACTIVATION_RELU);
  v1::TrainingConfig* t = genome.mutable_training();
  t->set_learning_rate(1e-2);
  t->set_adam_steps(200);
  t->set_warmup_steps(20);
  t->set_batch_size(32);
  return genome;
}

TrainJob BarsJob(const v1::Genome& genome) {
  TrainJob job;
  job.genome = genome;
  job.training = Bars(400, 1);
  job.validation = Bars(200, 2);
  job.test = Bars(200, 3);
  job.class_count = 2;
  job.image_height = kSide;
  job.image_width = kSide;
  job.seed = 7;
  job.threads = 1;
  return job;
}

// The trained bars network, trained once for the tests that read it.
const TrainOutput& BarsResult() {
  static const TrainOutput* const result = [] {
    absl::StatusOr<TrainOutput> out = Train(BarsJob(BarsGenome()));
    EXPECT_TRUE(out.ok()) << out.status();
    return new TrainOutput(out.ok() ? *std::move(out) : TrainOutput());
  }();
  return *result;
}

// --- A plain reference of the convolutional stage, batch norm unfolded ----

double Act(v1::Activation a, double v) {
  switch (a) {
    case v1::ACTIVATION_TANH:
      return std::tanh(v);
    case v1::ACTIVATION_RELU:
      return v > 0 ? v : 0;
    case v1::ACTIVATION_SILU:
      return v / (1 + std::exp(-v));
    case v1::ACTIVATION_GELU:
      return v / 2 * (1 + std::erf(v / std::sqrt(2.0)));
    case v1::ACTIVATION_SINE:
      return std::sin(v);
    default:
      return v;
  }
}

// The raw outputs of `p` on one image (raw pixels), in float64, straight
// from the definition in types.proto.
std::vector<double> ReferenceForward(const MlpParameters& p,
                                     const double* pixels) {
  int64_t h = p.image_height, w = p.image_width, channels = 1;
  std::vector<double> a(h * w);
  for (int64_t i = 0; i < h * w; ++i) {
    a[i] = (pixels[i] - p.x_mean[i]) / p.x_std[i];
  }
  for (const ConvParameters& c : p.conv_layers) {
    const int64_t k = c.kernel_size, pad = k / 2, out = c.out_channels;
    std::vector<double> z(out * h * w);
    for (int64_t o = 0; o < out; ++o) {
      for (int64_t y = 0; y < h; ++y) {
        for (int64_t x = 0; x < w; ++x) {
          double sum = c.bias[o];
          for (int64_t ci = 0; ci < channels; ++ci) {
            for (int64_t dy = 0; dy < k; ++dy) {
              for (int64_t dx = 0; dx < k; ++dx) {
                const int64_t yy = y + dy - pad, xx = x + dx - pad;
                if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                sum += c.weight[((o * channels + ci) * k + dy) * k + dx] *
                       a[(ci * h + yy) * w + xx];
              }
            }
          }
          if (c.batch_norm) {
            sum = (sum - c.bn_running_mean[o]) /
                      std::sqrt(c.bn_running_var[o] + 1e-5) * c.bn_scale[o] +
                  c.bn_shift[o];
          }
          sum = Act(c.activation, sum);
          if (c.residual) sum += a[(o * h + y) * w + x];
          z[(o * h + y) * w + x] = sum;
        }
      }
    }
    channels = out;
    if (c.pooling != v1::POOLING_NONE) {
      const int64_t h2 = h / 2, w2 = w / 2;
      std::vector<double> pooled(out * h2 * w2);
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t y = 0; y < h2; ++y) {
          for (int64_t x = 0; x < w2; ++x) {
            const double v[4] = {z[(o * h + 2 * y) * w + 2 * x],
                                 z[(o * h + 2 * y) * w + 2 * x + 1],
                                 z[(o * h + 2 * y + 1) * w + 2 * x],
                                 z[(o * h + 2 * y + 1) * w + 2 * x + 1]};
            pooled[(o * h2 + y) * w2 + x] =
                c.pooling == v1::POOLING_MAX
                    ? std::max({v[0], v[1], v[2], v[3]})
                    : (v[0] + v[1] + v[2] + v[3]) / 4;
          }
        }
      }
      z = std::move(pooled);
      h = h2;
      w = w2;
    }
    a = std::move(z);
  }
  for (size_t l = 0; l < p.layers.size(); ++l) {
    const DenseParameters& d = p.layers[l];
    std::vector<double> z(d.outputs);
    for (int64_t o = 0; o < d.outputs; ++o) {
      double sum = d.bias[o];
      for (int64_t i = 0; i < d.inputs; ++i) {
        sum += d.weight[o * d.inputs + i] * a[i];
      }
      z[o] = l + 1 < p.layers.size() ? Act(d.activation, sum) : sum;
      if (d.residual) z[o] += a[o];
    }
    a = std::move(z);
  }
  for (size_t o = 0; o < a.size(); ++o) a[o] = a[o] * p.y_std[o] + p.y_mean[o];
  return a;
}

// Largest |a - b| / (1 + |b|).
double MaxRelativeDifference(const std::vector<double>& a,
                             const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    worst = std::max(worst, std::fabs(a[i] - b[i]) / (1 + std::fabs(b[i])));
  }
  return worst;
}

// --- Tests ----------------------------------------------------------------

TEST(ConvTrainerTest, LearnsTheBarsOrientation) {
  const TrainOutput& out = BarsResult();
  const v1::Metrics& m = out.metrics;
  EXPECT_GE(m.validation().accuracy(), 0.95);
  EXPECT_GE(m.test().accuracy(), 0.95);
  EXPECT_EQ(m.validation().row_count(), 200);
  EXPECT_LT(m.validation().cross_entropy(), 0.3);
  ASSERT_EQ(out.parameters.stages.size(), 1u);
  const MlpParameters& p = out.parameters.stages[0];
  EXPECT_EQ(p.image_height, kSide);
  EXPECT_EQ(p.image_width, kSide);
  ASSERT_EQ(p.conv_layers.size(), 2u);
  EXPECT_EQ(p.conv_layers[0].in_channels, 1);
  EXPECT_EQ(p.conv_layers[0].out_channels, 8);
  EXPECT_TRUE(p.conv_layers[0].batch_norm);
  EXPECT_EQ(p.conv_layers[0].bn_running_var.size(), 8u);
  EXPECT_TRUE(p.conv_layers[1].residual);
  // One global standardisation of all pixels, repeated per input.
  ASSERT_EQ(p.x_mean.size(), 64u);
  EXPECT_THAT(p.x_mean, ::testing::Each(p.x_mean[0]));
  EXPECT_THAT(p.x_std, ::testing::Each(p.x_std[0]));
  EXPECT_THAT(p.y_mean, ::testing::ElementsAre(0.0, 0.0));
  EXPECT_THAT(p.y_std, ::testing::ElementsAre(1.0, 1.0));
  // Flattened 8 channels x 4 x 4 into the first dense layer.
  ASSERT_EQ(p.layers.size(), 2u);
  EXPECT_EQ(p.layers[0].inputs, 8 * 4 * 4);
  // conv 1*8*9+8, batch norm 2*8, conv 8*8*9+8, dense 128*16+16, output
  // 16*2+2: the batch-norm scales and shifts count though they are folded.
  EXPECT_EQ(m.parameter_count(), 80 + 16 + 584 + 2064 + 34);
  EXPECT_GT(m.model_bytes(), 0);
  EXPECT_GT(m.inference_latency_seconds(), 0);
  EXPECT_GT(m.inference_latency_batch_seconds(), 0);
  EXPECT_GT(m.training_seconds(), 0);
  EXPECT_GT(m.training_cpu_seconds(), 0);
  EXPECT_EQ(m.training_row_count(), 400);
  ASSERT_EQ(out.stages.size(), 1u);
  EXPECT_GT(out.stages[0].adam_steps, 0);
  EXPECT_LE(out.stages[0].adam_steps, 200);
  // Trained from scratch, its weights improved at some selection.
  EXPECT_GT(out.stages[0].adam_best_step, 0);
  EXPECT_LE(out.stages[0].adam_best_step, out.stages[0].adam_steps);
  EXPECT_GT(out.stages[0].adam_seconds, 0);
}

TEST(ConvTrainerTest, ExportedModelComputesTheDefinition) {
  // Batch norm (with trained running statistics), max pooling and a
  // residual layer, folded and in float32 in the file.
  const TrainOutput& out = BarsResult();
  const MlpParameters& p = out.parameters.stages.at(0);
  const Samples test = Bars(20, 4);
  absl::StatusOr<Matrix> predicted = Predict(out.model_file, test.x);
  ASSERT_TRUE(predicted.ok()) << predicted.status();
  ASSERT_EQ(predicted->rows, 20);
  ASSERT_EQ(predicted->cols, 2);
  std::vector<double> reference;
  for (int64_t r = 0; r < test.x.rows; ++r) {
    const std::vector<double> row =
        ReferenceForward(p, test.x.data.data() + r * test.x.cols);
    reference.insert(reference.end(), row.begin(), row.end());
  }
  EXPECT_LT(MaxRelativeDifference(predicted->data, reference), 1e-4);
  // mlp.h's reference forward pass (which the ONNX export and the
  // quantiser are checked against) agrees too.
  EXPECT_LT(
      MaxRelativeDifference(predicted->data,
                            Forward(out.parameters, test.x.data, test.x.rows)),
      1e-4);
  // More rows than Predict runs at once: the same outputs as in one call.
  const Samples many = Bars(1100, 8);
  absl::StatusOr<Matrix> all = Predict(out.model_file, many.x);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->rows, 1100);
  Matrix tail{76,
              many.x.cols,
              {many.x.data.begin() + 1024 * many.x.cols, many.x.data.end()}};
  absl::StatusOr<Matrix> alone = Predict(out.model_file, tail);
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_EQ(std::vector<double>(all->data.begin() + 1024 * 2, all->data.end()),
            alone->data);
  // The running statistics were trained: folding is not the identity.
  const ConvParameters& bn = p.conv_layers[0];
  EXPECT_NE(bn.bn_running_mean[0], 0.0);
  EXPECT_NE(bn.bn_running_var[0], 1.0);
}

// Every activation and both poolings, with batch norm on layers that are
// folded into different convolutions, dropout (inactive in the file).
v1::Genome MixedGenome() {
  v1::Genome genome;
  AddConv(genome, 4, 5, v1::ACTIVATION_TANH, v1::POOLING_AVERAGE)
      ->set_batch_norm(true);
  v1::ConvLayer* l1 =
      AddConv(genome, 4, 3, v1::ACTIVATION_SILU, v1::POOLING_NONE);
  l1->set_residual(true);
  l1->set_batch_norm(true);
  l1->set_dropout(0.25);
  AddConv(genome, 6, 1, v1::ACTIVATION_GELU, v1::POOLING_MAX);
  AddConv(genome, 6, 3, v1::ACTIVATION_SINE, v1::POOLING_NONE)
      ->set_batch_norm(true);
  v1::DenseLayer* d0 = genome.add_hidden_layers();
  d0->set_width(8);
  d0->set_activation(v1::ACTIVATION_TANH);
  v1::DenseLayer* d1 = genome.add_hidden_layers();
  d1->set_width(8);
  d1->set_activation(v1::ACTIVATION_GELU);
  d1->set_residual(true);
  v1::TrainingConfig* t = genome.mutable_training();
  t->set_learning_rate(5e-3);
  t->set_adam_steps(60);
  t->set_batch_size(16);
  t->set_weight_decay(1e-3);
  return genome;
}

TEST(ConvTrainerTest, FoldedBatchNormMatchesTheEvalModeModules) {
  TrainJob job = BarsJob(MixedGenome());
  job.class_count = 3;  // a third class no image has: three logits
  absl::StatusOr<TrainOutput> out = Train(job);
  ASSERT_TRUE(out.ok()) << out.status();
  const MlpParameters& p = out->parameters.stages.at(0);
  const Samples test = Bars(16, 5);
  absl::StatusOr<Matrix> file = Predict(out->model_file, test.x);
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<Matrix> modules = ConvModuleForward(p, test.x);
  ASSERT_TRUE(modules.ok()) << modules.status();
  ASSERT_EQ(file->cols, 3);
  EXPECT_LT(MaxRelativeDifference(file->data, modules->data), 1e-4);
  std::vector<double> reference;
  for (int64_t r = 0; r < test.x.rows; ++r) {
    const std::vector<double> row =
        ReferenceForward(p, test.x.data.data() + r * test.x.cols);
    reference.insert(reference.end(), row.begin(), row.end());
  }
  EXPECT_LT(MaxRelativeDifference(file->data, reference), 1e-4);
}

// AdamW decays the kernels and weight matrices only. With every hidden
// neuron of the dense layer dead (ReLU of a bias of -1000), no gradient
// reaches any parameter but the output bias, so Adam moves nothing else and
// what changes is decay alone: each kernel and weight matrix is scaled by the
// schedule's product of (1 - lr * weight_decay), and the biases and the batch
// normalisation's scales and shifts keep their values to the bit.
TEST(ConvTrainerTest, WeightDecayShrinksKernelsAndWeightsOnly) {
  TrainJob shaped = BarsJob(BarsGenome());
  shaped.class_count = 0;  // regression on the label: one output
  shaped.genome.mutable_training()->set_adam_steps(20);
  absl::StatusOr<TrainOutput> start = Train(shaped);
  ASSERT_TRUE(start.ok()) << start.status();
  NetworkParameters initial = start->parameters;
  MlpParameters& before = initial.stages.at(0);
  ASSERT_EQ(before.layers.size(), 2u);
  std::fill(before.layers[0].bias.begin(), before.layers[0].bias.end(), -1e3);
  before.layers[1].bias = {5.0};  // far off: the trained weights win

  TrainJob job = shaped;
  job.initial = initial;
  v1::TrainingConfig* t = job.genome.mutable_training();
  t->set_adam_steps(60);
  t->set_weight_decay(0.1);
  absl::StatusOr<TrainOutput> out = Train(job);
  ASSERT_TRUE(out.ok()) << out.status();
  const MlpParameters& after = out->parameters.stages.at(0);

  const double shrink =
      after.conv_layers[0].weight[0] / before.conv_layers[0].weight[0];
  EXPECT_LT(shrink, 0.99);
  EXPECT_GT(shrink, 0.5);
  auto expect_shrunk = [&](const std::vector<double>& a,
                           const std::vector<double>& b, const char* what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    for (size_t i = 0; i < a.size(); ++i) {
      // float32 rounding of each step's product
      EXPECT_NEAR(a[i], b[i] * shrink, 1e-5 * std::abs(b[i]) + 1e-30)
          << what << " " << i;
    }
  };
  for (size_t l = 0; l < before.conv_layers.size(); ++l) {
    const ConvParameters& b = before.conv_layers[l];
    const ConvParameters& a = after.conv_layers[l];
    expect_shrunk(a.weight, b.weight, "conv weight");
    EXPECT_EQ(a.bias, b.bias) << l;
    EXPECT_EQ(a.bn_scale, b.bn_scale) << l;
    EXPECT_EQ(a.bn_shift, b.bn_shift) << l;
  }
  expect_shrunk(after.layers[0].weight, before.layers[0].weight, "dense");
  expect_shrunk(after.layers[1].weight, before.layers[1].weight, "output");
  EXPECT_EQ(after.layers[0].bias, before.layers[0].bias);
  EXPECT_LT(after.layers[1].bias[0], 5.0);  // Adam moved the one live one
}

TEST(ConvTrainerTest, SameJobSameWeights) {
  v1::Genome genome = BarsGenome();
  genome.mutable_training()->set_adam_steps(30);
  genome.mutable_conv_layers(0)->set_dropout(0.2);  // dropout's RNG too
  const TrainJob job = BarsJob(genome);
  absl::StatusOr<TrainOutput> a = Train(job);
  absl::StatusOr<TrainOutput> b = Train(job);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  const MlpParameters& pa = a->parameters.stages.at(0);
  const MlpParameters& pb = b->parameters.stages.at(0);
  for (size_t i = 0; i < pa.conv_layers.size(); ++i) {
    EXPECT_EQ(pa.conv_layers[i].weight, pb.conv_layers[i].weight) << i;
    EXPECT_EQ(pa.conv_layers[i].bn_running_var,
              pb.conv_layers[i].bn_running_var)
        << i;
  }
  for (size_t i = 0; i < pa.layers.size(); ++i) {
    EXPECT_EQ(pa.layers[i].weight, pb.layers[i].weight) << i;
  }
  EXPECT_EQ(a->metrics.validation().cross_entropy(),
            b->metrics.validation().cross_entropy());
  // Another seed trains another network.
  TrainJob other = job;
  other.seed = 8;
  absl::StatusOr<TrainOutput> c = Train(other);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_NE(c->parameters.stages.at(0).conv_layers[0].weight,
            pa.conv_layers[0].weight);
}

TEST(ConvTrainerTest, AGaussianLayerReadingTheImageStartsWithBiases) {
  // As in the MLP trainer (initialisation.h): biases U(-1, 1) where a
  // Gaussian layer reads the standardised pixels, zero after it. One step at
  // a negligible rate leaves them where they started.
  v1::Genome genome;
  AddConv(genome, 16, 3, v1::ACTIVATION_GAUSSIAN, v1::POOLING_MAX);
  AddConv(genome, 16, 3, v1::ACTIVATION_GAUSSIAN, v1::POOLING_NONE);
  v1::DenseLayer* dense = genome.add_hidden_layers();
  dense->set_width(16);
  dense->set_activation(v1::ACTIVATION_GAUSSIAN);
  genome.mutable_training()->set_learning_rate(1e-12);
  genome.mutable_training()->set_adam_steps(1);
  genome.mutable_training()->set_batch_size(32);
  absl::StatusOr<TrainOutput> out = Train(BarsJob(genome));
  ASSERT_TRUE(out.ok()) << out.status();
  const MlpParameters& stage = out->parameters.stages.at(0);
  auto largest = [](const std::vector<double>& values) {
    double m = 0;
    for (double v : values) m = std::max(m, std::fabs(v));
    return m;
  };
  EXPECT_LE(largest(stage.conv_layers[0].bias), 1.0 + 1e-6);
  EXPECT_GT(largest(stage.conv_layers[0].bias), 0.5);
  EXPECT_LT(largest(stage.conv_layers[1].bias), 1e-6);
  EXPECT_LT(largest(stage.layers[0].bias), 1e-6);
}

TEST(ConvTrainerTest, ContinueStartsFromTheParent) {
  const TrainOutput& parent = BarsResult();
  // No Adam step: the child is its parent, to the bit.
  TrainJob job = BarsJob(BarsGenome());
  job.genome.mutable_training()->set_adam_steps(0);
  job.genome.mutable_training()->set_warmup_steps(0);
  job.initial = parent.parameters;
  job.seed = 99;
  absl::StatusOr<TrainOutput> child = Train(job);
  ASSERT_TRUE(child.ok()) << child.status();
  const MlpParameters& pc = child->parameters.stages.at(0);
  const MlpParameters& pp = parent.parameters.stages.at(0);
  for (size_t i = 0; i < pp.conv_layers.size(); ++i) {
    EXPECT_EQ(pc.conv_layers[i].weight, pp.conv_layers[i].weight) << i;
    EXPECT_EQ(pc.conv_layers[i].bn_running_mean,
              pp.conv_layers[i].bn_running_mean)
        << i;
  }
  EXPECT_EQ(pc.x_mean, pp.x_mean);
  const Samples test = Bars(10, 6);
  absl::StatusOr<Matrix> a = Predict(parent.model_file, test.x);
  absl::StatusOr<Matrix> b = Predict(child->model_file, test.x);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->data, b->data);

  // A short continuation at a small learning rate (step_fraction scales its
  // steps) stays at least as good on validation: the parent's weights
  // compete.
  job.genome.mutable_training()->set_adam_steps(200);
  job.genome.mutable_training()->set_learning_rate(1e-4);
  job.step_fraction = 0.25;
  absl::StatusOr<TrainOutput> longer = Train(job);
  ASSERT_TRUE(longer.ok()) << longer.status();
  EXPECT_EQ(longer->stages.at(0).adam_steps, 50);
  EXPECT_GE(longer->metrics.validation().accuracy(),
            parent.metrics.validation().accuracy());
}

TEST(ConvTrainerTest, BadShapesAreInvalidArguments) {
  const auto expect_invalid = [](const TrainJob& job, const std::string& text) {
    absl::StatusOr<TrainOutput> out = Train(job);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument)
        << out.status();
    EXPECT_THAT(std::string(out.status().message()), HasSubstr(text));
  };
  v1::Genome genome = BarsGenome();
  genome.mutable_training()->set_adam_steps(1);
  genome.mutable_training()->set_warmup_steps(0);

  TrainJob no_shape = BarsJob(genome);
  no_shape.image_height = no_shape.image_width = 0;
  expect_invalid(no_shape, "no image shape");

  TrainJob wrong_shape = BarsJob(genome);
  wrong_shape.image_height = 4;
  wrong_shape.image_width = 8;
  expect_invalid(wrong_shape, "has 32 pixels but the data has 64 inputs");

  // 8 -> 4 -> 2 -> 1 -> 0.
  v1::Genome pools = genome;
  for (int i = 0; i < 3; ++i) {
    AddConv(pools, 8, 3, v1::ACTIVATION_RELU, v1::POOLING_MAX);
  }
  expect_invalid(BarsJob(pools), "conv_layers[4].pooling");

  v1::Genome first_residual = genome;
  first_residual.mutable_conv_layers(0)->set_residual(true);
  expect_invalid(BarsJob(first_residual), "conv_layers[0].residual");

  v1::Genome kernel = genome;
  kernel.mutable_conv_layers(1)->set_kernel_size(4);
  expect_invalid(BarsJob(kernel), "conv_layers[1].kernel_size");

  v1::Genome residual_stage = genome;
  residual_stage.add_residual_stages()->add_hidden_layers()->set_width(4);
  expect_invalid(BarsJob(residual_stage), "residual_stages");

  // Inherited weights of another architecture.
  TrainJob wider = BarsJob(genome);
  wider.genome.mutable_conv_layers(0)->set_channels(16);
  wider.genome.mutable_conv_layers(1)->set_channels(16);
  wider.initial = BarsResult().parameters;
  expect_invalid(wider, "conv_layers[0] (8 channels k3 relu bn max)");

  TrainJob other_image = BarsJob(genome);
  other_image.initial = BarsResult().parameters;
  other_image.initial->stages[0].image_height = 16;
  other_image.initial->stages[0].image_width = 4;
  expect_invalid(other_image, "16x4");
}

// Images of one vertical bar; the target is its column (0..7) and twice
// that: a regression with two outputs.
Samples BarColumns(int rows, uint64_t seed) {
  Samples s = Bars(2 * rows, seed);
  Samples out;
  out.x = {rows, kSide * kSide, {}};
  out.y = {rows, 2, {}};
  for (int r = 0; r < 2 * rows; r += 2) {  // the even rows: vertical bars
    const double* image = s.x.data.data() + r * kSide * kSide;
    out.x.data.insert(out.x.data.end(), image, image + kSide * kSide);
    const int column =
        static_cast<int>(std::max_element(image, image + kSide) - image);
    out.y.data.push_back(column);
    out.y.data.push_back(2 * column);
  }
  return out;
}

TEST(ConvTrainerTest, RegressionOnImages) {
  v1::Genome genome = BarsGenome();
  genome.mutable_training()->set_adam_steps(300);
  genome.mutable_training()->set_lbfgs_steps(20);  // no L-BFGS here
  TrainJob job = BarsJob(genome);
  job.class_count = 0;
  job.training = BarColumns(300, 11);
  job.validation = BarColumns(100, 12);
  job.test = BarColumns(100, 13);
  absl::StatusOr<TrainOutput> out = Train(job);
  ASSERT_TRUE(out.ok()) << out.status();
  const MlpParameters& p = out->parameters.stages.at(0);
  // Targets standardised per column.
  ASSERT_EQ(p.y_mean.size(), 2u);
  EXPECT_NEAR(p.y_mean[1], 2 * p.y_mean[0], 1e-9);
  EXPECT_NEAR(p.y_std[1], 2 * p.y_std[0], 1e-9);
  EXPECT_EQ(out->stages.at(0).lbfgs_iterations, 0);
  // The columns are 0..7 (deviation about 2.3 and 4.6).
  EXPECT_LT(out->metrics.test().rmse(), 0.5);
  EXPECT_LT(out->metrics.validation().max_abs_error(), 2.0);
  // Selected on what the file computes, to float32 rounding.
  EXPECT_NEAR(out->stages.at(0).after_adam,
              out->metrics.validation().max_abs_error(), 1e-3);
}

TEST(ConvTrainerTest, CancelStopsTraining) {
  std::atomic<bool> cancel{true};
  TrainJob job = BarsJob(BarsGenome());
  job.cancel = &cancel;
  absl::StatusOr<TrainOutput> out = Train(job);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kCancelled) << out.status();
}

TEST(ConvTrainerTest, PatienceStopsEarly) {
  v1::Genome genome = BarsGenome();
  genome.mutable_training()->set_adam_steps(2000);
  genome.mutable_training()->set_patience_steps(50);
  absl::StatusOr<TrainOutput> out = Train(BarsJob(genome));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_LT(out->stages.at(0).adam_steps, 2000);
  EXPECT_GE(out->metrics.validation().accuracy(), 0.95);
}

TEST(ConvTrainerTest, TimeLimitStopsTrainingWithTheBestWeightsSoFar) {
  v1::Genome genome = BarsGenome();
  genome.mutable_training()->set_adam_steps(kMaxAdamSteps);
  TrainJob job = BarsJob(genome);
  job.max_training_seconds = 1;
  absl::StatusOr<TrainOutput> out = Train(job);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->metrics.stopped_at_time_limit());
  EXPECT_TRUE(out->stages.at(0).time_limited);
  EXPECT_GT(out->stages[0].adam_steps, 0);
  EXPECT_LT(out->stages[0].adam_steps, kMaxAdamSteps);
  // Loose: a loaded machine may pause the process after the last check.
  EXPECT_LT(out->metrics.training_seconds(), job.max_training_seconds + 1);
  // The best weights on the validation rows are the model's (folding the
  // batch normalisation may move a borderline row of the 200).
  EXPECT_NEAR(out->metrics.validation().accuracy(),
              1 - out->stages[0].after_adam, 0.006);
}

TEST(ConvTrainerTest, LatencyOfAnImageNetwork) {
  absl::StatusOr<double> latency =
      MeasureLatency(BarsResult().parameters, /*threads=*/1, /*runs=*/5);
  ASSERT_TRUE(latency.ok()) << latency.status();
  EXPECT_GT(*latency, 0);
}

constexpr char kPython[] = "/usr/bin/python3";

TEST(ConvTrainerTest, PythonLoadsTheModelFile) {
  if (std::system(absl::StrCat(kPython, " -c 'import torch' >/dev/null 2>&1")
                      .c_str()) != 0) {
    GTEST_SKIP() << kPython << " cannot import torch";
  }
  const TrainOutput& out = BarsResult();
  const std::string dir = ::testing::TempDir();
  const std::string model_path = dir + "/evonas_conv_trainer_test.pt";
  {
    std::ofstream f(model_path, std::ios::binary);
    f.write(out.model_file.data(),
            static_cast<std::streamsize>(out.model_file.size()));
    ASSERT_TRUE(f.good());
  }
  const Samples test = Bars(3, 7);
  std::string rows;
  for (int64_t r = 0; r < test.x.rows; ++r) {
    absl::StrAppend(&rows, "[");
    for (int64_t j = 0; j < test.x.cols; ++j) {
      absl::StrAppend(
          &rows, absl::StrFormat("%.17g,", test.x.data[r * test.x.cols + j]));
    }
    absl::StrAppend(&rows, "],");
  }
  const std::string script_path = dir + "/evonas_conv_trainer_test.py";
  {
    std::ofstream f(script_path);
    f << "import torch\n"
      << "m = torch.jit.load('" << model_path << "')\n"
      << "x = torch.tensor([" << rows << "], dtype=torch.float64)\n"
      << "with torch.no_grad():\n"
      << "    y = m(x)\n"
      << "assert y.dtype == torch.float64\n"
      << "print(' '.join(repr(v) for v in y.flatten().tolist()))\n";
  }
  FILE* pipe = popen(absl::StrCat(kPython, " ", script_path).c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) {
    output.append(buffer, n);
  }
  ASSERT_EQ(pclose(pipe), 0) << output;
  std::istringstream in(output);
  std::vector<double> python;
  for (double v; in >> v;) python.push_back(v);
  absl::StatusOr<Matrix> cpp = Predict(out.model_file, test.x);
  ASSERT_TRUE(cpp.ok()) << cpp.status();
  ASSERT_EQ(python.size(), cpp->data.size()) << output;
  EXPECT_LT(MaxRelativeDifference(python, cpp->data), 1e-6);
  std::remove(model_path.c_str());
  std::remove(script_path.c_str());
}

}  // namespace
}  // namespace evonas::model
