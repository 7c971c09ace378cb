#include "server/search/mutation.h"

#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/genome.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/search/random_search.h"
#include "server/search/strategy.h"

namespace evonas::search {
namespace {

using Operator = std::function<std::optional<Child>(
    const v1::Genome&, const v1::SearchSpace&, std::mt19937_64&)>;

v1::SearchSpace DefaultSpace() { return NormalizeSearchSpace({}).value(); }

// A space with every kind of bound close by, so that operators hit them.
v1::SearchSpace TightSpace() {
  v1::SearchSpace space;
  space.set_min_depth(2);
  space.set_max_depth(3);
  space.set_min_width(4);
  space.set_max_width(9);
  space.add_activations(v1::ACTIVATION_RELU);
  space.add_activations(v1::ACTIVATION_SINE);
  space.set_min_learning_rate(1e-3);
  space.set_max_learning_rate(1.5e-3);
  space.set_min_adam_steps(1);
  space.set_max_adam_steps(3);
  space.set_lbfgs_steps(7);
  return NormalizeSearchSpace(space).value();
}

// A space with residual layers, two further stages and the training
// extras.
v1::SearchSpace RichSpace() {
  v1::SearchSpace space;
  space.set_allow_residual(true);
  space.set_max_residual_stages(2);
  space.set_search_training_extras(true);
  return NormalizeSearchSpace(space).value();
}

// RichSpace with SiLU in the first stage and sine in the others.
v1::SearchSpace SiluThenSineSpace() {
  v1::SearchSpace space = RichSpace();
  space.clear_activations();
  space.add_activations(v1::ACTIVATION_SILU);
  space.add_residual_stage_activations(v1::ACTIVATION_SINE);
  return NormalizeSearchSpace(space).value();
}

using Layers = google::protobuf::RepeatedPtrField<v1::DenseLayer>;

const Layers& StageLayers(const v1::Genome& genome, int stage) {
  return stage == 0 ? genome.hidden_layers()
                    : genome.residual_stages(stage - 1).hidden_layers();
}

const v1::TrainingConfig& StageTraining(const v1::Genome& genome, int stage) {
  return stage == 0 ? genome.training()
                    : genome.residual_stages(stage - 1).training();
}

// Empty when `genome` is valid and inside `space`, else why not.
std::string OutsideSpace(const v1::Genome& genome,
                         const v1::SearchSpace& space) {
  if (!ValidateGenome(genome).ok()) return ValidateGenome(genome).ToString();
  if (genome.residual_stages_size() > space.max_residual_stages())
    return "stages";
  for (int s = 0; s <= genome.residual_stages_size(); ++s) {
    const Layers& layers = StageLayers(genome, s);
    const int depth = layers.size();
    if (depth < space.min_depth() || depth > space.max_depth()) return "depth";
    for (int i = 0; i < depth; ++i) {
      const v1::DenseLayer& layer = layers[i];
      if (layer.width() < space.min_width() ||
          layer.width() > space.max_width())
        return "width";
      const auto& activations = StageActivations(space, s);
      if (std::find(activations.begin(), activations.end(),
                    layer.activation()) == activations.end())
        return "activation";
      if (layer.residual() &&
          (!space.allow_residual() || i == 0 ||
           layer.width() != layers[i - 1].width()))
        return "residual";
      if (layer.layer_norm() &&
          (!space.allow_layer_norm() || genome.conv_layers_size() > 0))
        return "layer_norm";
    }
    const v1::TrainingConfig& t = StageTraining(genome, s);
    if (t.learning_rate() < space.min_learning_rate() ||
        t.learning_rate() > space.max_learning_rate())
      return "learning_rate";
    if (t.adam_steps() < space.min_adam_steps() ||
        t.adam_steps() > space.max_adam_steps())
      return "adam_steps";
    if (t.lbfgs_steps() != space.lbfgs_steps()) return "lbfgs_steps";
    if (t.warmup_steps() > t.adam_steps()) return "warmup_steps";
  }
  const bool precision_is_a_gene = genome.conv_layers_size() == 0 &&
                                   genome.residual_stages_size() == 0 &&
                                   !space.precisions().empty();
  if (precision_is_a_gene
          ? std::find(space.precisions().begin(), space.precisions().end(),
                      genome.precision()) == space.precisions().end()
          : genome.precision() != v1::PRECISION_UNSPECIFIED)
    return "precision";
  return "";
}

// Parents from random search over `space`, plus a few outside it.
std::vector<v1::Genome> Parents(const v1::SearchSpace& space, int n) {
  RandomSearch random(space, 11);
  std::vector<v1::Genome> parents;
  for (int i = 0; i < n; ++i) parents.push_back(random.Sample(i));
  v1::Genome wild = parents[0];
  for (int i = 0; i < 6; ++i) *wild.add_hidden_layers() = wild.hidden_layers(0);
  wild.mutable_hidden_layers(0)->set_width(4000);
  wild.mutable_hidden_layers(1)->set_activation(v1::ACTIVATION_GELU);
  wild.mutable_training()->set_learning_rate(0.9);
  wild.mutable_training()->set_adam_steps(900000);
  wild.mutable_training()->set_lbfgs_steps(0);
  wild.mutable_training()->set_batch_size(-5);
  parents.push_back(wild);
  return parents;
}

// Which genes differ between two genomes of equal depth.
struct Diff {
  int widths = 0;
  int activations = 0;
  bool learning_rate = false;
  bool adam_steps = false;
  bool other_training = false;
};
Diff Compare(const v1::Genome& a, const v1::Genome& b) {
  Diff d;
  for (int i = 0; i < a.hidden_layers_size(); ++i) {
    d.widths += a.hidden_layers(i).width() != b.hidden_layers(i).width();
    d.activations +=
        a.hidden_layers(i).activation() != b.hidden_layers(i).activation();
  }
  d.learning_rate =
      a.training().learning_rate() != b.training().learning_rate();
  d.adam_steps = a.training().adam_steps() != b.training().adam_steps();
  d.other_training = a.training().lbfgs_steps() != b.training().lbfgs_steps() ||
                     a.training().batch_size() != b.training().batch_size();
  return d;
}

// Runs `op` five times on every parent, from one rng stream, and checks the
// common contract; returns (clamped parent, child) pairs for operator checks.
std::vector<std::pair<v1::Genome, v1::Genome>> Apply(
    const Operator& op, const v1::SearchSpace& space, int* nullopts) {
  std::vector<std::pair<v1::Genome, v1::Genome>> pairs;
  *nullopts = 0;
  std::mt19937_64 rng(23);  // one stream across all parents
  for (const v1::Genome& parent : Parents(space, 60)) {
    const v1::Genome clamped = ClampToSpace(parent, space);
    for (int trial = 0; trial < 5; ++trial) {
      std::optional<Child> child = op(parent, space, rng);
      if (!child) {
        ++*nullopts;
        continue;
      }
      EXPECT_EQ(OutsideSpace(child->genome, space), "")
          << DescribeGenome(child->genome);
      EXPECT_NE(GenomeKey(child->genome), GenomeKey(clamped));
      pairs.emplace_back(clamped, child->genome);
    }
  }
  return pairs;
}

TEST(ClampToSpaceTest, MovesEveryGeneInsideAndKeepsInsideGenomes) {
  for (const v1::SearchSpace& space : {DefaultSpace(), TightSpace()}) {
    for (const v1::Genome& parent : Parents(space, 30)) {
      const v1::Genome clamped = ClampToSpace(parent, space);
      EXPECT_EQ(OutsideSpace(clamped, space), "") << DescribeGenome(parent);
      EXPECT_EQ(GenomeKey(ClampToSpace(clamped, space)), GenomeKey(clamped));
    }
  }
  const v1::Genome inside = Parents(DefaultSpace(), 1)[0];
  EXPECT_EQ(GenomeKey(ClampToSpace(inside, DefaultSpace())), GenomeKey(inside));
  EXPECT_EQ(
      OutsideSpace(ClampToSpace(v1::Genome(), TightSpace()), TightSpace()), "");
}

TEST(AddLayerTest, InsertsACopyOfANeighbour) {
  for (const v1::SearchSpace& space : {DefaultSpace(), TightSpace()}) {
    int nullopts = 0;
    auto pairs = Apply(AddLayer, space, &nullopts);
    EXPECT_GT(pairs.size(), 50u);
    for (const auto& [parent, child] : pairs) {
      ASSERT_EQ(child.hidden_layers_size(), parent.hidden_layers_size() + 1);
      // Removing the inserted layer gives back the parent; the inserted
      // layer equals the one before it (or after it, at the input).
      bool found = false;
      for (int p = 0; p < child.hidden_layers_size() && !found; ++p) {
        v1::Genome without = child;
        without.mutable_hidden_layers()->erase(
            without.mutable_hidden_layers()->begin() + p);
        const int neighbour = p > 0 ? p - 1 : 1;
        found = GenomeKey(without) == GenomeKey(parent) &&
                child.hidden_layers(p).SerializeAsString() ==
                    child.hidden_layers(neighbour).SerializeAsString();
      }
      EXPECT_TRUE(found) << DescribeGenome(child);
    }
  }
  // At max depth there is nothing to add.
  v1::Genome deep = ClampToSpace(Parents(TightSpace(), 1)[0], TightSpace());
  while (deep.hidden_layers_size() < 3)
    *deep.add_hidden_layers() = deep.hidden_layers(0);
  std::mt19937_64 rng(1);
  EXPECT_FALSE(AddLayer(deep, TightSpace(), rng).has_value());
}

TEST(RemoveLayerTest, DropsOneLayer) {
  for (const v1::SearchSpace& space : {DefaultSpace(), TightSpace()}) {
    int nullopts = 0;
    auto pairs = Apply(RemoveLayer, space, &nullopts);
    EXPECT_GT(pairs.size(), 50u);
    EXPECT_GT(nullopts, 0);  // parents at min depth
    for (const auto& [parent, child] : pairs) {
      ASSERT_EQ(child.hidden_layers_size(), parent.hidden_layers_size() - 1);
      bool found = false;
      for (int p = 0; p < parent.hidden_layers_size() && !found; ++p) {
        v1::Genome without = parent;
        without.mutable_hidden_layers()->erase(
            without.mutable_hidden_layers()->begin() + p);
        found = GenomeKey(without) == GenomeKey(child);
      }
      EXPECT_TRUE(found) << DescribeGenome(child);
    }
  }
}

TEST(WidenTest, GrowsOneLayerAtMostTwofold) {
  for (const v1::SearchSpace& space : {DefaultSpace(), TightSpace()}) {
    int nullopts = 0;
    auto pairs = Apply(Widen, space, &nullopts);
    EXPECT_GT(pairs.size(), 50u);
    for (const auto& [parent, child] : pairs) {
      ASSERT_EQ(child.hidden_layers_size(), parent.hidden_layers_size());
      Diff d = Compare(parent, child);
      EXPECT_EQ(d.widths, 1);
      EXPECT_EQ(d.activations, 0);
      EXPECT_FALSE(d.learning_rate || d.adam_steps || d.other_training);
      for (int i = 0; i < child.hidden_layers_size(); ++i) {
        const int before = parent.hidden_layers(i).width();
        const int after = child.hidden_layers(i).width();
        EXPECT_GE(after, before);
        EXPECT_LE(after, std::max(2 * before, before + 1));
      }
    }
  }
  v1::Genome widest = ClampToSpace(Parents(TightSpace(), 1)[0], TightSpace());
  for (auto& layer : *widest.mutable_hidden_layers()) layer.set_width(9);
  std::mt19937_64 rng(1);
  EXPECT_FALSE(Widen(widest, TightSpace(), rng).has_value());
}

TEST(NarrowTest, ShrinksOneLayerAtMostTwofold) {
  for (const v1::SearchSpace& space : {DefaultSpace(), TightSpace()}) {
    int nullopts = 0;
    auto pairs = Apply(Narrow, space, &nullopts);
    EXPECT_GT(pairs.size(), 50u);
    for (const auto& [parent, child] : pairs) {
      Diff d = Compare(parent, child);
      EXPECT_EQ(d.widths, 1);
      EXPECT_EQ(d.activations, 0);
      EXPECT_FALSE(d.learning_rate || d.adam_steps || d.other_training);
      for (int i = 0; i < child.hidden_layers_size(); ++i) {
        const int before = parent.hidden_layers(i).width();
        const int after = child.hidden_layers(i).width();
        EXPECT_LE(after, before);
        EXPECT_GE(after, std::min(before / 2, before - 1));
      }
    }
  }
  v1::Genome narrowest =
      ClampToSpace(Parents(TightSpace(), 1)[0], TightSpace());
  for (auto& layer : *narrowest.mutable_hidden_layers()) layer.set_width(4);
  std::mt19937_64 rng(1);
  EXPECT_FALSE(Narrow(narrowest, TightSpace(), rng).has_value());
}

TEST(ChangeActivationTest, ChangesOneLayerOrAWholeStageWithinTheSpace) {
  for (const v1::SearchSpace& space : {DefaultSpace(), TightSpace()}) {
    int nullopts = 0;
    auto pairs = Apply(ChangeActivation, space, &nullopts);
    EXPECT_EQ(nullopts, 0);
    std::set<int> positions;  // of the layers changed alone
    int whole_stages = 0;     // more than one layer changed
    int mixed = 0;            // one layer changed in a pure stage
    for (const auto& [parent, child] : pairs) {
      Diff d = Compare(parent, child);
      EXPECT_GE(d.activations, 1);
      EXPECT_EQ(d.widths, 0);
      EXPECT_FALSE(d.learning_rate || d.adam_steps || d.other_training);
      std::set<int> child_activations, parent_activations;
      for (int i = 0; i < child.hidden_layers_size(); ++i) {
        child_activations.insert(child.hidden_layers(i).activation());
        parent_activations.insert(parent.hidden_layers(i).activation());
      }
      if (d.activations > 1) {
        // Only the whole-stage move changes several layers, all to one.
        EXPECT_EQ(child_activations.size(), 1u) << DescribeGenome(child);
        ++whole_stages;
        continue;
      }
      for (int i = 0; i < child.hidden_layers_size(); ++i) {
        if (child.hidden_layers(i).activation() !=
            parent.hidden_layers(i).activation()) {
          positions.insert(i);
        }
      }
      if (parent_activations.size() == 1 && child_activations.size() == 2) {
        ++mixed;
      }
    }
    EXPECT_GT(whole_stages, 20);
    EXPECT_GT(mixed, 20);
    EXPECT_GE(positions.size(), 2u);  // any layer, not only the first
  }
  v1::SearchSpace single = DefaultSpace();
  single.clear_activations();
  single.add_activations(v1::ACTIVATION_TANH);
  single.add_activations(v1::ACTIVATION_TANH);
  std::mt19937_64 rng(1);
  EXPECT_FALSE(
      ChangeActivation(Parents(single, 1)[0], single, rng).has_value());
}

TEST(PerturbLearningRateTest, LogScaleStepWithinBounds) {
  for (const v1::SearchSpace& space : {DefaultSpace(), TightSpace()}) {
    int nullopts = 0;
    auto pairs = Apply(PerturbLearningRate, space, &nullopts);
    EXPECT_EQ(nullopts, 0);
    int up = 0, down = 0;
    for (const auto& [parent, child] : pairs) {
      Diff d = Compare(parent, child);
      EXPECT_TRUE(d.learning_rate);
      EXPECT_FALSE(d.widths || d.activations || d.adam_steps ||
                   d.other_training);
      const double ratio =
          child.training().learning_rate() / parent.training().learning_rate();
      EXPECT_GT(ratio, 0.5 * 0.99);
      EXPECT_LT(ratio, 2 * 1.01);
      (ratio > 1 ? up : down)++;
    }
    EXPECT_GT(up, 20);
    EXPECT_GT(down, 20);
  }
  v1::SearchSpace fixed = DefaultSpace();
  fixed.set_max_learning_rate(fixed.min_learning_rate());
  std::mt19937_64 rng(1);
  EXPECT_FALSE(
      PerturbLearningRate(Parents(fixed, 1)[0], fixed, rng).has_value());
}

TEST(PerturbAdamStepsTest, LogScaleStepWithinBounds) {
  for (const v1::SearchSpace& space : {DefaultSpace(), TightSpace()}) {
    int nullopts = 0;
    auto pairs = Apply(PerturbAdamSteps, space, &nullopts);
    EXPECT_EQ(nullopts, 0);
    for (const auto& [parent, child] : pairs) {
      Diff d = Compare(parent, child);
      EXPECT_TRUE(d.adam_steps);
      EXPECT_FALSE(d.widths || d.activations || d.learning_rate ||
                   d.other_training);
      const int before = parent.training().adam_steps();
      const int after = child.training().adam_steps();
      EXPECT_LE(after, std::max(2 * before + 10, before + 1));
      EXPECT_GE(after, std::min(before / 2 - 10, before - 1));
    }
  }
  v1::SearchSpace fixed = DefaultSpace();
  fixed.set_max_adam_steps(fixed.min_adam_steps());
  std::mt19937_64 rng(1);
  EXPECT_FALSE(PerturbAdamSteps(Parents(fixed, 1)[0], fixed, rng).has_value());
}

TEST(CrossoverTest, AlignsLayersFromTheInput) {
  const v1::SearchSpace space = DefaultSpace();
  const std::vector<v1::Genome> parents = Parents(space, 40);
  int depth_from_a = 0, depth_from_b = 0, mixed = 0;
  std::mt19937_64 rng(29);
  for (size_t i = 0; i + 1 < parents.size() - 1; ++i) {
    const v1::Genome& a = parents[i];
    const v1::Genome& b = parents[i + 1];
    for (int trial = 0; trial < 5; ++trial) {
      v1::Genome child = Crossover(a, b, space, rng);
      ASSERT_EQ(OutsideSpace(child, space), "");
      const int depth = child.hidden_layers_size();
      ASSERT_TRUE(depth == a.hidden_layers_size() ||
                  depth == b.hidden_layers_size());
      depth_from_a += depth == a.hidden_layers_size();
      depth_from_b += depth == b.hidden_layers_size();
      bool from_a = false, from_b = false;
      for (int l = 0; l < depth; ++l) {
        const std::string layer = child.hidden_layers(l).SerializeAsString();
        const bool in_a = l < a.hidden_layers_size() &&
                          layer == a.hidden_layers(l).SerializeAsString();
        const bool in_b = l < b.hidden_layers_size() &&
                          layer == b.hidden_layers(l).SerializeAsString();
        EXPECT_TRUE(in_a || in_b) << l;
        from_a |= in_a && !in_b;
        from_b |= in_b && !in_a;
      }
      mixed += from_a && from_b;
      const double lr = child.training().learning_rate();
      EXPECT_TRUE(lr == a.training().learning_rate() ||
                  lr == b.training().learning_rate());
      const int steps = child.training().adam_steps();
      EXPECT_TRUE(steps == a.training().adam_steps() ||
                  steps == b.training().adam_steps());
    }
  }
  EXPECT_GT(depth_from_a, 20);
  EXPECT_GT(depth_from_b, 20);
  EXPECT_GT(mixed, 20);
}

TEST(MutateTest, AlwaysChangesTheGenomeWithinTheSpace) {
  for (const v1::SearchSpace& space : {DefaultSpace(), TightSpace()}) {
    std::map<std::string, int> kinds;
    std::mt19937_64 rng(17);  // one stream across all parents
    for (const v1::Genome& parent : Parents(space, 100)) {
      const v1::Genome clamped = ClampToSpace(parent, space);
      for (int trial = 0; trial < 5; ++trial) {
        v1::Genome child = Mutate(parent, space, rng).genome;
        ASSERT_EQ(OutsideSpace(child, space), "") << DescribeGenome(child);
        ASSERT_NE(GenomeKey(child), GenomeKey(clamped));
        if (child.hidden_layers_size() != clamped.hidden_layers_size()) {
          kinds[child.hidden_layers_size() > clamped.hidden_layers_size()
                    ? "add"
                    : "remove"]++;
          continue;
        }
        Diff d = Compare(clamped, child);
        if (d.widths) kinds["width"]++;
        if (d.activations) kinds["activation"]++;
        if (d.learning_rate) kinds["learning_rate"]++;
        if (d.adam_steps) kinds["adam_steps"]++;
      }
    }
    EXPECT_EQ(kinds.size(), 6u);
    for (const auto& [kind, count] : kinds) EXPECT_GT(count, 20) << kind;
  }
}

// Each stage draws from its own list: random samples, clamped parents and
// chains of mutations (ADD_STAGE and ChangeActivation included) keep SiLU
// in the first stage and sine in the others.
TEST(StageActivationsTest, LaterStagesDrawFromTheirOwnList) {
  const v1::SearchSpace space = SiluThenSineSpace();
  EXPECT_THAT(StageActivations(space, 0),
              testing::ElementsAre(v1::ACTIVATION_SILU));
  EXPECT_THAT(StageActivations(space, 2),
              testing::ElementsAre(v1::ACTIVATION_SINE));
  EXPECT_THAT(StageActivations(RichSpace(), 1),
              testing::ElementsAreArray(RichSpace().activations()));

  std::mt19937_64 rng(5);
  int staged = 0;
  std::set<int> kinds;
  for (v1::Genome genome : Parents(space, 60)) {
    ASSERT_EQ(OutsideSpace(ClampToSpace(genome, space), space), "");
    for (int step = 0; step < 8; ++step) {
      Child child = Mutate(genome, space, rng);
      ASSERT_EQ(OutsideSpace(child.genome, space), "")
          << DescribeGenome(child.genome);
      kinds.insert(child.morphism.kind());
      genome = std::move(child.genome);
    }
    if (genome.residual_stages_size() > 0) ++staged;
  }
  EXPECT_GT(staged, 10);
  EXPECT_TRUE(kinds.count(v1::MORPHISM_KIND_ADD_STAGE));

  // A sine first stage becomes SiLU, a SiLU later stage sine.
  v1::Genome wrong;
  wrong.add_hidden_layers()->set_width(16);
  wrong.mutable_hidden_layers(0)->set_activation(v1::ACTIVATION_SINE);
  v1::Stage* stage = wrong.add_residual_stages();
  stage->add_hidden_layers()->set_width(16);
  stage->mutable_hidden_layers(0)->set_activation(v1::ACTIVATION_SILU);
  const v1::Genome clamped = ClampToSpace(wrong, space);
  EXPECT_EQ(clamped.hidden_layers(0).activation(), v1::ACTIVATION_SILU);
  EXPECT_EQ(clamped.residual_stages(0).hidden_layers(0).activation(),
            v1::ACTIVATION_SINE);

  // With one activation per stage there is nothing to change to, and the
  // operator draws only the layer it looks at (as it did before it could
  // change whole stages), so that such spaces keep their random streams.
  std::mt19937_64 again(1);
  std::mt19937_64 one_draw = again;
  EXPECT_FALSE(ChangeActivation(clamped, space, again).has_value());
  std::uniform_int_distribution<int>(0, 1)(one_draw);  // of the two layers
  EXPECT_EQ(again, one_draw);
}

TEST(MutateTest, DeterministicForTheSameRngState) {
  const v1::SearchSpace space = DefaultSpace();
  for (const v1::Genome& parent : Parents(space, 20)) {
    std::mt19937_64 a(99), b(99);
    EXPECT_EQ(GenomeKey(Mutate(parent, space, a).genome),
              GenomeKey(Mutate(parent, space, b).genome));
  }
}

TEST(MutateTest, ReturnsTheClampedGenomeWhenNothingCanChange) {
  v1::SearchSpace point;
  point.set_min_depth(2);
  point.set_max_depth(2);
  point.set_min_width(16);
  point.set_max_width(16);
  point.add_activations(v1::ACTIVATION_SILU);
  point.set_min_learning_rate(3e-3);
  point.set_max_learning_rate(3e-3);
  point.set_min_adam_steps(100);
  point.set_max_adam_steps(100);
  point = NormalizeSearchSpace(point).value();
  std::mt19937_64 rng(1);
  const v1::Genome parent = Parents(DefaultSpace(), 1)[0];
  v1::Genome child = Mutate(parent, point, rng).genome;
  EXPECT_EQ(OutsideSpace(child, point), "");
  EXPECT_EQ(GenomeKey(child), GenomeKey(ClampToSpace(parent, point)));
}

// Every operator keeps a rich space's genomes (stages, residual layers,
// extras) inside it, and reports a morphism only of its own kind.
TEST(RichSpaceTest, EveryOperatorStaysInsideAndNamesItsMorphism) {
  const v1::SearchSpace space = RichSpace();
  const std::vector<std::pair<Operator, v1::MorphismKind>> operators = {
      {AddLayer, v1::MORPHISM_KIND_UNSPECIFIED},
      {ChangeActivation, v1::MORPHISM_KIND_UNSPECIFIED},
      {AddResidualLayer, v1::MORPHISM_KIND_DEEPEN},
      {RemoveResidualLayer, v1::MORPHISM_KIND_REMOVE_LAYER},
      {Widen, v1::MORPHISM_KIND_WIDEN},
      {Narrow, v1::MORPHISM_KIND_NARROW},
      {AddStage, v1::MORPHISM_KIND_ADD_STAGE},
      {PerturbLearningRate, v1::MORPHISM_KIND_CONTINUE},
      {PerturbAdamSteps, v1::MORPHISM_KIND_CONTINUE},
      {PerturbTrainingExtras, v1::MORPHISM_KIND_CONTINUE},
  };
  RandomSearch random(space, 5);
  int with_stages = 0, with_residual = 0;
  for (const auto& [op, kind] : operators) {
    std::mt19937_64 rng(3);
    int children = 0;
    for (int n = 0; n < 80; ++n) {
      const v1::Genome parent = random.Sample(n);
      ASSERT_EQ(OutsideSpace(parent, space), "") << DescribeGenome(parent);
      with_stages += parent.residual_stages_size() > 0;
      for (const v1::DenseLayer& l : parent.hidden_layers())
        with_residual += l.residual();
      std::optional<Child> child = op(parent, space, rng);
      if (!child) continue;
      ++children;
      EXPECT_EQ(OutsideSpace(child->genome, space), "")
          << DescribeGenome(child->genome);
      EXPECT_EQ(child->morphism.kind(), kind);
      EXPECT_FALSE(google::protobuf::util::MessageDifferencer::Equals(
          child->genome, parent));
    }
    EXPECT_GT(children, 20) << kind;
  }
  EXPECT_GT(with_stages, 100);
  EXPECT_GT(with_residual, 100);
}

TEST(AddResidualLayerTest, InsertsAnIdentityLayerNeverFirst) {
  const v1::SearchSpace space = RichSpace();
  RandomSearch random(space, 8);
  std::mt19937_64 rng(4);
  std::set<int> stages;
  for (int n = 0; n < 100; ++n) {
    const v1::Genome parent = random.Sample(n);
    std::optional<Child> child = AddResidualLayer(parent, space, rng);
    if (!child) continue;
    const v1::Morphism& m = child->morphism;
    ASSERT_EQ(m.kind(), v1::MORPHISM_KIND_DEEPEN);
    stages.insert(m.stage());
    const Layers& before = StageLayers(parent, m.stage());
    const Layers& after = StageLayers(child->genome, m.stage());
    ASSERT_EQ(after.size(), before.size() + 1);
    ASSERT_GE(m.layer(), 1);
    const v1::DenseLayer& inserted = after[m.layer()];
    EXPECT_TRUE(inserted.residual());
    EXPECT_EQ(inserted.width(), after[m.layer() - 1].width());
    // Removing the inserted layer gives back the parent.
    v1::Genome without = child->genome;
    Layers& layers = m.stage() == 0
                         ? *without.mutable_hidden_layers()
                         : *without.mutable_residual_stages(m.stage() - 1)
                                ->mutable_hidden_layers();
    layers.erase(layers.begin() + m.layer());
    EXPECT_TRUE(
        google::protobuf::util::MessageDifferencer::Equals(without, parent));
  }
  EXPECT_GE(stages.size(), 2u);
  // Not in a space without residual layers.
  std::mt19937_64 other(1);
  EXPECT_FALSE(AddResidualLayer(Parents(DefaultSpace(), 1)[0], DefaultSpace(),
                                other)
                   .has_value());
}

// exp(0) = 1: a zero-initialised Gaussian layer is not the identity; ReLU's
// gradient at 0 is 0: a zero-initialised ReLU layer would never train.
TEST(AddResidualLayerTest, InsertsNoGaussianAndNoReluLayer) {
  v1::SearchSpace space = RichSpace();
  space.add_activations(v1::ACTIVATION_GAUSSIAN);
  space.add_activations(v1::ACTIVATION_RELU);
  space = NormalizeSearchSpace(space).value();
  RandomSearch random(space, 8);
  std::mt19937_64 rng(5);
  int deepened = 0, parents_with_either = 0;
  for (int n = 0; n < 200; ++n) {
    const v1::Genome parent = random.Sample(n);
    std::optional<Child> child = AddResidualLayer(parent, space, rng);
    if (!child) continue;
    ++deepened;
    const Layers& after = StageLayers(child->genome, child->morphism.stage());
    const v1::Activation inserted = after[child->morphism.layer()].activation();
    EXPECT_NE(inserted, v1::ACTIVATION_GAUSSIAN);
    EXPECT_NE(inserted, v1::ACTIVATION_RELU);
    for (const v1::DenseLayer& layer : parent.hidden_layers()) {
      if (layer.activation() == v1::ACTIVATION_GAUSSIAN ||
          layer.activation() == v1::ACTIVATION_RELU) {
        ++parents_with_either;
        break;
      }
    }
  }
  EXPECT_GT(deepened, 50);
  EXPECT_GT(parents_with_either, 10);
  // A stage of Gaussian and ReLU layers has nowhere to be deepened.
  v1::Genome bumps;
  for (v1::Activation activation :
       {v1::ACTIVATION_GAUSSIAN, v1::ACTIVATION_RELU}) {
    v1::DenseLayer* layer = bumps.add_hidden_layers();
    layer->set_width(8);
    layer->set_activation(activation);
  }
  EXPECT_FALSE(AddResidualLayer(bumps, space, rng).has_value());
}

TEST(RemoveResidualLayerTest, RemovesExactlyTheNamedResidualLayer) {
  const v1::SearchSpace space = RichSpace();
  RandomSearch random(space, 9);
  std::mt19937_64 rng(5);
  int removed = 0;
  for (int n = 0; n < 100; ++n) {
    const v1::Genome parent = random.Sample(n);
    std::optional<Child> child = RemoveResidualLayer(parent, space, rng);
    if (!child) continue;
    ++removed;
    const v1::Morphism& m = child->morphism;
    ASSERT_EQ(m.kind(), v1::MORPHISM_KIND_REMOVE_LAYER);
    EXPECT_TRUE(StageLayers(parent, m.stage())[m.layer()].residual());
    v1::Genome expected = parent;
    Layers& layers = m.stage() == 0
                         ? *expected.mutable_hidden_layers()
                         : *expected.mutable_residual_stages(m.stage() - 1)
                                ->mutable_hidden_layers();
    layers.erase(layers.begin() + m.layer());
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
        expected, child->genome));
  }
  EXPECT_GT(removed, 20);
}

