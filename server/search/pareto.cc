#include "server/search/pareto.h"

namespace evonas::search {

bool Dominates(const std::vector<double>& a, const std::vector<double>& b) {
  bool strictly_better = false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] > b[i]) return false;
    if (a[i] < b[i]) strictly_better = true;
  }
  return strictly_better;
}

bool ConstraintDominates(const ObjectivePoint& a, const ObjectivePoint& b) {
  if (a.feasible != b.feasible) return a.feasible;
  if (a.feasible) return Dominates(a.objectives, b.objectives);
  std::vector<double> a_ext = a.objectives;
  std::vector<double> b_ext = b.objectives;
  a_ext.push_back(a.violation);
  b_ext.push_back(b.violation);
  return Dominates(a_ext, b_ext);
}

std::vector<size_t> NonDominated(const std::vector<ObjectivePoint>& points) {
  std::vector<size_t> front;
  for (size_t i = 0; i < points.size(); ++i) {
    bool dominated = false;
    for (size_t j = 0; j < points.size() && !dominated; ++j) {
      dominated = j != i && ConstraintDominates(points[j], points[i]);
    }
    if (!dominated) front.push_back(i);
  }
  return front;
}

}  // namespace evonas::search
