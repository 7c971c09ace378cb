#ifndef EVONAS_SERVER_SEARCH_NSGA2_H_
#define EVONAS_SERVER_SEARCH_NSGA2_H_

#include <cstdint>
#include <vector>

#include "evonas/v1/types.pb.h"
#include "server/search/pareto.h"
#include "server/search/random_search.h"
#include "server/search/strategy.h"

namespace evonas::search {

// NSGA-II's environmental selection over `points`: indices of the best
// `size` (all when fewer), filled front by front in NonDominationRanks
// order; the front that does not fit entirely contributes its members of
// largest CrowdingDistances (ties: smaller index). In ascending index order.
std::vector<size_t> Nsga2Survivors(const std::vector<ObjectivePoint>& points,
                                   size_t size);

// NSGA-II (Deb et al. 2002), steady state: one child per proposal. Until
// population_size candidates (not copies) have SUCCEEDED it proposes what
// RandomSearch with the same seed would. Then the population is
// Nsga2Survivors of the succeeded candidates that are not copies
// (Candidate.duplicate_of), in sequence order, over `objectives` with
// constraint domination (PointOf). A parent is the winner of a binary
// tournament (two distinct members drawn at random): lower rank, then
// larger crowding distance within its front, then the older. With
// probability 1/2 the child is Mutate(Crossover(parent, second tournament
// winner)), trained from scratch; otherwise Mutate(parent), which carries
// the parent's id and the morphism when inheritance is on and the mutation
// is a morphism. The rng of candidate n derives from (seed, n) alone, so a
// proposal depends only on the seed, the sequence number and the set of
// finished candidates.
class Nsga2 : public Strategy {
 public:
  // `space` and `settings` normalised; `objectives` non-empty.
  Nsga2(v1::SearchSpace space, v1::EvolutionSettings settings, bool inherit,
        v1::Requirements requirements, std::vector<v1::Objective> objectives,
        uint64_t seed);

  Proposal Propose(int64_t sequence,
                   const std::vector<v1::Candidate>& finished) override;

 private:
  const v1::SearchSpace space_;
  const v1::EvolutionSettings settings_;
  const bool inherit_;
  const v1::Requirements requirements_;
  const std::vector<v1::Objective> objectives_;
  const uint64_t seed_;
  RandomSearch random_;
};

}  // namespace evonas::search

#endif  // EVONAS_SERVER_SEARCH_NSGA2_H_
