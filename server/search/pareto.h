#ifndef EVONAS_SERVER_SEARCH_PARETO_H_
#define EVONAS_SERVER_SEARCH_PARETO_H_

#include <cstddef>
#include <vector>

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
// order. O(n^2 m), fine for the few thousand candidates of an experiment.
std::vector<size_t> NonDominated(const std::vector<ObjectivePoint>& points);

}  // namespace evonas::search

#endif  // EVONAS_SERVER_SEARCH_PARETO_H_