TEST(RemoveLayerTest, PlainLayerIsNotAMorphismAndFixesResiduals) {
  const v1::SearchSpace space = RichSpace();
  v1::Genome parent = Parents(space, 1)[0];
  parent.clear_residual_stages();
  parent.clear_hidden_layers();
  for (int width : {16, 16, 16}) {
    v1::DenseLayer* layer = parent.add_hidden_layers();
    layer->set_width(width);
    layer->set_activation(v1::ACTIVATION_TANH);
    layer->set_residual(parent.hidden_layers_size() > 1);
  }
  parent = ClampToSpace(parent, space);
  ASSERT_TRUE(parent.hidden_layers(1).residual());
  // Removing the first (plain) layer makes layer 1 first: it loses the flag.
  for (uint64_t seed = 0; seed < 40; ++seed) {
    std::mt19937_64 rng(seed);
    std::optional<Child> child = RemoveLayer(parent, space, rng);
    ASSERT_TRUE(child.has_value());
    EXPECT_EQ(OutsideSpace(child->genome, space), "");
    ASSERT_EQ(child->genome.hidden_layers_size(), 2);
    if (child->IsMorphism()) {  // a residual layer went
      EXPECT_EQ(child->morphism.kind(), v1::MORPHISM_KIND_REMOVE_LAYER);
      EXPECT_GE(child->morphism.layer(), 1);
    } else {  // the first went; the new first cannot stay residual
      EXPECT_FALSE(child->genome.hidden_layers(0).residual());
    }
  }
}

