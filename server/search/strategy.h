#ifndef EVONAS_SERVER_SEARCH_STRATEGY_H_
#define EVONAS_SERVER_SEARCH_STRATEGY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/genome.h"
#include "evonas/v1/types.pb.h"

namespace evonas::search {

// What a strategy proposes: a genome, and, when the child is to start from a
// finished candidate's trained weights (Lamarckian inheritance), that parent's
// id and the morphism that turns the parent's genome into `genome` (see
// MorphismKind in types.proto; the worker applies it to the parent's
// checkpoint). parent_id empty: train from scratch, morphism unset.
struct Proposal {
  v1::Genome genome;
  std::string parent_id;
  v1::Morphism morphism;
};

// Proposes architectures for one experiment. Implementations are
// deterministic: the same spec, sequence number and finished candidates (in
// any order) give the same proposal. The controller rebuilds a strategy from the database at
// any time, so a strategy keeps no state that the candidates do not imply.
class Strategy {
 public:
  virtual ~Strategy() = default;

  // Returns the proposal for candidate number `sequence` (0-based), given
  // every candidate of the experiment that has finished so far.
  virtual Proposal Propose(int64_t sequence,
                           const std::vector<v1::Candidate>& finished) = 0;
};

// Fills unset fields of `space` with defaults and checks the bounds; returns
// InvalidArgument naming the field on a contradiction (e.g. min > max). A
// space with convolutional layers (max_conv_layers > 0) needs the data
// set's `image`; its max_pooling_layers is filled in (0) or checked against
// what the image admits, and it cannot also have residual stages.
absl::StatusOr<v1::SearchSpace> NormalizeSearchSpace(
    v1::SearchSpace space, const ImageShape& image = {});

// Fills unset fields of `settings` with defaults (population_size 20,
// tournament_size 5 or population_size if smaller) and checks them:
// population_size in 1..10,000 and tournament_size in 1..population_size.
// InvalidArgument naming the field otherwise.
absl::StatusOr<v1::EvolutionSettings> NormalizeEvolutionSettings(
    v1::EvolutionSettings settings);

// Share of LEMONADE's proposals that are random samples once the initial
// population is in.
inline constexpr double kDefaultLemonadeRandomFraction = 0.0;

// Fills unset fields of `settings` with defaults (children_per_proposal 16,
// initial_population 10, random_fraction kDefaultLemonadeRandomFraction)
// and checks them: the counts in 1..1,000, random_fraction in [0, 1].
// InvalidArgument naming the field (e.g. "lemonade.children_per_proposal")
// otherwise.
absl::StatusOr<v1::LemonadeSettings> NormalizeLemonadeSettings(
    v1::LemonadeSettings settings);

// An inheriting child trains all of its genome's steps unless the
// experiment says otherwise: a quarter of them, LEMONADE's short runs, left
// the median child at its parent's error on hartmann3 (BENCHMARKS.md, "What
// an inherited child gains over its parent").
inline constexpr double kDefaultInheritStepFraction = 1.0;

// Fills an unset step_fraction with kDefaultInheritStepFraction and checks
// it is in (0, 1]. InvalidArgument naming "inheritance.step_fraction"
// otherwise.
absl::StatusOr<v1::InheritanceSettings> NormalizeInheritanceSettings(
    v1::InheritanceSettings settings);

// Returns the strategy `spec.strategy` names, over `spec.search_space`
// (which must be normalised): random search, regularized evolution,
// LEMONADE or NSGA-II. Strategy settings (evolution, lemonade, inheritance)
// are normalised here, so they may be unset; the evolutionary strategies
// rank by ExperimentObjectives(spec) under spec.requirements, regularized
// evolution also by spec.fitness_weights, and they pass parents and
// morphisms on when spec.inheritance.enabled. LEMONADE's cheap objectives
// and level-0 screening count the network's inputs (input columns) and
// outputs: `network_outputs` units (a classifier's class count), or one
// per output column when 0, and, for convolutional genomes, the data set's
// `image`. When spec.requirements
// limit parameters or model bytes, or inference latency and there are
// `latency_tables` (the workers' calibrations), every strategy is screened
// at level 0 (ScreenedByCost). InvalidArgument for an unknown strategy, bad
// settings or bad objectives (ValidateObjectives).
absl::StatusOr<std::unique_ptr<Strategy>> MakeStrategy(
    const v1::ExperimentSpec& spec,
    absl::Span<const v1::LatencyTable> latency_tables = {},
    int64_t network_outputs = 0, const ImageShape& image = {});

// Level-0 screening (hierarchical evaluation): a genome whose GenomeCost
// already breaks `requirements` (parameter_count > max_parameters,
// TrainedWeightBytes > max_model_bytes: the weights alone exceed the file limit,
// or its latency estimated from `tables` (EstimateGenomeCost) is above
// kLatencyScreenMargin times max_inference_latency_seconds) is never
// trained. The margin, because the requirement judges the measured latency:
// an estimate is a few tens of percent off (BENCHMARKS.md), and a child
// near the limit should be measured, not guessed away. The returned strategy asks `inner` for sequence, then
// sequence + j * kScreenStride (j = 1..kScreenAttempts - 1) until a
// proposal passes, and returns the first proposal when none does (the
// controller then records it infeasible rather than stalling). Costs use
// `inputs` and `outputs` columns (and `image`, for convolutional genomes).
// Deterministic like `inner`.
inline constexpr int64_t kScreenStride = int64_t{1} << 50;
inline constexpr int kScreenAttempts = 16;
inline constexpr double kLatencyScreenMargin = 1.5;
std::unique_ptr<Strategy> ScreenedByCost(
    std::unique_ptr<Strategy> inner, v1::Requirements requirements,
    int64_t inputs, int64_t outputs,
    absl::Span<const v1::LatencyTable> tables = {},
    const ImageShape& image = {});

// Re-proposals ask for sequence + k * kResaltStride (k = 1, 2, ...): far
// beyond any real sequence number, so they are fresh draws of every
// strategy, yet a function of the candidate's sequence alone.
inline constexpr int64_t kResaltStride = int64_t{1} << 40;

struct UniqueProposal {
  v1::Genome genome;
  // Set when `genome` is a morphism of a finished candidate's genome and the
  // child is to start from that candidate's trained weights (copied from the
  // accepted Proposal; empty with unset morphism otherwise).
  std::string parent_id;
  v1::Morphism morphism;
  // Proposals made, 1 when the first one was new.
  int attempts = 0;
  // False when every attempt was taken; then `genome` is the first one.
  bool unique = true;
};

// Asks `strategy` for candidate `sequence` and, while the GenomeKey of the
// answer is in `taken`, asks again with sequence + k * kResaltStride, up to
// `max_attempts` proposals in all (at least one). Deterministic like the
// strategy. When all are taken the first proposal is returned with
// unique = false, so that a nearly exhausted search space cannot stall an
// experiment.
UniqueProposal ProposeUnique(Strategy& strategy, int64_t sequence,
                             const std::vector<v1::Candidate>& finished,
                             const std::unordered_set<std::string>& taken,
                             int max_attempts);

}  // namespace evonas::search

#endif  // EVONAS_SERVER_SEARCH_STRATEGY_H_
