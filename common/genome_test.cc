#include "common/genome.h"

#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace evonas {
namespace {

using ::testing::HasSubstr;

v1::Genome MakeGenome() {
  v1::Genome genome;
  v1::DenseLayer* layer = genome.add_hidden_layers();
  layer->set_width(64);
  layer->set_activation(v1::ACTIVATION_TANH);
  layer = genome.add_hidden_layers();
  layer->set_width(32);
  layer->set_activation(v1::ACTIVATION_SILU);
  genome.mutable_training()->set_learning_rate(3e-3);
  genome.mutable_training()->set_adam_steps(2000);
  genome.mutable_training()->set_lbfgs_steps(200);
  return genome;
}

// 16 sine -> 16 sine (residual), as a second stage.
v1::Stage SineStage() {
  v1::Stage stage;
  for (bool residual : {false, true}) {
    v1::DenseLayer* layer = stage.add_hidden_layers();
    layer->set_width(16);
    layer->set_activation(v1::ACTIVATION_SINE);
    layer->set_residual(residual);
  }
  stage.mutable_training()->set_learning_rate(1e-3);
  stage.mutable_training()->set_adam_steps(500);
  stage.mutable_training()->set_lbfgs_steps(100);
  return stage;
}

// c8k3relu.bn.max - c8k3relu+ - c16k5gelu.avg.d0.25 > 32relu, classifying
// 10 classes of 28 x 28 images.
v1::Genome ConvGenome() {
  v1::Genome genome;
  auto add = [&](int channels, int kernel, v1::Activation activation,
                 v1::Pooling pooling) {
    v1::ConvLayer* layer = genome.add_conv_layers();
    layer->set_channels(channels);
    layer->set_kernel_size(kernel);
    layer->set_activation(activation);
    layer->set_pooling(pooling);
    return layer;
  };
  add(8, 3, v1::ACTIVATION_RELU, v1::POOLING_MAX)->set_batch_norm(true);
  add(8, 3, v1::ACTIVATION_RELU, v1::POOLING_NONE)->set_residual(true);
  add(16, 5, v1::ACTIVATION_GELU, v1::POOLING_AVERAGE)->set_dropout(0.25);
  v1::DenseLayer* dense = genome.add_hidden_layers();
  dense->set_width(32);
  dense->set_activation(v1::ACTIVATION_RELU);
  genome.mutable_training()->set_learning_rate(1e-3);
  genome.mutable_training()->set_adam_steps(1000);
  genome.mutable_training()->set_batch_size(256);
  return genome;
}

void ExpectInvalid(const v1::Genome& genome, const std::string& message) {
  const absl::Status status = ValidateGenome(genome);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr(message));
}

TEST(ValidateGenomeTest, AcceptsValidGenome) {
  EXPECT_TRUE(ValidateGenome(MakeGenome()).ok());
}

TEST(ValidateGenomeTest, AcceptsLimits) {
  v1::Genome genome = MakeGenome();
  genome.clear_hidden_layers();
  for (int i = 0; i < kMaxHiddenLayers; ++i) {
    v1::DenseLayer* layer = genome.add_hidden_layers();
    layer->set_width(i % 2 ? 1 : kMaxLayerWidth);
    layer->set_activation(v1::ACTIVATION_SINE);
  }
  genome.mutable_training()->set_learning_rate(1);
  genome.mutable_training()->set_adam_steps(kMaxAdamSteps);
  genome.mutable_training()->set_lbfgs_steps(kMaxLbfgsSteps);
  genome.mutable_training()->set_batch_size(1);
  EXPECT_TRUE(ValidateGenome(genome).ok()) << ValidateGenome(genome);

  genome.mutable_training()->set_adam_steps(0);
  EXPECT_TRUE(ValidateGenome(genome).ok());
  genome.mutable_training()->set_adam_steps(1);
  genome.mutable_training()->set_lbfgs_steps(0);
  EXPECT_TRUE(ValidateGenome(genome).ok());
}

TEST(ValidateGenomeTest, LayerCount) {
  v1::Genome genome = MakeGenome();
  genome.clear_hidden_layers();
  ExpectInvalid(genome, "hidden_layers must hold 1..32 layers, got 0");
  for (int i = 0; i < kMaxHiddenLayers + 1; ++i) {
    v1::DenseLayer* layer = genome.add_hidden_layers();
    layer->set_width(8);
    layer->set_activation(v1::ACTIVATION_RELU);
  }
  ExpectInvalid(genome, "got 33");
}