TEST(WidenNarrowTest, MorphismNamesTheResizedLayerOutsideResidualChains) {
  const v1::SearchSpace space = RichSpace();
  RandomSearch random(space, 10);
  std::mt19937_64 rng(6);
  for (auto op : {Widen, Narrow}) {
    int seen = 0;
    for (int n = 0; n < 100; ++n) {
      const v1::Genome parent = random.Sample(n);
      std::optional<Child> child = op(parent, space, rng);
      if (!child) continue;
      ++seen;
      const v1::Morphism& m = child->morphism;
      for (int s = 0; s <= parent.residual_stages_size(); ++s) {
        const Layers& before = StageLayers(parent, s);
        const Layers& after = StageLayers(child->genome, s);
        ASSERT_EQ(before.size(), after.size());
        for (int i = 0; i < before.size(); ++i) {
          const bool named = s == m.stage() && i == m.layer();
          EXPECT_EQ(before[i].width() != after[i].width(), named);
          if (named) {
            EXPECT_FALSE(after[i].residual());
            if (i + 1 < after.size()) EXPECT_FALSE(after[i + 1].residual());
          }
        }
      }
    }
    EXPECT_GT(seen, 50);
  }
}

TEST(AddStageTest, AppendsASmallStageAndKeepsTheOthers) {
  const v1::SearchSpace space = RichSpace();
  RandomSearch random(space, 12);
  std::mt19937_64 rng(7);
  int added = 0, refused = 0;
  for (int n = 0; n < 100; ++n) {
    const v1::Genome parent = random.Sample(n);
    std::optional<Child> child = AddStage(parent, space, rng);
    if (!child) {
      EXPECT_EQ(parent.residual_stages_size(), space.max_residual_stages());
      ++refused;
      continue;
    }
    ++added;
    const v1::Genome& g = child->genome;
    ASSERT_EQ(g.residual_stages_size(), parent.residual_stages_size() + 1);
    EXPECT_EQ(child->morphism.kind(), v1::MORPHISM_KIND_ADD_STAGE);
    EXPECT_EQ(child->morphism.stage(), g.residual_stages_size());
    const v1::Stage& last = g.residual_stages(g.residual_stages_size() - 1);
    for (const v1::DenseLayer& layer : last.hidden_layers()) {
      EXPECT_LE(layer.width(), 32);
      EXPECT_FALSE(layer.residual());
    }
    v1::Genome without = g;
    without.mutable_residual_stages()->RemoveLast();
    EXPECT_TRUE(
        google::protobuf::util::MessageDifferencer::Equals(without, parent));
  }
  EXPECT_GT(added, 30);
  EXPECT_GT(refused, 10);
}

