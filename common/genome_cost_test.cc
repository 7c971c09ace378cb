#include "common/genome_cost.h"

#include <limits>
#include <random>

#include "common/genome.h"
#include "gtest/gtest.h"

namespace evonas {
namespace {

v1::DenseLayer Layer(int width, bool residual = false) {
  v1::DenseLayer layer;
  layer.set_width(width);
  layer.set_activation(v1::ACTIVATION_TANH);
  layer.set_residual(residual);
  return layer;
}

TEST(GenomeCostTest, SingleStageByHand) {
  // 3 inputs -> 10 -> 5 -> 2 outputs.
  v1::Genome genome;
  *genome.add_hidden_layers() = Layer(10);
  *genome.add_hidden_layers() = Layer(5);
  const v1::GenomeCost cost = ComputeGenomeCost(genome, 3, 2);
  // Weights 3*10 + 10*5 + 5*2 = 90; biases 10 + 5 + 2 = 17.
  EXPECT_EQ(cost.parameter_count(), 107);
  EXPECT_EQ(cost.flops_per_sample(), 90);
  EXPECT_EQ(cost.float64_bytes(), 856);
  EXPECT_EQ(cost.float32_bytes(), 428);
  EXPECT_EQ(cost.int8_bytes(), 90 + 16 * 17);
}

TEST(GenomeCostTest, LayerNormByHand) {
  // 3 inputs -> 10 (normalised) -> 5 -> 2 outputs.
  v1::Genome genome;
  *genome.add_hidden_layers() = Layer(10);
  genome.mutable_hidden_layers(0)->set_layer_norm(true);
  *genome.add_hidden_layers() = Layer(5);
  const v1::GenomeCost cost = ComputeGenomeCost(genome, 3, 2);
  // The plain network's 107, plus 10 scales and 10 shifts.
  EXPECT_EQ(cost.parameter_count(), 127);
  EXPECT_EQ(cost.parameter_count(), ParameterCount(genome, 3, 2));
  EXPECT_EQ(cost.flops_per_sample(), 90 + 5 * 10);
  EXPECT_EQ(cost.float64_bytes(), 8 * 127);
  EXPECT_EQ(cost.int8_bytes(), 90 + 16 * 17 + 8 * 20);
}

TEST(TrainedWeightBytesTest, FollowsThePrecision) {
  v1::Genome genome;
  *genome.add_hidden_layers() = Layer(10);
  const v1::GenomeCost cost = ComputeGenomeCost(genome, 3, 2);
  EXPECT_EQ(TrainedWeightBytes(genome, cost), cost.float64_bytes());
  genome.set_precision(v1::PRECISION_FLOAT32);
  EXPECT_EQ(TrainedWeightBytes(genome, cost), cost.float32_bytes());
  genome.set_precision(v1::PRECISION_UNSPECIFIED);
  v1::ConvLayer* conv = genome.add_conv_layers();  // float32 by default
  conv->set_channels(4);
  conv->set_kernel_size(3);
  EXPECT_EQ(TrainedWeightBytes(genome, cost), cost.float32_bytes());
}

TEST(GenomeCostTest, ResidualLayersAndStagesCount) {
  // Stage 0: 2 -> 8 -> 8 (residual) -> 1. Weights 16 + 64 + 8 = 88,
  // biases 8 + 8 + 1 = 17.
  // Stage 1: 2 -> 4 -> 1. Weights 8 + 4 = 12, biases 4 + 1 = 5.
  // Stage 2: 2 -> 3 -> 3 (residual) -> 1. Weights 6 + 9 + 3 = 18,
  // biases 3 + 3 + 1 = 7.
  v1::Genome genome;
  *genome.add_hidden_layers() = Layer(8);
  *genome.add_hidden_layers() = Layer(8, true);
  v1::Stage* one = genome.add_residual_stages();
  *one->add_hidden_layers() = Layer(4);
  v1::Stage* two = genome.add_residual_stages();
  *two->add_hidden_layers() = Layer(3);
  *two->add_hidden_layers() = Layer(3, true);
  const v1::GenomeCost cost = ComputeGenomeCost(genome, 2, 1);
  const int64_t weights = 88 + 12 + 18;
  const int64_t biases = 17 + 5 + 7;
  EXPECT_EQ(cost.parameter_count(), weights + biases);
  EXPECT_EQ(cost.flops_per_sample(), weights);
  EXPECT_EQ(cost.float64_bytes(), 8 * (weights + biases));
  EXPECT_EQ(cost.float32_bytes(), 4 * (weights + biases));
  EXPECT_EQ(cost.int8_bytes(), weights + 16 * biases);
}

TEST(GenomeCostTest, GrowsWithWidthAndDepth) {
  v1::Genome narrow;
  *narrow.add_hidden_layers() = Layer(16);
  v1::Genome wide = narrow;
  wide.mutable_hidden_layers(0)->set_width(32);
  v1::Genome deep = narrow;
  *deep.add_hidden_layers() = Layer(16, true);
  const int64_t base = ComputeGenomeCost(narrow, 3, 1).parameter_count();
  EXPECT_EQ(base, 3 * 16 + 16 + 16 + 1);
  EXPECT_GT(ComputeGenomeCost(wide, 3, 1).parameter_count(), base);
  EXPECT_EQ(ComputeGenomeCost(deep, 3, 1).parameter_count(),
            base + 16 * 16 + 16);
}

TEST(GenomeCostTest, AgreesWithParameterCountOnRandomStagedGenomes) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    v1::Genome genome;
    const int stages = rng() % 4;
    for (int s = 0; s <= stages; ++s) {
      auto* layers = s == 0 ? genome.mutable_hidden_layers()
                            : genome.add_residual_stages()->mutable_hidden_layers();
      const int depth = 1 + rng() % 4;
      for (int i = 0; i < depth; ++i) {
        const bool residual = i > 0 && rng() % 2 == 0;
        *layers->Add() = Layer(residual ? layers->Get(i - 1).width()
                                        : 1 + static_cast<int>(rng() % 64),
                               residual);
      }
    }
    const int64_t inputs = 1 + rng() % 5, outputs = 1 + rng() % 3;
    EXPECT_EQ(ComputeGenomeCost(genome, inputs, outputs).parameter_count(),
              ParameterCount(genome, inputs, outputs));
  }
}

