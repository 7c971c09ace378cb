#include "server/search/lemonade.h"

#include <algorithm>
#include <deque>
#include <cmath>
#include <string>
#include <unordered_set>
#include <utility>

#include "common/genome.h"
#include "common/genome_cost.h"
#include "common/validation_split.h"
#include "server/search/mutation.h"
#include "server/search/pareto.h"

namespace evonas::search {
namespace {

// Keeps this strategy's random stream apart from the others'.
constexpr uint64_t kStream = 0x4c656d6f6e616465ULL;  // "Lemonade"
// The coin for a random proposal has a stream of its own, so that
// random_fraction 0 leaves every other draw as it was.
constexpr uint64_t kRandomCoinStream = 0x52616e646f6d3f00ULL;  // "Random?"

size_t SampleIndex(const std::vector<double>& weights, std::mt19937_64& rng) {
  double total = 0;
  for (double w : weights) total += w;
  double u = std::uniform_real_distribution<double>(0, total)(rng);
  for (size_t i = 0; i < weights.size(); ++i) {
    if (u < weights[i]) return i;
    u -= weights[i];
  }
  return weights.size() - 1;  // rounding at the top end
}

}  // namespace

KernelDensity::KernelDensity(std::vector<std::vector<double>> points)
    : points_(std::move(points)) {
  const size_t n = points_.size();
  const size_t d = points_[0].size();
  const double scott = std::pow(static_cast<double>(n), -1.0 / (d + 4.0));
  for (size_t k = 0; k < d; ++k) {
    double mean = 0;
    for (const auto& p : points_) mean += p[k];
    mean /= n;
    double squares = 0;
    for (const auto& p : points_) squares += (p[k] - mean) * (p[k] - mean);
    const double sigma = n > 1 ? std::sqrt(squares / (n - 1)) : 0;
    bandwidth_.push_back(std::max(sigma, kMinBandwidth) * scott);
  }
}

double KernelDensity::LogDensity(const std::vector<double>& x) const {
  std::vector<double> exponents;
  exponents.reserve(points_.size());
  for (const auto& p : points_) {
    double sum = 0;
    for (size_t k = 0; k < x.size(); ++k) {
      const double z = (x[k] - p[k]) / bandwidth_[k];
      sum += z * z;
    }
    exponents.push_back(-0.5 * sum);
  }
  const double top = *std::max_element(exponents.begin(), exponents.end());
  double total = 0;
  for (double e : exponents) total += std::exp(e - top);
  double log_norm = std::log(static_cast<double>(points_.size()));
  for (double h : bandwidth_) log_norm += std::log(h * std::sqrt(2 * M_PI));
  return top + std::log(total) - log_norm;
}

std::vector<double> InverseDensityWeights(
    const KernelDensity& density, const std::vector<std::vector<double>>& xs) {
  std::vector<double> log_densities;
  for (const auto& x : xs) log_densities.push_back(density.LogDensity(x));
  const double lowest =
      *std::min_element(log_densities.begin(), log_densities.end());
  std::vector<double> weights;
  for (double l : log_densities) weights.push_back(std::exp(lowest - l));
  return weights;
}

std::vector<double> CheapObjectives(const v1::Genome& genome, int64_t inputs,
                                    int64_t outputs, const ImageShape& image) {
  const v1::GenomeCost cost = ComputeGenomeCost(genome, inputs, outputs, image);
  return {std::log10(std::max<double>(1, cost.parameter_count())),
          std::log10(std::max<double>(1, cost.flops_per_sample()))};
}

Lemonade::Lemonade(v1::SearchSpace space, v1::LemonadeSettings settings,
                   bool inherit, v1::Requirements requirements,
                   std::vector<v1::Objective> objectives, int64_t inputs,
                   int64_t outputs, uint64_t seed, ImageShape image)
    : space_(std::move(space)),
      settings_(std::move(settings)),
      inherit_(inherit),
      requirements_(std::move(requirements)),
      objectives_(std::move(objectives)),
      inputs_(inputs),
      outputs_(outputs),
      seed_(seed),
      image_(image),
      random_(space_, seed) {}

Proposal Lemonade::Propose(int64_t sequence,
                           const std::vector<v1::Candidate>& finished) {
  std::vector<const v1::Candidate*> succeeded;
  std::unordered_set<std::string> finished_keys;
  // FLOPs objectives need the cost, which older candidates may lack.
  std::deque<v1::Candidate> with_cost;
  for (const v1::Candidate& c : finished) {
    auto cached = genome_keys_.find(c.sequence());
    if (cached == genome_keys_.end()) {
      cached = genome_keys_.emplace(c.sequence(), GenomeKey(c.genome())).first;
    }
    finished_keys.insert(cached->second);
    // A copy (duplicate_of) stands at its original's point: counted once.
    if (c.state() != v1::CANDIDATE_STATE_SUCCEEDED ||
        !c.duplicate_of().empty()) {
      continue;
    }
    if (c.has_cost()) {
      succeeded.push_back(&c);
    } else {
      with_cost.push_back(c);
      *with_cost.back().mutable_cost() =
          ComputeGenomeCost(c.genome(), inputs_, outputs_, image_);
      succeeded.push_back(&with_cost.back());
    }
  }
  if (succeeded.size() < static_cast<size_t>(settings_.initial_population())) {
    return random_.Propose(sequence, finished);
  }
  if (settings_.random_fraction() > 0) {
    std::mt19937_64 coin(
        SplitMix64(seed_ ^ SplitMix64(sequence ^ kRandomCoinStream)));
    if (std::uniform_real_distribution<double>(0, 1)(coin) <
        settings_.random_fraction()) {
      return random_.Propose(sequence, finished);
    }
  }
  std::sort(succeeded.begin(), succeeded.end(),
            [](const v1::Candidate* a, const v1::Candidate* b) {
              return a->sequence() < b->sequence();
            });
  std::vector<ObjectivePoint> points;
  for (const v1::Candidate* c : succeeded) {
    points.push_back(PointOf(*c, objectives_, requirements_));
  }
  std::vector<const v1::Candidate*> population;
  for (size_t i : NonDominated(points)) population.push_back(succeeded[i]);
  std::vector<std::vector<double>> cheap;
  for (const v1::Candidate* c : population) {
    cheap.push_back(CheapObjectives(c->genome(), inputs_, outputs_, image_));
  }
  const KernelDensity density(cheap);
  const std::vector<double> parent_weights =
      InverseDensityWeights(density, cheap);

  std::mt19937_64 rng(SplitMix64(seed_ ^ SplitMix64(sequence ^ kStream)));
  struct Candidate {
    Child child;
    const v1::Candidate* parent;
  };
  std::vector<Candidate> children;
  for (int k = 0; k < settings_.children_per_proposal(); ++k) {
    const v1::Candidate* parent =
        population[SampleIndex(parent_weights, rng)];
    std::optional<Child> child =
        MutateByMorphism(parent->genome(), space_, rng);
    if (!child) continue;
    // Level 0: the cheap objectives screen before any training.
    const v1::GenomeCost cost =
        ComputeGenomeCost(child->genome, inputs_, outputs_, image_);
    if (requirements_.has_max_parameters() &&
        cost.parameter_count() > requirements_.max_parameters()) {
      continue;
    }
    if (requirements_.has_max_model_bytes() &&
        TrainedWeightBytes(child->genome, cost) >
            requirements_.max_model_bytes()) {
      continue;
    }
    if (finished_keys.count(GenomeKey(child->genome))) continue;
    children.push_back({*std::move(child), parent});
  }
  if (children.empty()) return random_.Propose(sequence, finished);

  std::vector<std::vector<double>> child_cheap;
  for (const Candidate& c : children) {
    child_cheap.push_back(
        CheapObjectives(c.child.genome, inputs_, outputs_, image_));
  }
  Candidate& accepted =
      children[SampleIndex(InverseDensityWeights(density, child_cheap), rng)];
  Proposal proposal;
  proposal.genome = std::move(accepted.child.genome);
  if (inherit_ && accepted.child.IsMorphism()) {
    proposal.parent_id = accepted.parent->id();
    proposal.morphism = std::move(accepted.child.morphism);
  }
  return proposal;
}

}  // namespace evonas::search