// RichSpace whose strategies grow their stages one at a time.
v1::SearchSpace GrowingSpace() {
  v1::SearchSpace space = RichSpace();
  space.set_grow_stages(true);
  return NormalizeSearchSpace(space).value();
}

TEST(AddStageTest, GrowingSpacesGetFullSizeResidualStages) {
  const v1::SearchSpace space = GrowingSpace();
  RandomSearch random(space, 12);
  std::mt19937_64 rng(7);
  int wider_than_32 = 0;
  for (int n = 0; n < 100; ++n) {
    const v1::Genome parent = random.Sample(n);
    ASSERT_EQ(parent.residual_stages_size(), 0);  // grown, never sampled
    std::optional<Child> child = AddStage(parent, space, rng);
    ASSERT_TRUE(child.has_value());
    EXPECT_EQ(child->morphism.kind(), v1::MORPHISM_KIND_ADD_STAGE);
    const Layers& added = child->genome.residual_stages(0).hidden_layers();
    ASSERT_EQ(added.size(), 2);
    EXPECT_FALSE(added[0].residual());
    EXPECT_TRUE(added[1].residual());
    EXPECT_EQ(added[0].width(), added[1].width());
    EXPECT_GE(added[0].width(), space.min_width());
    EXPECT_LE(added[0].width(), space.max_width());
    wider_than_32 += added[0].width() > 32;
  }
  EXPECT_GT(wider_than_32, 20);  // log-uniform on 8..128: about half
}