TEST(ValidateGenomeTest, Width) {
  v1::Genome genome = MakeGenome();
  genome.add_hidden_layers()->set_activation(v1::ACTIVATION_GELU);
  ExpectInvalid(genome, "hidden_layers[2].width must be in 1..4096, got 0");
  genome.mutable_hidden_layers(2)->set_width(4097);
  ExpectInvalid(genome, "hidden_layers[2].width must be in 1..4096, got 4097");
  genome.mutable_hidden_layers(2)->set_width(-5);
  ExpectInvalid(genome, "got -5");
}

TEST(ValidateGenomeTest, Activation) {
  v1::Genome genome = MakeGenome();
  genome.mutable_hidden_layers(1)->set_activation(v1::ACTIVATION_UNSPECIFIED);
  ExpectInvalid(genome, "hidden_layers[1].activation must be specified");
  genome.mutable_hidden_layers(1)->set_activation(
      static_cast<v1::Activation>(99));
  ExpectInvalid(genome, "hidden_layers[1].activation 99 is not a known");
}

TEST(ValidateGenomeTest, LearningRate) {
  for (const double lr :
       {0.0, -1e-3, 1.0000001, 2.0, std::numeric_limits<double>::quiet_NaN(),
        std::numeric_limits<double>::infinity()}) {
    SCOPED_TRACE(lr);
    v1::Genome genome = MakeGenome();
    genome.mutable_training()->set_learning_rate(lr);
    ExpectInvalid(genome, "training.learning_rate must be in (0, 1]");
  }
  v1::Genome genome = MakeGenome();
  genome.clear_training();
  ExpectInvalid(genome, "training.learning_rate must be in (0, 1], got 0");
}

TEST(ValidateGenomeTest, Steps) {
  v1::Genome genome = MakeGenome();
  genome.mutable_training()->set_adam_steps(-1);
  ExpectInvalid(genome, "training.adam_steps must be in 0..1000000, got -1");
  genome.mutable_training()->set_adam_steps(kMaxAdamSteps + 1);
  ExpectInvalid(genome, "training.adam_steps");
  genome = MakeGenome();
  genome.mutable_training()->set_lbfgs_steps(kMaxLbfgsSteps + 1);
  ExpectInvalid(genome,
                "training.lbfgs_steps must be in 0..100000, got 100001");
  genome.mutable_training()->set_lbfgs_steps(-3);
  ExpectInvalid(genome, "training.lbfgs_steps");
  genome = MakeGenome();
  genome.mutable_training()->set_adam_steps(0);
  genome.mutable_training()->set_lbfgs_steps(0);
  ExpectInvalid(genome, "adam_steps + training.lbfgs_steps must be positive");
}

TEST(ValidateGenomeTest, BatchSize) {
  v1::Genome genome = MakeGenome();
  genome.mutable_training()->set_batch_size(-1);
  ExpectInvalid(genome, "training.batch_size must be in 0..1000000");
}

TEST(ValidateGenomeTest, ResidualLayers) {
  v1::Genome genome = MakeGenome();
  genome.mutable_hidden_layers(1)->set_width(64);
  genome.mutable_hidden_layers(1)->set_residual(true);
  EXPECT_TRUE(ValidateGenome(genome).ok()) << ValidateGenome(genome);
  genome.mutable_hidden_layers(1)->set_width(32);
  ExpectInvalid(genome,
                "hidden_layers[1].residual: a residual layer's width must "
                "equal the previous layer's width, 64, got 32");
  genome = MakeGenome();
  genome.mutable_hidden_layers(0)->set_residual(true);
  ExpectInvalid(genome, "hidden_layers[0].residual: the first hidden layer");
}

