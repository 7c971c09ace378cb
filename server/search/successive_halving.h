#ifndef EVONAS_SERVER_SEARCH_SUCCESSIVE_HALVING_H_
#define EVONAS_SERVER_SEARCH_SUCCESSIVE_HALVING_H_

#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "absl/status/statusor.h"
#include "evonas/v1/types.pb.h"

namespace evonas::search {

// Fills unset fields of `settings` (short_step_fraction 0.25,
// reduction_factor 3, short_row_fraction 1) and checks them:
// short_step_fraction in (0, 1), short_row_fraction in (0, 1],
// reduction_factor in 2..100. InvalidArgument naming the field (e.g.
// "multi_fidelity.reduction_factor") otherwise. Disabled settings are
// returned as given.
absl::StatusOr<v1::MultiFidelitySettings> NormalizeMultiFidelitySettings(
    v1::MultiFidelitySettings settings);

// ASHA's promotion rule over two levels (see MultiFidelitySettings): among
// the SUCCEEDED level-1 candidates of `finished` that are not copies,
// those in the best floor(n / reduction_factor) of the n by constraint
// domination over `objectives` (non-domination rank, then larger crowding
// distance within the rank, then smaller sequence) are promotable; returns
// the index into `finished` of the best promotable one whose id is not in
// `promoted`, or nullopt. Deterministic: a function of the candidates,
// whatever their order in `finished`.
std::optional<size_t> NextPromotion(
    const std::vector<v1::Candidate>& finished,
    const std::unordered_set<std::string>& promoted,
    const std::vector<v1::Objective>& objectives,
    const v1::Requirements& requirements, int reduction_factor);

// Each genome at its highest finished level: `finished` without the level-1
// candidates whose promotion (the level-2 candidate promoted_from them) has
// SUCCEEDED. Order kept. What the search and the
// Pareto front of a multi-fidelity experiment see.
std::vector<v1::Candidate> HighestFinishedLevel(
    const std::vector<v1::Candidate>& finished);

// What the search of a multi-fidelity experiment ranks: each genome at its
// highest finished level (HighestFinishedLevel), where
// - a SUCCEEDED promotion takes the sequence of the level-1 run it
//   continues, because the search proposed the genome then: regularized
//   evolution's population is the most recent genomes, and a promotion
//   that entered it as the newest member kept an old genome in it for
//   another population_size proposals (BENCHMARKS.md, "Multi-fidelity
//   evaluation"); it has its short run's genome, so a strategy that
//   caches per sequence (Lemonade's genome keys) stays right;
// - the succeeded level-1 candidates get the training cost their full run
//   would have (training seconds, CPU seconds and energy divided by
//   short_step_fraction, and for a full-batch genome also by
//   short_row_fraction), so that a genome is not preferred for having been
//   trained less; errors stay as measured. The front shows the real costs
//   and sequences.
std::vector<v1::Candidate> MultiFidelitySearchView(
    const std::vector<v1::Candidate>& finished,
    const v1::MultiFidelitySettings& settings);

}  // namespace evonas::search

#endif  // EVONAS_SERVER_SEARCH_SUCCESSIVE_HALVING_H_