TEST(GrowStagesTest, HalfTheChildrenOfAParentWithRoomAddAStage) {
  const v1::SearchSpace space = GrowingSpace();
  RandomSearch random(space, 14);
  std::mt19937_64 rng(9);
  for (bool by_morphism : {false, true}) {
    int added = 0, full_added = 0;
    const int n = 400;
    for (int i = 0; i < n; ++i) {
      v1::Genome parent = random.Sample(i);
      std::optional<Child> child = by_morphism
                                       ? MutateByMorphism(parent, space, rng)
                                       : Mutate(parent, space, rng);
      ASSERT_TRUE(child.has_value());
      added += child->morphism.kind() == v1::MORPHISM_KIND_ADD_STAGE;
      // A parent with every stage it may have gets none.
      while (parent.residual_stages_size() < space.max_residual_stages()) {
        parent = AddStage(parent, space, rng)->genome;
      }
      std::optional<Child> full = by_morphism
                                      ? MutateByMorphism(parent, space, rng)
                                      : Mutate(parent, space, rng);
      ASSERT_TRUE(full.has_value());
      full_added += full->morphism.kind() == v1::MORPHISM_KIND_ADD_STAGE;
    }
    // 1/2 by the coin, plus the uniform operator draw's share of the rest.
    EXPECT_GT(added, 0.5 * n) << by_morphism;
    EXPECT_LT(added, 0.7 * n) << by_morphism;
    EXPECT_EQ(full_added, 0) << by_morphism;
  }
}

TEST(TrainingGeneTest, ContinueChangesOneStagesTrainingOnly) {
  const v1::SearchSpace space = RichSpace();
  RandomSearch random(space, 13);
  std::mt19937_64 rng(8);
  for (auto op : {PerturbLearningRate, PerturbAdamSteps,
                  PerturbTrainingExtras}) {
    std::set<int> stages;
    for (int n = 0; n < 100; ++n) {
      const v1::Genome parent = random.Sample(n);
      std::optional<Child> child = op(parent, space, rng);
      ASSERT_TRUE(child.has_value());
      const v1::Morphism& m = child->morphism;
      ASSERT_EQ(m.kind(), v1::MORPHISM_KIND_CONTINUE);
      stages.insert(m.stage());
      for (int s = 0; s <= parent.residual_stages_size(); ++s) {
        EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
            StageTraining(parent, s), StageTraining(child->genome, s)) ==
                    (s != m.stage()));
        EXPECT_EQ(StageLayers(parent, s).size(),
                  StageLayers(child->genome, s).size());
      }
    }
    EXPECT_GE(stages.size(), 2u);
  }
  // The extras stay put in a space that does not search them.
  std::mt19937_64 other(1);
  EXPECT_FALSE(PerturbTrainingExtras(Parents(DefaultSpace(), 1)[0],
                                     DefaultSpace(), other)
                   .has_value());
}

TEST(SirenOmegaTest, SearchedOnlyWhereItActs) {
  std::mt19937_64 rng(4);
  int defaults = 0;
  for (int i = 0; i < 400; ++i) {
    const double omega = SampleSirenOmega(rng);
    EXPECT_TRUE(omega >= 2 && omega <= 30) << omega;
    defaults += omega == kSearchSirenOmega;
  }
  EXPECT_GT(defaults, 150);
  EXPECT_LT(defaults, 250);

  // Random search draws omega for later stages with sine layers only; the
  // training-extras operator changes it there.
  v1::SearchSpace space = RichSpace();
  space.clear_activations();
  space.add_activations(v1::ACTIVATION_SINE);
  space.add_activations(v1::ACTIVATION_TANH);
  RandomSearch random(space, 21);
  int varied = 0, perturbed = 0;
  std::mt19937_64 mutation_rng(5);
  for (int n = 0; n < 200; ++n) {
    const v1::Genome genome = random.Sample(n);
    EXPECT_EQ(genome.training().siren_omega(), 0);
    for (const v1::Stage& stage : genome.residual_stages()) {
      if (!HasSineLayer(stage)) {
        EXPECT_EQ(stage.training().siren_omega(), 0);
      }
      varied += stage.training().siren_omega() != 0;
    }
    std::optional<Child> child =
        PerturbTrainingExtras(genome, space, mutation_rng);
    if (!child) continue;
    const v1::Genome& out = child->genome;
    for (int s = 0; s < out.residual_stages_size(); ++s) {
      if (out.residual_stages(s).training().siren_omega() !=
          genome.residual_stages(s).training().siren_omega()) {
        EXPECT_TRUE(HasSineLayer(out.residual_stages(s)));
        ++perturbed;
      }
    }
  }
  EXPECT_GT(varied, 20);
  EXPECT_GT(perturbed, 3);

  // Without training extras, later sine stages start from the search's
  // omega, and so does a sine stage that AddStage appends.
  space.set_search_training_extras(false);
  RandomSearch plain(space, 22);
  int sine_stages = 0;
  for (int n = 0; n < 100; ++n) {
    const v1::Genome sampled = plain.Sample(n);
    for (const v1::Stage& stage : sampled.residual_stages()) {
      EXPECT_EQ(stage.training().siren_omega(),
                HasSineLayer(stage) ? kSearchSirenOmega : 0);
      sine_stages += HasSineLayer(stage);
    }
  }
  EXPECT_GT(sine_stages, 10);
  v1::SearchSpace sine_later = space;
  sine_later.add_residual_stage_activations(v1::ACTIVATION_SINE);
  v1::Genome one_stage = plain.Sample(0);
  one_stage.clear_residual_stages();
  std::mt19937_64 add_rng(6);
  std::optional<Child> added = AddStage(one_stage, sine_later, add_rng);
  ASSERT_TRUE(added.has_value());
  ASSERT_EQ(added->genome.residual_stages_size(), 1);
  EXPECT_EQ(added->genome.residual_stages(0).training().siren_omega(),
            kSearchSirenOmega);
}

TEST(SampleTrainingExtrasTest, DrawsEachGeneWithinItsRange) {
  std::mt19937_64 rng(9);
  int warmups = 0, decays = 0, patiences = 0, polishes = 0;
  for (int i = 0; i < 400; ++i) {
    v1::TrainingConfig training;
    training.set_adam_steps(2000);
    SampleTrainingExtras(training, rng);
    EXPECT_LE(training.warmup_steps(), 400);
    EXPECT_EQ(training.warmup_steps() % 10, 0);
    EXPECT_TRUE(training.weight_decay() == 0 ||
                (training.weight_decay() >= 1e-6 &&
                 training.weight_decay() <= 1e-2));
    EXPECT_TRUE(training.patience_steps() == 0 ||
                (training.patience_steps() >= 500 &&
                 training.patience_steps() <= 5000));
    EXPECT_TRUE(training.max_error_steps() == 0 ||
                (training.max_error_steps() >= 50 &&
                 training.max_error_steps() <= 500 &&
                 training.max_error_power() == 8));
    warmups += training.warmup_steps() > 0;
    decays += training.weight_decay() > 0;
    patiences += training.patience_steps() > 0;
    polishes += training.max_error_steps() > 0;
  }
  for (int count : {warmups, decays, patiences, polishes}) {
    EXPECT_GT(count, 150);
    EXPECT_LT(count, 250);
  }
}

TEST(MutateByMorphismTest, EveryChildIsAMorphismOfEveryKind) {
  const v1::SearchSpace space = RichSpace();
  RandomSearch random(space, 14);
  std::mt19937_64 rng(10);
  std::map<int, int> kinds;
  for (int n = 0; n < 200; ++n) {
    const v1::Genome parent = random.Sample(n);
    std::optional<Child> child = MutateByMorphism(parent, space, rng);
    ASSERT_TRUE(child.has_value());
    ASSERT_TRUE(child->IsMorphism());
    EXPECT_EQ(OutsideSpace(child->genome, space), "");
    kinds[child->morphism.kind()]++;
  }
  EXPECT_EQ(kinds.size(), 6u);  // CONTINUE .. REMOVE_LAYER
  for (const auto& [kind, count] : kinds) EXPECT_GT(count, 5) << kind;
}

TEST(MorphismTest, NotReportedWhenTheParentWasOutsideTheSpace) {
  const v1::SearchSpace space = RichSpace();
  v1::Genome outside = RandomSearch(space, 1).Sample(0);
  outside.mutable_training()->set_lbfgs_steps(space.lbfgs_steps() + 1);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(seed);
    std::optional<Child> child = Widen(outside, space, rng);
    ASSERT_TRUE(child.has_value());
    EXPECT_FALSE(child->IsMorphism());
  }
}

TEST(MutateTest, RichSpaceUsesTheNewOperators) {
  const v1::SearchSpace space = RichSpace();
  RandomSearch random(space, 15);
  std::mt19937_64 rng(11);
  int stages_added = 0, morphisms = 0;
  for (int n = 0; n < 300; ++n) {
    const v1::Genome parent = random.Sample(n);
    const Child child = Mutate(parent, space, rng);
    ASSERT_EQ(OutsideSpace(child.genome, space), "");
    stages_added += child.morphism.kind() == v1::MORPHISM_KIND_ADD_STAGE;
    morphisms += child.IsMorphism();
  }
  EXPECT_GT(stages_added, 5);
  EXPECT_GT(morphisms, 100);
  EXPECT_LT(morphisms, 300);  // add layer and change activation are not
}

