#include "worker/model/morphism.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/genome.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/model/checkpoint.h"
#include "worker/model/mlp.h"

namespace evonas::model {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kInputs = 3;
constexpr int64_t kOutputs = 2;

v1::DenseLayer Layer(int width, v1::Activation activation,
                     bool residual = false) {
  v1::DenseLayer layer;
  layer.set_width(width);
  layer.set_activation(activation);
  layer.set_residual(residual);
  return layer;
}

// Stage 0: 3 -> 8 tanh -> 8 silu residual -> 6 gelu -> 2;
// stage 1: 3 -> 5 sine -> 5 relu residual -> 2.
v1::Genome ParentGenome() {
  v1::Genome genome;
  *genome.add_hidden_layers() = Layer(8, v1::ACTIVATION_TANH);
  *genome.add_hidden_layers() = Layer(8, v1::ACTIVATION_SILU, true);
  *genome.add_hidden_layers() = Layer(6, v1::ACTIVATION_GELU);
  genome.mutable_training()->set_learning_rate(1e-3);
  genome.mutable_training()->set_adam_steps(100);
  v1::Stage* stage = genome.add_residual_stages();
  *stage->add_hidden_layers() = Layer(5, v1::ACTIVATION_SINE);
  *stage->add_hidden_layers() = Layer(5, v1::ACTIVATION_RELU, true);
  stage->mutable_training()->set_learning_rate(1e-3);
  stage->mutable_training()->set_adam_steps(100);
  return genome;
}

std::vector<double> Uniform(size_t n, double lo, double hi,
                            std::mt19937_64& rng) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> values(n);
  for (double& v : values) v = dist(rng);
  return values;
}

// A "trained" network of `genome`: random weights, biases and scales.
NetworkParameters RandomNetwork(const v1::Genome& genome, uint64_t seed) {
  std::mt19937_64 rng(seed);
  NetworkParameters network;
  std::vector<const google::protobuf::RepeatedPtrField<v1::DenseLayer>*>
      stages = {&genome.hidden_layers()};
  for (const v1::Stage& stage : genome.residual_stages()) {
    stages.push_back(&stage.hidden_layers());
  }
  for (const auto* layers : stages) {
    MlpParameters stage;
    stage.x_mean = Uniform(kInputs, -1, 1, rng);
    stage.x_std = Uniform(kInputs, 0.5, 2, rng);
    stage.y_mean = Uniform(kOutputs, -1, 1, rng);
    stage.y_std = Uniform(kOutputs, 0.1, 3, rng);
    int64_t in = kInputs;
    for (const v1::DenseLayer& genes : *layers) {
      DenseParameters layer;
      layer.inputs = in;
      layer.outputs = genes.width();
      layer.weight = Uniform(in * genes.width(), -0.8, 0.8, rng);
      layer.bias = Uniform(genes.width(), -0.5, 0.5, rng);
      layer.activation = genes.activation();
      layer.residual = genes.residual();
      if (genes.layer_norm()) {
        layer.ln_scale = Uniform(genes.width(), 0.5, 1.5, rng);
        layer.ln_shift = Uniform(genes.width(), -0.5, 0.5, rng);
      }
      stage.layers.push_back(layer);
      in = genes.width();
    }
    DenseParameters output;
    output.inputs = in;
    output.outputs = kOutputs;
    output.weight = Uniform(in * kOutputs, -0.8, 0.8, rng);
    output.bias = Uniform(kOutputs, -0.5, 0.5, rng);
    stage.layers.push_back(output);
    network.stages.push_back(stage);
  }
  return network;
}

Samples RandomSamples(int64_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Samples samples;
  samples.x = {rows, kInputs, Uniform(rows * kInputs, -3, 3, rng)};
  samples.y = {rows, kOutputs, Uniform(rows * kOutputs, -5, 5, rng)};
  return samples;
}

v1::Morphism Make(v1::MorphismKind kind, int stage, int layer) {
  v1::Morphism morphism;
  morphism.set_kind(kind);
  morphism.set_stage(stage);
  morphism.set_layer(layer);
  return morphism;
}

// Largest |child - parent| relative to max(1, |parent|) on fresh random
// inputs.
double MaxOutputChange(const NetworkParameters& parent,
                       const NetworkParameters& child) {
  const Samples probe = RandomSamples(500, 99);
  const std::vector<double> a = Forward(parent, probe.x.data, probe.x.rows);
  const std::vector<double> b = Forward(child, probe.x.data, probe.x.rows);
  EXPECT_EQ(a.size(), static_cast<size_t>(500 * kOutputs));
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    worst = std::max(worst,
                     std::fabs(b[i] - a[i]) / std::max(1.0, std::fabs(a[i])));
  }
  return worst;
}

struct PreservingCase {
  std::string name;
  v1::Morphism morphism;
  v1::Genome child;
};

std::vector<PreservingCase> PreservingCases() {
  const v1::Genome parent = ParentGenome();
  std::vector<PreservingCase> cases;
  {
    v1::Genome child = parent;
    child.mutable_training()->set_learning_rate(3e-4);  // training genes only
    child.mutable_training()->set_adam_steps(50);
    cases.push_back(
        {"continue", Make(v1::MORPHISM_KIND_CONTINUE, 0, 0), child});
  }
  {
    // Layers 0 and 1 of stage 0 and both of stage 1 are or feed residual
    // layers, whose widths are fixed: layer 2 of stage 0 is the one to widen.
    v1::Genome child = parent;
    child.mutable_hidden_layers(2)->set_width(11);
    cases.push_back(
        {"widen_stage0_layer2", Make(v1::MORPHISM_KIND_WIDEN, 0, 2), child});
  }
  for (int at : {1, 2, 3}) {
    for (v1::Activation activation :
         {v1::ACTIVATION_TANH, v1::ACTIVATION_RELU, v1::ACTIVATION_SILU,
          v1::ACTIVATION_GELU, v1::ACTIVATION_SINE}) {
      v1::Genome child = parent;
      const int width = parent.hidden_layers(at - 1).width();
      auto* layers = child.mutable_hidden_layers();
      layers->Add();
      for (int i = layers->size() - 1; i > at; --i) {
        layers->SwapElements(i, i - 1);
      }
      *layers->Mutable(at) = Layer(width, activation, true);
      cases.push_back({absl::StrCat("deepen_stage0_at", at, "_",
                                    v1::Activation_Name(activation)),
                       Make(v1::MORPHISM_KIND_DEEPEN, 0, at), child});
    }
  }
  {
    v1::Genome child = parent;
    v1::Stage* stage = child.mutable_residual_stages(0);
    *stage->add_hidden_layers() = Layer(5, v1::ACTIVATION_GELU, true);
    cases.push_back(
        {"deepen_stage1_end", Make(v1::MORPHISM_KIND_DEEPEN, 1, 2), child});
  }
  {
    v1::Genome child = parent;
    v1::Stage* stage = child.add_residual_stages();
    *stage->add_hidden_layers() = Layer(7, v1::ACTIVATION_TANH);
    *stage->add_hidden_layers() = Layer(7, v1::ACTIVATION_SILU, true);
    *stage->add_hidden_layers() = Layer(3, v1::ACTIVATION_RELU);
    stage->mutable_training()->set_learning_rate(1e-3);
    stage->mutable_training()->set_adam_steps(10);
    cases.push_back(
        {"add_stage", Make(v1::MORPHISM_KIND_ADD_STAGE, 2, 0), child});
  }
  return cases;
}

