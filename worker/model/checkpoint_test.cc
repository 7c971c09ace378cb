#include "worker/model/checkpoint.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/genome.h"
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

// A 6 x 5 image -> conv 3x3 to 3 channels (batch norm, relu, max pooling to
// 3 x 2) -> conv 1x1 residual (silu, dropout) -> 4 tanh -> 2, with random
// weights from `seed`.
MlpParameters ConvStage(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  const auto values = [&](int64_t n, double offset) {
    std::vector<double> v;
    for (int64_t k = 0; k < n; ++k) v.push_back(offset + u(rng));
    return v;
  };
  MlpParameters p;
  p.image_height = 6;
  p.image_width = 5;
  p.x_mean = values(30, 100.0);
  p.x_std = values(30, 50.0);
  p.y_mean = values(2, 0.0);
  p.y_std = values(2, 2.0);
  ConvParameters c0;
  c0.in_channels = 1;
  c0.out_channels = 3;
  c0.kernel_size = 3;
  c0.weight = values(27, 0.0);
  c0.bias = values(3, 0.0);
  c0.activation = v1::ACTIVATION_RELU;
  c0.pooling = v1::POOLING_MAX;
  c0.batch_norm = true;
  c0.bn_scale = values(3, 1.0);
  c0.bn_shift = values(3, 0.0);
  c0.bn_running_mean = values(3, 0.0);
  c0.bn_running_var = values(3, 1.5);
  ConvParameters c1;
  c1.in_channels = 3;
  c1.out_channels = 3;
  c1.kernel_size = 1;
  c1.weight = values(9, 0.0);
  c1.bias = values(3, 0.0);
  c1.activation = v1::ACTIVATION_SILU;
  c1.residual = true;
  c1.dropout = 0.125;
  p.conv_layers = {c0, c1};
  p.layers.push_back(
      {18, 4, values(72, 0.0), values(4, 0.0), v1::ACTIVATION_TANH});
  p.layers.push_back(
      {4, 2, values(8, 0.0), values(2, 0.0), v1::ACTIVATION_UNSPECIFIED});
  return p;
}

TEST(CheckpointTest, RoundTripsAConvNetworkExactly) {
  const NetworkParameters n{{ConvStage(7)}};
  ASSERT_TRUE(ValidateNetwork(n).ok()) << ValidateNetwork(n);
  absl::StatusOr<NetworkParameters> back =
      ParseCheckpoint(SerializeCheckpoint(n));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->stages.size(), 1u);
  const MlpParameters& a = n.stages[0];
  const MlpParameters& b = back->stages[0];
  EXPECT_EQ(b.image_height, 6);
  EXPECT_EQ(b.image_width, 5);
  EXPECT_EQ(a.x_mean, b.x_mean);
  EXPECT_EQ(a.x_std, b.x_std);
  ASSERT_EQ(b.conv_layers.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const ConvParameters& ca = a.conv_layers[i];
    const ConvParameters& cb = b.conv_layers[i];
    EXPECT_EQ(ca.in_channels, cb.in_channels);
    EXPECT_EQ(ca.out_channels, cb.out_channels);
    EXPECT_EQ(ca.kernel_size, cb.kernel_size);
    EXPECT_EQ(ca.weight, cb.weight);
    EXPECT_EQ(ca.bias, cb.bias);
    EXPECT_EQ(ca.activation, cb.activation);
    EXPECT_EQ(ca.pooling, cb.pooling);
    EXPECT_EQ(ca.residual, cb.residual);
    EXPECT_EQ(ca.dropout, cb.dropout);
    EXPECT_EQ(ca.batch_norm, cb.batch_norm);
    EXPECT_EQ(ca.bn_scale, cb.bn_scale);
    EXPECT_EQ(ca.bn_shift, cb.bn_shift);
    EXPECT_EQ(ca.bn_running_mean, cb.bn_running_mean);
    EXPECT_EQ(ca.bn_running_var, cb.bn_running_var);
  }
  ASSERT_EQ(b.layers.size(), 2u);
  EXPECT_EQ(a.layers[0].weight, b.layers[0].weight);
  // Serialising again gives the same bytes: nothing was lost or added.
  EXPECT_EQ(SerializeCheckpoint(*back), SerializeCheckpoint(n));
  std::vector<double> x;
  for (int k = 0; k < 3 * 30; ++k) x.push_back(100.0 + 40.0 * std::sin(k));
  const std::vector<double> y = Forward(n, x, 3);
  ASSERT_EQ(y.size(), 6u);
  EXPECT_EQ(Forward(*back, x, 3), y);
}

