// Evidence that regularized evolution searches better than random search:
// on the simulated evaluator, at equal numbers of evaluations, over several
// seeds, the Pareto front it finds has the larger hypervolume in the
// accurate region.
//
// Objectives: (log10 validation max abs error, log10 parameter count), both
// minimised. Reference point: error 1e-2, 1e5 parameters. An error of 1e-2
// (in the simulator's unit output scale) is ten times looser than the
// requirements evonas is used for (README: 1e-3), and no network of the
// default space has 1e5 parameters. With the reference at error 1 instead,
// which also rewards tiny networks with 10-50% error, random search wins:
// its 200 independent samples cover that end more densely than evolution's
// 20 random founders (see kFullRangeReference, printed but not asserted).

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/genome.h"
#include "common/simulated_evaluator.h"
#include "common/validation_split.h"
#include "gtest/gtest.h"
#include "common/hypervolume.h"
#include "server/search/strategy.h"

namespace evonas::search {
namespace {

constexpr int kEvaluations = 200;
constexpr int kInputs = 3;  // shaped like hartmann3
constexpr int kOutputs = 1;
constexpr int kMaxProposalAttempts = 20;  // as the controller
const std::vector<double> kReference = {std::log10(1e-2), std::log10(1e5)};
const std::vector<double> kFullRangeReference = {std::log10(1.0),
                                                 std::log10(1e5)};

struct SearchResult {
  double hypervolume = 0;             // w.r.t. kReference
  double full_range_hypervolume = 0;  // w.r.t. kFullRangeReference
  double best_error = 0;
  int duplicates_avoided = 0;
};

// The controller loop in-process, one candidate at a time: propose (avoiding
// duplicates as the controller does), evaluate, add to the finished ones.
SearchResult Search(v1::Strategy which, uint64_t seed) {
  v1::ExperimentSpec spec;
  spec.set_seed(seed);
  spec.set_strategy(which);
  *spec.mutable_search_space() = NormalizeSearchSpace({}).value();
  std::unique_ptr<Strategy> strategy = MakeStrategy(spec).value();

  SearchResult run;
  run.best_error = INFINITY;
  std::vector<v1::Candidate> finished;
  std::unordered_set<std::string> taken;
  std::vector<std::vector<double>> points;
  for (int64_t n = 0; n < kEvaluations; ++n) {
    UniqueProposal proposal =
        ProposeUnique(*strategy, n, finished, taken, kMaxProposalAttempts);
    run.duplicates_avoided += proposal.attempts - 1;
    SimulationOptions options;
    options.inputs = kInputs;
    options.outputs = kOutputs;
    options.seed = SplitMix64(seed ^ SplitMix64(n));  // the lease seed
    SimulatedTraining result = SimulateTraining(proposal.genome, options);

    v1::Candidate candidate;
    candidate.set_sequence(n);
    *candidate.mutable_genome() = proposal.genome;
    candidate.set_state(v1::CANDIDATE_STATE_SUCCEEDED);
    *candidate.mutable_metrics() = result.metrics;
    candidate.set_feasible(true);
    taken.insert(GenomeKey(proposal.genome));
    finished.push_back(std::move(candidate));

    const double error = result.metrics.validation().max_abs_error();
    run.best_error = std::min(run.best_error, error);
    points.push_back({std::log10(error),
                      std::log10(double(result.metrics.parameter_count()))});
  }
  run.hypervolume = Hypervolume(points, kReference).value();
  run.full_range_hypervolume = Hypervolume(points, kFullRangeReference).value();
  return run;
}

TEST(EvolutionEvidenceTest, BeatsRandomSearchInHypervolume) {
  const std::vector<uint64_t> seeds = {1, 2, 3, 4, 5, 6, 7, 8};
  double evolution_sum = 0, random_sum = 0;
  int wins = 0;
  std::printf(
      "seed   hv evolution / random   full-range hv evolution / random   "
      "best error evolution / random\n");
  for (uint64_t seed : seeds) {
    const SearchResult evolution =
        Search(v1::STRATEGY_REGULARIZED_EVOLUTION, seed);
    const SearchResult baseline = Search(v1::STRATEGY_RANDOM, seed);
    std::printf(
        "%4d   %8.4f / %-8.4f     %8.4f / %-8.4f                %.2e / %.2e\n",
        static_cast<int>(seed), evolution.hypervolume, baseline.hypervolume,
        evolution.full_range_hypervolume, baseline.full_range_hypervolume,
        evolution.best_error, baseline.best_error);
    evolution_sum += evolution.hypervolume;
    random_sum += baseline.hypervolume;
    wins += evolution.hypervolume > baseline.hypervolume;
  }
  const double n = static_cast<double>(seeds.size());
  std::printf("mean   %8.4f / %-8.4f (evolution wins on %d of %d seeds)\n",
              evolution_sum / n, random_sum / n, wins,
              static_cast<int>(seeds.size()));
  EXPECT_GT(evolution_sum, random_sum);
  EXPECT_GE(wins, static_cast<int>(0.75 * n));
}

TEST(EvolutionEvidenceTest, RunsAreReproducible) {
  const SearchResult a = Search(v1::STRATEGY_REGULARIZED_EVOLUTION, 3);
  const SearchResult b = Search(v1::STRATEGY_REGULARIZED_EVOLUTION, 3);
  EXPECT_EQ(a.hypervolume, b.hypervolume);
  EXPECT_EQ(a.best_error, b.best_error);
}

}  // namespace
}  // namespace evonas::search
