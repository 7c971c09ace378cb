#ifndef EVONAS_COMMON_VALIDATION_SPLIT_H_
#define EVONAS_COMMON_VALIDATION_SPLIT_H_

#include <cstdint>
#include <vector>

#include "evonas/v1/types.pb.h"

namespace evonas {

// SplitMix64 finaliser (Steele, Lea, Flood 2014); see v1::ValidationSplit.
uint64_t SplitMix64(uint64_t x);

// True when row `row` is a validation row under `split`: exactly
// SplitMix64(seed + row) / 2^64 < fraction, with seed + row modulo 2^64. A
// fraction <= 0 or NaN selects no rows, a fraction >= 1 every row.
bool IsValidationRow(const v1::ValidationSplit& split, int64_t row);

// Row indices of [0, rows) split into training, validation and judging rows
// (v1::Lease.judging_split: taken from the rows that are not validation
// rows), each in increasing order. A row's set does not depend on `rows`.
struct RowPartition {
  std::vector<int64_t> training;
  std::vector<int64_t> validation;
  std::vector<int64_t> judging;
};
RowPartition PartitionRows(
    const v1::ValidationSplit& validation, int64_t rows,
    const v1::ValidationSplit& judging = v1::ValidationSplit());

// The training rows a run with Lease.training_row_fraction `fraction` keeps:
// row r of `training` exactly when SplitMix64(SplitMix64(split_seed) + r) /
// 2^64 < fraction, order kept. A fraction <= 0 or >= 1 keeps every row.
std::vector<int64_t> TrainingRowSubset(std::vector<int64_t> training,
                                       uint64_t split_seed, double fraction);

}  // namespace evonas

#endif  // EVONAS_COMMON_VALIDATION_SPLIT_H_
