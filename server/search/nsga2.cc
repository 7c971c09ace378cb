#include "server/search/nsga2.h"

#include <algorithm>
#include <map>
#include <random>
#include <utility>

#include "common/validation_split.h"
#include "server/search/mutation.h"
#include "server/search/pareto.h"

namespace evonas::search {
namespace {

// Keeps this strategy's random stream apart from the others'.
constexpr uint64_t kStream = 0x4e53474132212121ULL;  // "NSGA2!!!"

}  // namespace

std::vector<size_t> Nsga2Survivors(const std::vector<ObjectivePoint>& points,
                                   size_t size) {
  const std::vector<int> rank = NonDominationRanks(points);
  std::map<int, std::vector<size_t>> fronts;
  for (size_t i = 0; i < points.size(); ++i) fronts[rank[i]].push_back(i);
  std::vector<size_t> survivors;
  // Not a structured binding: C++17 lambdas cannot capture those (clang).
  for (const auto& rank_and_front : fronts) {
    const std::vector<size_t>& front = rank_and_front.second;
    if (survivors.size() + front.size() <= size) {
      survivors.insert(survivors.end(), front.begin(), front.end());
      continue;
    }
    const std::vector<double> distance = CrowdingDistances(points, front);
    std::vector<size_t> order(front.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      if (distance[a] != distance[b]) return distance[a] > distance[b];
      return front[a] < front[b];
    });
    for (size_t i = 0; survivors.size() < size; ++i) {
      survivors.push_back(front[order[i]]);
    }
    break;
  }
  std::sort(survivors.begin(), survivors.end());
  return survivors;
}

Nsga2::Nsga2(v1::SearchSpace space, v1::EvolutionSettings settings,
             bool inherit, v1::Requirements requirements,
             std::vector<v1::Objective> objectives, uint64_t seed)
    : space_(std::move(space)),
      settings_(std::move(settings)),
      inherit_(inherit),
      requirements_(std::move(requirements)),
      objectives_(std::move(objectives)),
      seed_(seed),
      random_(space_, seed) {}

Proposal Nsga2::Propose(int64_t sequence,
                        const std::vector<v1::Candidate>& finished) {
  std::vector<const v1::Candidate*> succeeded;
  for (const v1::Candidate& c : finished) {
    // A copy (duplicate_of) stands at its original's point: counted once.
    if (c.state() == v1::CANDIDATE_STATE_SUCCEEDED &&
        c.duplicate_of().empty()) {
      succeeded.push_back(&c);
    }
  }
  const size_t population_size = std::max(1, settings_.population_size());
  if (succeeded.size() < population_size) {
    return random_.Propose(sequence, finished);
  }
  std::sort(succeeded.begin(), succeeded.end(),
            [](const v1::Candidate* a, const v1::Candidate* b) {
              return a->sequence() < b->sequence();
            });
  std::vector<ObjectivePoint> all;
  for (const v1::Candidate* c : succeeded) {
    all.push_back(PointOf(*c, objectives_, requirements_));
  }
  std::vector<const v1::Candidate*> population;
  std::vector<ObjectivePoint> points;
  for (size_t i : Nsga2Survivors(all, population_size)) {
    population.push_back(succeeded[i]);
    points.push_back(all[i]);
  }
  // Rank and crowding distance within the population.
  const std::vector<int> rank = NonDominationRanks(points);
  std::vector<double> crowding(points.size(), 0);
  std::map<int, std::vector<size_t>> fronts;
  for (size_t i = 0; i < points.size(); ++i) fronts[rank[i]].push_back(i);
  for (const auto& [r, front] : fronts) {
    const std::vector<double> d = CrowdingDistances(points, front);
    for (size_t k = 0; k < front.size(); ++k) crowding[front[k]] = d[k];
  }

  std::mt19937_64 rng(SplitMix64(seed_ ^ SplitMix64(sequence ^ kStream)));
  auto tournament = [&]() -> const v1::Candidate* {
    const int n = static_cast<int>(population.size());
    const int a = std::uniform_int_distribution<int>(0, n - 1)(rng);
    int b = n > 1 ? std::uniform_int_distribution<int>(0, n - 2)(rng) : a;
    if (n > 1 && b >= a) ++b;  // distinct from a
    auto better = [&](int x, int y) {
      if (rank[x] != rank[y]) return rank[x] < rank[y];
      if (crowding[x] != crowding[y]) return crowding[x] > crowding[y];
      return population[x]->sequence() < population[y]->sequence();
    };
    return population[better(a, b) || a == b ? a : b];
  };
  const v1::Candidate* parent = tournament();
  if (std::uniform_int_distribution<int>(0, 1)(rng) == 1) {
    const v1::Candidate* other = tournament();
    const v1::Genome mixed =
        Crossover(parent->genome(), other->genome(), space_, rng);
    return {Mutate(mixed, space_, rng).genome, "", {}};
  }
  Child child = Mutate(parent->genome(), space_, rng);
  if (inherit_ && child.IsMorphism()) {
    return {std::move(child.genome), parent->id(), std::move(child.morphism)};
  }
  return {std::move(child.genome), "", {}};
}

}  // namespace evonas::search
