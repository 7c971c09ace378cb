#include "common/latency_table.h"

#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace evonas {
namespace {

v1::LatencyTable TableWith(double output_intercept, double output_slope,
                           double tanh_intercept, double tanh_slope) {
  v1::LatencyTable table;
  table.set_hardware_class("Test CPU x1");
  v1::LayerLatencyModel* output = table.add_layers();
  output->set_activation(v1::ACTIVATION_UNSPECIFIED);
  output->set_intercept_seconds(output_intercept);
  output->set_seconds_per_multiply_add(output_slope);
  v1::LayerLatencyModel* tanh = table.add_layers();
  tanh->set_activation(v1::ACTIVATION_TANH);
  tanh->set_intercept_seconds(tanh_intercept);
  tanh->set_seconds_per_multiply_add(tanh_slope);
  return table;
}

v1::Genome Chain(v1::Activation activation, int depth, int width) {
  v1::Genome genome;
  for (int i = 0; i < depth; ++i) {
    v1::DenseLayer* layer = genome.add_hidden_layers();
    layer->set_width(width);
    layer->set_activation(activation);
  }
  return genome;
}

// Timings of tanh and relu chains of depths 1..3, widths 4..256, made by
// `truth` itself (times `noise(i)` for timing i).
std::vector<NetworkTiming> TimingsOf(const v1::LatencyTable& truth,
                                     double (*noise)(int)) {
  std::vector<NetworkTiming> timings;
  for (v1::Activation activation : {v1::ACTIVATION_TANH, v1::ACTIVATION_RELU}) {
    for (int depth : {1, 3}) {
      for (int width : {4, 32, 256}) {
        for (int outputs : {1, 8}) {
          NetworkTiming& t = timings.emplace_back();
          t.genome = Chain(activation, depth, width);
          t.inputs = 3;
          t.outputs = outputs;
          t.seconds = *EstimateLatencySeconds(t.genome, 3, outputs, truth) *
                      noise(static_cast<int>(timings.size()));
        }
      }
    }
  }
  return timings;
}

v1::LatencyTable ThreeModels() {
  v1::LatencyTable truth = TableWith(4e-6, 2e-10, 1.5e-6, 8e-10);
  v1::LayerLatencyModel* relu = truth.add_layers();
  relu->set_activation(v1::ACTIVATION_RELU);
  relu->set_intercept_seconds(1e-6);
  relu->set_seconds_per_multiply_add(5e-10);
  return truth;
}

const v1::LayerLatencyModel& Model(const v1::LatencyTable& table,
                                   v1::Activation activation) {
  for (const v1::LayerLatencyModel& m : table.layers()) {
    if (m.activation() == activation) return m;
  }
  ADD_FAILURE() << "no model for " << v1::Activation_Name(activation);
  return table.layers(0);
}

TEST(FitLatencyTableTest, RecoversTheLayerModelsFromWholeNetworks) {
  const v1::LatencyTable truth = ThreeModels();
  auto fitted = FitLatencyTable("Test CPU x1", TimingsOf(truth, [](int) {
                                  return 1.0;
                                }));
  ASSERT_TRUE(fitted.ok()) << fitted.status();
  EXPECT_TRUE(ValidateLatencyTable(*fitted).ok());
  EXPECT_EQ(fitted->hardware_class(), "Test CPU x1");
  EXPECT_EQ(fitted->calibration_points(), 24);
  ASSERT_EQ(fitted->layers_size(), 3);
  for (const v1::LayerLatencyModel& want : truth.layers()) {
    const v1::LayerLatencyModel& got = Model(*fitted, want.activation());
    EXPECT_NEAR(got.intercept_seconds(), want.intercept_seconds(),
                1e-6 * want.intercept_seconds());
    EXPECT_NEAR(got.seconds_per_multiply_add(),
                want.seconds_per_multiply_add(),
                1e-6 * want.seconds_per_multiply_add());
  }
}

TEST(FitLatencyTableTest, NoisyTimingsGiveNonNegativeCloseModels) {
  const v1::LatencyTable truth = ThreeModels();
  // +-10% alternating noise.
  auto fitted = FitLatencyTable("Test CPU x1", TimingsOf(truth, [](int i) {
                                  return i % 2 == 0 ? 1.1 : 0.9;
                                }));
  ASSERT_TRUE(fitted.ok()) << fitted.status();
  EXPECT_TRUE(ValidateLatencyTable(*fitted).ok());
  // Estimates of an unseen mixed network stay within the noise.
  v1::Genome genome = Chain(v1::ACTIVATION_TANH, 2, 64);
  v1::DenseLayer* relu = genome.add_hidden_layers();
  relu->set_width(16);
  relu->set_activation(v1::ACTIVATION_RELU);
  const double want = *EstimateLatencySeconds(genome, 3, 1, truth);
  EXPECT_NEAR(*EstimateLatencySeconds(genome, 3, 1, *fitted), want,
              0.15 * want);
}

TEST(FitLatencyTableTest, ATrueZeroCoefficientIsNotFittedNegative) {
  // Without a per-layer overhead the free fit of noisy timings would put
  // some intercepts below 0; the constrained one clamps them.
  v1::LatencyTable truth = ThreeModels();
  for (v1::LayerLatencyModel& m : *truth.mutable_layers()) {
    m.set_intercept_seconds(0);
  }
  auto fitted = FitLatencyTable("Test CPU x1", TimingsOf(truth, [](int i) {
                                  return 1.0 + 0.05 * ((i * 7) % 5 - 2);
                                }));
  ASSERT_TRUE(fitted.ok()) << fitted.status();
  for (const v1::LayerLatencyModel& m : fitted->layers()) {
    EXPECT_GE(m.intercept_seconds(), 0);
    EXPECT_GT(m.seconds_per_multiply_add(), 0);
  }
  EXPECT_TRUE(ValidateLatencyTable(*fitted).ok());
}

TEST(FitLatencyTableTest, RejectsTimingsThatCannotSeparateTheModels) {
  // One depth and one width per activation: intercepts and slopes of the
  // hidden and output layers are confounded.
  std::vector<NetworkTiming> timings(2);
  timings[0] = {Chain(v1::ACTIVATION_TANH, 2, 16), 3, 1, 1e-5};
  timings[1] = {Chain(v1::ACTIVATION_TANH, 2, 16), 3, 1, 1.1e-5};
  EXPECT_EQ(FitLatencyTable("x", timings).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FitLatencyTable("x", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  timings[1].seconds = std::nan("");
  EXPECT_EQ(FitLatencyTable("x", timings).status().code(),
            absl::StatusCode::kInvalidArgument);
  timings[1] = {Chain(v1::ACTIVATION_TANH, 2, 0), 3, 1, 1e-5};
  EXPECT_EQ(FitLatencyTable("x", timings).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ValidateLatencyTableTest, AcceptsAndRejects) {
  EXPECT_TRUE(ValidateLatencyTable(TableWith(1e-6, 1e-9, 2e-6, 1e-9)).ok());
  v1::LatencyTable no_class = TableWith(1e-6, 1e-9, 2e-6, 1e-9);
  no_class.clear_hardware_class();
  EXPECT_EQ(ValidateLatencyTable(no_class).code(),
            absl::StatusCode::kInvalidArgument);
  v1::LatencyTable negative = TableWith(1e-6, -1e-9, 2e-6, 1e-9);
  EXPECT_EQ(ValidateLatencyTable(negative).code(),
            absl::StatusCode::kInvalidArgument);
  v1::LatencyTable duplicate = TableWith(1e-6, 1e-9, 2e-6, 1e-9);
  *duplicate.add_layers() = duplicate.layers(1);
  EXPECT_EQ(ValidateLatencyTable(duplicate).code(),
            absl::StatusCode::kInvalidArgument);
  v1::LatencyTable long_class = TableWith(1e-6, 1e-9, 2e-6, 1e-9);
  long_class.set_hardware_class(std::string(kMaxHardwareClassLength + 1, 'x'));
  EXPECT_EQ(ValidateLatencyTable(long_class).code(),
            absl::StatusCode::kInvalidArgument);
  v1::LatencyTable unknown = TableWith(1e-6, 1e-9, 2e-6, 1e-9);
  unknown.mutable_layers(1)->set_activation(static_cast<v1::Activation>(99));
  EXPECT_EQ(ValidateLatencyTable(unknown).code(),
            absl::StatusCode::kInvalidArgument);
  v1::LatencyTable no_output;
  no_output.set_hardware_class("x");
  *no_output.add_layers() = duplicate.layers(1);
  EXPECT_EQ(ValidateLatencyTable(no_output).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EstimateLatencySecondsTest, SumsEveryAffineLayerOfEveryStage) {
  const v1::LatencyTable table = TableWith(1.0, 0.001, 10.0, 0.01);
  v1::Genome genome;
  v1::DenseLayer* a = genome.add_hidden_layers();
  a->set_width(4);
  a->set_activation(v1::ACTIVATION_TANH);
  v1::DenseLayer* b = genome.add_hidden_layers();
  b->set_width(5);
  b->set_activation(v1::ACTIVATION_TANH);
  // 3 -> 4 (tanh) -> 5 (tanh) -> 2 (linear).
  const double main_stage = (10 + 0.01 * 12) + (10 + 0.01 * 20) + (1 + 0.001 * 10);
  auto estimate = EstimateLatencySeconds(genome, 3, 2, table);
  ASSERT_TRUE(estimate.ok()) << estimate.status();
  EXPECT_NEAR(*estimate, main_stage, 1e-12);

  v1::Stage* stage = genome.add_residual_stages();
  v1::DenseLayer* c = stage->add_hidden_layers();
  c->set_width(6);
  c->set_activation(v1::ACTIVATION_TANH);
  // 3 -> 6 (tanh) -> 2 (linear).
  const double residual_stage = (10 + 0.01 * 18) + (1 + 0.001 * 12);
  estimate = EstimateLatencySeconds(genome, 3, 2, table);
  ASSERT_TRUE(estimate.ok()) << estimate.status();
  EXPECT_NEAR(*estimate, main_stage + residual_stage, 1e-12);
}

TEST(EstimateGenomeCostTest, TakesTheSlowestTableThatCanEstimate) {
  const v1::Genome genome = Chain(v1::ACTIVATION_TANH, 1, 4);
  const v1::LatencyTable fast = TableWith(1, 0, 1, 0);  // 2 s
  const v1::LatencyTable slow = TableWith(3, 0, 3, 0);  // 6 s
  v1::LatencyTable no_tanh = TableWith(50, 0, 50, 0);
  no_tanh.mutable_layers(1)->set_activation(v1::ACTIVATION_RELU);
  const v1::GenomeCost cost =
      EstimateGenomeCost(genome, 3, 1, {fast, slow, no_tanh});
  EXPECT_DOUBLE_EQ(cost.estimated_latency_seconds(), 6);
  EXPECT_EQ(cost.parameter_count(), 3 * 4 + 4 + 4 + 1);
  EXPECT_EQ(EstimateGenomeCost(genome, 3, 1, {}).estimated_latency_seconds(),
            0);
}

TEST(EstimateLatencySecondsTest, MissingActivationIsNotFound) {
  v1::Genome genome;
  v1::DenseLayer* a = genome.add_hidden_layers();
  a->set_width(4);
  a->set_activation(v1::ACTIVATION_SINE);
  EXPECT_EQ(EstimateLatencySeconds(genome, 3, 2, TableWith(1, 1, 1, 1))
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

// TableWith's models as float32_layers as well, every coefficient times
// `factor`.
v1::LatencyTable WithFloat32(v1::LatencyTable table, double factor) {
  const v1::LatencyTable float64 = table;
  for (const v1::LayerLatencyModel& m : float64.layers()) {
    v1::LayerLatencyModel* copy = table.add_float32_layers();
    copy->set_activation(m.activation());
    copy->set_intercept_seconds(factor * m.intercept_seconds());
    copy->set_seconds_per_multiply_add(factor * m.seconds_per_multiply_add());
  }
  return table;
}

TEST(EstimateLatencySecondsTest, Float32DenseGenomesUseTheFloat32Models) {
  v1::Genome genome = Chain(v1::ACTIVATION_TANH, 2, 4);
  const v1::LatencyTable table =
      WithFloat32(TableWith(1.0, 0.001, 10, 0.01), 2);
  const double float64 = *EstimateLatencySeconds(genome, 3, 2, table);
  genome.set_precision(v1::PRECISION_FLOAT32);
  auto float32 = EstimateLatencySeconds(genome, 3, 2, table);
  ASSERT_TRUE(float32.ok()) << float32.status();
  EXPECT_NEAR(*float32, 2 * float64, 1e-12);

  // A table without float32 models estimates no float32 genome.
  const absl::StatusOr<double> none =
      EstimateLatencySeconds(genome, 3, 2, TableWith(1.0, 0.001, 10, 0.01));
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("float32"), std::string::npos)
      << none.status();
}

TEST(FitLatencyTableTest, RecoversFloat32ModelsBesideFloat64Ones) {
  const v1::LatencyTable truth = WithFloat32(ThreeModels(), 1.3);
  std::vector<NetworkTiming> timings =
      TimingsOf(truth, [](int) { return 1.0; });
  const size_t float64_timings = timings.size();
  for (size_t i = 0; i < float64_timings; ++i) {
    NetworkTiming t = timings[i];
    t.genome.set_precision(v1::PRECISION_FLOAT32);
    t.seconds = *EstimateLatencySeconds(t.genome, t.inputs, t.outputs, truth);
    timings.push_back(t);
  }
  auto fitted = FitLatencyTable("Test CPU x1", timings);
  ASSERT_TRUE(fitted.ok()) << fitted.status();
  EXPECT_TRUE(ValidateLatencyTable(*fitted).ok());
  ASSERT_EQ(fitted->layers_size(), 3);
  ASSERT_EQ(fitted->float32_layers_size(), 3);
  for (const v1::LayerLatencyModel& want : truth.float32_layers()) {
    bool found = false;
    for (const v1::LayerLatencyModel& got : fitted->float32_layers()) {
      if (got.activation() != want.activation()) continue;
      found = true;
      EXPECT_NEAR(got.intercept_seconds(), want.intercept_seconds(),
                  1e-6 * want.intercept_seconds());
      EXPECT_NEAR(got.seconds_per_multiply_add(),
                  want.seconds_per_multiply_add(),
                  1e-6 * want.seconds_per_multiply_add());
    }
    EXPECT_TRUE(found) << v1::Activation_Name(want.activation());
  }
  for (const v1::LayerLatencyModel& want : truth.layers()) {
    EXPECT_NEAR(Model(*fitted, want.activation()).intercept_seconds(),
                want.intercept_seconds(), 1e-6 * want.intercept_seconds());
  }

  // Validation: float32 models need their output layer's, once each.
  v1::LatencyTable no_output = *fitted;
  no_output.clear_float32_layers();
  *no_output.add_float32_layers() = fitted->float32_layers(1);
  if (no_output.float32_layers(0).activation() == v1::ACTIVATION_UNSPECIFIED) {
    *no_output.mutable_float32_layers(0) = fitted->float32_layers(2);
  }
  EXPECT_EQ(ValidateLatencyTable(no_output).code(),
            absl::StatusCode::kInvalidArgument);
  v1::LatencyTable duplicate = *fitted;
  *duplicate.add_float32_layers() = fitted->float32_layers(0);
  EXPECT_EQ(ValidateLatencyTable(duplicate).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EstimateLatencySecondsTest, LayerNormCostsPerNeuron) {
  v1::LatencyTable table = TableWith(1.0, 0.001, 10.0, 0.01);
  v1::Genome genome = Chain(v1::ACTIVATION_TANH, 2, 4);
  genome.mutable_hidden_layers(1)->set_layer_norm(true);
  // Without a layer-norm model the table cannot estimate the genome.
  EXPECT_EQ(EstimateLatencySeconds(genome, 3, 2, table).status().code(),
            absl::StatusCode::kNotFound);
  table.set_layer_norm_seconds_per_neuron(0.5);
  // 3 -> 4 (tanh) -> 4 (tanh, normalised) -> 2 (linear).
  auto estimate = EstimateLatencySeconds(genome, 3, 2, table);
  ASSERT_TRUE(estimate.ok()) << estimate.status();
  EXPECT_NEAR(*estimate,
              (10 + 0.01 * 12) + (10 + 0.01 * 16 + 0.5 * 4) + (1 + 0.001 * 8),
              1e-12);
  table.set_layer_norm_seconds_per_neuron(-1);
  EXPECT_EQ(ValidateLatencyTable(table).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FitLatencyTableTest, RecoversTheLayerNormCost) {
  v1::LatencyTable truth = ThreeModels();
  truth.set_layer_norm_seconds_per_neuron(3e-9);
  std::vector<NetworkTiming> timings =
      TimingsOf(truth, [](int) { return 1.0; });
  // Fitted without normalised networks, the table has no such model.
  auto plain = FitLatencyTable("Test CPU x1", timings);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->has_layer_norm_seconds_per_neuron());
  for (int depth : {1, 3}) {
    for (int width : {4, 32, 256}) {
      NetworkTiming& t = timings.emplace_back();
      t.genome = Chain(v1::ACTIVATION_TANH, depth, width);
      for (v1::DenseLayer& layer : *t.genome.mutable_hidden_layers()) {
        layer.set_layer_norm(true);
      }
      t.inputs = 3;
      t.outputs = 1;
      t.seconds = *EstimateLatencySeconds(t.genome, 3, 1, truth);
    }
  }
  auto fitted = FitLatencyTable("Test CPU x1", timings);
  ASSERT_TRUE(fitted.ok()) << fitted.status();
  EXPECT_TRUE(ValidateLatencyTable(*fitted).ok());
  ASSERT_TRUE(fitted->has_layer_norm_seconds_per_neuron());
  EXPECT_NEAR(fitted->layer_norm_seconds_per_neuron(), 3e-9, 1e-6 * 3e-9);
  EXPECT_NEAR(Model(*fitted, v1::ACTIVATION_TANH).seconds_per_multiply_add(),
              8e-10, 1e-6 * 8e-10);
}

// A conv trunk of `depth` layers of `channels` (kernel 3, the first pooling)
// before one dense relu layer of 8.
v1::Genome ConvChain(v1::Activation activation, int depth, int channels) {
  v1::Genome genome = Chain(v1::ACTIVATION_RELU, 1, 8);
  for (int i = 0; i < depth; ++i) {
    v1::ConvLayer* layer = genome.add_conv_layers();
    layer->set_channels(channels);
    layer->set_kernel_size(3);
    layer->set_activation(activation);
    if (i == 0) layer->set_pooling(v1::POOLING_MAX);
  }
  return genome;
}

TEST(EstimateLatencySecondsTest, ConvolutionalLayersUseTheirOwnModels) {
  v1::LatencyTable table = TableWith(1.0, 0.001, 10.0, 0.01);
  v1::LayerLatencyModel* relu = table.add_layers();
  relu->set_activation(v1::ACTIVATION_RELU);
  relu->set_intercept_seconds(2.0);
  relu->set_seconds_per_multiply_add(0.1);
  const v1::Genome genome = ConvChain(v1::ACTIVATION_TANH, 2, 4);
  const ImageShape image{8, 8};
  // Without convolutional models the table cannot estimate the genome.
  EXPECT_EQ(EstimateLatencySeconds(genome, 64, 3, table, image).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(EstimateLatencySeconds(genome, 64, 3, table).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::LayerLatencyModel* conv = table.add_conv_layers();
  conv->set_activation(v1::ACTIVATION_TANH);
  conv->set_intercept_seconds(5.0);
  conv->set_seconds_per_multiply_add(1e-4);
  ASSERT_TRUE(ValidateLatencyTable(table).ok());
  // 8x8x1 -> conv 9*1*4 MACs per pixel at 8x8, pooled to 4x4 -> conv 9*4*4
  // at 4x4 -> dense 64 -> 8 (relu) -> 8 -> 3 (linear).
  const double want = (5 + 1e-4 * 64 * 36) + (5 + 1e-4 * 16 * 144) +
                      (2 + 0.1 * 64 * 8) + (1 + 0.001 * 24);
  auto estimate = EstimateLatencySeconds(genome, 64, 3, table, image);
  ASSERT_TRUE(estimate.ok()) << estimate.status();
  EXPECT_NEAR(*estimate, want, 1e-9);
  EXPECT_NEAR(
      EstimateGenomeCost(genome, 64, 3, {table}, image).estimated_latency_seconds(),
      want, 1e-9);
  // An output-layer model among the convolutional ones is refused.
  v1::LatencyTable bad = table;
  bad.mutable_conv_layers(0)->set_activation(v1::ACTIVATION_UNSPECIFIED);
  EXPECT_EQ(ValidateLatencyTable(bad).code(),
            absl::StatusCode::kInvalidArgument);
  bad = table;
  *bad.add_conv_layers() = table.conv_layers(0);
  EXPECT_EQ(ValidateLatencyTable(bad).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FitLatencyTableTest, RecoversConvolutionalModelsJointly) {
  v1::LatencyTable truth = ThreeModels();
  v1::LayerLatencyModel* conv = truth.add_conv_layers();
  conv->set_activation(v1::ACTIVATION_TANH);
  conv->set_intercept_seconds(3e-6);
  conv->set_seconds_per_multiply_add(3e-11);
  std::vector<NetworkTiming> timings = TimingsOf(truth, [](int) { return 1.0; });
  for (int depth : {1, 2}) {
    for (int channels : {4, 16}) {
      for (int side : {12, 16}) {
        NetworkTiming& t = timings.emplace_back();
        t.genome = ConvChain(v1::ACTIVATION_TANH, depth, channels);
        t.inputs = side * side;
        t.outputs = 8;
        t.image = {side, side};
        t.seconds = *EstimateLatencySeconds(t.genome, t.inputs, 8, truth,
                                            t.image);
      }
    }
  }
  auto fitted = FitLatencyTable("Test CPU x1", timings);
  ASSERT_TRUE(fitted.ok()) << fitted.status();
  ASSERT_EQ(fitted->conv_layers_size(), 1);
  const v1::LayerLatencyModel& got = fitted->conv_layers(0);
  EXPECT_EQ(got.activation(), v1::ACTIVATION_TANH);
  EXPECT_NEAR(got.intercept_seconds(), 3e-6, 1e-6 * 3e-6);
  EXPECT_NEAR(got.seconds_per_multiply_add(), 3e-11, 1e-6 * 3e-11);
  EXPECT_EQ(fitted->layers_size(), 3);
  // A timed convolutional network without its image cannot be used.
  timings.back().image = {};
  EXPECT_EQ(FitLatencyTable("x", timings).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace evonas
