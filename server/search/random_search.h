#ifndef EVONAS_SERVER_SEARCH_RANDOM_SEARCH_H_
#define EVONAS_SERVER_SEARCH_RANDOM_SEARCH_H_

#include "server/search/strategy.h"

namespace evonas::search {

// Samples every genome independently and uniformly from the search space:
// depth uniform and width log-uniform, one activation for all layers of a
// stage (from the stage's list, StageActivations), learning rate log-uniform,
// Adam steps uniform. When the space allows, each layer after a stage's first
// is residual with probability 1/2 (taking its predecessor's width),
// 0..max_residual_stages further stages are drawn alike (trained as the first;
// none with grow_stages, where the evolutionary strategies add them), and the
// training extras are drawn by SampleTrainingExtras. Candidate n depends only
// on (seed, n).
class RandomSearch : public Strategy {
 public:
  RandomSearch(v1::SearchSpace space, uint64_t seed)
      : space_(std::move(space)), seed_(seed) {}
  Proposal Propose(int64_t sequence,
                   const std::vector<v1::Candidate>& finished) override;

  // The genome Propose returns for `sequence`.
  v1::Genome Sample(int64_t sequence) const;

 private:
  v1::SearchSpace space_;
  uint64_t seed_;
};

}  // namespace evonas::search

#endif  // EVONAS_SERVER_SEARCH_RANDOM_SEARCH_H_
