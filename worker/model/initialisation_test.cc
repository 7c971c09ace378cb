#include "worker/model/initialisation.h"

#include <cmath>
#include <optional>

#include "gtest/gtest.h"

namespace evonas::model {
namespace {

constexpr double kPi = 3.14159265358979323846;

TEST(FreshLayerRangesTest, GlorotWeightsHeBeforeReluAndZeroBiases) {
  for (v1::Activation a :
       {v1::ACTIVATION_TANH, v1::ACTIVATION_SILU, v1::ACTIVATION_GELU,
        v1::ACTIVATION_SINE, v1::ACTIVATION_UNSPECIFIED}) {
    const InitialRanges r = FreshLayerRanges(a, 10, 14, true, std::nullopt);
    EXPECT_DOUBLE_EQ(r.weight, std::sqrt(6.0 / 24)) << a;
    EXPECT_EQ(r.bias, 0.0) << a;
  }
  const InitialRanges relu =
      FreshLayerRanges(v1::ACTIVATION_RELU, 10, 14, true, 5.0);
  EXPECT_DOUBLE_EQ(relu.weight, std::sqrt(6.0 / 10));
  EXPECT_EQ(relu.bias, 0.0);
}

TEST(FreshLayerRangesTest, GaussianLayersReadingTheInputsGetBiases) {
  const InitialRanges first =
      FreshLayerRanges(v1::ACTIVATION_GAUSSIAN, 3, 8, true, std::nullopt);
  EXPECT_DOUBLE_EQ(first.weight, std::sqrt(6.0 / 11));
  EXPECT_EQ(first.bias, 1.0);
  EXPECT_EQ(
      FreshLayerRanges(v1::ACTIVATION_GAUSSIAN, 8, 8, false, std::nullopt).bias,
      0.0);
}

TEST(FreshLayerRangesTest, SirenSineLayers) {
  const InitialRanges first =
      FreshLayerRanges(v1::ACTIVATION_SINE, 4, 32, true, 12.0);
  EXPECT_DOUBLE_EQ(first.weight, 3.0);
  EXPECT_DOUBLE_EQ(first.bias, kPi);
  const InitialRanges later =
      FreshLayerRanges(v1::ACTIVATION_SINE, 16, 32, false, 12.0);
  EXPECT_DOUBLE_EQ(later.weight, std::sqrt(6.0 / 16));
  EXPECT_DOUBLE_EQ(later.bias, 0.25);
  // Other activations in a SIREN stage start as anywhere else.
  EXPECT_EQ(FreshLayerRanges(v1::ACTIVATION_TANH, 4, 32, true, 12.0).bias, 0.0);
}

TEST(FreshLayerRangesTest, SirenOmegaDefaultsWhereTheGeneIsZero) {
  v1::TrainingConfig training;
  training.set_siren_omega(0);
  EXPECT_EQ(SirenOmega(training), kDefaultSirenOmega);
  training.set_siren_omega(4);
  EXPECT_EQ(SirenOmega(training), 4.0);
}

}  // namespace
}  // namespace evonas::model
