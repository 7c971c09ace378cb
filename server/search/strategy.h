#ifndef EVONAS_SERVER_SEARCH_STRATEGY_H_
#define EVONAS_SERVER_SEARCH_STRATEGY_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "evonas/v1/types.pb.h"

namespace evonas::search {

// Proposes architectures for one experiment. Implementations are
// deterministic: the same spec, sequence number and finished candidates give
// the same genome. The controller rebuilds a strategy from the database at
// any time, so a strategy keeps no state that the candidates do not imply.
class Strategy {
 public:
  virtual ~Strategy() = default;

  // Returns the genome for candidate number `sequence` (0-based), given
  // every candidate of the experiment that has finished so far.
  virtual v1::Genome Propose(int64_t sequence,
                             const std::vector<v1::Candidate>& finished) = 0;
};

// Fills unset fields of `space` with defaults and checks the bounds; returns
// InvalidArgument naming the field on a contradiction (e.g. min > max).
absl::StatusOr<v1::SearchSpace> NormalizeSearchSpace(v1::SearchSpace space);

// Returns the strategy `spec.strategy` names, over `spec.search_space`
// (which must be normalised), or InvalidArgument for an unknown strategy.
absl::StatusOr<std::unique_ptr<Strategy>> MakeStrategy(
    const v1::ExperimentSpec& spec);

}  // namespace evonas::search

#endif  // EVONAS_SERVER_SEARCH_STRATEGY_H_