TEST(AddStageTest, WideSpacesGetStagesOfTheNarrowestWidth) {
  v1::SearchSpace space;
  space.set_min_width(64);
  space.set_max_width(256);
  space.set_max_residual_stages(1);
  space = NormalizeSearchSpace(space).value();
  const v1::Genome parent = RandomSearch(space, 1).Sample(0);
  v1::Genome single = parent;
  single.clear_residual_stages();
  std::mt19937_64 rng(2);
  std::optional<Child> child = AddStage(single, space, rng);
  ASSERT_TRUE(child.has_value());
  EXPECT_EQ(child->genome.residual_stages(0).hidden_layers(0).width(), 64);
  EXPECT_EQ(OutsideSpace(child->genome, space), "");
}

// An image space: 28 x 28 images, 0..4 convolutional layers of 4..32
// channels, kernels 3 and 5, residual layers allowed.
constexpr ImageShape kImage{28, 28};

v1::SearchSpace ConvSpace() {
  v1::SearchSpace space;
  space.set_max_conv_layers(4);
  space.set_max_channels(32);
  space.set_allow_residual(true);
  space.add_activations(v1::ACTIVATION_RELU);
  space.add_activations(v1::ACTIVATION_GELU);
  return NormalizeSearchSpace(space, kImage).value();
}

// Empty when the convolutional trunk of `genome` fits `space` and the
// image, else why not.
std::string ConvOutsideSpace(const v1::Genome& genome,
                             const v1::SearchSpace& space) {
  const absl::Status valid = ValidateGenomeForImage(genome, 784, kImage);
  if (!valid.ok()) return valid.ToString();
  if (genome.conv_layers_size() < space.min_conv_layers() ||
      genome.conv_layers_size() > space.max_conv_layers()) {
    return "conv depth";
  }
  int poolings = 0;
  for (const v1::ConvLayer& layer : genome.conv_layers()) {
    if (layer.channels() < space.min_channels() ||
        layer.channels() > space.max_channels()) {
      return "channels";
    }
    if (std::find(space.kernel_sizes().begin(), space.kernel_sizes().end(),
                  layer.kernel_size()) == space.kernel_sizes().end()) {
      return "kernel";
    }
    if (std::find(space.activations().begin(), space.activations().end(),
                  layer.activation()) == space.activations().end()) {
      return "conv activation";
    }
    poolings += layer.pooling() != v1::POOLING_NONE;
  }
  if (poolings > space.max_pooling_layers()) return "poolings";
  return OutsideSpace(genome, space);
}

TEST(ConvSpaceTest, NormalizeFillsDefaultsFromTheImage) {
  const v1::SearchSpace space = ConvSpace();
  EXPECT_EQ(space.min_channels(), 4);
  EXPECT_EQ(space.max_pooling_layers(), 4);  // 28 -> 14 -> 7 -> 3 -> 1
  EXPECT_EQ(space.kernel_sizes_size(), 2);
  v1::SearchSpace conv;
  conv.set_max_conv_layers(2);
  EXPECT_THAT(NormalizeSearchSpace(conv).status().message(),
              ::testing::HasSubstr("needs an image data set"));
  conv.set_max_pooling_layers(5);
  EXPECT_THAT(NormalizeSearchSpace(conv, kImage).status().message(),
              ::testing::HasSubstr("max_pooling_layers 5 is more than"));
  conv.set_max_pooling_layers(0);
  conv.set_max_residual_stages(1);
  EXPECT_THAT(NormalizeSearchSpace(conv, kImage).status().message(),
              ::testing::HasSubstr("exclude each other"));
  conv.set_max_residual_stages(0);
  conv.add_kernel_sizes(4);
  EXPECT_THAT(NormalizeSearchSpace(conv, kImage).status().message(),
              ::testing::HasSubstr("4 is not 1, 3, 5 or 7"));
  v1::SearchSpace mlp;
  mlp.set_max_channels(8);
  EXPECT_THAT(NormalizeSearchSpace(mlp, kImage).status().message(),
              ::testing::HasSubstr("need max_conv_layers > 0"));
}

TEST(ConvSpaceTest, RandomSearchSamplesValidTrunksOfEveryKind) {
  const v1::SearchSpace space = ConvSpace();
  RandomSearch random(space, 5);
  std::map<int, int> depths;
  int pooled = 0, normalised = 0, residual = 0, dropout = 0;
  for (int n = 0; n < 300; ++n) {
    const v1::Genome genome = random.Sample(n);
    ASSERT_EQ(ConvOutsideSpace(genome, space), "") << DescribeGenome(genome);
    depths[genome.conv_layers_size()]++;
    for (const v1::ConvLayer& layer : genome.conv_layers()) {
      pooled += layer.pooling() != v1::POOLING_NONE;
      normalised += layer.batch_norm();
      residual += layer.residual();
      dropout += layer.dropout() > 0;
    }
  }
  EXPECT_EQ(depths.size(), 5u);  // 0..4 layers
  EXPECT_GT(pooled, 50);
  EXPECT_GT(normalised, 100);
  EXPECT_GT(residual, 20);
  EXPECT_GT(dropout, 100);
  // MLP spaces sample no trunk.
  EXPECT_EQ(RandomSearch(DefaultSpace(), 5).Sample(0).conv_layers_size(), 0);
}

TEST(ConvSpaceTest, EveryConvOperatorChangesTheTrunkWithinTheSpace) {
  const v1::SearchSpace space = ConvSpace();
  RandomSearch random(space, 6);
  std::mt19937_64 rng(7);
  const std::vector<std::pair<const char*, Operator>> operators = {
      {"add", AddConvLayer},
      {"remove", RemoveConvLayer},
      {"resize", ResizeConvLayer},
      {"change", ChangeConvLayer}};
  for (const auto& [name, op] : operators) {
    int changed = 0;
    for (int n = 0; n < 100; ++n) {
      const v1::Genome parent = random.Sample(n);
      std::optional<Child> child = op(parent, space, rng);
      if (!child) continue;
      ++changed;
      ASSERT_EQ(ConvOutsideSpace(child->genome, space), "")
          << name << ": " << DescribeGenome(child->genome);
      EXPECT_NE(GenomeKey(child->genome), GenomeKey(parent)) << name;
      // Only the trunk changed, and the child trains from scratch.
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
          child->genome.training(), parent.training()));
      EXPECT_EQ(child->genome.hidden_layers_size(),
                parent.hidden_layers_size());
      if (child->IsMorphism()) {
        // Only the removal of a residual layer inherits.
        const v1::Morphism& m = child->morphism;
        EXPECT_EQ(name, std::string("remove"));
        EXPECT_EQ(m.kind(), v1::MORPHISM_KIND_REMOVE_LAYER);
        EXPECT_TRUE(m.conv());
        EXPECT_TRUE(parent.conv_layers(m.layer()).residual());
      }
    }
    EXPECT_GT(changed, 50) << name;
  }
}

TEST(ConvSpaceTest, AddConvLayerKeepsTheImageSize) {
  const v1::SearchSpace space = ConvSpace();
  RandomSearch random(space, 8);
  std::mt19937_64 rng(9);
  for (int n = 0; n < 100; ++n) {
    const v1::Genome parent = random.Sample(n);
    std::optional<Child> child = AddConvLayer(parent, space, rng);
    if (!child) {
      EXPECT_EQ(parent.conv_layers_size(), space.max_conv_layers());
      continue;
    }
    ASSERT_EQ(child->genome.conv_layers_size(), parent.conv_layers_size() + 1);
    const ConvOutput before = ConvOutputShape(parent, kImage);
    const ConvOutput after = ConvOutputShape(child->genome, kImage);
    EXPECT_EQ(before.height, after.height);
    EXPECT_EQ(before.width, after.width);
  }
}

std::string TrunkKey(const v1::Genome& genome) {
  std::string key;
  for (const v1::ConvLayer& layer : genome.conv_layers()) {
    key += layer.SerializeAsString() + "|";
  }
  return key;
}

TEST(ConvSpaceTest, WidenNarrowAndDeepenTheTrunkAreMorphisms) {
  const v1::SearchSpace space = ConvSpace();
  RandomSearch random(space, 16);
  std::mt19937_64 rng(17);
  int widened = 0, narrowed = 0, deepened = 0;
  for (int n = 0; n < 100; ++n) {
    const v1::Genome parent = random.Sample(n);
    if (std::optional<Child> child = WidenConvLayer(parent, space, rng)) {
      ++widened;
      ASSERT_EQ(ConvOutsideSpace(child->genome, space), "");
      const v1::Morphism& m = child->morphism;
      EXPECT_EQ(m.kind(), v1::MORPHISM_KIND_WIDEN);
      EXPECT_TRUE(m.conv());
      for (int i = 0; i < parent.conv_layers_size(); ++i) {
        const int before = parent.conv_layers(i).channels();
        const int after = child->genome.conv_layers(i).channels();
        if (i == m.layer()) {
          EXPECT_GT(after, before);
          EXPECT_LE(after, 2 * before);
        } else {
          EXPECT_EQ(after, before);
        }
      }
    }
    if (std::optional<Child> child = NarrowConvLayer(parent, space, rng)) {
      ++narrowed;
      ASSERT_EQ(ConvOutsideSpace(child->genome, space), "");
      const v1::Morphism& m = child->morphism;
      EXPECT_EQ(m.kind(), v1::MORPHISM_KIND_NARROW);
      EXPECT_TRUE(m.conv());
      const int count = parent.conv_layers_size();
      ASSERT_EQ(child->genome.conv_layers_size(), count);
      EXPECT_FALSE(parent.conv_layers(m.layer()).residual());
      EXPECT_FALSE(m.layer() + 1 < count &&
                   parent.conv_layers(m.layer() + 1).residual());
      for (int i = 0; i < count; ++i) {
        const int before = parent.conv_layers(i).channels();
        const int after = child->genome.conv_layers(i).channels();
        if (i == m.layer()) {
          EXPECT_LT(after, before);
          EXPECT_GE(2 * after + 1, before);
          EXPECT_GE(after, space.min_channels());
        } else {
          EXPECT_EQ(after, before);
        }
      }
    }
    if (std::optional<Child> child =
            AddResidualConvLayer(parent, space, rng)) {
      ++deepened;
      ASSERT_EQ(ConvOutsideSpace(child->genome, space), "");
      const v1::Morphism& m = child->morphism;
      EXPECT_EQ(m.kind(), v1::MORPHISM_KIND_DEEPEN);
      EXPECT_TRUE(m.conv());
      ASSERT_GE(m.layer(), 1);
      const v1::ConvLayer& inserted = child->genome.conv_layers(m.layer());
      EXPECT_TRUE(inserted.residual());
      EXPECT_FALSE(inserted.batch_norm());
      EXPECT_EQ(inserted.pooling(), v1::POOLING_NONE);
      EXPECT_EQ(inserted.channels(),
                child->genome.conv_layers(m.layer() - 1).channels());
      EXPECT_EQ(child->genome.conv_layers_size(),
                parent.conv_layers_size() + 1);
    }
  }
  EXPECT_GT(widened, 30);
  EXPECT_GT(narrowed, 30);
  EXPECT_GT(deepened, 30);
}

