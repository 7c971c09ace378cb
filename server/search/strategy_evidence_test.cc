// Evidence that LEMONADE and NSGA-II search better than random search, on
// the simulated evaluator (common/simulated_evaluator.h), over several
// seeds, in the same search space: depth 1..4, width 8..128, residual
// layers allowed, up to two further stages, the default training ranges.
//
// Objectives: (log10 validation max abs error, log10 parameter count), both
// minimised; hypervolume w.r.t. the reference point error 1e-2, 1e5
// parameters, as in evolution_test.cc (an error of 1e-2 in the simulator's
// unit output scale is ten times looser than the requirements evonas is
// used for; the biggest network of this space, four layers of 128 plus two
// stages, has about 1e5 parameters).
//
// * LEMONADE with inheritance (step fraction 0.25) against random search at
//   equal worker-seconds: each runs, one candidate at a time, until the sum
//   of its candidates' training seconds reaches what random search spends on
//   kEvaluations candidates with the same seed. Inheriting children cost a
//   quarter of a from-scratch run, so LEMONADE trains several times as many
//   candidates in that budget; that is the point of inheritance.
// * NSGA-II (population 20) against random search at equal evaluations,
//   over 40 seeds (its runs are cheap, and its margin is small).
//
// The tables printed below show the margins; the assertions ask for the
// larger mean hypervolume and a win on at least 6 of 8 seeds (LEMONADE) or
// 24 of 40 (NSGA-II). Measured (seeds 1-8, mean hypervolume against random
// search's 5.24):
//   LEMONADE, defaults (16 children, initial population 10), inheritance:
//     5.62, wins 6 of 8 (at the threshold: seeds 3 and 8 lose, their best
//     error stays 3-5x above random search's)
//   the same without inheritance (children trained from scratch): 5.26,
//     wins 5 of 8: at equal compute the advantage is inheritance's
//   4 children per proposal: 5.66, 7 of 8; initial population 40: 5.83,
//     8 of 8 (not asserted: the defaults are)
//   NSGA-II at equal evaluations (population 20), seeds 1-40: 5.37 against
//   5.27, wins 26 of 40 (5 of seeds 1-8). Before ChangeActivation could
//   switch a whole stage: 5.38, 27 of 40 (7 of seeds 1-8). A win rate of
//   about 65% is what eight seeds cannot tell from chance.
// The simulator's inheritance model (common/simulated_evaluator.h) decides
// how much an inheriting child gains; on real training the benchmark in
// BENCHMARKS.md is the evidence that counts.

#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/genome.h"
#include "common/genome_cost.h"
#include "common/hypervolume.h"
#include "common/simulated_evaluator.h"
#include "common/validation_split.h"
#include "gtest/gtest.h"
#include "server/search/strategy.h"

