#include "server/search/nsga2.h"

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/genome.h"
#include "gtest/gtest.h"
#include "server/search/pareto.h"

namespace evonas::search {
namespace {

v1::SearchSpace Space() { return NormalizeSearchSpace({}).value(); }

v1::EvolutionSettings Settings(int population) {
  v1::EvolutionSettings settings;
  settings.set_population_size(population);
  return NormalizeEvolutionSettings(settings).value();
}

std::vector<v1::Objective> Objectives() {
  return {v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR,
          v1::OBJECTIVE_PARAMETER_COUNT};
}

TEST(Nsga2SurvivorsTest, MatchesBruteForceSelection) {
  std::mt19937 rng(21);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<ObjectivePoint> points(1 + rng() % 30);
    for (ObjectivePoint& p : points) {
      p.objectives = {double(rng() % 6), double(rng() % 6)};
      p.feasible = rng() % 4 != 0;
      p.violation = p.feasible ? 0 : 1 + rng() % 3;
    }
    const size_t size = 1 + rng() % 20;
    const std::vector<size_t> survivors = Nsga2Survivors(points, size);
    ASSERT_EQ(survivors.size(), std::min(size, points.size()));
    ASSERT_TRUE(std::is_sorted(survivors.begin(), survivors.end()));
    // Brute force: every survivor's rank is at most every non-survivor's;
    // on the boundary rank, survivors are at least as crowded-apart.
    const std::vector<int> rank = NonDominationRanks(points);
    const std::set<size_t> in(survivors.begin(), survivors.end());
    int worst_in = -1;
    for (size_t i : survivors) worst_in = std::max(worst_in, rank[i]);
    std::vector<size_t> boundary;
    for (size_t i = 0; i < points.size(); ++i) {
      if (rank[i] == worst_in) boundary.push_back(i);
      if (!in.count(i)) EXPECT_GE(rank[i], worst_in) << trial;
      if (in.count(i)) EXPECT_LE(rank[i], worst_in) << trial;
    }
    const std::vector<double> d = CrowdingDistances(points, boundary);
    for (size_t a = 0; a < boundary.size(); ++a) {
      for (size_t b = 0; b < boundary.size(); ++b) {
        if (in.count(boundary[a]) && !in.count(boundary[b])) {
          EXPECT_GE(d[a], d[b]) << trial;
        }
      }
    }
  }
}

v1::Candidate Succeeded(int64_t sequence, const v1::Genome& genome,
                        double error, int64_t parameters) {
  v1::Candidate c;
  c.set_id("c" + std::to_string(sequence));
  c.set_sequence(sequence);
  *c.mutable_genome() = genome;
  c.set_state(v1::CANDIDATE_STATE_SUCCEEDED);
  c.mutable_metrics()->mutable_validation()->set_max_abs_error(error);
  c.mutable_metrics()->set_parameter_count(parameters);
  return c;
}

TEST(Nsga2Test, RandomFirstThenDeterministicChildrenOfGoodRanks) {
  RandomSearch random(Space(), 2);
  std::vector<v1::Candidate> finished;
  std::mt19937 rng(3);
  for (int n = 0; n < 40; ++n) {
    finished.push_back(
        Succeeded(n, random.Sample(n), 0.001 * (1 + rng() % 50),
                  100 + rng() % 5000));
  }
  Nsga2 nsga(Space(), Settings(10), true, {}, Objectives(), 2);
  std::vector<v1::Candidate> first(finished.begin(), finished.begin() + 9);
  EXPECT_EQ(GenomeKey(nsga.Propose(9, first).genome),
            GenomeKey(random.Sample(9)));

  // Parents come from the population (the 10 best by rank and crowding).
  std::vector<ObjectivePoint> points;
  for (const auto& c : finished) points.push_back(PointOf(c, Objectives(), {}));
  std::set<std::string> population;
  for (size_t i : Nsga2Survivors(points, 10)) {
    population.insert(finished[i].id());
  }
  std::vector<v1::Candidate> shuffled = finished;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(5));
  Nsga2 again(Space(), Settings(10), true, {}, Objectives(), 2);
  int inherited = 0;
  for (int64_t n = 40; n < 140; ++n) {
    const Proposal p = nsga.Propose(n, finished);
    EXPECT_TRUE(ValidateGenome(p.genome).ok());
    const Proposal q = again.Propose(n, shuffled);
    EXPECT_EQ(GenomeKey(p.genome), GenomeKey(q.genome));
    EXPECT_EQ(p.parent_id, q.parent_id);
    if (!p.parent_id.empty()) {
      ++inherited;
      EXPECT_TRUE(population.count(p.parent_id)) << p.parent_id;
      EXPECT_NE(p.morphism.kind(), v1::MORPHISM_KIND_UNSPECIFIED);
    }
  }
  EXPECT_GT(inherited, 15);
  EXPECT_LT(inherited, 85);  // crossover children train from scratch
}

TEST(Nsga2Test, MakeStrategyBuildsIt) {
  v1::ExperimentSpec spec;
  spec.set_strategy(v1::STRATEGY_NSGA2);
  *spec.mutable_search_space() = Space();
  EXPECT_TRUE(MakeStrategy(spec).ok());
  spec.mutable_evolution()->set_population_size(-2);
  EXPECT_EQ(MakeStrategy(spec).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace evonas::search
