#include "server/search/lemonade.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/genome.h"
#include "common/genome_cost.h"
#include "common/simulated_evaluator.h"
#include "gtest/gtest.h"
#include "server/search/pareto.h"

namespace evonas::search {
namespace {

constexpr int64_t kInputs = 3;
constexpr int64_t kOutputs = 1;

v1::SearchSpace Space() {
  v1::SearchSpace space;
  space.set_allow_residual(true);
  space.set_max_residual_stages(1);
  return NormalizeSearchSpace(space).value();
}

v1::LemonadeSettings Settings(int children = 16, int initial = 10) {
  v1::LemonadeSettings settings;
  settings.set_children_per_proposal(children);
  settings.set_initial_population(initial);
  return settings;
}

std::vector<v1::Objective> Objectives() {
  return {v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR,
          v1::OBJECTIVE_PARAMETER_COUNT};
}

// `n` random candidates trained by the simulator.
std::vector<v1::Candidate> Finished(int n, uint64_t seed = 1) {
  RandomSearch random(Space(), seed);
  std::vector<v1::Candidate> finished;
  for (int i = 0; i < n; ++i) {
    v1::Candidate c;
    c.set_id("c" + std::to_string(i));
    c.set_sequence(i);
    *c.mutable_genome() = random.Sample(i);
    c.set_state(i % 7 == 6 ? v1::CANDIDATE_STATE_FAILED
                           : v1::CANDIDATE_STATE_SUCCEEDED);
    SimulationOptions options;
    options.inputs = kInputs;
    options.seed = i;
    *c.mutable_metrics() = SimulateTraining(c.genome(), options).metrics;
    finished.push_back(c);
  }
  return finished;
}

TEST(KernelDensityTest, ScottsBandwidthAndGaussianSum) {
  std::mt19937 rng(1);
  std::normal_distribution<double> normal(0, 1);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<std::vector<double>> points(2 + trial);
    for (auto& p : points) p = {normal(rng), 3 * normal(rng)};
    const KernelDensity density(points);
    const double n = points.size();
    for (int k = 0; k < 2; ++k) {
      double mean = 0, squares = 0;
      for (auto& p : points) mean += p[k] / n;
      for (auto& p : points) squares += (p[k] - mean) * (p[k] - mean);
      EXPECT_NEAR(density.bandwidth()[k],
                  std::sqrt(squares / (n - 1)) * std::pow(n, -1.0 / 6), 1e-12);
    }
    const std::vector<double> x = {normal(rng), normal(rng)};
    double sum = 0;
    const double h0 = density.bandwidth()[0], h1 = density.bandwidth()[1];
    for (auto& p : points) {
      sum += std::exp(-0.5 * (std::pow((x[0] - p[0]) / h0, 2) +
                              std::pow((x[1] - p[1]) / h1, 2))) /
             (2 * M_PI * h0 * h1);
    }
    EXPECT_NEAR(density.LogDensity(x), std::log(sum / n), 1e-9);
  }
  // One point: the minimum bandwidth, and far away no underflow to -inf.
  const KernelDensity single({{1, 2}});
  EXPECT_EQ(single.bandwidth()[0], KernelDensity::kMinBandwidth);
  EXPECT_TRUE(std::isfinite(single.LogDensity({100, 100})));
}

TEST(InverseDensityWeightsTest, IsolatedPointsWeighMost) {
  std::vector<std::vector<double>> points = {
      {0, 0}, {0.01, 0}, {0, 0.01}, {0.01, 0.01}, {3, 3}};
  const KernelDensity density(points);
  const std::vector<double> w = InverseDensityWeights(density, points);
  EXPECT_EQ(w[4], 1);
  for (int i = 0; i < 4; ++i) {
    EXPECT_GT(w[i], 0);
    EXPECT_LT(w[i], 0.5);
  }
}

TEST(CheapObjectivesTest, LogParametersAndFlops) {
  v1::Genome g;
  g.add_hidden_layers()->set_width(10);
  const v1::GenomeCost cost = ComputeGenomeCost(g, 3, 1);
  EXPECT_EQ(CheapObjectives(g, 3, 1),
            (std::vector<double>{std::log10(double(cost.parameter_count())),
                                 std::log10(double(cost.flops_per_sample()))}));
}

TEST(LemonadeTest, RandomUntilTheInitialPopulationSucceeded) {
  Lemonade lemonade(Space(), Settings(16, 10), true, {}, Objectives(), kInputs,
                    kOutputs, 5);
  RandomSearch random(Space(), 5);
  const std::vector<v1::Candidate> finished = Finished(11);  // 10 succeeded
  std::vector<v1::Candidate> fewer(finished.begin(), finished.begin() + 10);
  for (int64_t n = 11; n < 20; ++n) {
    const Proposal p = lemonade.Propose(n, fewer);
    EXPECT_EQ(GenomeKey(p.genome), GenomeKey(random.Sample(n)));
    EXPECT_TRUE(p.parent_id.empty());
  }
  int differing = 0;
  for (int64_t n = 11; n < 20; ++n) {
    differing += GenomeKey(lemonade.Propose(n, finished).genome) !=
                 GenomeKey(random.Sample(n));
  }
  EXPECT_EQ(differing, 9);
}

TEST(LemonadeTest, ChildrenAreMorphismsOfFrontMembers) {
  const std::vector<v1::Candidate> finished = Finished(60);
  std::set<std::string> front_ids;
  for (size_t i : ParetoFront(finished, Objectives(), {})) {
    front_ids.insert(finished[i].id());
  }
  Lemonade inheriting(Space(), Settings(), true, {}, Objectives(), kInputs,
                      kOutputs, 3);
  Lemonade scratch(Space(), Settings(), false, {}, Objectives(), kInputs,
                   kOutputs, 3);
  std::set<int> kinds;
  for (int64_t n = 60; n < 160; ++n) {
    const Proposal p = inheriting.Propose(n, finished);
    ASSERT_TRUE(ValidateGenome(p.genome).ok());
    ASSERT_FALSE(p.parent_id.empty());
    EXPECT_TRUE(front_ids.count(p.parent_id)) << p.parent_id;
    EXPECT_NE(p.morphism.kind(), v1::MORPHISM_KIND_UNSPECIFIED);
    kinds.insert(p.morphism.kind());
    // Without inheritance: the same child, trained from scratch.
    const Proposal q = scratch.Propose(n, finished);
    EXPECT_EQ(GenomeKey(q.genome), GenomeKey(p.genome));
    EXPECT_TRUE(q.parent_id.empty());
    EXPECT_EQ(q.morphism.kind(), v1::MORPHISM_KIND_UNSPECIFIED);
  }
  EXPECT_GE(kinds.size(), 5u);
}

TEST(LemonadeTest, ARandomFractionOfTheProposalsAreRandomSamples) {
  const std::vector<v1::Candidate> finished = Finished(60);
  RandomSearch random(Space(), 3);
  for (double fraction : {0.0, 0.3, 1.0}) {
    v1::LemonadeSettings settings = Settings();
    settings.set_random_fraction(fraction);
    Lemonade mixed(Space(), settings, true, {}, Objectives(), kInputs, kOutputs,
                   3);
    Lemonade bred(Space(), Settings(), true, {}, Objectives(), kInputs,
                  kOutputs, 3);
    int sampled = 0;
    const int n = 400;
    for (int64_t s = 60; s < 60 + n; ++s) {
      const Proposal p = mixed.Propose(s, finished);
      if (GenomeKey(p.genome) == GenomeKey(random.Sample(s))) {
        ++sampled;
        EXPECT_TRUE(p.parent_id.empty());  // trained from scratch
      } else {
        // Otherwise the child the front would have bred without the share.
        const Proposal q = bred.Propose(s, finished);
        EXPECT_EQ(GenomeKey(p.genome), GenomeKey(q.genome));
        EXPECT_EQ(p.parent_id, q.parent_id);
        EXPECT_FALSE(p.parent_id.empty());
      }
    }
    // Binomial(400, 0.3): standard deviation 9.2, so 5 of them apart.
    EXPECT_NEAR(sampled, fraction * n, 46) << fraction;
    if (fraction == 0 || fraction == 1) EXPECT_EQ(sampled, fraction * n);
  }
}

TEST(LemonadeTest, DeterministicAndIndependentOfTheOrderOfResults) {
  const std::vector<v1::Candidate> finished = Finished(40);
  std::vector<v1::Candidate> shuffled = finished;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(4));
  Lemonade a(Space(), Settings(), true, {}, Objectives(), kInputs, kOutputs, 9);
  Lemonade b(Space(), Settings(), true, {}, Objectives(), kInputs, kOutputs, 9);
  Lemonade c(Space(), Settings(), true, {}, Objectives(), kInputs, kOutputs,
             10);
  int differing = 0;
  for (int64_t n = 40; n < 70; ++n) {
    const Proposal p = a.Propose(n, finished);
    const Proposal q = b.Propose(n, shuffled);
    EXPECT_EQ(GenomeKey(p.genome), GenomeKey(q.genome));
    EXPECT_EQ(p.parent_id, q.parent_id);
    EXPECT_EQ(p.morphism.SerializeAsString(), q.morphism.SerializeAsString());
    differing += GenomeKey(p.genome) != GenomeKey(c.Propose(n, finished).genome);
  }
  EXPECT_GT(differing, 15);
}