namespace evonas::search {
namespace {

constexpr int kEvaluations = 200;
constexpr int kInputs = 3;  // shaped like hartmann3
constexpr int kOutputs = 1;
constexpr int kMaxProposalAttempts = 20;  // as the controller
constexpr double kStepFraction = 0.25;
const std::vector<double> kReference = {std::log10(1e-2), std::log10(1e5)};

v1::ExperimentSpec Spec(v1::Strategy strategy, uint64_t seed) {
  v1::ExperimentSpec spec;
  spec.set_seed(seed);
  spec.set_strategy(strategy);
  spec.add_input_columns("x1");
  spec.add_input_columns("x2");
  spec.add_input_columns("x3");
  spec.add_output_columns("y");
  v1::SearchSpace space;
  space.set_allow_residual(true);
  space.set_max_residual_stages(2);
  *spec.mutable_search_space() = NormalizeSearchSpace(space).value();
  spec.add_objectives(v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR);
  spec.add_objectives(v1::OBJECTIVE_PARAMETER_COUNT);
  return spec;
}

struct SearchResult {
  double hypervolume = 0;
  double worker_seconds = 0;
  int evaluations = 0;
  int inherited = 0;
  double best_error = INFINITY;
};

// The controller loop in-process, one candidate at a time, until
// `max_evaluations` candidates or `max_worker_seconds` of training.
SearchResult Search(const v1::ExperimentSpec& spec, int max_evaluations,
                    double max_worker_seconds) {
  std::unique_ptr<Strategy> strategy = MakeStrategy(spec).value();
  SearchResult run;
  std::vector<v1::Candidate> finished;
  std::map<std::string, size_t> by_id;
  std::unordered_set<std::string> taken;
  std::vector<std::vector<double>> points;
  for (int64_t n = 0;
       n < max_evaluations && run.worker_seconds < max_worker_seconds; ++n) {
    UniqueProposal proposal =
        ProposeUnique(*strategy, n, finished, taken, kMaxProposalAttempts);
    SimulationOptions options;
    options.inputs = kInputs;
    options.outputs = kOutputs;
    options.seed = SplitMix64(spec.seed() ^ SplitMix64(n));  // the lease seed
    if (!proposal.parent_id.empty()) {
      options.step_fraction = kStepFraction;
      options.inheritance = SimulatedInheritance{
          finished[by_id.at(proposal.parent_id)].genome(), proposal.morphism};
      ++run.inherited;
    }
    SimulatedTraining result = SimulateTraining(proposal.genome, options);

    v1::Candidate candidate;
    candidate.set_id("c" + std::to_string(n));
    candidate.set_sequence(n);
    *candidate.mutable_genome() = proposal.genome;
    candidate.set_state(v1::CANDIDATE_STATE_SUCCEEDED);
    *candidate.mutable_metrics() = result.metrics;
    // As the controller fills it at proposal.
    *candidate.mutable_cost() =
        ComputeGenomeCost(proposal.genome, kInputs, kOutputs);
    candidate.set_feasible(true);
    taken.insert(GenomeKey(proposal.genome));
    by_id[candidate.id()] = finished.size();
    finished.push_back(std::move(candidate));

    const double error = result.metrics.validation().max_abs_error();
    run.best_error = std::min(run.best_error, error);
    run.worker_seconds += result.metrics.training_seconds();
    ++run.evaluations;
    points.push_back({std::log10(error),
                      std::log10(double(result.metrics.parameter_count()))});
  }
  run.hypervolume = Hypervolume(points, kReference).value();
  return run;
}

// Seeds 1..count.
std::vector<uint64_t> Seeds(uint64_t count) {
  std::vector<uint64_t> seeds;
  for (uint64_t seed = 1; seed <= count; ++seed) seeds.push_back(seed);
  return seeds;
}

const std::vector<uint64_t> kSeeds = Seeds(8);

TEST(StrategyEvidenceTest, LemonadeWithInheritanceBeatsRandomAtEqualCompute) {
  double lemonade_sum = 0, random_sum = 0;
  int wins = 0;
  std::printf(
      "seed  worker-s   hv lemonade / random   evaluations (inherited)   "
      "best error lemonade / random\n");
  for (uint64_t seed : kSeeds) {
    const SearchResult baseline =
        Search(Spec(v1::STRATEGY_RANDOM, seed), kEvaluations, INFINITY);
    v1::ExperimentSpec spec = Spec(v1::STRATEGY_LEMONADE, seed);
    spec.mutable_inheritance()->set_enabled(true);
    spec.mutable_inheritance()->set_step_fraction(kStepFraction);
    const SearchResult lemonade =
        Search(spec, 100 * kEvaluations, baseline.worker_seconds);
    std::printf("%4d  %8.1f   %8.4f / %-8.4f    %5d (%4d) / %d       %.2e / %.2e\n",
                static_cast<int>(seed), baseline.worker_seconds,
                lemonade.hypervolume, baseline.hypervolume,
                lemonade.evaluations, lemonade.inherited,
                baseline.evaluations, lemonade.best_error,
                baseline.best_error);
    lemonade_sum += lemonade.hypervolume;
    random_sum += baseline.hypervolume;
    wins += lemonade.hypervolume > baseline.hypervolume;
    // Equal compute: LEMONADE stops at the first candidate that reaches it.
    EXPECT_LE(lemonade.worker_seconds - baseline.worker_seconds,
              0.05 * baseline.worker_seconds + 1);
  }
  const double n = static_cast<double>(kSeeds.size());
  std::printf("mean      %8.4f / %-8.4f (LEMONADE wins on %d of %d seeds)\n",
              lemonade_sum / n, random_sum / n, wins,
              static_cast<int>(kSeeds.size()));
  EXPECT_GT(lemonade_sum, random_sum);
  EXPECT_GE(wins, 6);
}

TEST(StrategyEvidenceTest, Nsga2BeatsRandomAtEqualEvaluations) {
  double nsga_sum = 0, random_sum = 0;
  int wins = 0;
  std::printf("seed   hv nsga2 / random   best error nsga2 / random\n");
  const std::vector<uint64_t> seeds = Seeds(40);
  for (uint64_t seed : seeds) {
    const SearchResult baseline =
        Search(Spec(v1::STRATEGY_RANDOM, seed), kEvaluations, INFINITY);
    const SearchResult nsga =
        Search(Spec(v1::STRATEGY_NSGA2, seed), kEvaluations, INFINITY);
    std::printf("%4d   %8.4f / %-8.4f  %.2e / %.2e\n", static_cast<int>(seed),
                nsga.hypervolume, baseline.hypervolume, nsga.best_error,
                baseline.best_error);
    nsga_sum += nsga.hypervolume;
    random_sum += baseline.hypervolume;
    wins += nsga.hypervolume > baseline.hypervolume;
  }
  const double n = static_cast<double>(seeds.size());
  std::printf("mean   %8.4f / %-8.4f (NSGA-II wins on %d of %d seeds)\n",
              nsga_sum / n, random_sum / n, wins,
              static_cast<int>(seeds.size()));
  EXPECT_GT(nsga_sum, random_sum);
  EXPECT_GE(wins, 24);
}

TEST(StrategyEvidenceTest, RunsAreReproducible) {
  v1::ExperimentSpec spec = Spec(v1::STRATEGY_LEMONADE, 3);
  spec.mutable_inheritance()->set_enabled(true);
  const SearchResult a = Search(spec, 150, INFINITY);
  const SearchResult b = Search(spec, 150, INFINITY);
  EXPECT_EQ(a.hypervolume, b.hypervolume);
  EXPECT_EQ(a.inherited, b.inherited);
  const SearchResult c = Search(Spec(v1::STRATEGY_NSGA2, 3), 150, INFINITY);
  const SearchResult d = Search(Spec(v1::STRATEGY_NSGA2, 3), 150, INFINITY);
  EXPECT_EQ(c.hypervolume, d.hypervolume);
}

}  // namespace
}  // namespace evonas::search
