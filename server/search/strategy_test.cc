#include "server/search/strategy.h"

#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/genome.h"
#include "common/genome_cost.h"
#include "common/latency_table.h"
#include "common/simulated_evaluator.h"
#include "absl/strings/str_cat.h"
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

  v1::SearchSpace nothing_to_grow;
  nothing_to_grow.set_grow_stages(true);
  result = NormalizeSearchSpace(nothing_to_grow);
  ASSERT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find(
                "grow_stages needs max_residual_stages > 0"),
            std::string::npos)
      << result.status();

  // Random search has no children to grow stages on.
  v1::SearchSpace growing;
  growing.set_max_residual_stages(2);
  growing.set_grow_stages(true);
  v1::ExperimentSpec spec = SpecWithSeed(1);
  *spec.mutable_search_space() = NormalizeSearchSpace(growing).value();
  absl::StatusOr<std::unique_ptr<Strategy>> random = MakeStrategy(spec);
  ASSERT_EQ(random.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(random.status().message().find("needs an evolutionary strategy"),
            std::string::npos)
      << random.status();
  spec.set_strategy(v1::STRATEGY_REGULARIZED_EVOLUTION);
  EXPECT_TRUE(MakeStrategy(spec).ok());

  v1::SearchSpace single_stage;
  single_stage.add_residual_stage_activations(v1::ACTIVATION_SINE);
  result = NormalizeSearchSpace(single_stage);
  ASSERT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find(
                "residual_stage_activations needs max_residual_stages > 0"),
            std::string::npos)
      << result.status();

  v1::SearchSpace unknown;
  unknown.set_max_residual_stages(1);
  unknown.add_residual_stage_activations(static_cast<v1::Activation>(77));
  result = NormalizeSearchSpace(unknown);
  ASSERT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("unknown activation 77"),
            std::string::npos)
      << result.status();
}

TEST(RandomSearchTest, ProposesValidGenomesWithinBounds) {
  v1::ExperimentSpec spec = SpecWithSeed(1);
  auto strategy = MakeStrategy(spec).value();
  for (int64_t n = 0; n < 500; ++n) {
    v1::Genome genome = strategy->Propose(n, {}).genome;
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
    v1::Genome genome = strategy->Propose(n, {}).genome;
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
  v1::Genome a5 = a->Propose(5, {}).genome;
  b->Propose(0, {});
  v1::Genome b5 = b->Propose(5, {}).genome;
  EXPECT_EQ(a5.SerializeAsString(), b5.SerializeAsString());
  int differing = 0;
  for (int n = 0; n < 20; ++n) {
    differing += a->Propose(n, {}).genome.SerializeAsString() !=
                 c->Propose(n, {}).genome.SerializeAsString();
  }
  EXPECT_GT(differing, 15);
}

TEST(NormalizeEvolutionSettingsTest, FillsDefaultsAndChecksBounds) {
  v1::EvolutionSettings settings = NormalizeEvolutionSettings({}).value();
  EXPECT_EQ(settings.population_size(), 20);
  EXPECT_EQ(settings.tournament_size(), 5);
  v1::EvolutionSettings small;
  small.set_population_size(3);
  EXPECT_EQ(NormalizeEvolutionSettings(small).value().tournament_size(), 3);

  v1::EvolutionSettings bad;
  bad.set_population_size(4);
  bad.set_tournament_size(5);
  absl::Status status = NormalizeEvolutionSettings(bad).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("tournament_size"), std::string::npos);
  bad.set_population_size(-1);
  bad.set_tournament_size(1);
  status = NormalizeEvolutionSettings(bad).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("population_size"), std::string::npos);
}

