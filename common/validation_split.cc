#include "common/validation_split.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "evonas/v1/types.pb.h"

namespace evonas {
namespace {

// Decides "SplitMix64(seed + i) / 2^64 < fraction" exactly with integers:
// whether row i is a validation row, or one a training subset keeps.
class SplitRule {
 public:
  explicit SplitRule(double fraction) {
    if (!(fraction > 0)) {  // also NaN
      all_ = false;
      threshold_ = 0;
    } else if (fraction >= 1) {
      all_ = true;  // z / 2^64 < 1 for every 64-bit z
    } else {
      // t = fraction * 2^64 is exact (a power-of-two scaling) and lies in
      // (0, 2^64). For an integer z, z < t  <=>  z < ceil(t).
      const double t = std::ceil(std::ldexp(fraction, 64));
      if (t >= 18446744073709551616.0) {  // 2^64
        all_ = true;
      } else {
        all_ = false;
        threshold_ = static_cast<uint64_t>(t);
      }
    }
  }

  bool Selects(uint64_t seed, int64_t row) const {
    return all_ || SplitMix64(seed + static_cast<uint64_t>(row)) < threshold_;
  }

 private:
  bool all_ = false;
  uint64_t threshold_ = 0;
};

}  // namespace

uint64_t SplitMix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

bool IsValidationRow(const v1::ValidationSplit& split, int64_t row) {
  return SplitRule(split.fraction()).Selects(split.seed(), row);
}

RowPartition PartitionRows(const v1::ValidationSplit& validation, int64_t rows,
                           const v1::ValidationSplit& judging) {
  const SplitRule validation_rule(validation.fraction());
  const SplitRule judging_rule(judging.fraction());
  RowPartition partition;
  if (rows <= 0) return partition;
  const double f = validation.fraction();
  const double expected =
      f > 0 ? std::min(f, 1.0) * static_cast<double>(rows) : 0;
  partition.validation.reserve(static_cast<size_t>(expected * 1.05) + 16);
  partition.training.reserve(
      static_cast<size_t>(static_cast<double>(rows) - expected * 0.95) + 16);
  for (int64_t i = 0; i < rows; ++i) {
    if (validation_rule.Selects(validation.seed(), i)) {
      partition.validation.push_back(i);
    } else if (judging_rule.Selects(judging.seed(), i)) {
      partition.judging.push_back(i);
    } else {
      partition.training.push_back(i);
    }
  }
  return partition;
}

std::vector<int64_t> TrainingRowSubset(std::vector<int64_t> training,
                                       uint64_t split_seed, double fraction) {
  if (!(fraction > 0 && fraction < 1)) return training;
  const SplitRule rule(fraction);
  const uint64_t seed = SplitMix64(split_seed);
  training.erase(std::remove_if(training.begin(), training.end(),
                                [&](int64_t row) {
                                  return !rule.Selects(seed, row);
                                }),
                 training.end());
  return training;
}

}  // namespace evonas
