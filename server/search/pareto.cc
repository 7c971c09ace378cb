#include "server/search/pareto.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/requirements.h"
#include "common/status_macros.h"

namespace evonas::search {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

// Infinity for NaN, so that a missing or broken metric ranks worst.
double Minimised(double value) { return std::isnan(value) ? kInfinity : value; }

bool KnownObjective(int objective) {
  return objective != v1::OBJECTIVE_UNSPECIFIED &&
         v1::Objective_IsValid(objective);
}

bool Classification(const v1::ExperimentSpec& spec) {
  return spec.task() == v1::TASK_CLASSIFICATION;
}

// An objective that measures the other task's errors: a regression error
// for a classifier, or a classification error for a regression.
bool OtherTasksObjective(int objective, const v1::ExperimentSpec& spec) {
  switch (objective) {
    case v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR:
    case v1::OBJECTIVE_INT8_MAX_ABS_ERROR:
      return Classification(spec);
    case v1::OBJECTIVE_VALIDATION_ERROR_RATE:
    case v1::OBJECTIVE_VALIDATION_CROSS_ENTROPY:
      return !Classification(spec);
    default:
      return false;
  }
}

absl::Status CheckObjectiveForTask(int objective,
                                   const v1::ExperimentSpec& spec,
                                   absl::string_view field) {
  if (!OtherTasksObjective(objective, spec)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": ", v1::Objective_Name(static_cast<v1::Objective>(objective)),
      Classification(spec)
          ? " measures regression errors; a classification experiment "
            "has OBJECTIVE_VALIDATION_ERROR_RATE and "
            "OBJECTIVE_VALIDATION_CROSS_ENTROPY"
          : " measures classification errors; set task to "
            "TASK_CLASSIFICATION or use OBJECTIVE_VALIDATION_MAX_ABS_ERROR"));
}

}  // namespace

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
  // An archive of the points not dominated so far: constraint domination is
  // a strict partial order (transitive), so comparing each point with the
  // archive alone is exact, and costs O(n |front| m).
  std::vector<size_t> archive;
  for (size_t i = 0; i < points.size(); ++i) {
    bool dominated = false;
    for (size_t j : archive) {
      if (ConstraintDominates(points[j], points[i])) {
        dominated = true;
        break;
      }
    }
    if (dominated) continue;
    archive.erase(std::remove_if(archive.begin(), archive.end(),
                                 [&](size_t j) {
                                   return ConstraintDominates(points[i],
                                                              points[j]);
                                 }),
                  archive.end());
    archive.push_back(i);
  }
  std::sort(archive.begin(), archive.end());
  return archive;
}

std::vector<int> NonDominationRanks(const std::vector<ObjectivePoint>& points) {
  const size_t n = points.size();
  // Deb's fast non-dominated sort: dominators counted, fronts peeled off.
  std::vector<std::vector<size_t>> dominates(n);
  std::vector<int> dominator_count(n, 0);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      if (i != j && ConstraintDominates(points[i], points[j])) {
        dominates[i].push_back(j);
        ++dominator_count[j];
      }
    }
  }
  std::vector<int> rank(n, 0);
  std::vector<size_t> current;
  for (size_t i = 0; i < n; ++i) {
    if (dominator_count[i] == 0) current.push_back(i);
  }
  for (int r = 0; !current.empty(); ++r) {
    std::vector<size_t> next;
    for (size_t i : current) {
      rank[i] = r;
      for (size_t j : dominates[i]) {
        if (--dominator_count[j] == 0) next.push_back(j);
      }
    }
    current = std::move(next);
  }
  return rank;
}

std::vector<double> CrowdingDistances(const std::vector<ObjectivePoint>& points,
                                      const std::vector<size_t>& front) {
  std::vector<double> distance(front.size(), 0);
  if (front.empty()) return distance;
  const size_t m = points[front[0]].objectives.size();
  std::vector<size_t> order(front.size());
  for (size_t k = 0; k < m; ++k) {
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    auto value = [&](size_t i) { return points[front[i]].objectives[k]; };
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      if (value(a) != value(b)) return value(a) < value(b);
      return front[a] < front[b];
    });
    distance[order.front()] = kInfinity;
    distance[order.back()] = kInfinity;
    const double range = value(order.back()) - value(order.front());
    if (!(range > 0) || !std::isfinite(range)) continue;
    for (size_t i = 1; i + 1 < order.size(); ++i) {
      distance[order[i]] +=
          (value(order[i + 1]) - value(order[i - 1])) / range;
    }
  }
  return distance;
}

std::vector<v1::Objective> ExperimentObjectives(
    const v1::ExperimentSpec& spec) {
  if (spec.objectives().empty()) {
    return {Classification(spec) ? v1::OBJECTIVE_VALIDATION_ERROR_RATE
                                 : v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR,
            v1::OBJECTIVE_PARAMETER_COUNT, v1::OBJECTIVE_TRAINING_SECONDS};
  }
  std::vector<v1::Objective> objectives;
  for (int o : spec.objectives()) {
    objectives.push_back(static_cast<v1::Objective>(o));
  }
  return objectives;
}