TEST(MorphismTest, FunctionPreservingKindsKeepTheOutputs) {
  const v1::Genome parent_genome = ParentGenome();
  const Samples sample = RandomSamples(64, 7);
  for (uint64_t seed : {1, 2, 3}) {
    const NetworkParameters parent = RandomNetwork(parent_genome, seed);
    for (const PreservingCase& c : PreservingCases()) {
      SCOPED_TRACE(c.name);
      ASSERT_TRUE(IsFunctionPreserving(c.morphism.kind()));
      absl::StatusOr<NetworkParameters> child = ApplyMorphism(
          parent_genome, parent, c.morphism, c.child, seed, sample);
      ASSERT_TRUE(child.ok()) << child.status();
      EXPECT_TRUE(CheckNetworkMatchesGenome(*child, c.child).ok());
      EXPECT_LE(MaxOutputChange(parent, *child), 1e-10);
      absl::StatusOr<double> relative =
          MaxRelativeOutputDifference(parent, *child, sample.x);
      ASSERT_TRUE(relative.ok()) << relative.status();
      EXPECT_LE(*relative, 1e-10);
    }
  }
}

TEST(MorphismTest, WidenAddsRandomIncomingAndZeroOutgoingWeights) {
  const v1::Genome parent_genome = ParentGenome();
  const NetworkParameters parent = RandomNetwork(parent_genome, 5);
  v1::Genome child_genome = parent_genome;
  child_genome.mutable_hidden_layers(2)->set_width(10);
  const v1::Morphism widen = Make(v1::MORPHISM_KIND_WIDEN, 0, 2);
  const Samples sample = RandomSamples(8, 1);
  auto a = ApplyMorphism(parent_genome, parent, widen, child_genome, 1, sample);
  auto b = ApplyMorphism(parent_genome, parent, widen, child_genome, 1, sample);
  auto c = ApplyMorphism(parent_genome, parent, widen, child_genome, 2, sample);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << a.status();
  const DenseParameters& layer = a->stages[0].layers[2];
  const DenseParameters& next = a->stages[0].layers[3];
  const DenseParameters& old = parent.stages[0].layers[2];
  ASSERT_EQ(layer.outputs, 10);
  ASSERT_EQ(layer.weight.size(), 10u * 8u);
  ASSERT_EQ(next.inputs, 10);
  // The old neurons are untouched, the new ones random and distinct.
  for (size_t i = 0; i < old.weight.size(); ++i) {
    EXPECT_EQ(layer.weight[i], old.weight[i]);
  }
  for (size_t i = old.weight.size(); i < layer.weight.size(); ++i) {
    EXPECT_NE(layer.weight[i], 0.0);
    EXPECT_LE(std::fabs(layer.weight[i]), std::sqrt(6.0 / (8 + 10)));
  }
  for (int64_t o = 0; o < next.outputs; ++o) {
    for (int64_t j = 6; j < 10; ++j) EXPECT_EQ(next.weight[o * 10 + j], 0.0);
    for (int64_t j = 0; j < 6; ++j) {
      EXPECT_EQ(next.weight[o * 10 + j],
                parent.stages[0].layers[3].weight[o * 6 + j]);
    }
  }
  // Deterministic in the seed.
  EXPECT_EQ(a->stages[0].layers[2].weight, b->stages[0].layers[2].weight);
  EXPECT_NE(a->stages[0].layers[2].weight, c->stages[0].layers[2].weight);
}

TEST(MorphismTest, DeepenThenRemoveLayerGivesTheParentBack) {
  const v1::Genome parent_genome = ParentGenome();
  const NetworkParameters parent = RandomNetwork(parent_genome, 11);
  v1::Genome deep = parent_genome;
  *deep.mutable_residual_stages(0)->add_hidden_layers() =
      Layer(5, v1::ACTIVATION_TANH, true);
  const Samples sample = RandomSamples(8, 1);
  auto deeper = ApplyMorphism(parent_genome, parent,
                              Make(v1::MORPHISM_KIND_DEEPEN, 1, 2), deep, 3,
                              sample);
  ASSERT_TRUE(deeper.ok()) << deeper.status();
  const DenseParameters& inserted = deeper->stages[1].layers[2];
  EXPECT_TRUE(inserted.residual);
  EXPECT_EQ(inserted.weight, std::vector<double>(25, 0.0));
  EXPECT_EQ(inserted.bias, std::vector<double>(5, 0.0));
  EXPECT_FALSE(IsFunctionPreserving(v1::MORPHISM_KIND_REMOVE_LAYER));
  auto back = ApplyMorphism(deep, *deeper,
                            Make(v1::MORPHISM_KIND_REMOVE_LAYER, 1, 2),
                            parent_genome, 3, sample);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->stages.size(), parent.stages.size());
  for (size_t s = 0; s < parent.stages.size(); ++s) {
    ASSERT_EQ(back->stages[s].layers.size(), parent.stages[s].layers.size());
    for (size_t l = 0; l < parent.stages[s].layers.size(); ++l) {
      EXPECT_EQ(back->stages[s].layers[l].weight,
                parent.stages[s].layers[l].weight);
      EXPECT_EQ(back->stages[s].layers[l].bias,
                parent.stages[s].layers[l].bias);
    }
  }
}

TEST(MorphismTest, RemoveLayerDropsTheTrainedResidualLayer) {
  const v1::Genome parent_genome = ParentGenome();
  const NetworkParameters parent = RandomNetwork(parent_genome, 12);
  v1::Genome child_genome = parent_genome;
  child_genome.mutable_hidden_layers()->erase(
      child_genome.mutable_hidden_layers()->begin() + 1);
  auto child = ApplyMorphism(parent_genome, parent,
                             Make(v1::MORPHISM_KIND_REMOVE_LAYER, 0, 1),
                             child_genome, 1, RandomSamples(8, 1));
  ASSERT_TRUE(child.ok()) << child.status();
  ASSERT_EQ(child->stages[0].layers.size(), 3u);
  EXPECT_EQ(child->stages[0].layers[0].weight,
            parent.stages[0].layers[0].weight);
  EXPECT_EQ(child->stages[0].layers[1].weight,
            parent.stages[0].layers[2].weight);
  EXPECT_EQ(child->stages[1].layers.size(), 3u);
  EXPECT_GT(MaxOutputChange(parent, *child), 0.0);  // approximate
}