TEST(ValidateGenomeTest, LayerNorm) {
  v1::Genome genome = MakeGenome();
  genome.mutable_hidden_layers(0)->set_layer_norm(true);
  genome.mutable_hidden_layers(1)->set_layer_norm(true);
  EXPECT_TRUE(ValidateGenome(genome).ok()) << ValidateGenome(genome);
  genome.mutable_hidden_layers(1)->set_width(1);
  ExpectInvalid(genome,
                "hidden_layers[1].layer_norm needs a width of at least 2");
  v1::Stage stage = SineStage();
  stage.mutable_hidden_layers(1)->set_width(1);
  stage.mutable_hidden_layers(1)->set_residual(false);
  stage.mutable_hidden_layers(1)->set_layer_norm(true);
  genome = MakeGenome();
  *genome.add_residual_stages() = stage;
  ExpectInvalid(genome, "residual_stages[0].hidden_layers[1].layer_norm");
  // Convolutional networks normalise by batch norm.
  genome = ConvGenome();
  genome.mutable_hidden_layers(0)->set_layer_norm(true);
  ExpectInvalid(genome,
                "hidden_layers[0].layer_norm: layer normalisation is "
                "for dense networks");
}

TEST(ParameterCountTest, LayerNormAddsScaleAndShift) {
  v1::Genome genome = MakeGenome();  // 3 -> 64 -> 32 -> 2
  const int64_t plain = ParameterCount(genome, 3, 2);
  genome.mutable_hidden_layers(1)->set_layer_norm(true);
  EXPECT_EQ(ParameterCount(genome, 3, 2), plain + 2 * 32);
  EXPECT_THAT(DescribeGenome(genome), HasSubstr("64tanh-32silu.ln "));
  const v1::NetworkWeights zero = ZeroWeights(genome, 3, 2);
  const v1::LayerWeights& normalised = zero.stages(0).layers(1);
  EXPECT_THAT(normalised.ln_scale(), testing::Each(1.0));
  EXPECT_EQ(normalised.ln_scale_size(), 32);
  EXPECT_THAT(normalised.ln_shift(), testing::Each(0.0));
  EXPECT_EQ(normalised.ln_shift_size(), 32);
  EXPECT_EQ(zero.stages(0).layers(0).ln_scale_size(), 0);
}

TEST(ValidateGenomeTest, ResidualStages) {
  v1::Genome genome = MakeGenome();
  for (int k = 0; k < kMaxResidualStages; ++k) {
    *genome.add_residual_stages() = SineStage();
  }
  EXPECT_TRUE(ValidateGenome(genome).ok()) << ValidateGenome(genome);
  *genome.add_residual_stages() = SineStage();
  ExpectInvalid(genome, "residual_stages must hold 0..7 stages, got 8");

  genome = MakeGenome();
  *genome.add_residual_stages() = SineStage();
  *genome.add_residual_stages() = SineStage();
  genome.mutable_residual_stages(1)->clear_hidden_layers();
  ExpectInvalid(genome,
                "residual_stages[1].hidden_layers must hold 1..32 layers");
  genome.mutable_residual_stages(1)->add_hidden_layers()->set_width(8);
  ExpectInvalid(genome,
                "residual_stages[1].hidden_layers[0].activation must be");
  genome.mutable_residual_stages(1)->mutable_hidden_layers(0)->set_activation(
      v1::ACTIVATION_TANH);
  EXPECT_TRUE(ValidateGenome(genome).ok());
  genome.mutable_residual_stages(1)->mutable_hidden_layers(0)->set_residual(
      true);
  ExpectInvalid(genome, "residual_stages[1].hidden_layers[0].residual");

  genome = MakeGenome();
  *genome.add_residual_stages() = SineStage();
  genome.mutable_residual_stages(0)->mutable_training()->set_learning_rate(0);
  ExpectInvalid(genome, "residual_stages[0].training.learning_rate must be");
  genome.mutable_residual_stages(0)->clear_training();
  ExpectInvalid(genome, "residual_stages[0].training.");
}