absl::Status ValidateObjectives(const v1::ExperimentSpec& spec) {
  std::set<int> seen;
  for (int i = 0; i < spec.objectives_size(); ++i) {
    const int o = spec.objectives(i);
    if (!KnownObjective(o)) {
      return absl::InvalidArgumentError(
          absl::StrCat("objectives[", i, "]: unknown objective ", o));
    }
    if (!seen.insert(o).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("objectives[", i, "]: ",
                       v1::Objective_Name(static_cast<v1::Objective>(o)),
                       " given twice"));
    }
    EVONAS_RETURN_IF_ERROR(CheckObjectiveForTask(
        o, spec, absl::StrCat("objectives[", i, "]")));
  }
  seen.clear();
  for (int i = 0; i < spec.fitness_weights_size(); ++i) {
    const v1::ObjectiveWeight& w = spec.fitness_weights(i);
    if (!KnownObjective(w.objective())) {
      return absl::InvalidArgumentError(
          absl::StrCat("fitness_weights[", i, "].objective: unknown objective ",
                       static_cast<int>(w.objective())));
    }
    if (!seen.insert(w.objective()).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fitness_weights[", i, "].objective: ",
          v1::Objective_Name(w.objective()), " given twice"));
    }
    EVONAS_RETURN_IF_ERROR(CheckObjectiveForTask(
        w.objective(), spec, absl::StrCat("fitness_weights[", i, "]")));
    if (!(std::isfinite(w.weight()) && w.weight() >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("fitness_weights[", i,
                       "].weight must be finite and >= 0, got ", w.weight()));
    }
  }
  return absl::OkStatus();
}

double ObjectiveValue(const v1::Candidate& candidate,
                      v1::Objective objective) {
  const v1::Metrics& m = candidate.metrics();
  switch (objective) {
    case v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR:
      return Minimised(SearchEvaluation(m).max_abs_error());
    case v1::OBJECTIVE_PARAMETER_COUNT:
      return static_cast<double>(m.parameter_count());
    case v1::OBJECTIVE_TRAINING_SECONDS:
      return Minimised(m.training_seconds());
    case v1::OBJECTIVE_MODEL_BYTES:
      return static_cast<double>(m.model_bytes());
    case v1::OBJECTIVE_FLOPS:
      return candidate.has_cost()
                 ? static_cast<double>(candidate.cost().flops_per_sample())
                 : kInfinity;
    case v1::OBJECTIVE_INFERENCE_LATENCY:
      return Minimised(m.inference_latency_seconds());
    case v1::OBJECTIVE_ESTIMATED_LATENCY:
      // 0 means no worker had reported a latency table: unknown, ranks worst.
      return candidate.has_cost() &&
                     candidate.cost().estimated_latency_seconds() > 0
                 ? Minimised(candidate.cost().estimated_latency_seconds())
                 : kInfinity;
    case v1::OBJECTIVE_INT8_MAX_ABS_ERROR:
      return m.has_int8() ? Minimised(SearchInt8Evaluation(m).max_abs_error())
                          : kInfinity;
    case v1::OBJECTIVE_TRAINING_ENERGY:
      return Minimised(m.training_energy_joules());
    case v1::OBJECTIVE_VALIDATION_ERROR_RATE:
      return Minimised(1.0 - SearchEvaluation(m).accuracy());
    case v1::OBJECTIVE_VALIDATION_CROSS_ENTROPY:
      return Minimised(SearchEvaluation(m).cross_entropy());
    default:
      return kInfinity;
  }
}

ObjectivePoint PointOf(const v1::Candidate& candidate,
                       const std::vector<v1::Objective>& objectives,
                       const v1::Requirements& requirements) {
  ObjectivePoint point;
  for (v1::Objective o : objectives) {
    point.objectives.push_back(ObjectiveValue(candidate, o));
  }
  const Assessment assessment = Assess(requirements, candidate.metrics());
  point.feasible = assessment.feasible;
  point.violation = assessment.violation;
  return point;
}

std::vector<size_t> ParetoFront(const std::vector<v1::Candidate>& candidates,
                                const std::vector<v1::Objective>& objectives,
                                const v1::Requirements& requirements) {
  std::vector<size_t> succeeded;
  std::vector<ObjectivePoint> points;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (candidates[i].state() != v1::CANDIDATE_STATE_SUCCEEDED) continue;
    succeeded.push_back(i);
    points.push_back(PointOf(candidates[i], objectives, requirements));
  }
  std::vector<size_t> front;
  for (size_t k : NonDominated(points)) front.push_back(succeeded[k]);
  return front;
}

std::vector<double> WeightedSumFitness(
    const std::vector<const v1::Candidate*>& population,
    const google::protobuf::RepeatedPtrField<v1::ObjectiveWeight>& weights) {
  std::vector<double> fitness(population.size(), 0);
  for (const v1::ObjectiveWeight& w : weights) {
    if (w.weight() == 0) continue;
    std::vector<double> values;
    double smallest_positive = kInfinity;
    for (const v1::Candidate* c : population) {
      values.push_back(ObjectiveValue(*c, w.objective()));
      if (values.back() > 0) {
        smallest_positive = std::min(smallest_positive, values.back());
      }
    }
    if (!std::isfinite(smallest_positive)) continue;  // nothing to compare
    double lo = kInfinity, hi = -kInfinity;
    for (double& v : values) {
      if (std::isinf(v)) continue;
      v = std::log10(std::max(v, smallest_positive));
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    for (size_t i = 0; i < values.size(); ++i) {
      const double normalised = std::isinf(values[i]) ? 1
                                : hi > lo ? (values[i] - lo) / (hi - lo)
                                          : 0;
      fitness[i] += w.weight() * normalised;
    }
  }
  return fitness;
}

}  // namespace evonas::search