// Stage 1's residual layer feeds the linear output layer: moving its mean
// contribution into the output biases keeps the mean output on the sample.
TEST(MorphismTest, RemoveLayerKeepsTheMeanOutputOnTheSample) {
  const v1::Genome parent_genome = ParentGenome();
  const NetworkParameters parent = RandomNetwork(parent_genome, 14);
  v1::Genome child_genome = parent_genome;
  child_genome.mutable_residual_stages(0)->mutable_hidden_layers()->RemoveLast();
  const Samples sample = RandomSamples(300, 6);
  auto child = ApplyMorphism(parent_genome, parent,
                             Make(v1::MORPHISM_KIND_REMOVE_LAYER, 1, 1),
                             child_genome, 1, sample);
  ASSERT_TRUE(child.ok()) << child.status();
  const std::vector<double> a = Forward(parent, sample.x.data, 300);
  const std::vector<double> b = Forward(*child, sample.x.data, 300);
  ASSERT_EQ(a.size(), b.size());
  for (int64_t o = 0; o < kOutputs; ++o) {
    double mean_a = 0, mean_b = 0, change = 0;
    for (int64_t r = 0; r < 300; ++r) {
      mean_a += a[r * kOutputs + o] / 300;
      mean_b += b[r * kOutputs + o] / 300;
      change = std::max(change, std::fabs(a[r * kOutputs + o] -
                                          b[r * kOutputs + o]));
    }
    EXPECT_NEAR(mean_a, mean_b, 1e-12);
    EXPECT_GT(change, 1e-6);  // the function did change
  }
  Samples empty;
  empty.x = {0, kInputs, {}};
  EXPECT_EQ(ApplyMorphism(parent_genome, parent,
                          Make(v1::MORPHISM_KIND_REMOVE_LAYER, 1, 1),
                          child_genome, 1, empty)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MorphismTest, AddStageScalesTheNewStageToTheResidual) {
  const v1::Genome parent_genome = ParentGenome();
  const NetworkParameters parent = RandomNetwork(parent_genome, 13);
  v1::Genome child_genome = parent_genome;
  *child_genome.add_residual_stages()->add_hidden_layers() =
      Layer(4, v1::ACTIVATION_TANH);
  const Samples sample = RandomSamples(200, 4);
  auto child = ApplyMorphism(parent_genome, parent,
                             Make(v1::MORPHISM_KIND_ADD_STAGE, 2, 0),
                             child_genome, 1, sample);
  ASSERT_TRUE(child.ok()) << child.status();
  ASSERT_EQ(child->stages.size(), 3u);
  const MlpParameters& stage = child->stages[2];
  EXPECT_EQ(stage.x_mean, parent.stages[0].x_mean);
  EXPECT_EQ(stage.x_std, parent.stages[0].x_std);
  EXPECT_EQ(stage.y_mean, std::vector<double>(kOutputs, 0.0));
  const std::vector<double> predicted =
      Forward(parent, sample.x.data, sample.x.rows);
  for (int64_t o = 0; o < kOutputs; ++o) {
    double squares = 0;
    for (int64_t r = 0; r < 200; ++r) {
      const double d =
          sample.y.data[r * kOutputs + o] - predicted[r * kOutputs + o];
      squares += d * d;
    }
    EXPECT_NEAR(stage.y_std[o], std::sqrt(squares / 200), 1e-12);
  }
  EXPECT_EQ(stage.layers.back().weight, std::vector<double>(4 * kOutputs, 0.0));
  EXPECT_NE(stage.layers.front().weight,
            std::vector<double>(kInputs * 4, 0.0));
}

// The largest |value| of `values`.
double Largest(const std::vector<double>& values) {
  double largest = 0;
  for (double v : values) largest = std::max(largest, std::fabs(v));
  return largest;
}

TEST(MorphismTest, AddStageStartsItsLayersFreshWithoutSiren) {
  // Glorot weights and zero biases for sine layers, whatever the stage's
  // siren_omega (morphism.cc, NewStage); a Gaussian layer reading the inputs
  // gets biases U(-1, 1). 36 and 144 draws span nearly all of each range.
  const v1::Genome parent_genome = ParentGenome();
  const NetworkParameters parent = RandomNetwork(parent_genome, 13);
  for (v1::Activation first : {v1::ACTIVATION_SINE, v1::ACTIVATION_GAUSSIAN}) {
    v1::Genome child_genome = parent_genome;
    v1::Stage* added = child_genome.add_residual_stages();
    *added->add_hidden_layers() = Layer(12, first);
    *added->add_hidden_layers() = Layer(12, v1::ACTIVATION_SINE);
    added->mutable_training()->set_siren_omega(20);
    const Samples sample = RandomSamples(50, 4);
    auto child = ApplyMorphism(parent_genome, parent,
                               Make(v1::MORPHISM_KIND_ADD_STAGE, 2, 0),
                               child_genome, 1, sample);
    ASSERT_TRUE(child.ok()) << child.status();
    const DenseParameters& a = child->stages[2].layers[0];
    const DenseParameters& b = child->stages[2].layers[1];
    EXPECT_LE(Largest(a.weight), std::sqrt(6.0 / 15));
    EXPECT_GT(Largest(a.weight), 0.5);
    if (first == v1::ACTIVATION_GAUSSIAN) {
      EXPECT_LE(Largest(a.bias), 1.0);
      EXPECT_GT(Largest(a.bias), 0.5);
    } else {
      EXPECT_EQ(Largest(a.bias), 0.0);
    }
    EXPECT_LE(Largest(b.weight), 0.5);
    EXPECT_GT(Largest(b.weight), 0.4);
    EXPECT_EQ(Largest(b.bias), 0.0);
    // Still exactly the parent's function: the output layer is zero.
    EXPECT_EQ(MaxOutputChange(parent, *child), 0.0);
  }
}

TEST(MorphismTest, WidenGivesNewGaussianNeuronsReadingTheInputsBiases) {
  // A Gaussian first layer's fresh neurons get biases U(-1, 1), as the
  // trainer's: with zero biases each would be even in the inputs.
  v1::Genome parent_genome;
  *parent_genome.add_hidden_layers() = Layer(4, v1::ACTIVATION_GAUSSIAN);
  *parent_genome.add_hidden_layers() = Layer(4, v1::ACTIVATION_GAUSSIAN);
  parent_genome.mutable_training()->set_learning_rate(1e-3);
  const NetworkParameters parent = RandomNetwork(parent_genome, 3);
  const Samples sample = RandomSamples(8, 1);
  for (int layer : {0, 1}) {
    v1::Genome child_genome = parent_genome;
    child_genome.mutable_hidden_layers(layer)->set_width(40);
    auto child = ApplyMorphism(parent_genome, parent,
                               Make(v1::MORPHISM_KIND_WIDEN, 0, layer),
                               child_genome, 1, sample);
    ASSERT_TRUE(child.ok()) << child.status();
    const std::vector<double>& bias = child->stages[0].layers[layer].bias;
    ASSERT_EQ(bias.size(), 40u);
    const std::vector<double> fresh(bias.begin() + 4, bias.end());
    if (layer == 0) {
      EXPECT_LE(Largest(fresh), 1.0);
      EXPECT_GT(Largest(fresh), 0.5);
    } else {
      EXPECT_EQ(Largest(fresh), 0.0);
    }
    EXPECT_LT(MaxOutputChange(parent, *child), 1e-12);
  }
}

// One hidden layer of four ReLU neurons with known activations on a
// constant sample and known outgoing weights, so the scores are known.
TEST(MorphismTest, NarrowKeepsTheHighestScoringNeurons) {
  v1::Genome parent_genome;
  *parent_genome.add_hidden_layers() = Layer(4, v1::ACTIVATION_RELU);
  NetworkParameters parent;
  MlpParameters stage;
  stage.x_mean = {0, 0, 0};
  stage.x_std = {1, 1, 1};
  stage.y_mean = {0.5, -1};
  stage.y_std = {2, 3};
  DenseParameters hidden;
  hidden.inputs = 3;
  hidden.outputs = 4;
  // On x = (1, 0, 0), neuron j outputs j + 1 (mean |activation|).
  hidden.weight = {1, 0.1, 0.2, 2, 0.3, 0.4, 3, 0.5, 0.6, 4, 0.7, 0.8};
  hidden.bias = {0, 0, 0, 0};
  hidden.activation = v1::ACTIVATION_RELU;
  DenseParameters output;
  output.inputs = 4;
  output.outputs = 2;
  // Outgoing norms 4, 0.1, 1, 0.5: scores 4, 0.2, 3, 2.
  output.weight = {4, 0.1, 0, 0.3, 0, 0, 1, 0.4};
  output.bias = {0.25, -0.5};
  stage.layers = {hidden, output};
  parent.stages = {stage};
  v1::Genome child_genome = parent_genome;
  child_genome.mutable_hidden_layers(0)->set_width(2);
  Samples sample;
  sample.x = {5, 3, {1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0}};
  const v1::Morphism narrow = Make(v1::MORPHISM_KIND_NARROW, 0, 0);
  EXPECT_FALSE(IsFunctionPreserving(narrow.kind()));
  auto child =
      ApplyMorphism(parent_genome, parent, narrow, child_genome, 1, sample);
  ASSERT_TRUE(child.ok()) << child.status();
  const DenseParameters& kept = child->stages[0].layers[0];
  const DenseParameters& next = child->stages[0].layers[1];
  // Neurons 0 and 2, in their order.
  EXPECT_EQ(kept.weight, std::vector<double>({1, 0.1, 0.2, 3, 0.5, 0.6}));
  EXPECT_EQ(next.weight, std::vector<double>({4, 0, 0, 1}));
  // Dropped neurons 1 (mean 2) and 3 (mean 4) move into the biases.
  EXPECT_DOUBLE_EQ(next.bias[0], 0.25 + 0.1 * 2 + 0.3 * 4);
  EXPECT_DOUBLE_EQ(next.bias[1], -0.5 + 0 * 2 + 0.4 * 4);
  // On the (constant) sample the outputs are kept.
  const std::vector<double> a = Forward(parent, sample.x.data, 5);
  const std::vector<double> b = Forward(*child, sample.x.data, 5);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-12);

  Samples empty;
  empty.x = {0, 3, {}};
  EXPECT_THAT(ApplyMorphism(parent_genome, parent, narrow, child_genome, 1,
                            empty)
                  .status()
                  .message(),
              HasSubstr("at least one row"));
}