TEST(ConvSpaceTest, NoResidualLayerIsInsertedAfterAGaussianOrReluLayer) {
  v1::SearchSpace space = ConvSpace();
  space.add_activations(v1::ACTIVATION_GAUSSIAN);
  space = NormalizeSearchSpace(space, kImage).value();
  v1::Genome genome;
  for (v1::Activation activation :
       {v1::ACTIVATION_GELU, v1::ACTIVATION_GAUSSIAN, v1::ACTIVATION_RELU}) {
    v1::ConvLayer* layer = genome.add_conv_layers();
    layer->set_channels(4);
    layer->set_kernel_size(3);
    layer->set_activation(activation);
  }
  v1::DenseLayer* dense = genome.add_hidden_layers();
  dense->set_width(8);
  dense->set_activation(v1::ACTIVATION_RELU);
  // Inside the space, so that the child is reported as a morphism.
  genome = ClampToSpace(genome, space);
  ASSERT_EQ(genome.conv_layers(1).activation(), v1::ACTIVATION_GAUSSIAN);
  ASSERT_EQ(genome.conv_layers(2).activation(), v1::ACTIVATION_RELU);
  std::mt19937_64 rng(3);
  for (int n = 0; n < 20; ++n) {
    std::optional<Child> child = AddResidualConvLayer(genome, space, rng);
    ASSERT_TRUE(child.has_value());
    EXPECT_EQ(child->morphism.kind(), v1::MORPHISM_KIND_DEEPEN);
    EXPECT_EQ(child->morphism.layer(), 1);  // after the GELU layer only
  }
  genome.mutable_conv_layers()->DeleteSubrange(0, 1);
  EXPECT_FALSE(AddResidualConvLayer(genome, space, rng).has_value());
}

TEST(ConvSpaceTest, MutationChainsStayValidWithTheWorkersMorphisms) {
  const v1::SearchSpace space = ConvSpace();
  std::mt19937_64 rng(12);
  v1::Genome genome = RandomSearch(space, 13).Sample(0);
  std::set<int> kinds, conv_kinds;
  int trunk_changes = 0, conv_morphisms = 0;
  for (int step = 0; step < 500; ++step) {
    const bool morphism_only = step % 2 == 1;
    Child child;
    if (morphism_only) {
      std::optional<Child> c = MutateByMorphism(genome, space, rng);
      ASSERT_TRUE(c.has_value());
      child = *std::move(c);
    } else {
      child = Mutate(genome, space, rng);
    }
    ASSERT_EQ(ConvOutsideSpace(child.genome, space), "")
        << DescribeGenome(child.genome);
    if (child.IsMorphism()) kinds.insert(child.morphism.kind());
    if (child.genome.conv_layers_size() > 0 && child.IsMorphism()) {
      const v1::MorphismKind kind = child.morphism.kind();
      EXPECT_NE(kind, v1::MORPHISM_KIND_ADD_STAGE);  // no stages here
      if (child.morphism.conv()) {
        conv_morphisms++;
        conv_kinds.insert(kind);
      }
    }
    trunk_changes += TrunkKey(child.genome) != TrunkKey(genome);
    genome = child.genome;
  }
  EXPECT_TRUE(kinds.count(v1::MORPHISM_KIND_CONTINUE));
  EXPECT_GT(trunk_changes, 10);
  EXPECT_GT(conv_morphisms, 10);
  EXPECT_TRUE(conv_kinds.count(v1::MORPHISM_KIND_WIDEN));
  EXPECT_TRUE(conv_kinds.count(v1::MORPHISM_KIND_NARROW));
  EXPECT_TRUE(conv_kinds.count(v1::MORPHISM_KIND_DEEPEN));
}

TEST(ConvSpaceTest, ClampDropsTheLastPoolingsAndTheTrunkOfMlpSpaces) {
  const v1::SearchSpace space = ConvSpace();
  v1::Genome genome = RandomSearch(space, 3).Sample(1);
  genome.clear_conv_layers();
  for (int i = 0; i < 6; ++i) {
    v1::ConvLayer* layer = genome.add_conv_layers();
    layer->set_channels(100);
    layer->set_kernel_size(7);
    layer->set_activation(v1::ACTIVATION_TANH);
    layer->set_pooling(v1::POOLING_MAX);
    layer->set_dropout(0.9);
  }
  const v1::Genome clamped = ClampToSpace(genome, space);
  ASSERT_EQ(ConvOutsideSpace(clamped, space), "");
  ASSERT_EQ(clamped.conv_layers_size(), 4);
  // Four layers pool, which 28 x 28 allows; the first three keep theirs.
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(clamped.conv_layers(i).pooling(), v1::POOLING_MAX) << i;
    EXPECT_EQ(clamped.conv_layers(i).channels(), 32);
    EXPECT_EQ(clamped.conv_layers(i).kernel_size(), 3);
    EXPECT_EQ(clamped.conv_layers(i).dropout(), 0.5);
  }
  v1::SearchSpace two = space;
  two.set_max_pooling_layers(2);
  const v1::Genome fewer = ClampToSpace(genome, two);
  EXPECT_EQ(fewer.conv_layers(1).pooling(), v1::POOLING_MAX);
  EXPECT_EQ(fewer.conv_layers(2).pooling(), v1::POOLING_NONE);
  EXPECT_EQ(fewer.conv_layers(3).pooling(), v1::POOLING_NONE);
  EXPECT_EQ(ClampToSpace(genome, DefaultSpace()).conv_layers_size(), 0);
}

}  // namespace
}  // namespace evonas::search