TEST(ComputeGenomeCostTest, HugeUnvalidatedGenomesSaturateInsteadOfOverflowing) {
  // Found by the genome fuzz target: four layers of width INT32_MAX.
  v1::Genome genome;
  for (int i = 0; i < 4; ++i) {
    genome.add_hidden_layers()->set_width(std::numeric_limits<int32_t>::max());
  }
  const int64_t max = std::numeric_limits<int64_t>::max();
  const v1::GenomeCost cost = ComputeGenomeCost(genome, 3, 1);
  EXPECT_EQ(cost.parameter_count(), max);
  EXPECT_EQ(cost.float64_bytes(), max);
  EXPECT_EQ(cost.int8_bytes(), max);
  EXPECT_EQ(ParameterCount(genome, 3, 1), max);
}

TEST(GenomeCostTest, ConvLayersByHand) {
  // c4k3relu.bn.max - c4k3relu+ > 8relu on 8 x 8 images, 3 classes.
  v1::Genome genome;
  v1::ConvLayer* conv = genome.add_conv_layers();
  conv->set_channels(4);
  conv->set_kernel_size(3);
  conv->set_activation(v1::ACTIVATION_RELU);
  conv->set_batch_norm(true);
  conv->set_pooling(v1::POOLING_MAX);
  conv = genome.add_conv_layers();
  conv->set_channels(4);
  conv->set_kernel_size(3);
  conv->set_activation(v1::ACTIVATION_RELU);
  conv->set_residual(true);
  v1::DenseLayer* dense = genome.add_hidden_layers();
  dense->set_width(8);
  dense->set_activation(v1::ACTIVATION_RELU);
  const ImageShape image{8, 8};
  const v1::GenomeCost cost = ComputeGenomeCost(genome, 64, 3, image);
  // Weights: 36 + 144 (convolutions) + 64 * 8 (4 x 4 x 4 flattened) + 24.
  const int64_t weights = 36 + 144 + 512 + 24;
  const int64_t biases = 4 + 4 + 8 + 3;
  EXPECT_EQ(cost.parameter_count(), weights + biases + 8);  // + bn 2 x 4
  EXPECT_EQ(cost.parameter_count(), ParameterCount(genome, 64, 3, image));
  // The first convolution runs at 8 x 8 pixels, the second at 4 x 4.
  EXPECT_EQ(cost.flops_per_sample(), 36 * 64 + 144 * 16 + 512 + 24);
  EXPECT_EQ(cost.float32_bytes(), 4 * cost.parameter_count());
  // Batch normalisation folds into the convolution for int8.
  EXPECT_EQ(cost.int8_bytes(), weights + 16 * biases);
}

}  // namespace
}  // namespace evonas
