#ifndef EVONAS_SERVER_SEARCH_REGULARIZED_EVOLUTION_H_
#define EVONAS_SERVER_SEARCH_REGULARIZED_EVOLUTION_H_

#include <cstdint>
#include <vector>

#include "evonas/v1/types.pb.h"
#include "server/search/random_search.h"
#include "server/search/strategy.h"

namespace evonas::search {

// How a tournament ranks a succeeded candidate: first by constraint
// domination against the whole population, then by a scalar fitness.
struct Fitness {
  // Population members that constraint-dominate this one (ConstraintDominates:
  // a feasible member dominates every infeasible one; otherwise Pareto
  // dominance over validation max abs error, parameter count and training
  // seconds, the objectives of the Pareto front, plus the violation when both
  // are infeasible). Fonseca and Fleming's rank minus one.
  int dominated_by = 0;
  bool feasible = false;
  double violation = 0;      // total requirement violation (see Assess)
  double max_abs_error = 0;  // validation
  int64_t sequence = 0;
  // WeightedSumFitness over the population; 0 without fitness weights.
  double weighted = 0;
};

// The fitness of a SUCCEEDED candidate under `requirements`, with
// dominated_by left 0 (it depends on the population).
Fitness FitnessOf(const v1::Candidate& candidate,
                  const v1::Requirements& requirements);

// True when `a` ranks before `b`: fewer dominators first; then feasible
// before infeasible; among infeasible ones the smaller total violation; then
// the smaller weighted-sum fitness; then the smaller validation max absolute
// error; ties go to the older candidate
// (smaller sequence), so the order is total and deterministic. Within one
// population a member's dominators include every feasible member if it is
// infeasible, so feasibility always comes first.
bool Fitter(const Fitness& a, const Fitness& b);

// Regularized ("aging") evolution, Real et al. 2019, with a multi-objective
// tournament. The population is the population_size most recent SUCCEEDED
// candidates by sequence (failed and cancelled ones take no part; in a
// multi-fidelity experiment a promoted genome is as old as its short run,
// see MultiFidelitySearchView). Each
// proposal draws tournament_size members without replacement, takes the
// Fitter one as parent (dominators counted in the whole population) and
// returns Mutate(parent) (with the parent's id and the morphism when
// inheritance is on and the mutation is a morphism). Dominance is over
// `objectives` (empty: the default three, see ExperimentObjectives), and
// `fitness_weights` (ExperimentSpec.fitness_weights) break ties among
// equally dominated feasible members before the error does. Because the
// least-dominated members win, parents come from the population's Pareto front,
// and among front members the most accurate wins. Until population_size
// candidates have succeeded it proposes what RandomSearch with the same seed
// would. The rng of candidate n is derived from (seed, n) alone, so a proposal
// depends only on the seed, the sequence number and the finished candidates.
class RegularizedEvolution : public Strategy {
 public:
  // `space` must be normalised (NormalizeSearchSpace) and `settings` too
  // (NormalizeEvolutionSettings).
  RegularizedEvolution(
      v1::SearchSpace space, v1::EvolutionSettings settings,
      v1::Requirements requirements, uint64_t seed,
      std::vector<v1::Objective> objectives = {},
      google::protobuf::RepeatedPtrField<v1::ObjectiveWeight> fitness_weights =
          {},
      bool inherit = false);

  Proposal Propose(int64_t sequence,
                   const std::vector<v1::Candidate>& finished) override;

 private:
  const v1::SearchSpace space_;
  const v1::EvolutionSettings settings_;
  const v1::Requirements requirements_;
  const uint64_t seed_;
  const std::vector<v1::Objective> objectives_;
  const google::protobuf::RepeatedPtrField<v1::ObjectiveWeight>
      fitness_weights_;
  const bool inherit_;
  RandomSearch random_;
};

}  // namespace evonas::search

#endif  // EVONAS_SERVER_SEARCH_REGULARIZED_EVOLUTION_H_