TEST(ValidateGenomeTest, TrainingGenes) {
  v1::Genome genome = MakeGenome();
  v1::TrainingConfig* t = genome.mutable_training();
  t->set_warmup_steps(2000);
  t->set_weight_decay(kMaxWeightDecay);
  t->set_patience_steps(kMaxPatienceSteps);
  t->set_max_error_steps(kMaxMaxErrorSteps);
  t->set_max_error_power(64);
  EXPECT_TRUE(ValidateGenome(genome).ok()) << ValidateGenome(genome);
  t->set_max_error_power(4);
  EXPECT_TRUE(ValidateGenome(genome).ok());

  t->set_warmup_steps(2001);
  ExpectInvalid(genome,
                "training.warmup_steps must be in 0..adam_steps (2000), got "
                "2001");
  t->set_warmup_steps(-1);
  ExpectInvalid(genome, "training.warmup_steps");
  t->set_warmup_steps(0);
  for (double decay : {-1e-9, 0.11, std::numeric_limits<double>::quiet_NaN()}) {
    t->set_weight_decay(decay);
    ExpectInvalid(genome, "training.weight_decay must be in [0, 0.1]");
  }
  t->set_weight_decay(0);
  for (double penalty :
       {-1e-9, 0.011, std::numeric_limits<double>::infinity()}) {
    t->set_weight_penalty(penalty);
    ExpectInvalid(genome, "training.weight_penalty must be in [0, 0.01]");
  }
  t->set_weight_penalty(kMaxWeightPenalty);
  EXPECT_TRUE(ValidateGenome(genome).ok());
  for (int rounds : {-1, kMaxMaxErrorRounds + 1}) {
    t->set_max_error_rounds(rounds);
    ExpectInvalid(genome, "training.max_error_rounds must be in 0..20");
  }
  t->set_max_error_rounds(kMaxMaxErrorRounds);
  EXPECT_TRUE(ValidateGenome(genome).ok());
  t->set_patience_steps(-1);
  ExpectInvalid(genome, "training.patience_steps must be in 0..1000000");
  t->set_patience_steps(kMaxPatienceSteps + 1);
  ExpectInvalid(genome, "training.patience_steps");
  t->set_patience_steps(0);
  t->set_max_error_steps(kMaxMaxErrorSteps + 1);
  ExpectInvalid(genome, "training.max_error_steps must be in 0..100000");
  t->set_max_error_steps(-1);
  ExpectInvalid(genome, "training.max_error_steps");
  t->set_max_error_steps(10);
  for (int power : {2, 5, 66, -8}) {
    t->set_max_error_power(power);
    ExpectInvalid(genome, "training.max_error_power must be 0 (default 8) or "
                          "an even number in 4..64");
  }
  t->set_max_error_power(0);
  t->set_siren_omega(100);
  EXPECT_TRUE(ValidateGenome(genome).ok());
  for (double omega : {-1e-9, 100.5, std::numeric_limits<double>::quiet_NaN()}) {
    t->set_siren_omega(omega);
    ExpectInvalid(genome, "training.siren_omega must be in [0, 100]");
  }
}

TEST(ValidateGenomeTest, ConvLayers) {
  EXPECT_TRUE(ValidateGenome(ConvGenome()).ok());
  v1::Genome genome = ConvGenome();
  genome.mutable_conv_layers(0)->set_channels(0);
  ExpectInvalid(genome, "conv_layers[0].channels must be in 1..512, got 0");
  genome = ConvGenome();
  genome.mutable_conv_layers(2)->set_kernel_size(4);
  ExpectInvalid(genome, "conv_layers[2].kernel_size must be 1, 3, 5 or 7");
  genome = ConvGenome();
  genome.mutable_conv_layers(1)->set_activation(v1::ACTIVATION_UNSPECIFIED);
  ExpectInvalid(genome, "conv_layers[1].activation must be a known");
  genome = ConvGenome();
  genome.mutable_conv_layers(1)->set_pooling(static_cast<v1::Pooling>(9));
  ExpectInvalid(genome, "conv_layers[1].pooling 9 is not a known pooling");
  genome = ConvGenome();
  genome.mutable_conv_layers(2)->set_dropout(0.6);
  ExpectInvalid(genome, "conv_layers[2].dropout must be in [0, 0.5]");
  genome.mutable_conv_layers(2)->set_dropout(std::nan(""));
  ExpectInvalid(genome, "conv_layers[2].dropout");
  genome = ConvGenome();
  genome.mutable_conv_layers(0)->set_residual(true);
  ExpectInvalid(genome, "conv_layers[0].residual: the first");
  genome = ConvGenome();
  genome.mutable_conv_layers(1)->set_channels(9);
  ExpectInvalid(genome, "conv_layers[1].residual: a residual layer's channels");
  genome = ConvGenome();
  genome.mutable_conv_layers(1)->set_pooling(v1::POOLING_MAX);
  ExpectInvalid(genome, "conv_layers[1].residual: a residual layer cannot pool");
  genome = ConvGenome();
  *genome.add_residual_stages() = SineStage();
  ExpectInvalid(genome, "cannot have residual_stages");
  genome = ConvGenome();
  for (int i = 0; i < 14; ++i) *genome.add_conv_layers() = genome.conv_layers(1);
  ExpectInvalid(genome, "conv_layers must hold 0..16 layers, got 17");
}

