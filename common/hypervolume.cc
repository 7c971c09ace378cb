#include "common/hypervolume.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>

#include "absl/strings/str_cat.h"

namespace evonas {
namespace {

// The 2-D region dominated by a set of points within the reference box,
// kept as a staircase of its non-dominated points with its area.
class Staircase {
 public:
  Staircase(double rx, double ry) : rx_(rx), ry_(ry) {}

  // Adds (x, y), which must satisfy x < rx and y < ry; O(log n) amortised.
  void Insert(double x, double y) {
    auto next = steps_.lower_bound(x);
    if (next != steps_.end() && next->first == x && next->second <= y) return;
    double height = ry_;  // of the staircase just right of x
    if (next != steps_.begin()) {
      height = std::prev(next)->second;
      if (height <= y) return;  // dominated by the step before
    }
    // Sweep right from x over the steps (x, y) dominates, adding the area
    // between the old staircase and y, until a step lower than y.
    double cursor = x;
    double added = 0;
    while (next != steps_.end() && next->second >= y) {
      added += (next->first - cursor) * (height - y);
      cursor = next->first;
      height = next->second;
      next = steps_.erase(next);
    }
    const double end = next != steps_.end() ? next->first : rx_;
    added += (end - cursor) * (height - y);
    area_ += added;
    steps_.emplace(x, y);
  }

  double area() const { return area_; }

 private:
  const double rx_;
  const double ry_;
  std::map<double, double> steps_;  // x -> y; y strictly decreasing in x
  double area_ = 0;
};

}  // namespace

absl::StatusOr<double> Hypervolume(
    const std::vector<std::vector<double>>& points,
    const std::vector<double>& reference) {
  const size_t dims = reference.size();
  if (dims < 1 || dims > 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("hypervolume: supports 1 to 3 objectives, got ", dims));
  }
  for (double r : reference) {
    if (!std::isfinite(r)) {
      return absl::InvalidArgumentError(
          "hypervolume: the reference point must be finite");
    }
  }
  // Keep the points that strictly dominate the reference.
  std::vector<const std::vector<double>*> inside;
  for (size_t i = 0; i < points.size(); ++i) {
    const std::vector<double>& p = points[i];
    if (p.size() != dims) {
      return absl::InvalidArgumentError(
          absl::StrCat("hypervolume: point ", i, " has ", p.size(),
                       " coordinates, the reference ", dims));
    }
    bool dominates = true;
    for (size_t k = 0; k < dims; ++k) {
      if (p[k] == -INFINITY) {
        return absl::InvalidArgumentError(absl::StrCat(
            "hypervolume: point ", i, " has a -infinite coordinate"));
      }
      dominates = dominates && p[k] < reference[k];  // false for NaN
    }
    if (dominates) inside.push_back(&p);
  }
  if (inside.empty()) return 0.0;
  if (dims == 1) {
    double best = reference[0];
    for (const auto* p : inside) best = std::min(best, (*p)[0]);
    return reference[0] - best;
  }
  Staircase staircase(reference[0], reference[1]);
  if (dims == 2) {
    for (const auto* p : inside) staircase.Insert((*p)[0], (*p)[1]);
    return staircase.area();
  }
  // 3-D: slices between consecutive z values have the area of the staircase
  // of every point at or below them.
  std::sort(inside.begin(), inside.end(),
            [](const auto* a, const auto* b) { return (*a)[2] < (*b)[2]; });
  double volume = 0;
  for (size_t i = 0; i < inside.size(); ++i) {
    staircase.Insert((*inside[i])[0], (*inside[i])[1]);
    const double next_z =
        i + 1 < inside.size() ? (*inside[i + 1])[2] : reference[2];
    volume += staircase.area() * (next_z - (*inside[i])[2]);
  }
  return volume;
}

}  // namespace evonas
