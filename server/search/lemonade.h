#ifndef EVONAS_SERVER_SEARCH_LEMONADE_H_
#define EVONAS_SERVER_SEARCH_LEMONADE_H_

#include <cstdint>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "evonas/v1/types.pb.h"
#include "server/search/random_search.h"
#include "server/search/strategy.h"

namespace evonas::search {

// A Gaussian kernel density estimate over points of equal dimension d, with
// a diagonal bandwidth by Scott's rule: h_k = sigma_k * n^(-1 / (d + 4)),
// sigma_k the sample standard deviation of coordinate k (n - 1 in the
// denominator), at least kMinBandwidth (so that one point, or points equal
// in a coordinate, still give a finite density).
class KernelDensity {
 public:
  static constexpr double kMinBandwidth = 0.05;

  // `points` must be non-empty and of equal size.
  explicit KernelDensity(std::vector<std::vector<double>> points);

  // Natural log of the density at `x` (log-sum-exp, so far-away points do
  // not underflow to log 0).
  double LogDensity(const std::vector<double>& x) const;

  const std::vector<double>& bandwidth() const { return bandwidth_; }

 private:
  std::vector<std::vector<double>> points_;
  std::vector<double> bandwidth_;
};

// Weights proportional to 1 / density of each of `xs` under `density`,
// scaled so that the largest is 1 (computed from log densities, so they are
// finite and positive).
std::vector<double> InverseDensityWeights(
    const KernelDensity& density, const std::vector<std::vector<double>>& xs);

// LEMONADE's cheap objectives of a genome: (log10 parameter count, log10
// multiply-adds per sample), from ComputeGenomeCost.
std::vector<double> CheapObjectives(const v1::Genome& genome, int64_t inputs,
                                    int64_t outputs,
                                    const ImageShape& image = {});

// LEMONADE (Elsken, Metzen & Hutter, ICLR 2019), one child per proposal.
// Until settings.initial_population candidates (not copies) have SUCCEEDED
// it proposes what RandomSearch with the same seed would. After that, a
// share settings.random_fraction of the proposals (decided by a coin of
// their own per sequence number) are RandomSearch's too. The others:
//  1. The population is the Pareto front (ParetoFront: constraint
//     domination over `objectives`) of the succeeded candidates that are
//     not copies (Candidate.duplicate_of), in sequence order.
//  2. A KernelDensity is fitted to the population's CheapObjectives.
//  3. children_per_proposal times: a parent is drawn with probability
//     proportional to 1 / its density, and MutateByMorphism makes a child
//     (a parent no morphism can change gives none).
//  4. Level 0 screening: children whose GenomeCost already breaks a
//     requirement (parameter_count > max_parameters, TrainedWeightBytes >
//     max_model_bytes), and children whose genome a finished candidate
//     already has, are dropped without training.
//  5. One survivor is accepted with probability proportional to 1 / its
//     density under the population's KernelDensity, so sparse regions of
//     the front are explored.
// With inheritance on, the accepted child carries its parent's id and the
// morphism (the worker starts from the parent's weights); off, it trains
// from scratch. When every child is screened out, the proposal is a random
// sample (as RandomSearch). The rng of candidate n derives from (seed, n)
// alone and the finished candidates are sorted by sequence first, so a
// proposal depends only on the seed, the sequence number and the set of
// finished candidates. Not thread-safe: Propose fills a cache of genome keys
// (one instance per experiment, as the controller keeps them).
class Lemonade : public Strategy {
 public:
  // `space` normalised (NormalizeSearchSpace), `settings` too
  // (NormalizeLemonadeSettings); `objectives` non-empty; `inputs` and
  // `outputs` are the experiment's column counts (`outputs` the units of
  // the output layer), `image` the data set's images (empty for tables).
  Lemonade(v1::SearchSpace space, v1::LemonadeSettings settings,
           bool inherit, v1::Requirements requirements,
           std::vector<v1::Objective> objectives, int64_t inputs,
           int64_t outputs, uint64_t seed, ImageShape image = {});

  Proposal Propose(int64_t sequence,
                   const std::vector<v1::Candidate>& finished) override;

 private:
  const v1::SearchSpace space_;
  const v1::LemonadeSettings settings_;
  const bool inherit_;
  const v1::Requirements requirements_;
  const std::vector<v1::Objective> objectives_;
  const int64_t inputs_;
  const int64_t outputs_;
  const uint64_t seed_;
  const ImageShape image_;
  RandomSearch random_;
  // GenomeKey by candidate sequence: a candidate's genome never changes, and
  // recomputing thousands of keys per proposal dominated its cost.
  std::unordered_map<int64_t, std::string> genome_keys_;
};

}  // namespace evonas::search

#endif  // EVONAS_SERVER_SEARCH_LEMONADE_H_