TEST(ValidateGenomeForImageTest, NeedsTheWholeImageAndRoomToPool) {
  const ImageShape image{28, 28};
  EXPECT_TRUE(ValidateGenomeForImage(ConvGenome(), 784, image).ok());
  // MLPs need no image.
  EXPECT_TRUE(ValidateGenomeForImage(MakeGenome(), 3, {}).ok());
  EXPECT_THAT(ValidateGenomeForImage(ConvGenome(), 784, {}).message(),
              HasSubstr("need an image data set"));
  EXPECT_THAT(ValidateGenomeForImage(ConvGenome(), 700, image).message(),
              HasSubstr("every pixel of the 28 x 28 images"));
  // 28 -> 14 -> 7 -> 3 -> 1: four poolings, not five.
  EXPECT_EQ(MaxPoolingLayers(image), 4);
  EXPECT_EQ(MaxPoolingLayers({1, 1}), 0);
  EXPECT_EQ(MaxPoolingLayers({2, 64}), 1);
  EXPECT_EQ(MaxPoolingLayers({}), 0);
  v1::Genome genome = ConvGenome();
  for (int i = 0; i < 2; ++i) {
    *genome.add_conv_layers() = genome.conv_layers(0);
  }
  EXPECT_TRUE(ValidateGenomeForImage(genome, 784, image).ok());
  EXPECT_EQ(ConvOutputShape(genome, image).height, 1);
  *genome.add_conv_layers() = genome.conv_layers(0);
  const absl::Status status = ValidateGenomeForImage(genome, 784, image);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("pool 5 times"));
  EXPECT_THAT(status.message(), HasSubstr("at most 4"));
}

TEST(ParameterCountTest, ConvLayersByHand) {
  const ImageShape image{28, 28};
  // c8k3 (1 -> 8, bn): 72 + 8 + 16; c8k3 (8 -> 8): 576 + 8;
  // c16k5 (8 -> 16): 3200 + 16; 28 -> 14 -> 7 after two poolings, so the
  // dense layer sees 16 * 7 * 7 = 784: 784 * 32 + 32; output 32 * 10 + 10.
  const int64_t expected = (72 + 8 + 16) + (576 + 8) + (3200 + 16) +
                           (784 * 32 + 32) + (32 * 10 + 10);
  EXPECT_EQ(ParameterCount(ConvGenome(), 784, 10, image), expected);
  const ConvOutput out = ConvOutputShape(ConvGenome(), image);
  EXPECT_EQ(out.channels, 16);
  EXPECT_EQ(out.height, 7);
  EXPECT_EQ(out.width, 7);
  EXPECT_EQ(out.size(), 784);
}

TEST(ZeroWeightsTest, ConvGenomeHasTheTrunkShapes) {
  const v1::NetworkWeights w = ZeroWeights(ConvGenome(), 784, 10, {28, 28});
  ASSERT_EQ(w.stages_size(), 1);
  const v1::StageWeights& stage = w.stages(0);
  EXPECT_EQ(stage.image_height(), 28);
  EXPECT_EQ(stage.image_width(), 28);
  ASSERT_EQ(stage.conv_layers_size(), 3);
  EXPECT_EQ(stage.conv_layers(0).in_channels(), 1);
  EXPECT_EQ(stage.conv_layers(0).weight_size(), 72);
  EXPECT_EQ(stage.conv_layers(0).bn_running_var_size(), 8);
  EXPECT_EQ(stage.conv_layers(0).bn_running_var(0), 1.0);
  EXPECT_TRUE(stage.conv_layers(1).residual());
  EXPECT_EQ(stage.conv_layers(1).bn_scale_size(), 0);
  EXPECT_EQ(stage.conv_layers(2).weight_size(), 16 * 8 * 25);
  EXPECT_EQ(stage.conv_layers(2).pooling(), v1::POOLING_AVERAGE);
  EXPECT_EQ(stage.conv_layers(2).dropout(), 0.25);
  EXPECT_EQ(stage.layers(0).inputs(), 784);
  EXPECT_EQ(stage.layers(1).outputs(), 10);
  EXPECT_EQ(stage.x_mean_size(), 784);
}