// The zero network the controller builds for a convolutional genome
// (evonas::ZeroWeights) is a valid checkpoint, with the genome's parameter
// count: the two sides agree on shapes and on what counts.
TEST(CheckpointTest, AcceptsTheGenomesZeroWeights) {
  v1::Genome g;
  g.add_hidden_layers()->set_width(16);
  g.mutable_hidden_layers(0)->set_activation(v1::ACTIVATION_RELU);
  const auto conv = [&g](int channels, int k, bool bn, v1::Pooling pooling,
                         bool residual) {
    v1::ConvLayer* c = g.add_conv_layers();
    c->set_channels(channels);
    c->set_kernel_size(k);
    c->set_activation(v1::ACTIVATION_GELU);
    c->set_batch_norm(bn);
    c->set_pooling(pooling);
    c->set_residual(residual);
    c->set_dropout(0.1);
  };
  conv(8, 5, true, v1::POOLING_MAX, false);
  conv(8, 3, false, v1::POOLING_NONE, true);
  conv(4, 7, true, v1::POOLING_AVERAGE, false);
  const ImageShape image{28, 27};
  absl::StatusOr<NetworkParameters> n =
      FromNetworkWeights(ZeroWeights(g, 28 * 27, 10, image));
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->stages[0].layers[0].inputs, 4 * 7 * 6);
  EXPECT_EQ(ParameterCount(*n), evonas::ParameterCount(g, 28 * 27, 10, image));
}

TEST(CheckpointTest, RefusesMalformedConvWeightsNamingTheField) {
  const v1::NetworkWeights good = ToNetworkWeights({{ConvStage(8)}});
  ASSERT_TRUE(FromNetworkWeights(good).ok());
  const auto message = [](const v1::NetworkWeights& w) {
    const absl::Status s = FromNetworkWeights(w).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    return std::string(s.message());
  };
  v1::NetworkWeights w = good;
  w.mutable_stages(0)->mutable_conv_layers(1)->add_weight(0.5);
  EXPECT_THAT(message(w), HasSubstr("stages[0]: conv_layers[1].weight has 10 "
                                    "values, expected 3 x 3 x 1 x 1"));
  w = good;
  w.mutable_stages(0)
      ->mutable_conv_layers(0)
      ->mutable_bn_running_var()
      ->RemoveLast();
  EXPECT_THAT(message(w),
              HasSubstr("stages[0]: conv_layers[0].bn_running_var has 2"));
  w = good;
  w.mutable_stages(0)->set_image_width(6);
  EXPECT_THAT(message(w), HasSubstr("stages[0]: x_mean has 30 values, "
                                    "expected image_height 6 x image_width "
                                    "6"));
  w = good;
  w.mutable_stages(0)->mutable_conv_layers(0)->set_kernel_size(2);
  EXPECT_THAT(message(w), HasSubstr("stages[0]: conv_layers[0].kernel_size"));
  w = good;
  w.mutable_stages(0)->mutable_conv_layers(1)->set_activation(
      static_cast<v1::Activation>(42));
  EXPECT_THAT(message(w), HasSubstr("stages[0]: conv_layers[1] has "
                                    "unsupported activation 42"));
  w = good;
  *w.add_stages() = good.stages(0);
  EXPECT_THAT(message(w), HasSubstr("has conv_layers but the network has 2 "
                                    "stages"));
  // In the proto's terms, not the C++ struct's.
  EXPECT_THAT(message(w), ::testing::Not(HasSubstr("Parameters.")));
}

}  // namespace
}  // namespace evonas::model
