#include "server/search/strategy.h"
#include <set>

#include "common/genome.h"
#include "gtest/gtest.h"

namespace evonas::search {
namespace {

v1::ExperimentSpec SpecWithSeed(uint64_t seed) {
  v1::ExperimentSpec spec;
  spec.set_seed(seed);
  spec.set_strategy(v1::STRATEGY_RANDOM);
  *spec.mutable_search_space() = NormalizeSearchSpace({}).value();
  return spec;
}

TEST(NormalizeSearchSpaceTest, FillsDefaults) {
  v1::SearchSpace space = NormalizeSearchSpace({}).value();
  EXPECT_EQ(space.min_depth(), 1);
  EXPECT_EQ(space.max_depth(), 4);
  EXPECT_EQ(space.min_width(), 8);
  EXPECT_EQ(space.max_width(), 128);
  EXPECT_EQ(space.activations_size(), 3);
  EXPECT_GT(space.max_learning_rate(), space.min_learning_rate());
}

TEST(NormalizeSearchSpaceTest, RejectsContradictions) {
  v1::SearchSpace space;
  space.set_min_width(64);
  space.set_max_width(16);
  absl::StatusOr<v1::SearchSpace> result = NormalizeSearchSpace(space);
  ASSERT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("width"), std::string::npos);

  v1::SearchSpace too_deep;
  too_deep.set_max_depth(1000);
  EXPECT_EQ(NormalizeSearchSpace(too_deep).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RandomSearchTest, ProposesValidGenomesWithinBounds) {
  v1::ExperimentSpec spec = SpecWithSeed(1);
  auto strategy = MakeStrategy(spec).value();
  for (int64_t n = 0; n < 500; ++n) {
    v1::Genome genome = strategy->Propose(n, {});
    ASSERT_TRUE(ValidateGenome(genome).ok()) << DescribeGenome(genome);
    EXPECT_GE(genome.hidden_layers_size(), 1);
    EXPECT_LE(genome.hidden_layers_size(), 4);
    for (const auto& layer : genome.hidden_layers()) {
      EXPECT_GE(layer.width(), 8);
      EXPECT_LE(layer.width(), 128);
    }
    EXPECT_GE(genome.training().learning_rate(), 1e-3);
    EXPECT_LE(genome.training().learning_rate(), 2e-2);
  }
}

TEST(RandomSearchTest, CoversTheSpace) {
  auto strategy = MakeStrategy(SpecWithSeed(3)).value();
  std::set<int> depths, activations;
  int min_width = 1 << 30, max_width = 0;
  for (int64_t n = 0; n < 500; ++n) {
    v1::Genome genome = strategy->Propose(n, {});
    depths.insert(genome.hidden_layers_size());
    activations.insert(genome.hidden_layers(0).activation());
    for (const auto& layer : genome.hidden_layers()) {
      min_width = std::min(min_width, layer.width());
      max_width = std::max(max_width, layer.width());
    }
  }
  EXPECT_EQ(depths.size(), 4u);
  EXPECT_EQ(activations.size(), 3u);
  EXPECT_LT(min_width, 12);
  EXPECT_GT(max_width, 100);
}

TEST(RandomSearchTest, DeterministicPerSeedAndSequence) {
  auto a = MakeStrategy(SpecWithSeed(42)).value();
  auto b = MakeStrategy(SpecWithSeed(42)).value();
  auto c = MakeStrategy(SpecWithSeed(43)).value();
  // Order of calls does not matter: candidate n depends on (seed, n) only.
  v1::Genome a5 = a->Propose(5, {});
  b->Propose(0, {});
  v1::Genome b5 = b->Propose(5, {});
  EXPECT_EQ(a5.SerializeAsString(), b5.SerializeAsString());
  int differing = 0;
  for (int n = 0; n < 20; ++n) {
    differing += a->Propose(n, {}).SerializeAsString() !=
                 c->Propose(n, {}).SerializeAsString();
  }
  EXPECT_GT(differing, 15);
}

}  // namespace
}  // namespace evonas::search