TEST(ParameterCountTest, CountsEveryStage) {
  v1::Genome genome = MakeGenome();
  *genome.add_residual_stages() = SineStage();
  EXPECT_EQ(ParameterCount(genome, 3, 2),
            ParameterCount(MakeGenome(), 3, 2) +
                (3 * 16 + 16) + (16 * 16 + 16) + (16 * 2 + 2));
  EXPECT_EQ(StageCount(genome), 2);
  EXPECT_EQ(StageCount(MakeGenome()), 1);
}

TEST(ParameterCountTest, CountsWeightsAndBiasesWithOutputLayer) {
  // 3 -> 64 -> 32 -> 2: (3*64+64) + (64*32+32) + (32*2+2).
  EXPECT_EQ(ParameterCount(MakeGenome(), 3, 2),
            (3 * 64 + 64) + (64 * 32 + 32) + (32 * 2 + 2));
}

TEST(ParameterCountTest, SingleLayer) {
  v1::Genome genome;
  genome.add_hidden_layers()->set_width(10);
  EXPECT_EQ(ParameterCount(genome, 1, 1), (1 * 10 + 10) + (10 * 1 + 1));
}

TEST(ParameterCountTest, LargestGenomeDoesNotOverflow) {
  v1::Genome genome;
  for (int i = 0; i < kMaxHiddenLayers; ++i) {
    genome.add_hidden_layers()->set_width(kMaxLayerWidth);
  }
  const int64_t w = kMaxLayerWidth;
  EXPECT_EQ(ParameterCount(genome, 10000, 10000),
            (10000 * w + w) + 31 * (w * w + w) + (w * 10000 + 10000));
}

TEST(DescribeGenomeTest, Example) {
  EXPECT_EQ(DescribeGenome(MakeGenome()),
            "64tanh-32silu lr=3e-03 adam=2000 lbfgs=200 batch=full");
}

TEST(DescribeGenomeTest, BatchAndPreciseLearningRate) {
  v1::Genome genome = MakeGenome();
  genome.mutable_training()->set_batch_size(256);
  genome.mutable_training()->set_learning_rate(0.0015);
  EXPECT_EQ(DescribeGenome(genome),
            "64tanh-32silu lr=1.5e-03 adam=2000 lbfgs=200 batch=256");
}

TEST(DescribeGenomeTest, StagesAndTrainingGenes) {
  v1::Genome genome = MakeGenome();
  genome.mutable_training()->set_warmup_steps(100);
  genome.mutable_training()->set_weight_decay(1e-4);
  genome.mutable_training()->set_patience_steps(500);
  genome.mutable_training()->set_max_error_steps(300);
  genome.mutable_training()->set_weight_penalty(1e-5);
  genome.mutable_training()->set_max_error_rounds(4);
  *genome.add_residual_stages() = SineStage();
  EXPECT_EQ(DescribeGenome(genome),
            "64tanh-32silu lr=3e-03 adam=2000 lbfgs=200 batch=full "
            "warmup=100 wd=1e-04 patience=500 maxerr=300^8x4 l2=1e-05 | "
            "stage2: "
            "16sine-16sine+ lr=1e-03 adam=500 lbfgs=100 batch=full");
}

TEST(DescribeGenomeTest, ConvLayers) {
  EXPECT_EQ(ArchitectureName(ConvGenome()),
            "c8k3relu.bn.max-c8k3relu+-c16k5gelu.avg.d0.25 > 32relu");
  EXPECT_EQ(ArchitectureName(MakeGenome()), "64tanh-32silu");
  EXPECT_EQ(DescribeGenome(ConvGenome()),
            "c8k3relu.bn.max-c8k3relu+-c16k5gelu.avg.d0.25 > 32relu "
            "lr=1e-03 adam=1000 lbfgs=0 batch=256");
}

TEST(DescribeGenomeTest, Float32DenseNetwork) {
  v1::Genome genome = MakeGenome();
  genome.set_precision(v1::PRECISION_FLOAT32);
  EXPECT_EQ(DescribeGenome(genome),
            "64tanh-32silu lr=3e-03 adam=2000 lbfgs=200 batch=full f32");
}