TEST(MorphismTest, NarrowOnATrainedLayerGivesTheChildsShapes) {
  const v1::Genome parent_genome = ParentGenome();
  const NetworkParameters parent = RandomNetwork(parent_genome, 21);
  v1::Genome child_genome = parent_genome;
  child_genome.mutable_hidden_layers(2)->set_width(3);
  auto child = ApplyMorphism(parent_genome, parent,
                             Make(v1::MORPHISM_KIND_NARROW, 0, 2),
                             child_genome, 1, RandomSamples(3000, 2));
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_TRUE(CheckNetworkMatchesGenome(*child, child_genome).ok());
  EXPECT_EQ(child->stages[0].layers[2].outputs, 3);
  EXPECT_EQ(child->stages[0].layers[3].inputs, 3);
  EXPECT_EQ(ParameterCount(*child),
            ParameterCount(parent) - 3 * 8 - 3 - 3 * kOutputs);
}

// ParentGenome with layer normalisation in stage 0's layers 0 and 1 (the
// second residual) and stage 1's layer 0.
v1::Genome NormalisedParentGenome() {
  v1::Genome genome = ParentGenome();
  genome.mutable_hidden_layers(0)->set_layer_norm(true);
  genome.mutable_hidden_layers(1)->set_layer_norm(true);
  genome.mutable_residual_stages(0)->mutable_hidden_layers(0)->set_layer_norm(
      true);
  return genome;
}

TEST(MorphismTest, LayerNormalisedNetworksKeepTheirOutputs) {
  const v1::Genome parent_genome = NormalisedParentGenome();
  std::vector<PreservingCase> cases;
  {
    v1::Genome child = parent_genome;
    child.mutable_training()->set_adam_steps(50);
    cases.push_back(
        {"continue", Make(v1::MORPHISM_KIND_CONTINUE, 0, 0), child});
  }
  {
    // Layer 2 is not normalised; the layers before it are.
    v1::Genome child = parent_genome;
    child.mutable_hidden_layers(2)->set_width(11);
    cases.push_back({"widen", Make(v1::MORPHISM_KIND_WIDEN, 0, 2), child});
  }
  for (v1::Activation activation :
       {v1::ACTIVATION_TANH, v1::ACTIVATION_SILU, v1::ACTIVATION_SINE}) {
    // A normalised zero layer: every row normalises to 0, the shift is 0.
    v1::Genome child = parent_genome;
    v1::Stage* stage = child.mutable_residual_stages(0);
    v1::DenseLayer inserted = Layer(5, activation, true);
    inserted.set_layer_norm(true);
    *stage->add_hidden_layers() = inserted;
    cases.push_back({absl::StrCat("deepen_", v1::Activation_Name(activation)),
                     Make(v1::MORPHISM_KIND_DEEPEN, 1, 2), child});
  }
  {
    v1::Genome child = parent_genome;
    v1::Stage* stage = child.add_residual_stages();
    v1::DenseLayer layer = Layer(7, v1::ACTIVATION_TANH);
    layer.set_layer_norm(true);
    *stage->add_hidden_layers() = layer;
    stage->mutable_training()->set_learning_rate(1e-3);
    stage->mutable_training()->set_adam_steps(10);
    cases.push_back(
        {"add_stage", Make(v1::MORPHISM_KIND_ADD_STAGE, 2, 0), child});
  }
  const Samples sample = RandomSamples(64, 7);
  for (uint64_t seed : {1, 2}) {
    const NetworkParameters parent = RandomNetwork(parent_genome, seed);
    for (const PreservingCase& c : cases) {
      SCOPED_TRACE(c.name);
      absl::StatusOr<NetworkParameters> child = ApplyMorphism(
          parent_genome, parent, c.morphism, c.child, seed, sample);
      ASSERT_TRUE(child.ok()) << child.status();
      EXPECT_TRUE(CheckNetworkMatchesGenome(*child, c.child).ok());
      EXPECT_LE(MaxOutputChange(parent, *child), 1e-10);
    }
  }
  // The normalisation makes the parent differ from the same weights
  // without it (the check above is not vacuous).
  NetworkParameters plain = RandomNetwork(parent_genome, 1);
  for (MlpParameters& stage : plain.stages) {
    for (DenseParameters& layer : stage.layers) {
      layer.ln_scale.clear();
      layer.ln_shift.clear();
    }
  }
  EXPECT_GT(MaxOutputChange(RandomNetwork(parent_genome, 1), plain), 1e-3);
}