TEST(LemonadeTest, LevelZeroScreensChildrenThatBreakSizeLimits) {
  const std::vector<v1::Candidate> finished = Finished(60);
  // Half of the front's networks are above this.
  std::vector<int64_t> sizes;
  for (size_t i : ParetoFront(finished, Objectives(), {})) {
    sizes.push_back(finished[i].metrics().parameter_count());
  }
  std::sort(sizes.begin(), sizes.end());
  for (bool bytes : {false, true}) {
    v1::Requirements requirements;
    const int64_t limit = sizes[sizes.size() / 2];
    if (bytes) {
      requirements.set_max_model_bytes(8 * limit);
    } else {
      requirements.set_max_parameters(limit);
    }
    Lemonade lemonade(Space(), Settings(), true, requirements, Objectives(),
                      kInputs, kOutputs, 2);
    int children = 0;
    for (int64_t n = 60; n < 160; ++n) {
      const Proposal p = lemonade.Propose(n, finished);
      if (p.parent_id.empty()) continue;  // all screened: a random sample
      ++children;
      EXPECT_LE(ComputeGenomeCost(p.genome, kInputs, kOutputs).parameter_count(),
                limit);
    }
    EXPECT_GT(children, 80);
  }
}

TEST(LemonadeTest, SparseRegionsOfTheFrontAreChosenMoreOften) {
  // A front of nine similar small networks and one large one, all feasible
  // and mutually non-dominated (the larger, the more accurate).
  std::vector<v1::Candidate> finished;
  for (int i = 0; i < 10; ++i) {
    v1::Candidate c;
    c.set_id("c" + std::to_string(i));
    c.set_sequence(i);
    c.set_state(v1::CANDIDATE_STATE_SUCCEEDED);
    const int width = i < 9 ? 10 + i : 120;
    for (int l = 0; l < 2; ++l) {
      v1::DenseLayer* layer = c.mutable_genome()->add_hidden_layers();
      layer->set_width(width);
      layer->set_activation(v1::ACTIVATION_TANH);
    }
    c.mutable_genome()->mutable_training()->set_learning_rate(3e-3);
    c.mutable_genome()->mutable_training()->set_adam_steps(1000);
    c.mutable_genome()->mutable_training()->set_lbfgs_steps(200);
    c.mutable_metrics()->mutable_validation()->set_max_abs_error(1.0 / width);
    c.mutable_metrics()->set_parameter_count(
        ComputeGenomeCost(c.genome(), kInputs, kOutputs).parameter_count());
    finished.push_back(c);
  }
  ASSERT_EQ(ParetoFront(finished, Objectives(), {}).size(), 10u);
  // One child per proposal: its parent is drawn by inverse density among
  // parents, then children are accepted by inverse density too, so the
  // isolated large network fathers far more than 1/10 of the children.
  Lemonade lemonade(Space(), Settings(1, 10), true, {}, Objectives(), kInputs,
                    kOutputs, 6);
  std::map<std::string, int> parents;
  for (int64_t n = 10; n < 410; ++n) {
    parents[lemonade.Propose(n, finished).parent_id]++;
  }
  EXPECT_GT(parents["c9"], 400 / 3);
  for (int i = 0; i < 9; ++i) {
    EXPECT_LT(parents["c" + std::to_string(i)], parents["c9"] / 2);
  }
}