TEST(EffectivePrecisionTest, UnspecifiedDependsOnTheNetwork) {
  EXPECT_EQ(EffectivePrecision(MakeGenome()), v1::PRECISION_FLOAT64);
  EXPECT_EQ(EffectivePrecision(ConvGenome()), v1::PRECISION_FLOAT32);
  v1::Genome genome = MakeGenome();
  genome.set_precision(v1::PRECISION_FLOAT32);
  EXPECT_EQ(EffectivePrecision(genome), v1::PRECISION_FLOAT32);
}

TEST(ValidateGenomeTest, Precision) {
  v1::Genome genome = MakeGenome();
  for (v1::Precision precision : {v1::PRECISION_UNSPECIFIED,
                                  v1::PRECISION_FLOAT64, v1::PRECISION_FLOAT32}) {
    genome.set_precision(precision);
    EXPECT_TRUE(ValidateGenome(genome).ok()) << precision;
  }
  genome.set_precision(static_cast<v1::Precision>(7));
  ExpectInvalid(genome, "precision 7 is unknown");
  genome.set_precision(v1::PRECISION_FLOAT32);
  *genome.add_residual_stages() = SineStage();
  ExpectInvalid(genome, "precision FLOAT32 with residual_stages");
  genome.set_precision(v1::PRECISION_FLOAT64);
  EXPECT_TRUE(ValidateGenome(genome).ok());

  v1::Genome conv = ConvGenome();
  conv.set_precision(v1::PRECISION_FLOAT32);
  EXPECT_TRUE(ValidateGenome(conv).ok());
  conv.set_precision(v1::PRECISION_FLOAT64);
  ExpectInvalid(conv, "precision FLOAT64 with conv_layers");
}

TEST(GenomeKeyTest, Example) {
  EXPECT_EQ(GenomeKey(MakeGenome()),
            "L64.1-32.3|lr0x1.89374bc6a7efap-9|a2000|l200|b0");
}

TEST(GenomeKeyTest, EveryFieldChangesTheKey) {
  const std::string base = GenomeKey(MakeGenome());
  std::vector<std::function<void(v1::Genome&)>> changes = {
      [](v1::Genome& g) { g.mutable_hidden_layers(0)->set_width(65); },
      [](v1::Genome& g) {
        g.mutable_hidden_layers(1)->set_activation(v1::ACTIVATION_GELU);
      },
      [](v1::Genome& g) { *g.add_hidden_layers() = g.hidden_layers(1); },
      [](v1::Genome& g) { g.mutable_hidden_layers()->RemoveLast(); },
      [](v1::Genome& g) {
        // One ulp away: keys compare learning rates exactly.
        g.mutable_training()->set_learning_rate(std::nextafter(3e-3, 1.0));
      },
      [](v1::Genome& g) { g.mutable_training()->set_adam_steps(2001); },
      [](v1::Genome& g) { g.mutable_training()->set_lbfgs_steps(0); },
      [](v1::Genome& g) { g.mutable_training()->set_batch_size(64); },
      [](v1::Genome& g) { g.mutable_hidden_layers(1)->set_residual(true); },
      [](v1::Genome& g) { g.mutable_hidden_layers(1)->set_layer_norm(true); },
      [](v1::Genome& g) {
        v1::Stage stage = SineStage();
        stage.mutable_hidden_layers(0)->set_layer_norm(true);
        *g.add_residual_stages() = stage;
      },
      [](v1::Genome& g) { g.mutable_training()->set_warmup_steps(100); },
      [](v1::Genome& g) { g.mutable_training()->set_weight_decay(1e-4); },
      [](v1::Genome& g) { g.mutable_training()->set_patience_steps(500); },
      [](v1::Genome& g) { g.mutable_training()->set_max_error_steps(300); },
      [](v1::Genome& g) { g.mutable_training()->set_max_error_power(16); },
      [](v1::Genome& g) { g.mutable_training()->set_siren_omega(5); },
      [](v1::Genome& g) { g.mutable_training()->set_weight_penalty(1e-5); },
      [](v1::Genome& g) { g.mutable_training()->set_max_error_rounds(3); },
      [](v1::Genome& g) { *g.add_residual_stages() = SineStage(); },
      [](v1::Genome& g) {
        *g.add_residual_stages() = SineStage();
        *g.add_residual_stages() = SineStage();
      },
      [](v1::Genome& g) {
        v1::Stage stage = SineStage();
        stage.mutable_hidden_layers(1)->set_residual(false);
        *g.add_residual_stages() = stage;
      },
      [](v1::Genome& g) {
        v1::Stage stage = SineStage();
        stage.mutable_training()->set_max_error_steps(1);
        *g.add_residual_stages() = stage;
      },
      [](v1::Genome& g) { *g.add_conv_layers() = ConvGenome().conv_layers(0); },
      [](v1::Genome& g) { g.set_precision(v1::PRECISION_FLOAT32); },
      [](v1::Genome& g) { g.set_precision(v1::PRECISION_FLOAT64); },
  };
  // Every field of a convolutional layer.
  const std::vector<std::function<void(v1::ConvLayer&)>> conv_changes = {
      [](v1::ConvLayer& c) { c.set_channels(9); },
      [](v1::ConvLayer& c) { c.set_kernel_size(5); },
      [](v1::ConvLayer& c) { c.set_activation(v1::ACTIVATION_TANH); },
      [](v1::ConvLayer& c) { c.set_batch_norm(false); },
      [](v1::ConvLayer& c) { c.set_pooling(v1::POOLING_AVERAGE); },
      [](v1::ConvLayer& c) { c.set_dropout(0.125); },
      [](v1::ConvLayer& c) { c.set_residual(true); },
  };
  for (const auto& change : conv_changes) {
    changes.push_back([change](v1::Genome& g) {
      *g.add_conv_layers() = ConvGenome().conv_layers(0);
      change(*g.mutable_conv_layers(0));
    });
  }
  std::set<std::string> keys = {base};
  for (size_t i = 0; i < changes.size(); ++i) {
    v1::Genome genome = MakeGenome();
    changes[i](genome);
    EXPECT_TRUE(keys.insert(GenomeKey(genome)).second) << i;
  }
}

