#include "worker/latency_calibration.h"

#include <string>

#include "common/latency_table.h"
#include "gtest/gtest.h"
#include "worker/model/mlp.h"
#include "worker/model/trainer.h"

namespace evonas::worker {
namespace {

TEST(HardwareClassTest, ModelNameAndThreads) {
  const std::string cpuinfo =
      "processor\t: 0\nvendor_id\t: AuthenticAMD\n"
      "model name\t: AMD EPYC 7B13\nflags\t\t: fpu vme\n\n"
      "processor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
  EXPECT_EQ(HardwareClass(cpuinfo, 2), "AMD EPYC 7B13 x2");
  EXPECT_EQ(HardwareClass("processor\t: 0\n", 1), "unknown CPU x1");
  EXPECT_EQ(HardwareClass("model name\t: " + std::string(400, 'A'), 1).size(),
            static_cast<size_t>(kMaxHardwareClassLength));
  EXPECT_NE(LocalHardwareClass(1), "");
}

// A network the calibration never timed: two tanh layers of 100 and a GELU
// layer of 40, 3 inputs, 2 outputs.
v1::Genome HeldOut() {
  v1::Genome genome;
  for (auto [width, activation] :
       {std::pair{100, v1::ACTIVATION_TANH}, std::pair{100, v1::ACTIVATION_TANH},
        std::pair{40, v1::ACTIVATION_GELU}}) {
    v1::DenseLayer* layer = genome.add_hidden_layers();
    layer->set_width(width);
    layer->set_activation(activation);
  }
  return genome;
}

TEST(CalibrateLatencyTest, TableEstimatesAnUntimedNetworkAsMeasured) {
  auto table = CalibrateLatency("Test CPU x1", 1);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_TRUE(ValidateLatencyTable(*table).ok());
  EXPECT_EQ(table->hardware_class(), "Test CPU x1");
  EXPECT_EQ(table->layers_size(), 7);  // six activations and the output
  EXPECT_EQ(table->conv_layers_size(), 6);
  EXPECT_EQ(table->float32_layers_size(), 7);
  EXPECT_EQ(table->calibration_points(), 204);
  EXPECT_TRUE(table->has_layer_norm_seconds_per_neuron());

  const v1::Genome genome = HeldOut();
  auto estimate = EstimateLatencySeconds(genome, 3, 2, *table);
  ASSERT_TRUE(estimate.ok()) << estimate.status();
  auto measured = model::MeasureLatency(PlaceholderNetwork(genome, 3, 2).value(), 1, 50);
  ASSERT_TRUE(measured.ok()) << measured.status();
  // The benchmark (bench/latency_estimate) measures the accuracy; this only
  // catches a table that is wrong by its units or its structure.
  EXPECT_GT(*estimate, *measured / 3) << "measured " << *measured;
  EXPECT_LT(*estimate, *measured * 3) << "measured " << *measured;

  // The same network with its first two layers normalised.
  v1::Genome normalised = genome;
  normalised.mutable_hidden_layers(0)->set_layer_norm(true);
  normalised.mutable_hidden_layers(1)->set_layer_norm(true);
  auto normalised_estimate = EstimateLatencySeconds(normalised, 3, 2, *table);
  ASSERT_TRUE(normalised_estimate.ok()) << normalised_estimate.status();
  auto normalised_measured = model::MeasureLatency(
      PlaceholderNetwork(normalised, 3, 2).value(), 1, 50);
  ASSERT_TRUE(normalised_measured.ok()) << normalised_measured.status();
  EXPECT_GE(*normalised_estimate, *estimate);
  EXPECT_GT(*normalised_estimate, *normalised_measured / 3)
      << "measured " << *normalised_measured;
  EXPECT_LT(*normalised_estimate, *normalised_measured * 3)
      << "measured " << *normalised_measured;

  // The same network in float32, timed as Train exports it (casts
  // included) and estimated with the float32 models.
  v1::Genome float32 = genome;
  float32.set_precision(v1::PRECISION_FLOAT32);
  const model::NetworkParameters float32_network =
      PlaceholderNetwork(float32, 3, 2).value();
  for (const model::MlpParameters& stage : float32_network.stages) {
    EXPECT_TRUE(stage.float32);
    for (double w : stage.layers.front().weight) {
      EXPECT_EQ(w, static_cast<double>(static_cast<float>(w)));
    }
  }
  auto float32_estimate = EstimateLatencySeconds(float32, 3, 2, *table);
  ASSERT_TRUE(float32_estimate.ok()) << float32_estimate.status();
  auto float32_measured = model::MeasureLatency(float32_network, 1, 50);
  ASSERT_TRUE(float32_measured.ok()) << float32_measured.status();
  EXPECT_GT(*float32_estimate, *float32_measured / 3)
      << "measured " << *float32_measured;
  EXPECT_LT(*float32_estimate, *float32_measured * 3)
      << "measured " << *float32_measured;

  // A wider network is never estimated faster.
  v1::Genome wider = genome;
  wider.mutable_hidden_layers(1)->set_width(400);
  EXPECT_GE(*EstimateLatencySeconds(wider, 3, 2, *table), *estimate);

  // A convolutional network of sizes the calibration never timed: 28 x 28
  // images, kernel 5, 24 channels, average pooling, a residual layer.
  v1::Genome conv = genome;
  auto add_conv = [&](int channels, int kernel, v1::Pooling pooling,
                      bool residual) {
    v1::ConvLayer* layer = conv.add_conv_layers();
    layer->set_channels(channels);
    layer->set_kernel_size(kernel);
    layer->set_activation(v1::ACTIVATION_RELU);
    layer->set_pooling(pooling);
    layer->set_residual(residual);
  };
  add_conv(24, 5, v1::POOLING_AVERAGE, false);
  add_conv(24, 3, v1::POOLING_NONE, true);
  add_conv(12, 3, v1::POOLING_MAX, false);
  const ImageShape image{28, 28};
  auto conv_estimate = EstimateLatencySeconds(conv, 784, 10, *table, image);
  ASSERT_TRUE(conv_estimate.ok()) << conv_estimate.status();
  auto conv_measured = model::MeasureLatency(
      PlaceholderNetwork(conv, 784, 10, image).value(), 1, 50);
  ASSERT_TRUE(conv_measured.ok()) << conv_measured.status();
  EXPECT_GT(*conv_estimate, *conv_measured / 3) << "measured " << *conv_measured;
  EXPECT_LT(*conv_estimate, *conv_measured * 3) << "measured " << *conv_measured;
}

TEST(MeasureLatencyTest, RefusesAnInvalidNetwork) {
  model::NetworkParameters empty;
  EXPECT_EQ(model::MeasureLatency(empty, 1, 10).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(model::MeasureLatency(PlaceholderNetwork(HeldOut(), 3, 2).value(), 1, 0)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace evonas::worker