TEST(MakeStrategyTest, BuildsRegularizedEvolutionAndChecksItsSettings) {
  v1::ExperimentSpec spec = SpecWithSeed(4);
  spec.set_strategy(v1::STRATEGY_REGULARIZED_EVOLUTION);
  auto strategy = MakeStrategy(spec);
  ASSERT_TRUE(strategy.ok()) << strategy.status();
  // Before the population fills it samples like random search.
  auto random = MakeStrategy(SpecWithSeed(4)).value();
  EXPECT_EQ(GenomeKey((*strategy)->Propose(3, {}).genome),
            GenomeKey(random->Propose(3, {}).genome));
  spec.mutable_evolution()->set_tournament_size(50);
  EXPECT_EQ(MakeStrategy(spec).status().code(),
            absl::StatusCode::kInvalidArgument);
  spec.set_strategy(static_cast<v1::Strategy>(99));
  EXPECT_EQ(MakeStrategy(spec).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Proposes from a fixed list by sequence; a re-proposal (sequence beyond
// the list) answers with the list entry at k, the salt multiple, as a WIDEN
// morphism of parent "p<k>".
class ListStrategy : public Strategy {
 public:
  explicit ListStrategy(std::vector<v1::Genome> genomes)
      : genomes_(std::move(genomes)) {}
  Proposal Propose(int64_t sequence,
                   const std::vector<v1::Candidate>&) override {
    asked.push_back(sequence);
    const int64_t k = sequence / kResaltStride;
    Proposal proposal;
    proposal.genome = genomes_[k % genomes_.size()];
    proposal.parent_id = absl::StrCat("p", k);
    proposal.morphism.set_kind(v1::MORPHISM_KIND_WIDEN);
    proposal.morphism.set_layer(static_cast<int>(k));
    return proposal;
  }
  std::vector<int64_t> asked;

 private:
  std::vector<v1::Genome> genomes_;
};

TEST(ProposeUniqueTest, ReproposesWithSaltedSequencesUntilNew) {
  auto random = MakeStrategy(SpecWithSeed(1)).value();
  std::vector<v1::Genome> genomes;
  for (int n = 0; n < 3; ++n) genomes.push_back(random->Propose(n, {}).genome);
  ListStrategy strategy(genomes);
  std::unordered_set<std::string> taken = {GenomeKey(genomes[0]),
                                           GenomeKey(genomes[1])};
  UniqueProposal proposal = ProposeUnique(strategy, 7, {}, taken, 10);
  EXPECT_TRUE(proposal.unique);
  EXPECT_EQ(proposal.attempts, 3);
  EXPECT_EQ(GenomeKey(proposal.genome), GenomeKey(genomes[2]));
  // The accepted proposal's parent and morphism come with it.
  EXPECT_EQ(proposal.parent_id, "p2");
  EXPECT_EQ(proposal.morphism.kind(), v1::MORPHISM_KIND_WIDEN);
  EXPECT_EQ(proposal.morphism.layer(), 2);
  EXPECT_EQ(strategy.asked, (std::vector<int64_t>{7, 7 + kResaltStride,
                                                  7 + 2 * kResaltStride}));

  // Everything taken: the first proposal comes back, marked not unique.
  taken.insert(GenomeKey(genomes[2]));
  proposal = ProposeUnique(strategy, 7, {}, taken, 5);
  EXPECT_FALSE(proposal.unique);
  EXPECT_EQ(proposal.attempts, 5);
  EXPECT_EQ(GenomeKey(proposal.genome), GenomeKey(genomes[0]));
  EXPECT_EQ(proposal.parent_id, "p0");
  EXPECT_EQ(proposal.morphism.layer(), 0);

  // Nothing taken: one proposal.
  proposal = ProposeUnique(strategy, 7, {}, {}, 5);
  EXPECT_TRUE(proposal.unique);
  EXPECT_EQ(proposal.attempts, 1);
}

TEST(MakeStrategyTest, LevelZeroScreensEveryStrategyBySize) {
  for (v1::Strategy which : {v1::STRATEGY_RANDOM,
                             v1::STRATEGY_REGULARIZED_EVOLUTION}) {
    v1::ExperimentSpec spec = SpecWithSeed(4);
    spec.set_strategy(which);
    spec.add_input_columns("x");
    spec.add_output_columns("y");
    auto unscreened = MakeStrategy(spec).value();
    spec.mutable_requirements()->set_max_parameters(2000);
    auto screened = MakeStrategy(spec).value();
    int too_big_before = 0, kept = 0;
    for (int64_t n = 0; n < 100; ++n) {
      const v1::Genome before = unscreened->Propose(n, {}).genome;
      const v1::Genome after = screened->Propose(n, {}).genome;
      const bool fits = ComputeGenomeCost(before, 1, 1).parameter_count() <= 2000;
      too_big_before += !fits;
      if (fits) {
        // Proposals that pass are left alone.
        EXPECT_EQ(GenomeKey(after), GenomeKey(before));
        ++kept;
      }
      EXPECT_LE(ComputeGenomeCost(after, 1, 1).parameter_count(), 2000);
    }
    EXPECT_GT(too_big_before, 20);
    EXPECT_GT(kept, 20);

    // Model bytes screen by the float64 weights.
    spec.mutable_requirements()->clear_max_parameters();
    spec.mutable_requirements()->set_max_model_bytes(8 * 2000);
    auto by_bytes = MakeStrategy(spec).value();
    for (int64_t n = 0; n < 50; ++n) {
      EXPECT_LE(ComputeGenomeCost(by_bytes->Propose(n, {}).genome, 1, 1)
                    .float64_bytes(),
                8 * 2000);
    }
  }
}

TEST(MakeStrategyTest, LevelZeroCountsAClassifiersLogits) {
  // One label column, ten classes: the output layer has ten units, which
  // a parameter limit must count.
  v1::ExperimentSpec spec = SpecWithSeed(6);
  spec.add_input_columns("x");
  spec.add_output_columns("label");
  spec.mutable_requirements()->set_max_parameters(1500);
  auto by_columns = MakeStrategy(spec).value();
  auto by_classes = MakeStrategy(spec, {}, 10).value();
  int columns_too_big = 0;
  for (int64_t n = 0; n < 100; ++n) {
    EXPECT_LE(ComputeGenomeCost(by_classes->Propose(n, {}).genome, 1, 10)
                  .parameter_count(),
              1500);
    columns_too_big +=
        ComputeGenomeCost(by_columns->Propose(n, {}).genome, 1, 10)
            .parameter_count() > 1500;
  }
  // Counting one output unit lets too large classifiers through.
  EXPECT_GT(columns_too_big, 0);
}

TEST(MakeStrategyTest, LevelZeroScreensByEstimatedLatencyWithAMargin) {
  v1::ExperimentSpec spec = SpecWithSeed(4);
  spec.add_input_columns("x");
  spec.add_output_columns("y");
  // Simulated hardware: 1 ns per multiply-add, 2 us per network.
  const v1::LatencyTable table = SimulatedLatencyTable();
  const double limit = 3e-6;
  spec.mutable_requirements()->set_max_inference_latency_seconds(limit);
  // Without a table nothing is known: latency alone screens nothing.
  auto unscreened = MakeStrategy(spec).value();
  auto screened = MakeStrategy(spec, {table}).value();
  int slow_before = 0, kept = 0;
  for (int64_t n = 0; n < 100; ++n) {
    const v1::Genome before = unscreened->Propose(n, {}).genome;
    const v1::Genome after = screened->Propose(n, {}).genome;
    const double estimate =
        EstimateGenomeCost(before, 1, 1, {table}).estimated_latency_seconds();
    if (estimate > kLatencyScreenMargin * limit) {
      ++slow_before;
    } else {
      EXPECT_EQ(GenomeKey(after), GenomeKey(before));
      ++kept;
    }
    EXPECT_LE(
        EstimateGenomeCost(after, 1, 1, {table}).estimated_latency_seconds(),
        kLatencyScreenMargin * limit);
  }
  EXPECT_GT(slow_before, 20);
  EXPECT_GT(kept, 10);
}

TEST(ScreenedByCostTest, ReturnsTheFirstProposalWhenNonePasses) {
  auto random = MakeStrategy(SpecWithSeed(1)).value();
  v1::Requirements impossible;
  impossible.set_max_parameters(1);
  const v1::Genome first = random->Propose(5, {}).genome;
  auto screened = ScreenedByCost(std::move(random), impossible, 1, 1);
  EXPECT_EQ(GenomeKey(screened->Propose(5, {}).genome), GenomeKey(first));
}

}  // namespace
}  // namespace evonas::search
