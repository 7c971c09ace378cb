#ifndef EVONAS_SERVER_SEARCH_PARETO_H_
#define EVONAS_SERVER_SEARCH_PARETO_H_

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "evonas/v1/types.pb.h"

namespace evonas::search {

// A candidate as the front sees it: objectives to minimise, and whether it
// meets the requirements (with its total violation when not).
struct ObjectivePoint {
  std::vector<double> objectives;
  bool feasible = true;
  double violation = 0;
};

// True when `a` Pareto-dominates `b`: no objective worse, one better.
bool Dominates(const std::vector<double>& a, const std::vector<double>& b);

// Constraint domination (Deb 2000, extended): feasible beats infeasible;
// two feasible points compare by Dominates over objectives; two infeasible
// points by Dominates over (objectives..., violation).
bool ConstraintDominates(const ObjectivePoint& a, const ObjectivePoint& b);

// Indices of the points that no other point constraint-dominates, in input
// order. O(n f m) for a front of f points.
std::vector<size_t> NonDominated(const std::vector<ObjectivePoint>& points);

// NSGA-II's non-dominated sorting under constraint domination: rank 0 for
// the points no other point dominates, rank k for those dominated only by
// points of ranks < k. One rank per point, in input order. O(n^2 m).
std::vector<int> NonDominationRanks(const std::vector<ObjectivePoint>& points);

// NSGA-II's crowding distance of each point of `front` (indices into
// `points`, typically one rank), in the order of `front`: per objective,
// the points are sorted by value (ties by index); the two extremes get
// +infinity and the others the gap between their neighbours divided by the
// objective's range over the front (objectives with zero range add
// nothing); the distances add up over objectives.
std::vector<double> CrowdingDistances(const std::vector<ObjectivePoint>& points,
                                      const std::vector<size_t>& front);

// The objectives an experiment ranks by: spec.objectives, or, when empty,
// validation max abs error, parameter count and training seconds.
std::vector<v1::Objective> ExperimentObjectives(const v1::ExperimentSpec& spec);

// OK when spec.objectives holds known, distinct values and every
// spec.fitness_weights entry names a known objective once with a finite,
// non-negative weight; otherwise InvalidArgument naming the field, e.g.
// "objectives[1]: OBJECTIVE_FLOPS given twice".
absl::Status ValidateObjectives(const v1::ExperimentSpec& spec);

// The value of `objective` for a finished candidate, to minimise:
// validation max abs error, parameter count, training seconds, model bytes,
// inference latency, int8 validation max abs error and training energy
// from candidate.metrics(); FLOPs from candidate.cost() (the controller
// fills it at proposal). A value the candidate lacks (no int8 metrics, no
// cost) or a NaN is +infinity, so that it ranks worst in that objective.
double ObjectiveValue(const v1::Candidate& candidate, v1::Objective objective);

// The candidate as a point over `objectives`, feasible and with the
// violation of Assess(requirements, candidate.metrics()).
ObjectivePoint PointOf(const v1::Candidate& candidate,
                       const std::vector<v1::Objective>& objectives,
                       const v1::Requirements& requirements);

// The experiment's Pareto front: indices (into `candidates`, in input
// order) of the SUCCEEDED candidates that no other SUCCEEDED candidate
// constraint-dominates over `objectives` (see PointOf). Candidates in other
// states take no part.
std::vector<size_t> ParetoFront(const std::vector<v1::Candidate>& candidates,
                                const std::vector<v1::Objective>& objectives,
                                const v1::Requirements& requirements);

// NASE's weighted-sum fitness of each member of `population` (lower is
// better), in input order: the sum over `weights` of weight * the
// normalised log10 of ObjectiveValue, where the normalisation maps the
// population's smallest log10 value of that objective to 0 and its largest
// to 1 (every member 0 when they are equal). A value <= 0 counts as the
// population's smallest positive value; +infinity as 1 (and is left out of
// the range). Weights must be valid (ValidateObjectives).
std::vector<double> WeightedSumFitness(
    const std::vector<const v1::Candidate*>& population,
    const google::protobuf::RepeatedPtrField<v1::ObjectiveWeight>& weights);

}  // namespace evonas::search

#endif  // EVONAS_SERVER_SEARCH_PARETO_H_
