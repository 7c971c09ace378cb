#include "server/search/successive_halving.h"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/search/nsga2.h"
#include "server/search/pareto.h"

namespace evonas::search {

absl::StatusOr<v1::MultiFidelitySettings> NormalizeMultiFidelitySettings(
    v1::MultiFidelitySettings settings) {
  if (!settings.enabled()) return settings;
  if (settings.short_step_fraction() == 0) {
    settings.set_short_step_fraction(0.25);
  }
  if (settings.reduction_factor() == 0) settings.set_reduction_factor(3);
  const double f = settings.short_step_fraction();
  if (!(f > 0 && f < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "multi_fidelity.short_step_fraction must be in (0, 1), got ", f,
        " (1 would train every candidate in full twice)"));
  }
  if (settings.short_row_fraction() == 0) settings.set_short_row_fraction(1);
  const double rows = settings.short_row_fraction();
  if (!(rows > 0 && rows <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "multi_fidelity.short_row_fraction must be in (0, 1], got ", rows));
  }
  const int eta = settings.reduction_factor();
  if (eta < 2 || eta > 100) {
    return absl::InvalidArgumentError(absl::StrCat(
        "multi_fidelity.reduction_factor must be in 2..100, got ", eta));
  }
  return settings;
}

std::optional<size_t> NextPromotion(
    const std::vector<v1::Candidate>& finished,
    const std::unordered_set<std::string>& promoted,
    const std::vector<v1::Objective>& objectives,
    const v1::Requirements& requirements, int reduction_factor) {
  std::vector<size_t> level1;
  for (size_t i = 0; i < finished.size(); ++i) {
    const v1::Candidate& c = finished[i];
    if (c.evaluation_level() == v1::EVALUATION_LEVEL_SHORT &&
        c.state() == v1::CANDIDATE_STATE_SUCCEEDED &&
        c.duplicate_of().empty()) {
      level1.push_back(i);
    }
  }
  const size_t quota = level1.size() / static_cast<size_t>(reduction_factor);
  if (quota == 0) return std::nullopt;
  // By sequence, so that ties resolve the same whatever the input order.
  std::sort(level1.begin(), level1.end(), [&](size_t a, size_t b) {
    return finished[a].sequence() < finished[b].sequence();
  });
  std::vector<ObjectivePoint> points;
  points.reserve(level1.size());
  for (size_t i : level1) {
    points.push_back(PointOf(finished[i], objectives, requirements));
  }
  for (size_t best : Nsga2Survivors(points, quota)) {
    const size_t index = level1[best];
    if (promoted.count(finished[index].id()) == 0) return index;
  }
  return std::nullopt;
}

std::vector<v1::Candidate> HighestFinishedLevel(
    const std::vector<v1::Candidate>& finished) {
  std::unordered_set<std::string> superseded;
  for (const v1::Candidate& c : finished) {
    if (c.state() == v1::CANDIDATE_STATE_SUCCEEDED &&
        !c.promoted_from().empty()) {
      superseded.insert(c.promoted_from());
    }
  }
  std::vector<v1::Candidate> highest;
  highest.reserve(finished.size() - superseded.size());
  for (const v1::Candidate& c : finished) {
    if (c.evaluation_level() == v1::EVALUATION_LEVEL_SHORT &&
        superseded.count(c.id()) > 0) {
      continue;
    }
    highest.push_back(c);
  }
  return highest;
}

std::vector<v1::Candidate> MultiFidelitySearchView(
    const std::vector<v1::Candidate>& finished,
    const v1::MultiFidelitySettings& settings) {
  std::unordered_map<std::string, int64_t> proposed_at;
  for (const v1::Candidate& c : finished) {
    if (c.evaluation_level() == v1::EVALUATION_LEVEL_SHORT) {
      proposed_at[c.id()] = c.sequence();
    }
  }
  const double rows =
      settings.short_row_fraction() > 0 ? settings.short_row_fraction() : 1;
  std::vector<v1::Candidate> view = HighestFinishedLevel(finished);
  for (v1::Candidate& c : view) {
    if (c.state() != v1::CANDIDATE_STATE_SUCCEEDED) continue;
    if (!c.promoted_from().empty()) {
      const auto origin = proposed_at.find(c.promoted_from());
      if (origin != proposed_at.end()) c.set_sequence(origin->second);
      continue;
    }
    if (c.evaluation_level() != v1::EVALUATION_LEVEL_SHORT) continue;
    const bool full_batch = c.genome().training().batch_size() == 0;
    const double fraction =
        settings.short_step_fraction() * (full_batch ? rows : 1);
    v1::Metrics& m = *c.mutable_metrics();
    m.set_training_seconds(m.training_seconds() / fraction);
    m.set_training_cpu_seconds(m.training_cpu_seconds() / fraction);
    m.set_training_energy_joules(m.training_energy_joules() / fraction);
  }
  return view;
}

}  // namespace evonas::search