TEST(GenomeKeyTest, IgnoresEncodingAndUnknownFields) {
  v1::Genome a = MakeGenome();
  v1::Genome b;
  // Same values, set in another order, plus a field this version does not
  // know (as a newer client might send).
  b.mutable_training()->set_lbfgs_steps(200);
  b.mutable_training()->set_adam_steps(2000);
  b.mutable_training()->set_learning_rate(3e-3);
  *b.add_hidden_layers() = a.hidden_layers(0);
  *b.add_hidden_layers() = a.hidden_layers(1);
  b.GetReflection()->MutableUnknownFields(&b)->AddVarint(999, 1);
  EXPECT_EQ(GenomeKey(a), GenomeKey(b));
  // max_error_rounds 0 and 1 both mean one round: the same training.
  b.mutable_training()->set_max_error_rounds(1);
  EXPECT_EQ(GenomeKey(a), GenomeKey(b));
}

// Fails when a field is added to the genome: add it to GenomeKey (so that
// genomes differing only in it are not taken for duplicates), then here.
TEST(GenomeKeyTest, CoversEveryGenomeField) {
  EXPECT_EQ(v1::Genome::descriptor()->field_count(), 5);
  EXPECT_EQ(v1::ConvLayer::descriptor()->field_count(), 7);
  EXPECT_EQ(v1::Stage::descriptor()->field_count(), 2);
  EXPECT_EQ(v1::DenseLayer::descriptor()->field_count(), 4);
  EXPECT_EQ(v1::TrainingConfig::descriptor()->field_count(), 12);
}

TEST(ActivationNameTest, Names) {
  EXPECT_EQ(ActivationName(v1::ACTIVATION_TANH), "tanh");
  EXPECT_EQ(ActivationName(v1::ACTIVATION_RELU), "relu");
  EXPECT_EQ(ActivationName(v1::ACTIVATION_SILU), "silu");
  EXPECT_EQ(ActivationName(v1::ACTIVATION_GELU), "gelu");
  EXPECT_EQ(ActivationName(v1::ACTIVATION_GAUSSIAN), "gaussian");
  EXPECT_EQ(ActivationName(v1::ACTIVATION_SINE), "sine");
  EXPECT_EQ(ActivationName(v1::ACTIVATION_UNSPECIFIED), "unspecified");
  EXPECT_EQ(ActivationName(static_cast<v1::Activation>(42)), "activation42");
}

}  // namespace
}  // namespace evonas
