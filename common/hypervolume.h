#ifndef EVONAS_COMMON_HYPERVOLUME_H_
#define EVONAS_COMMON_HYPERVOLUME_H_

#include <vector>

#include "absl/status/statusor.h"

namespace evonas {

// Exact hypervolume, for minimisation, of the region dominated by `points`
// and bounded by `reference`: the Lebesgue measure of the union of the boxes
// [p, reference] over all p. Points that do not strictly dominate the
// reference in every coordinate (including NaN coordinates) add nothing;
// duplicates and dominated points are harmless. Supports 1 to 3 objectives:
// 2-D by a sweep over a staircase of non-dominated points, 3-D by sweeping
// slices along the last objective with the same staircase kept
// incrementally; O(n log n) in both. InvalidArgument when a point's size
// differs from the reference's, the dimension is outside 1..3, the
// reference is not finite, or a point has a -infinite coordinate (the
// volume would be infinite).
absl::StatusOr<double> Hypervolume(
    const std::vector<std::vector<double>>& points,
    const std::vector<double>& reference);

}  // namespace evonas

#endif  // EVONAS_COMMON_HYPERVOLUME_H_