TEST(MakeStrategyTest, LemonadeSettingsAreValidated) {
  v1::ExperimentSpec spec;
  spec.set_strategy(v1::STRATEGY_LEMONADE);
  *spec.mutable_search_space() = Space();
  EXPECT_TRUE(MakeStrategy(spec).ok());
  spec.mutable_lemonade()->set_children_per_proposal(1001);
  absl::Status status = MakeStrategy(spec).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("lemonade.children_per_proposal"),
            absl::string_view::npos);
  spec.mutable_lemonade()->set_children_per_proposal(4);
  spec.mutable_lemonade()->set_initial_population(-1);
  EXPECT_NE(MakeStrategy(spec).status().message().find(
                "lemonade.initial_population"),
            absl::string_view::npos);
  spec.mutable_lemonade()->set_initial_population(3);
  spec.mutable_inheritance()->set_enabled(true);
  spec.mutable_inheritance()->set_step_fraction(1.5);
  EXPECT_NE(MakeStrategy(spec).status().message().find(
                "inheritance.step_fraction"),
            absl::string_view::npos);
  spec.mutable_inheritance()->set_step_fraction(0.5);
  EXPECT_TRUE(MakeStrategy(spec).ok());
  spec.add_objectives(static_cast<v1::Objective>(99));
  EXPECT_NE(MakeStrategy(spec).status().message().find("objectives[0]"),
            absl::string_view::npos);
  EXPECT_EQ(NormalizeInheritanceSettings({}).value().step_fraction(), 1);
  const v1::LemonadeSettings defaults = NormalizeLemonadeSettings({}).value();
  EXPECT_EQ(defaults.children_per_proposal(), 16);
  EXPECT_EQ(defaults.initial_population(), 10);
  EXPECT_EQ(defaults.random_fraction(), kDefaultLemonadeRandomFraction);
  v1::LemonadeSettings none;
  none.set_random_fraction(0);  // set: no random proposals, whatever default
  EXPECT_EQ(NormalizeLemonadeSettings(none).value().random_fraction(), 0);
  for (double bad : {-0.1, 1.5, std::nan("")}) {
    spec.clear_objectives();
    spec.mutable_lemonade()->set_random_fraction(bad);
    status = MakeStrategy(spec).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(status.message().find("lemonade.random_fraction"),
              absl::string_view::npos)
        << status.message();
  }
}

TEST(LemonadeTest, CopiesOfEarlierCandidatesDoNotCount) {
  const std::vector<v1::Candidate> finished = Finished(40);
  std::vector<v1::Candidate> with_copies = finished;
  for (const v1::Candidate& c : finished) {
    v1::Candidate copy = c;
    copy.set_id(c.id() + "-copy");
    copy.set_sequence(c.sequence() + 1000);
    copy.set_duplicate_of(c.id());
    with_copies.push_back(copy);
  }
  Lemonade a(Space(), Settings(), true, {}, Objectives(), kInputs, kOutputs, 9);
  Lemonade b(Space(), Settings(), true, {}, Objectives(), kInputs, kOutputs, 9);
  for (int64_t n = 2000; n < 2030; ++n) {
    const Proposal p = a.Propose(n, finished);
    const Proposal q = b.Propose(n, with_copies);
    EXPECT_EQ(GenomeKey(p.genome), GenomeKey(q.genome));
    EXPECT_EQ(p.parent_id, q.parent_id);
  }
}

}  // namespace
}  // namespace evonas::search