TEST(MorphismTest, LayerNormalisedLayersAreNarrowedButNotWidened) {
  v1::Genome parent_genome = ParentGenome();
  parent_genome.mutable_hidden_layers(2)->set_layer_norm(true);
  const NetworkParameters parent = RandomNetwork(parent_genome, 4);
  v1::Genome wider = parent_genome;
  wider.mutable_hidden_layers(2)->set_width(9);
  const v1::Morphism widen = Make(v1::MORPHISM_KIND_WIDEN, 0, 2);
  const absl::Status refused = CheckMorphism(parent_genome, wider, widen);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("layer-normalised"));
  EXPECT_FALSE(
      ApplyMorphism(parent_genome, parent, widen, wider, 1, RandomSamples(8, 1))
          .ok());

  v1::Genome narrower = parent_genome;
  narrower.mutable_hidden_layers(2)->set_width(3);
  auto child =
      ApplyMorphism(parent_genome, parent, Make(v1::MORPHISM_KIND_NARROW, 0, 2),
                    narrower, 1, RandomSamples(3000, 2));
  ASSERT_TRUE(child.ok()) << child.status();
  const DenseParameters& layer = child->stages[0].layers[2];
  const DenseParameters& old = parent.stages[0].layers[2];
  ASSERT_EQ(layer.ln_scale.size(), 3u);
  ASSERT_EQ(layer.ln_shift.size(), 3u);
  // The kept neurons keep their own scale and shift.
  for (size_t j = 0; j < 3; ++j) {
    const auto at = std::find(old.bias.begin(), old.bias.end(), layer.bias[j]);
    ASSERT_NE(at, old.bias.end());
    const size_t k = static_cast<size_t>(at - old.bias.begin());
    EXPECT_EQ(layer.ln_scale[j], old.ln_scale[k]);
    EXPECT_EQ(layer.ln_shift[j], old.ln_shift[k]);
  }
  // A normalised layer keeps two neurons.
  narrower.mutable_hidden_layers(2)->set_width(1);
  EXPECT_EQ(CheckMorphism(parent_genome, narrower,
                          Make(v1::MORPHISM_KIND_NARROW, 0, 2))
                .code(),
            absl::StatusCode::kInvalidArgument);
}

struct BadCase {
  std::string name;
  v1::Morphism morphism;
  v1::Genome child;
  std::string message;
};

