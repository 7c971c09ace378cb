#include "common/validation_split.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace evonas {
namespace {

v1::ValidationSplit MakeSplit(uint64_t seed, double fraction) {
  v1::ValidationSplit split;
  split.set_seed(seed);
  split.set_fraction(fraction);
  return split;
}

TEST(SplitMix64Test, KnownValues) {
  // The first outputs of the reference splitmix64 generator seeded with 0,
  // whose state advances by the golden gamma: next() = SplitMix64(k * gamma).
  EXPECT_EQ(SplitMix64(0), 0xE220A8397B1DCDAFULL);
  EXPECT_EQ(SplitMix64(0x9E3779B97F4A7C15ULL), 0x6E789E6AA1B965F4ULL);
  EXPECT_EQ(SplitMix64(0x9E3779B97F4A7C15ULL * 2), 0x06C45D188009454FULL);
}

TEST(ValidationSplitTest, Deterministic) {
  const v1::ValidationSplit split = MakeSplit(42, 0.2);
  const RowPartition a = PartitionRows(split, 1000);
  const RowPartition b = PartitionRows(split, 1000);
  EXPECT_EQ(a.training, b.training);
  EXPECT_EQ(a.validation, b.validation);
  for (const int64_t row : a.validation) {
    EXPECT_TRUE(IsValidationRow(split, row));
  }
  for (const int64_t row : a.training) {
    EXPECT_FALSE(IsValidationRow(split, row));
  }
}

TEST(ValidationSplitTest, MatchesDefinition) {
  const v1::ValidationSplit split = MakeSplit(7, 0.3);
  for (int64_t row = 0; row < 10000; ++row) {
    const long double u = std::ldexp(
        static_cast<long double>(SplitMix64(7 + static_cast<uint64_t>(row))),
        -64);
    EXPECT_EQ(IsValidationRow(split, row), u < 0.3L) << row;
  }
}

TEST(ValidationSplitTest, PrefixStable) {
  // Adding rows at the end never moves earlier rows between the sets.
  const v1::ValidationSplit split = MakeSplit(3, 0.25);
  const RowPartition small = PartitionRows(split, 500);
  const RowPartition large = PartitionRows(split, 5000);
  ASSERT_GE(large.validation.size(), small.validation.size());
  for (size_t i = 0; i < small.validation.size(); ++i) {
    EXPECT_EQ(small.validation[i], large.validation[i]);
  }
}

TEST(ValidationSplitTest, FractionCloseToRequested) {
  constexpr int64_t kRows = 100000;
  for (const double fraction : {0.01, 0.2, 0.5, 0.9}) {
    SCOPED_TRACE(fraction);
    const RowPartition p = PartitionRows(MakeSplit(12345, fraction), kRows);
    EXPECT_EQ(static_cast<int64_t>(p.training.size() + p.validation.size()),
              kRows);
    // Binomial standard deviation is at most 158 rows; allow 5 sigma.
    const double sigma = std::sqrt(kRows * fraction * (1 - fraction));
    EXPECT_NEAR(static_cast<double>(p.validation.size()), fraction * kRows,
                5 * sigma);
  }
}

TEST(ValidationSplitTest, PartitionIsSortedAndComplete) {
  const RowPartition p = PartitionRows(MakeSplit(1, 0.5), 1000);
  std::vector<int64_t> all;
  size_t t = 0, v = 0;
  while (t < p.training.size() || v < p.validation.size()) {
    if (v == p.validation.size() ||
        (t < p.training.size() && p.training[t] < p.validation[v])) {
      all.push_back(p.training[t++]);
    } else {
      all.push_back(p.validation[v++]);
    }
  }
  ASSERT_EQ(all.size(), 1000u);
  for (int64_t i = 0; i < 1000; ++i) EXPECT_EQ(all[i], i);
}

TEST(ValidationSplitTest, DifferentSeedsDiffer) {
  EXPECT_NE(PartitionRows(MakeSplit(1, 0.2), 1000).validation,
            PartitionRows(MakeSplit(2, 0.2), 1000).validation);
}

TEST(ValidationSplitTest, EdgeFractions) {
  EXPECT_TRUE(PartitionRows(MakeSplit(5, 0), 1000).validation.empty());
  EXPECT_TRUE(PartitionRows(MakeSplit(5, -1), 1000).validation.empty());
  EXPECT_TRUE(
      PartitionRows(MakeSplit(5, std::nan("")), 1000).validation.empty());
  EXPECT_TRUE(PartitionRows(MakeSplit(5, 1), 1000).training.empty());
  EXPECT_TRUE(PartitionRows(MakeSplit(5, 2), 1000).training.empty());
  // The largest double below 1 still leaves a row out only with probability
  // 2^-53 per row.
  EXPECT_EQ(PartitionRows(MakeSplit(5, std::nextafter(1.0, 0.0)), 1000)
                .validation.size(),
            1000u);
  const RowPartition none = PartitionRows(MakeSplit(5, 0.5), 0);
  EXPECT_TRUE(none.training.empty());
  EXPECT_TRUE(none.validation.empty());
}

TEST(ValidationSplitTest, SeedWrapsAround) {
  // seed + i is computed modulo 2^64.
  const uint64_t seed = std::numeric_limits<uint64_t>::max();
  const v1::ValidationSplit split = MakeSplit(seed, 0.5);
  EXPECT_EQ(IsValidationRow(split, 1), IsValidationRow(MakeSplit(0, 0.5), 0));
}

TEST(ValidationSplitTest, JudgingRowsComeFromTheRowsValidationLeaves) {
  const v1::ValidationSplit validation = MakeSplit(21, 0.2);
  const v1::ValidationSplit judging = MakeSplit(99, 0.25);
  constexpr int64_t kRows = 20000;
  const RowPartition p = PartitionRows(validation, kRows, judging);
  // The validation rows are those of the split alone.
  EXPECT_EQ(p.validation, PartitionRows(validation, kRows).validation);
  std::vector<int64_t> expected_judging;
  std::vector<int64_t> expected_training;
  for (int64_t row = 0; row < kRows; ++row) {
    if (IsValidationRow(validation, row)) continue;
    const long double u = std::ldexp(
        static_cast<long double>(SplitMix64(99 + static_cast<uint64_t>(row))),
        -64);
    (u < 0.25L ? expected_judging : expected_training).push_back(row);
  }
  EXPECT_EQ(p.judging, expected_judging);
  EXPECT_EQ(p.training, expected_training);
  // A quarter of the 80%: about 4,000 rows (binomial sigma ~ 57).
  EXPECT_NEAR(static_cast<double>(p.judging.size()), 4000, 300);
  // Without a judging split nothing is judging.
  EXPECT_TRUE(PartitionRows(validation, kRows).judging.empty());
}

TEST(TrainingRowSubsetTest, MatchesDefinitionAndKeepsOrder) {
  const RowPartition rows = PartitionRows(MakeSplit(11, 0.2), 20000);
  const std::vector<int64_t> subset =
      TrainingRowSubset(rows.training, 11, 0.25);
  std::vector<int64_t> expected;
  for (const int64_t row : rows.training) {
    const long double u = std::ldexp(
        static_cast<long double>(
            SplitMix64(SplitMix64(11) + static_cast<uint64_t>(row))),
        -64);
    if (u < 0.25L) expected.push_back(row);
  }
  EXPECT_EQ(subset, expected);
  // About a quarter of the 16,000 training rows, and none of the
  // validation rows.
  EXPECT_NEAR(static_cast<double>(subset.size()), 4000, 300);
  for (const int64_t row : subset) {
    EXPECT_FALSE(IsValidationRow(MakeSplit(11, 0.2), row)) << row;
  }
}

TEST(TrainingRowSubsetTest, OutOfRangeFractionsKeepEveryRow) {
  const std::vector<int64_t> rows = {0, 3, 4, 9};
  for (double f : {0.0, 1.0, -1.0, 2.0, std::nan("")}) {
    EXPECT_EQ(TrainingRowSubset(rows, 5, f), rows) << f;
  }
}

}  // namespace
}  // namespace evonas
