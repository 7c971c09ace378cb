#include "server/search/regularized_evolution.h"

#include <algorithm>
#include <random>
#include <utility>

#include "common/requirements.h"
#include "common/validation_split.h"
#include "server/search/mutation.h"
#include "server/search/pareto.h"

namespace evonas::search {
namespace {

// Keeps this strategy's random stream apart from RandomSearch's.
constexpr uint64_t kStream = 0x5245766f6c757465ULL;  // "REvolute"

}  // namespace

Fitness FitnessOf(const v1::Candidate& candidate,
                  const v1::Requirements& requirements) {
  const Assessment assessment = Assess(requirements, candidate.metrics());
  Fitness fitness;
  fitness.feasible = assessment.feasible;
  fitness.violation = assessment.violation;
  fitness.max_abs_error = SearchEvaluation(candidate.metrics()).max_abs_error();
  fitness.sequence = candidate.sequence();
  return fitness;
}

bool Fitter(const Fitness& a, const Fitness& b) {
  if (a.dominated_by != b.dominated_by) return a.dominated_by < b.dominated_by;
  if (a.feasible != b.feasible) return a.feasible;
  if (!a.feasible && a.violation != b.violation) {
    return a.violation < b.violation;
  }
  if (a.weighted != b.weighted) return a.weighted < b.weighted;
  if (a.max_abs_error != b.max_abs_error) {
    return a.max_abs_error < b.max_abs_error;
  }
  return a.sequence < b.sequence;
}

RegularizedEvolution::RegularizedEvolution(v1::SearchSpace space,
                                           v1::EvolutionSettings settings,
                                           v1::Requirements requirements,
                                           uint64_t seed,
                                           std::vector<v1::Objective> objectives,
    google::protobuf::RepeatedPtrField<v1::ObjectiveWeight> fitness_weights,
    bool inherit)
    : space_(std::move(space)),
      settings_(std::move(settings)),
      requirements_(std::move(requirements)),
      seed_(seed),
      objectives_(objectives.empty()
                      ? ExperimentObjectives(v1::ExperimentSpec())
                      : std::move(objectives)),
      fitness_weights_(std::move(fitness_weights)),
      inherit_(inherit),
      random_(space_, seed) {}

Proposal RegularizedEvolution::Propose(
    int64_t sequence, const std::vector<v1::Candidate>& finished) {
  std::vector<const v1::Candidate*> succeeded;
  for (const v1::Candidate& c : finished) {
    if (c.state() == v1::CANDIDATE_STATE_SUCCEEDED) succeeded.push_back(&c);
  }
  const size_t population_size = std::max(1, settings_.population_size());
  if (succeeded.size() < population_size) {
    return random_.Propose(sequence, finished);
  }
  // The population: the most recent succeeded candidates.
  std::sort(succeeded.begin(), succeeded.end(),
            [](const v1::Candidate* a, const v1::Candidate* b) {
              return a->sequence() < b->sequence();
            });
  std::vector<const v1::Candidate*> population(
      succeeded.end() - population_size, succeeded.end());

  std::vector<Fitness> fitness;
  std::vector<ObjectivePoint> points;
  const std::vector<double> weighted =
      WeightedSumFitness(population, fitness_weights_);
  for (size_t i = 0; i < population.size(); ++i) {
    fitness.push_back(FitnessOf(*population[i], requirements_));
    fitness.back().weighted = weighted[i];
    points.push_back(PointOf(*population[i], objectives_, requirements_));
  }
  std::vector<size_t> order(population.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;

  std::mt19937_64 rng(SplitMix64(seed_ ^ SplitMix64(sequence ^ kStream)));
  // Tournament: a partial Fisher-Yates shuffle draws distinct members.
  const size_t tournament_size =
      std::min<size_t>(settings_.tournament_size(), population_size);
  const v1::Candidate* parent = nullptr;
  Fitness best;
  for (size_t i = 0; i < tournament_size; ++i) {
    const size_t j =
        std::uniform_int_distribution<size_t>(i, order.size() - 1)(rng);
    std::swap(order[i], order[j]);
    const size_t member = order[i];
    Fitness& candidate = fitness[member];
    for (const ObjectivePoint& other : points) {
      candidate.dominated_by += ConstraintDominates(other, points[member]);
    }
    if (parent == nullptr || Fitter(candidate, best)) {
      parent = population[member];
      best = candidate;
    }
  }
  Child child = Mutate(parent->genome(), space_, rng);
  if (inherit_ && child.IsMorphism()) {
    return {std::move(child.genome), parent->id(), std::move(child.morphism)};
  }
  return {std::move(child.genome), "", {}};
}

}  // namespace evonas::search