namespace evonas::search {
namespace {

// RichSpace with both precisions.
v1::SearchSpace PrecisionSpace() {
  v1::SearchSpace space = RichSpace();
  space.add_precisions(v1::PRECISION_FLOAT64);
  space.add_precisions(v1::PRECISION_FLOAT32);
  return NormalizeSearchSpace(space).value();
}

TEST(PrecisionTest, NormalizeRefusesUnknownAndRepeatedPrecisions) {
  v1::SearchSpace space;
  space.add_precisions(v1::PRECISION_UNSPECIFIED);
  EXPECT_THAT(std::string(NormalizeSearchSpace(space).status().message()),
              ::testing::HasSubstr("search_space.precisions: 0 is not"));
  space.clear_precisions();
  space.add_precisions(v1::PRECISION_FLOAT32);
  space.add_precisions(v1::PRECISION_FLOAT32);
  EXPECT_THAT(std::string(NormalizeSearchSpace(space).status().message()),
              ::testing::HasSubstr("PRECISION_FLOAT32 is listed twice"));
}

TEST(PrecisionTest, RandomSearchDrawsBothForSingleStageNetworksOnly) {
  const v1::SearchSpace space = PrecisionSpace();
  RandomSearch random(space, 3);
  std::map<v1::Precision, int> single_stage;
  for (int n = 0; n < 200; ++n) {
    const v1::Genome genome = random.Sample(n);
    ASSERT_EQ(OutsideSpace(genome, space), "") << DescribeGenome(genome);
    if (genome.residual_stages_size() == 0) ++single_stage[genome.precision()];
  }
  EXPECT_GT(single_stage[v1::PRECISION_FLOAT64], 10);
  EXPECT_GT(single_stage[v1::PRECISION_FLOAT32], 10);
  EXPECT_EQ(single_stage.count(v1::PRECISION_UNSPECIFIED), 0u);

  // Without precisions in the space, genomes sample exactly as before.
  const v1::SearchSpace plain = RichSpace();
  for (int n = 0; n < 20; ++n) {
    const v1::Genome a = RandomSearch(plain, 3).Sample(n);
    v1::Genome b = RandomSearch(space, 3).Sample(n);
    b.clear_precision();
    EXPECT_EQ(GenomeKey(a), GenomeKey(b)) << n;
  }
}

TEST(PrecisionTest, ChangePrecisionSwitchesAndTrainsFromScratch) {
  const v1::SearchSpace space = PrecisionSpace();
  int nullopts = 0;
  const auto pairs = Apply(&ChangePrecision, space, &nullopts);
  int changed = 0;
  for (const auto& [parent, child] : pairs) {
    EXPECT_NE(parent.precision(), child.precision());
    EXPECT_EQ(child.residual_stages_size(), 0);
    v1::Genome same = child;
    same.set_precision(parent.precision());
    EXPECT_EQ(GenomeKey(same), GenomeKey(parent));  // nothing else changes
    ++changed;
  }
  EXPECT_GT(changed, 50);
  EXPECT_GT(nullopts, 0);  // multi-stage parents have no choice
  std::mt19937_64 rng(1);
  v1::Genome single = RandomSearch(space, 3).Sample(0);
  single.clear_residual_stages();
  single.set_precision(v1::PRECISION_FLOAT64);
  std::optional<Child> child = ChangePrecision(single, space, rng);
  ASSERT_TRUE(child.has_value());
  EXPECT_FALSE(child->IsMorphism());
  // A space with one precision has nothing to switch to.
  v1::SearchSpace one = RichSpace();
  one.add_precisions(v1::PRECISION_FLOAT32);
  EXPECT_FALSE(ChangePrecision(single, one, rng).has_value());
}

TEST(PrecisionTest, EveryMutationKeepsTheGenomeValid) {
  // Stages added to float32 networks, stages and trunks removed: the
  // precision follows the network.
  const v1::SearchSpace space = PrecisionSpace();
  RandomSearch random(space, 5);
  std::mt19937_64 rng(7);
  int switched = 0, float32_parents_got_stages = 0;
  for (int n = 0; n < 300; ++n) {
    const v1::Genome parent = random.Sample(n);
    const Child child = Mutate(parent, space, rng);
    ASSERT_EQ(OutsideSpace(child.genome, space), "")
        << DescribeGenome(child.genome);
    switched += parent.residual_stages_size() == 0 &&
                child.genome.residual_stages_size() == 0 &&
                parent.precision() != child.genome.precision();
    float32_parents_got_stages +=
        parent.precision() == v1::PRECISION_FLOAT32 &&
        child.genome.residual_stages_size() > 0;
    std::optional<Child> morphed = MutateByMorphism(parent, space, rng);
    ASSERT_TRUE(morphed.has_value());
    ASSERT_EQ(OutsideSpace(morphed->genome, space), "");
  }
  EXPECT_GT(switched, 3);
  EXPECT_GT(float32_parents_got_stages, 0);
}

// RichSpace with layer normalisation.
v1::SearchSpace LayerNormSpace() {
  v1::SearchSpace space = RichSpace();
  space.set_allow_layer_norm(true);
  return NormalizeSearchSpace(space).value();
}

int NormalisedLayers(const v1::Genome& genome) {
  int count = 0;
  for (int s = 0; s <= genome.residual_stages_size(); ++s) {
    for (const v1::DenseLayer& layer : StageLayers(genome, s)) {
      count += layer.layer_norm();
    }
  }
  return count;
}

TEST(LayerNormTest, RandomSearchNormalisesAboutHalfTheLayers) {
  const v1::SearchSpace space = LayerNormSpace();
  RandomSearch random(space, 3);
  int layers = 0, normalised = 0;
  for (int n = 0; n < 200; ++n) {
    const v1::Genome genome = random.Sample(n);
    ASSERT_EQ(OutsideSpace(genome, space), "") << DescribeGenome(genome);
    for (int s = 0; s <= genome.residual_stages_size(); ++s) {
      layers += StageLayers(genome, s).size();
    }
    normalised += NormalisedLayers(genome);
  }
  EXPECT_GT(normalised, layers * 4 / 10);
  EXPECT_LT(normalised, layers * 6 / 10);
  // Without it, genomes sample exactly as before; with it, the same genomes
  // but for the flags.
  for (int n = 0; n < 20; ++n) {
    const v1::Genome a = RandomSearch(RichSpace(), 3).Sample(n);
    v1::Genome b = RandomSearch(space, 3).Sample(n);
    EXPECT_EQ(NormalisedLayers(a), 0);
    for (int s = 0; s <= b.residual_stages_size(); ++s) {
      Layers& layers =
          s == 0 ? *b.mutable_hidden_layers()
                 : *b.mutable_residual_stages(s - 1)->mutable_hidden_layers();
      for (v1::DenseLayer& layer : layers) layer.clear_layer_norm();
    }
    EXPECT_EQ(GenomeKey(a), GenomeKey(b)) << n;
  }
}

TEST(LayerNormTest, ToggleSwitchesOneLayerAndTrainsFromScratch) {
  const v1::SearchSpace space = LayerNormSpace();
  int nullopts = 0;
  const auto pairs = Apply(&ToggleLayerNorm, space, &nullopts);
  EXPECT_GT(pairs.size(), 200u);
  for (const auto& [parent, child] : pairs) {
    ASSERT_EQ(child.residual_stages_size(), parent.residual_stages_size());
    int flipped = 0;
    for (int s = 0; s <= child.residual_stages_size(); ++s) {
      const Layers& a = StageLayers(parent, s);
      const Layers& b = StageLayers(child, s);
      ASSERT_EQ(a.size(), b.size());
      for (int i = 0; i < a.size(); ++i) {
        flipped += a[i].layer_norm() != b[i].layer_norm();
        v1::DenseLayer same = b[i];
        same.set_layer_norm(a[i].layer_norm());
        EXPECT_EQ(same.SerializeAsString(), a[i].SerializeAsString());
      }
    }
    EXPECT_EQ(flipped, 1);
  }
  std::mt19937_64 rng(1);
  const v1::Genome genome = RandomSearch(space, 4).Sample(0);
  std::optional<Child> child = ToggleLayerNorm(genome, space, rng);
  ASSERT_TRUE(child.has_value());
  EXPECT_FALSE(child->IsMorphism());
  // Not in a space without it, and the clamp removes the flags there.
  EXPECT_FALSE(ToggleLayerNorm(genome, RichSpace(), rng).has_value());
  EXPECT_EQ(NormalisedLayers(ClampToSpace(child->genome, RichSpace())), 0);
}

TEST(LayerNormTest, NormalisedLayersAreNotWidenedByNet2Wider) {
  const v1::SearchSpace space = LayerNormSpace();
  RandomSearch random(space, 8);
  std::mt19937_64 rng(9);
  int widened_from_scratch = 0, morphisms = 0;
  for (int n = 0; n < 300; ++n) {
    const v1::Genome parent = ClampToSpace(random.Sample(n), space);
    if (std::optional<Child> child = Widen(parent, space, rng)) {
      ASSERT_EQ(OutsideSpace(child->genome, space), "");
      if (child->IsMorphism()) {
        const v1::Morphism& m = child->morphism;
        EXPECT_FALSE(StageLayers(parent, m.stage())[m.layer()].layer_norm());
        ++morphisms;
      } else {
        ++widened_from_scratch;
      }
    }
    std::optional<Child> morphed = MutateByMorphism(parent, space, rng);
    ASSERT_TRUE(morphed.has_value());
    ASSERT_EQ(OutsideSpace(morphed->genome, space), "");
    if (morphed->morphism.kind() == v1::MORPHISM_KIND_WIDEN) {
      const v1::Morphism& m = morphed->morphism;
      EXPECT_FALSE(StageLayers(parent, m.stage())[m.layer()].layer_norm());
    }
  }
  EXPECT_GT(widened_from_scratch, 10);
  EXPECT_GT(morphisms, 10);
}

TEST(LayerNormTest, NarrowKeepsTwoNeuronsInANormalisedLayer) {
  v1::SearchSpace space = LayerNormSpace();
  space.set_min_width(1);
  v1::Genome genome = RandomSearch(space, 1).Sample(0);
  genome.clear_residual_stages();
  genome.mutable_hidden_layers()->Clear();
  for (int width : {2, 3}) {
    v1::DenseLayer* layer = genome.add_hidden_layers();
    layer->set_width(width);
    layer->set_activation(v1::ACTIVATION_TANH);
    layer->set_layer_norm(true);
  }
  ASSERT_EQ(OutsideSpace(genome, space), "");
  std::mt19937_64 rng(2);
  for (int trial = 0; trial < 20; ++trial) {
    std::optional<Child> child = Narrow(genome, space, rng);
    ASSERT_TRUE(child.has_value());
    // Only the 3-wide layer can shrink, and only to 2.
    EXPECT_EQ(child->genome.hidden_layers(0).width(), 2);
    EXPECT_EQ(child->genome.hidden_layers(1).width(), 2);
    EXPECT_EQ(child->morphism.kind(), v1::MORPHISM_KIND_NARROW);
  }
}

TEST(LayerNormTest, EveryMutationStaysValid) {
  const v1::SearchSpace space = LayerNormSpace();
  RandomSearch random(space, 5);
  std::mt19937_64 rng(7);
  v1::Genome genome = random.Sample(0);
  int toggles = 0;
  for (int n = 0; n < 300; ++n) {
    const Child child = Mutate(genome, space, rng);
    ASSERT_EQ(OutsideSpace(child.genome, space), "")
        << DescribeGenome(child.genome);
    toggles += NormalisedLayers(child.genome) != NormalisedLayers(genome);
    genome = child.genome;
  }
  EXPECT_GT(toggles, 5);
}

}  // namespace
}  // namespace evonas::search