TEST(MorphismTest, RejectsMorphismsTheGenomesDoNotShow) {
  const v1::Genome parent = ParentGenome();
  std::vector<BadCase> cases;
  auto with = [&](auto edit) {
    v1::Genome child = parent;
    edit(child);
    return child;
  };
  cases.push_back({"unspecified", Make(v1::MORPHISM_KIND_UNSPECIFIED, 0, 0),
                   parent, "unknown morphism kind"});
  cases.push_back({"widen_not_wider", Make(v1::MORPHISM_KIND_WIDEN, 0, 2),
                   parent, "it must grow"});
  cases.push_back({"widen_no_stage", Make(v1::MORPHISM_KIND_WIDEN, 4, 0),
                   parent, "the parent has stages 0..1"});
  cases.push_back({"widen_no_layer", Make(v1::MORPHISM_KIND_WIDEN, 0, 3),
                   parent, "has layers 0..2"});
  cases.push_back(
      {"widen_breaks_residual", Make(v1::MORPHISM_KIND_WIDEN, 0, 0),
       with([](v1::Genome& g) { g.mutable_hidden_layers(0)->set_width(9); }),
       "residual layer 1 of stage 0"});
  cases.push_back(
      {"widen_and_more", Make(v1::MORPHISM_KIND_WIDEN, 0, 2),
       with([](v1::Genome& g) {
         g.mutable_hidden_layers(2)->set_width(9);
         g.mutable_hidden_layers(0)->set_activation(v1::ACTIVATION_RELU);
       }),
       "stage 0 layer 0 is 8 relu, expected 8 tanh"});
  cases.push_back(
      {"narrow_to_zero", Make(v1::MORPHISM_KIND_NARROW, 0, 2),
       with([](v1::Genome& g) { g.mutable_hidden_layers(2)->set_width(0); }),
       "must shrink and stay >= 1"});
  cases.push_back(
      {"deepen_first", Make(v1::MORPHISM_KIND_DEEPEN, 0, 0),
       with([](v1::Genome& g) {
         g.mutable_hidden_layers()->Add();
         for (int i = g.hidden_layers_size() - 1; i > 0; --i) {
           g.mutable_hidden_layers()->SwapElements(i, i - 1);
         }
         *g.mutable_hidden_layers(0) = Layer(3, v1::ACTIVATION_TANH, true);
       }),
       "never first"});
  cases.push_back(
      {"deepen_not_residual", Make(v1::MORPHISM_KIND_DEEPEN, 0, 3),
       with([](v1::Genome& g) {
         *g.add_hidden_layers() = Layer(6, v1::ACTIVATION_TANH);
       }),
       "must be residual"});
  cases.push_back(
      {"deepen_wrong_width", Make(v1::MORPHISM_KIND_DEEPEN, 0, 3),
       with([](v1::Genome& g) {
         *g.add_hidden_layers() = Layer(7, v1::ACTIVATION_TANH, true);
       }),
       "needs its input width 6"});
  cases.push_back({"deepen_nothing", Make(v1::MORPHISM_KIND_DEEPEN, 0, 3),
                   parent, "has no layer 3"});
  cases.push_back({"deepen_gaussian", Make(v1::MORPHISM_KIND_DEEPEN, 0, 3),
                   with([](v1::Genome& g) {
                     *g.add_hidden_layers() =
                         Layer(6, v1::ACTIVATION_GAUSSIAN, true);
                   }),
                   "cannot be gaussian"});
  cases.push_back(
      {"remove_plain_layer", Make(v1::MORPHISM_KIND_REMOVE_LAYER, 0, 2),
       with([](v1::Genome& g) { g.mutable_hidden_layers()->RemoveLast(); }),
       "only a residual layer"});
  cases.push_back({"remove_nothing",
                   Make(v1::MORPHISM_KIND_REMOVE_LAYER, 0, 1), parent,
                   "has 3 hidden layers, expected 2"});
  cases.push_back({"add_stage_wrong_index",
                   Make(v1::MORPHISM_KIND_ADD_STAGE, 1, 0),
                   with([](v1::Genome& g) {
                     *g.add_residual_stages()->add_hidden_layers() =
                         Layer(3, v1::ACTIVATION_TANH);
                   }),
                   "must be 2"});
  cases.push_back({"add_stage_none", Make(v1::MORPHISM_KIND_ADD_STAGE, 2, 0),
                   parent, "the child has 2 stages; expected 3"});
  cases.push_back({"continue_changed",
                   Make(v1::MORPHISM_KIND_CONTINUE, 0, 0),
                   with([](v1::Genome& g) {
                     g.mutable_residual_stages(0)
                         ->mutable_hidden_layers(0)
                         ->set_width(4);
                   }),
                   "stage 1 layer 0 is 4 sine, expected 5 sine"});
  cases.push_back({"continue_no_stage",
                   Make(v1::MORPHISM_KIND_CONTINUE, 2, 0), parent,
                   "the parent has stages 0..1"});
  const NetworkParameters weights = RandomNetwork(parent, 1);
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    absl::Status checked = CheckMorphism(parent, c.child, c.morphism);
    EXPECT_EQ(checked.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(checked.message(), HasSubstr(c.message));
    absl::StatusOr<NetworkParameters> applied = ApplyMorphism(
        parent, weights, c.morphism, c.child, 1, RandomSamples(4, 1));
    EXPECT_EQ(applied.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(MorphismTest, RejectsWeightsThatDoNotFitTheParentGenome) {
  const v1::Genome parent = ParentGenome();
  v1::Genome other = parent;
  other.mutable_hidden_layers(2)->set_activation(v1::ACTIVATION_TANH);
  const NetworkParameters weights = RandomNetwork(other, 1);
  absl::StatusOr<NetworkParameters> applied =
      ApplyMorphism(parent, weights, Make(v1::MORPHISM_KIND_CONTINUE, 0, 0),
                    parent, 1, RandomSamples(4, 1));
  EXPECT_EQ(applied.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(applied.status().message(),
              HasSubstr("stage 0 layer 2 of the network is 6 tanh, the "
                        "genome says 6 gelu"));
}

TEST(MorphismTest, MaxRelativeOutputDifferenceIsRelativeToTheOutputScale) {
  const v1::Genome genome = ParentGenome();
  const NetworkParameters a = RandomNetwork(genome, 1);
  NetworkParameters b = a;
  b.stages[0].y_mean[1] += 1e-3;
  const Samples sample = RandomSamples(20, 3);
  const std::vector<double> fa = Forward(a, sample.x.data, 20);
  double largest = 0;
  for (double v : fa) largest = std::max(largest, std::fabs(v));
  absl::StatusOr<double> difference =
      MaxRelativeOutputDifference(a, b, sample.x);
  ASSERT_TRUE(difference.ok()) << difference.status();
  EXPECT_NEAR(*difference, 1e-3 / largest, 1e-12);
  NetworkParameters broken = a;
  broken.stages[1].layers[0].bias[0] = std::nan("");
  absl::StatusOr<double> to_broken =
      MaxRelativeOutputDifference(a, broken, sample.x);
  ASSERT_TRUE(to_broken.ok()) << to_broken.status();
  EXPECT_EQ(*to_broken, std::numeric_limits<double>::infinity());
  EXPECT_THAT(
      MaxRelativeOutputDifference(broken, a, sample.x).status().message(),
      HasSubstr("output 0 on row 0 is nan"));
  Samples wrong;
  wrong.x = {2, 1, {0, 0}};
  EXPECT_EQ(MaxRelativeOutputDifference(a, b, wrong.x).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// c4k3relu.bn.max - c4k3tanh > 8relu on 8 x 8 images, 3 outputs.
v1::Genome ConvParentGenome() {
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
  conv->set_activation(v1::ACTIVATION_TANH);
  v1::DenseLayer* dense = genome.add_hidden_layers();
  dense->set_width(8);
  dense->set_activation(v1::ACTIVATION_RELU);
  genome.mutable_training()->set_learning_rate(1e-3);
  genome.mutable_training()->set_adam_steps(100);
  return genome;
}

// The network of a convolutional genome with every weight, bias and batch
// normalisation statistic random (variances positive).
NetworkParameters RandomConvNetwork(const v1::Genome& genome, uint64_t seed) {
  NetworkParameters network =
      FromNetworkWeights(ZeroWeights(genome, 64, 3, {8, 8})).value();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  MlpParameters& stage = network.stages[0];
  for (int64_t i = 0; i < 64; ++i) {
    stage.x_mean[i] = u(rng);
    stage.x_std[i] = 1.5 + u(rng);
  }
  for (ConvParameters& conv : stage.conv_layers) {
    for (double& w : conv.weight) w = 0.5 * u(rng);
    for (double& b : conv.bias) b = 0.1 * u(rng);
    for (double& v : conv.bn_scale) v = 1 + 0.5 * u(rng);
    for (double& v : conv.bn_shift) v = 0.2 * u(rng);
    for (double& v : conv.bn_running_mean) v = 0.3 * u(rng);
    for (double& v : conv.bn_running_var) v = 1.2 + u(rng);
  }
  for (DenseParameters& layer : stage.layers) {
    for (double& w : layer.weight) w = 0.5 * u(rng);
    for (double& b : layer.bias) b = 0.1 * u(rng);
  }
  return network;
}

v1::Morphism ConvMorphism(v1::MorphismKind kind, int layer) {
  v1::Morphism m = Make(kind, 0, layer);
  m.set_conv(true);
  return m;
}

// ConvParentGenome with a residual 3 x 3 tanh layer inserted at `where`.
v1::Genome ResidualConvGenome(int where) {
  v1::Genome genome = ConvParentGenome();
  v1::ConvLayer inserted;
  inserted.set_channels(4);
  inserted.set_kernel_size(3);
  inserted.set_activation(v1::ACTIVATION_TANH);
  inserted.set_residual(true);
  genome.mutable_conv_layers()->Add();
  for (int i = genome.conv_layers_size() - 1; i > where; --i) {
    genome.mutable_conv_layers()->SwapElements(i, i - 1);
  }
  *genome.mutable_conv_layers(where) = inserted;
  return genome;
}

// `rows` random 8 x 8 images with pixels in [0, 255).
Matrix RandomImages(int64_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> pixel(0, 255);
  Matrix x{rows, 64, {}};
  for (int64_t i = 0; i < rows * 64; ++i) x.data.push_back(pixel(rng));
  return x;
}

TEST(MorphismTest, ConvolutionalMorphismsKeepTheOutputs) {
  const v1::Genome parent_genome = ConvParentGenome();
  struct Case {
    std::string name;
    v1::Morphism morphism;
    v1::Genome child;
  };
  std::vector<Case> cases;
  {
    v1::Genome child = parent_genome;
    child.mutable_conv_layers(0)->set_channels(7);  // feeds a conv layer
    cases.push_back(
        {"widen conv 0", ConvMorphism(v1::MORPHISM_KIND_WIDEN, 0), child});
  }
  {
    v1::Genome child = parent_genome;
    child.mutable_conv_layers(1)->set_channels(6);  // feeds the dense layer
    cases.push_back(
        {"widen conv 1", ConvMorphism(v1::MORPHISM_KIND_WIDEN, 1), child});
  }
  {
    v1::Genome child = parent_genome;
    v1::ConvLayer inserted;
    inserted.set_channels(4);
    inserted.set_kernel_size(5);
    inserted.set_activation(v1::ACTIVATION_GELU);
    inserted.set_residual(true);
    child.mutable_conv_layers()->Add();
    *child.mutable_conv_layers(2) = child.conv_layers(1);
    *child.mutable_conv_layers(1) = inserted;
    cases.push_back(
        {"deepen conv", ConvMorphism(v1::MORPHISM_KIND_DEEPEN, 1), child});
  }
  {
    v1::Genome child = parent_genome;
    child.mutable_hidden_layers(0)->set_width(11);
    child.mutable_conv_layers(1)->set_dropout(0.25);  // training only
    cases.push_back(
        {"widen dense", Make(v1::MORPHISM_KIND_WIDEN, 0, 0), child});
  }
  {
    v1::Genome child = parent_genome;
    child.mutable_training()->set_learning_rate(2e-3);
    cases.push_back({"continue", Make(v1::MORPHISM_KIND_CONTINUE, 0, 0), child});
  }
  const Matrix x = RandomImages(50, 5);
  for (uint64_t seed : {1, 2}) {
    const NetworkParameters parent = RandomConvNetwork(parent_genome, seed);
    for (const Case& c : cases) {
      SCOPED_TRACE(c.name);
      ASSERT_TRUE(CheckMorphism(parent_genome, c.child, c.morphism).ok())
          << CheckMorphism(parent_genome, c.child, c.morphism);
      absl::StatusOr<NetworkParameters> child =
          ApplyMorphism(parent_genome, parent, c.morphism, c.child, seed, {});
      ASSERT_TRUE(child.ok()) << child.status();
      EXPECT_TRUE(CheckNetworkMatchesGenome(*child, c.child).ok());
      absl::StatusOr<double> relative =
          MaxRelativeOutputDifference(parent, *child, x);
      ASSERT_TRUE(relative.ok()) << relative.status();
      EXPECT_LE(*relative, 1e-10);
    }
  }
}

// Channels that output a constant are dropped exactly: channel 1 of layer
// 0 is 0 everywhere (ReLU of a negative constant; the next layer's zero
// padding sees 0 too), channel 2 of layer 1 is tanh(0.3) everywhere, which
// the dense layer after the trunk absorbs into its biases. Both have the
// lowest scores: 0, and tiny outgoing weights.
TEST(MorphismTest, NarrowConvDropsTheLowestScoringChannels) {
  const v1::Genome parent_genome = ConvParentGenome();
  const Matrix sample = RandomImages(40, 6);
  const Matrix probe = RandomImages(30, 7);
  for (uint64_t seed : {1, 2}) {
    NetworkParameters parent = RandomConvNetwork(parent_genome, seed);
    MlpParameters& stage = parent.stages[0];
    ConvParameters& first = stage.conv_layers[0];  // 1 -> 4 channels, 3 x 3
    std::fill_n(first.weight.begin() + 9, 9, 0.0);
    first.bias[1] = 0.0;
    first.bn_running_mean[1] = 0.5;  // (0 - 0.5) * invstd * scale + shift < 0
    first.bn_shift[1] = -0.1;
    ConvParameters& second = stage.conv_layers[1];  // 4 -> 4, 3 x 3
    std::fill_n(second.weight.begin() + 2 * 36, 36, 0.0);
    second.bias[2] = 0.3;
    DenseParameters& dense = stage.layers[0];  // 4 channels x 16 pixels -> 8
    for (int64_t o = 0; o < dense.outputs; ++o) {
      for (int64_t p = 0; p < 16; ++p)
        dense.weight[o * 64 + 2 * 16 + p] *= 1e-6;
    }
    for (int layer : {0, 1}) {
      SCOPED_TRACE(absl::StrCat("seed ", seed, " layer ", layer));
      v1::Genome child_genome = parent_genome;
      child_genome.mutable_conv_layers(layer)->set_channels(3);
      const v1::Morphism narrow = ConvMorphism(v1::MORPHISM_KIND_NARROW, layer);
      absl::StatusOr<NetworkParameters> child = ApplyMorphism(
          parent_genome, parent, narrow, child_genome, seed, {sample, {}});
      ASSERT_TRUE(child.ok()) << child.status();
      EXPECT_TRUE(CheckNetworkMatchesGenome(*child, child_genome).ok());
      const int dropped = layer == 0 ? 1 : 2;
      const ConvParameters& before = stage.conv_layers[layer];
      const ConvParameters& after = child->stages[0].conv_layers[layer];
      const int64_t kernel = before.in_channels * 9;
      for (int64_t c = 0, kept = 0; c < 4; ++c) {
        if (c == dropped) continue;
        EXPECT_TRUE(std::equal(after.weight.begin() + kept * kernel,
                               after.weight.begin() + (kept + 1) * kernel,
                               before.weight.begin() + c * kernel));
        EXPECT_EQ(after.bias[kept], before.bias[c]);
        ++kept;
      }
      absl::StatusOr<double> relative =
          MaxRelativeOutputDifference(parent, *child, probe);
      ASSERT_TRUE(relative.ok()) << relative.status();
      EXPECT_LE(*relative, 1e-10);
    }
  }
}

// The sample rows are images (64 pixels), whatever the trunk outputs: here
// 6 channels x 16 pixels into the dense layer.
TEST(MorphismTest, ShrinkingATrunkTakesImagesAsSampleRows) {
  v1::Genome parent_genome = ConvParentGenome();
  parent_genome.mutable_conv_layers(1)->set_channels(6);
  const NetworkParameters parent = RandomConvNetwork(parent_genome, 3);
  ASSERT_EQ(parent.stages[0].layers[0].inputs, 96);
  v1::Genome narrower = parent_genome;
  narrower.mutable_conv_layers(1)->set_channels(5);
  absl::StatusOr<NetworkParameters> child = ApplyMorphism(
      parent_genome, parent, ConvMorphism(v1::MORPHISM_KIND_NARROW, 1),
      narrower, 1, {RandomImages(20, 4), {}});
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_TRUE(CheckNetworkMatchesGenome(*child, narrower).ok());
  EXPECT_EQ(child->stages[0].layers[0].inputs, 80);
}

// Removing the zero residual layer DEEPEN inserted gives the parent's
// function back; removing a trained one before the dense layer keeps the
// mean output on the sample when the rest of the network is linear there
// (ReLU on positive pre-activations).
TEST(MorphismTest, RemoveConvLayerFoldsItsMeanContribution) {
  const v1::Genome parent_genome = ConvParentGenome();
  const Matrix sample = RandomImages(40, 8);
  const NetworkParameters parent = RandomConvNetwork(parent_genome, 3);
  const v1::Genome deeper = ResidualConvGenome(1);
  absl::StatusOr<NetworkParameters> deepened =
      ApplyMorphism(parent_genome, parent,
                    ConvMorphism(v1::MORPHISM_KIND_DEEPEN, 1), deeper, 3, {});
  ASSERT_TRUE(deepened.ok()) << deepened.status();
  absl::StatusOr<NetworkParameters> back = ApplyMorphism(
      deeper, *deepened, ConvMorphism(v1::MORPHISM_KIND_REMOVE_LAYER, 1),
      parent_genome, 3, {sample, {}});
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_LE(MaxRelativeOutputDifference(parent, *back, sample).value(), 1e-12);

  const v1::Genome last_residual = ResidualConvGenome(2);
  NetworkParameters trained = RandomConvNetwork(last_residual, 4);
  for (double& b : trained.stages[0].layers[0].bias) b = 100.0;
  absl::StatusOr<NetworkParameters> removed = ApplyMorphism(
      last_residual, trained, ConvMorphism(v1::MORPHISM_KIND_REMOVE_LAYER, 2),
      parent_genome, 4, {sample, {}});
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_TRUE(CheckNetworkMatchesGenome(*removed, parent_genome).ok());
  const std::vector<double> a = Forward(trained, sample.data, sample.rows);
  const std::vector<double> b = Forward(*removed, sample.data, sample.rows);
  ASSERT_EQ(a.size(), b.size());
  double changed = 0.0;
  for (int64_t o = 0; o < 3; ++o) {
    double mean_a = 0.0, mean_b = 0.0;
    for (int64_t r = 0; r < sample.rows; ++r) {
      mean_a += a[r * 3 + o];
      mean_b += b[r * 3 + o];
      changed = std::max(changed, std::fabs(a[r * 3 + o] - b[r * 3 + o]));
    }
    EXPECT_NEAR(mean_b, mean_a, 1e-9 * std::max(1.0, std::fabs(mean_a)));
  }
  EXPECT_GT(changed, 1e-3);  // the removed layer did something

  // A consumer that is a convolutional layer: approximate, shapes fit.
  const v1::Genome inner_residual = ResidualConvGenome(1);
  absl::StatusOr<NetworkParameters> inner =
      ApplyMorphism(inner_residual, RandomConvNetwork(inner_residual, 5),
                    ConvMorphism(v1::MORPHISM_KIND_REMOVE_LAYER, 1),
                    parent_genome, 5, {sample, {}});
  ASSERT_TRUE(inner.ok()) << inner.status();
  EXPECT_TRUE(CheckNetworkMatchesGenome(*inner, parent_genome).ok());
  EXPECT_EQ(ApplyMorphism(inner_residual, RandomConvNetwork(inner_residual, 5),
                          ConvMorphism(v1::MORPHISM_KIND_REMOVE_LAYER, 1),
                          parent_genome, 5, {})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);  // no sample rows
}

// A dense layer after a trunk is narrowed as in a trunk-less network, its
// neurons scored through the trunk: a dead ReLU neuron goes exactly.
TEST(MorphismTest, NarrowDenseLayerAfterATrunk) {
  const v1::Genome parent_genome = ConvParentGenome();
  NetworkParameters parent = RandomConvNetwork(parent_genome, 9);
  DenseParameters& dense = parent.stages[0].layers[0];
  std::fill_n(dense.weight.begin() + 5 * dense.inputs, dense.inputs, 0.0);
  dense.bias[5] = -1.0;
  v1::Genome child_genome = parent_genome;
  child_genome.mutable_hidden_layers(0)->set_width(7);
  absl::StatusOr<NetworkParameters> child =
      ApplyMorphism(parent_genome, parent, Make(v1::MORPHISM_KIND_NARROW, 0, 0),
                    child_genome, 9, {RandomImages(40, 10), {}});
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_LE(
      MaxRelativeOutputDifference(parent, *child, RandomImages(40, 10)).value(),
      1e-12);
}

TEST(MorphismTest, ConvolutionalMorphismsThatDoNotApplyAreRefused) {
  const v1::Genome parent = ConvParentGenome();
  v1::Morphism keep = Make(v1::MORPHISM_KIND_CONTINUE, 0, 0);
  v1::Genome other_trunk = parent;
  other_trunk.mutable_conv_layers(0)->set_channels(5);
  EXPECT_THAT(
      CheckMorphism(parent, other_trunk, keep).message(),
      ::testing::HasSubstr("leaves the convolutional layers unchanged"));
  v1::Genome narrower_dense = parent;
  narrower_dense.mutable_hidden_layers(0)->set_width(5);
  narrower_dense.mutable_conv_layers(0)->set_channels(3);
  EXPECT_THAT(
      CheckMorphism(parent, narrower_dense,
                    Make(v1::MORPHISM_KIND_NARROW, 0, 0))
          .message(),
      ::testing::HasSubstr("leaves the convolutional layers unchanged"));
  v1::Morphism narrow = ConvMorphism(v1::MORPHISM_KIND_NARROW, 0);
  EXPECT_THAT(CheckMorphism(parent, parent, narrow).message(),
              ::testing::HasSubstr("it must have 1..3"));
  v1::Genome chained = ResidualConvGenome(2);
  v1::Genome chained_narrower = chained;
  chained_narrower.mutable_conv_layers(1)->set_channels(3);
  EXPECT_THAT(CheckMorphism(chained, chained_narrower,
                            ConvMorphism(v1::MORPHISM_KIND_NARROW, 1))
                  .message(),
              ::testing::HasSubstr("residual chain must keep its channels"));
  v1::Morphism widen = Make(v1::MORPHISM_KIND_WIDEN, 0, 0);
  widen.set_conv(true);
  EXPECT_THAT(CheckMorphism(parent, parent, widen).message(),
              ::testing::HasSubstr("not more than 4"));
  v1::Morphism deepen = Make(v1::MORPHISM_KIND_DEEPEN, 0, 1);
  deepen.set_conv(true);
  v1::Genome pooled = parent;
  v1::ConvLayer inserted = parent.conv_layers(0);  // pools: no identity
  inserted.set_residual(true);
  pooled.mutable_conv_layers()->Add();
  *pooled.mutable_conv_layers(2) = pooled.conv_layers(1);
  *pooled.mutable_conv_layers(1) = inserted;
  EXPECT_THAT(CheckMorphism(parent, pooled, deepen).message(),
              ::testing::HasSubstr("must be residual, with its input's"));
  v1::Genome gaussian = parent;
  v1::ConvLayer bump = parent.conv_layers(1);
  bump.set_residual(true);
  bump.set_activation(v1::ACTIVATION_GAUSSIAN);
  *gaussian.mutable_conv_layers()->Add() = bump;
  EXPECT_THAT(
      CheckMorphism(parent, gaussian, ConvMorphism(v1::MORPHISM_KIND_DEEPEN, 2))
          .message(),
      ::testing::HasSubstr("cannot be gaussian"));
  v1::Genome shorter = parent;
  shorter.mutable_conv_layers()->RemoveLast();
  EXPECT_THAT(CheckMorphism(parent, shorter,
                            ConvMorphism(v1::MORPHISM_KIND_REMOVE_LAYER, 1))
                  .message(),
              ::testing::HasSubstr("only a residual layer can be removed"));
  EXPECT_THAT(CheckMorphism(parent, parent,
                            ConvMorphism(v1::MORPHISM_KIND_ADD_STAGE, 0))
                  .message(),
              ::testing::HasSubstr("only WIDEN, NARROW, DEEPEN and "
                                   "REMOVE_LAYER"));

  // The parent's checkpoint shape fits its genome, not another trunk.
  absl::StatusOr<NetworkParameters> network =
      FromNetworkWeights(ZeroWeights(parent, 64, 3, {8, 8}));
  ASSERT_TRUE(network.ok()) << network.status();
  EXPECT_TRUE(CheckNetworkMatchesGenome(*network, parent).ok());
  EXPECT_THAT(CheckNetworkMatchesGenome(*network, other_trunk).message(),
              ::testing::HasSubstr("convolutional layer 0"));
  v1::Genome no_trunk = parent;
  no_trunk.clear_conv_layers();
  EXPECT_FALSE(CheckNetworkMatchesGenome(*network, no_trunk).ok());
}

}  // namespace
}  // namespace evonas::model
