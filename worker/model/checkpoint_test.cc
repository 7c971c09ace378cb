#include "worker/model/checkpoint.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "evonas/v1/types.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/model/mlp.h"

namespace evonas::model {
namespace {

using ::testing::HasSubstr;

// A stage 2 -> 6 tanh -> 6 sine (residual) -> 1 with random weights and
// standardisation from `seed`.
MlpParameters RandomStage(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  MlpParameters p;
  p.x_mean = {u(rng), u(rng)};
  p.x_std = {1.5 + u(rng), 1.5 + u(rng)};
  p.y_mean = {u(rng)};
  p.y_std = {2.0 + u(rng)};
  const auto layer = [&](int64_t in, int64_t out, v1::Activation a,
                         bool residual) {
    DenseParameters l;
    l.inputs = in;
    l.outputs = out;
    l.activation = a;
    l.residual = residual;
    for (int64_t k = 0; k < in * out; ++k) l.weight.push_back(u(rng));
    for (int64_t k = 0; k < out; ++k) l.bias.push_back(0.1 * u(rng));
    return l;
  };
  p.layers.push_back(layer(2, 6, v1::ACTIVATION_TANH, false));
  p.layers.push_back(layer(6, 6, v1::ACTIVATION_SINE, true));
  p.layers.push_back(layer(6, 1, v1::ACTIVATION_UNSPECIFIED, false));
  return p;
}

NetworkParameters TwoStages() { return {{RandomStage(1), RandomStage(2)}}; }

std::vector<double> Inputs(int64_t rows) {
  std::vector<double> x;
  for (int64_t r = 0; r < rows; ++r) {
    x.push_back(std::sin(0.7 * r));
    x.push_back(std::cos(1.3 * r));
  }
  return x;
}

TEST(ResidualForwardTest, AddsTheLayerInput) {
  MlpParameters p = RandomStage(3);
  MlpParameters plain = p;
  plain.layers[1].residual = false;
  // With the residual layer's weights and bias zero, sin(0) = 0, so the
  // residual layer is the identity and the network skips it.
  MlpParameters identity = p;
  std::fill(identity.layers[1].weight.begin(), identity.layers[1].weight.end(),
            0.0);
  std::fill(identity.layers[1].bias.begin(), identity.layers[1].bias.end(),
            0.0);
  MlpParameters skipped = identity;
  skipped.layers.erase(skipped.layers.begin() + 1);
  const std::vector<double> x = Inputs(20);
  EXPECT_EQ(Forward(identity, x, 20), Forward(skipped, x, 20));
  EXPECT_NE(Forward(p, x, 20), Forward(plain, x, 20));
}

TEST(NetworkForwardTest, SumsTheStagesInOrder) {
  const NetworkParameters n = TwoStages();
  const std::vector<double> x = Inputs(30);
  const std::vector<double> a = Forward(n.stages[0], x, 30);
  const std::vector<double> b = Forward(n.stages[1], x, 30);
  const std::vector<double> sum = Forward(n, x, 30);
  ASSERT_EQ(sum.size(), 30u);
  for (size_t i = 0; i < sum.size(); ++i) EXPECT_EQ(sum[i], a[i] + b[i]);
  EXPECT_EQ(ParameterCount(n), 2 * ParameterCount(n.stages[0]));
}

TEST(NetworkForwardTest, ZeroOutputStageLeavesOutputsBitIdentical) {
  NetworkParameters one{{RandomStage(4)}};
  NetworkParameters two = one;
  MlpParameters added = RandomStage(5);
  added.y_mean = {0.0};
  added.layers.back().weight.assign(added.layers.back().weight.size(), 0.0);
  added.layers.back().bias.assign(1, 0.0);
  two.stages.push_back(added);
  const std::vector<double> x = Inputs(50);
  EXPECT_EQ(Forward(one, x, 50), Forward(two, x, 50));
}

TEST(ValidateNetworkTest, NamesWhatIsWrong) {
  EXPECT_TRUE(ValidateNetwork(TwoStages()).ok());
  EXPECT_THAT(ValidateNetwork({}).message(), HasSubstr("no stages"));
  NetworkParameters n = TwoStages();
  n.stages[1].layers[0].residual = true;
  EXPECT_THAT(ValidateNetwork(n).message(),
              HasSubstr("stages[1]: MlpParameters.layers[0].residual"));
  n = TwoStages();
  n.stages[0].layers[2].residual = true;
  EXPECT_THAT(ValidateNetwork(n).message(), HasSubstr("output layer"));
  n = TwoStages();
  n.stages[1].x_mean.push_back(0);
  n.stages[1].x_std.push_back(1);
  n.stages[1].layers[0].inputs = 3;
  n.stages[1].layers[0].weight.resize(18);
  EXPECT_THAT(ValidateNetwork(n).message(),
              HasSubstr("stages[1] has 3 inputs and 1 outputs"));
  EXPECT_TRUE(Forward(n, Inputs(2), 2).empty());
}

TEST(CheckpointTest, RoundTripsEveryNumberExactly) {
  const NetworkParameters n = TwoStages();
  absl::StatusOr<NetworkParameters> back =
      ParseCheckpoint(SerializeCheckpoint(n));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->stages.size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    const MlpParameters& a = n.stages[k];
    const MlpParameters& b = back->stages[k];
    EXPECT_EQ(a.x_mean, b.x_mean);
    EXPECT_EQ(a.x_std, b.x_std);
    EXPECT_EQ(a.y_mean, b.y_mean);
    EXPECT_EQ(a.y_std, b.y_std);
    ASSERT_EQ(a.layers.size(), b.layers.size());
    for (size_t l = 0; l < a.layers.size(); ++l) {
      EXPECT_EQ(a.layers[l].inputs, b.layers[l].inputs);
      EXPECT_EQ(a.layers[l].outputs, b.layers[l].outputs);
      EXPECT_EQ(a.layers[l].weight, b.layers[l].weight);
      EXPECT_EQ(a.layers[l].bias, b.layers[l].bias);
      EXPECT_EQ(a.layers[l].activation, b.layers[l].activation);
      EXPECT_EQ(a.layers[l].residual, b.layers[l].residual);
    }
  }
  const std::vector<double> x = Inputs(10);
  EXPECT_EQ(Forward(n, x, 10), Forward(*back, x, 10));
}

TEST(CheckpointTest, RefusesMalformedWeightsNamingTheField) {
  v1::NetworkWeights w = ToNetworkWeights(TwoStages());
  w.mutable_stages(1)->mutable_layers(0)->add_weight(1.0);
  absl::StatusOr<NetworkParameters> n = FromNetworkWeights(w);
  EXPECT_EQ(n.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(n.status().message(), HasSubstr("stages[1]: layers[0].weight"));

  w = ToNetworkWeights(TwoStages());
  w.mutable_stages(0)->clear_y_std();
  EXPECT_THAT(FromNetworkWeights(w).status().message(),
              HasSubstr("stages[0]: y_std"));

  EXPECT_EQ(FromNetworkWeights(v1::NetworkWeights()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseCheckpoint("\xff\xff not a proto").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace evonas::model
