#ifndef EVONAS_COMMON_LATENCY_TABLE_H_
#define EVONAS_COMMON_LATENCY_TABLE_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "evonas/v1/types.pb.h"

namespace evonas {

// One timed dense layer at batch 1: inputs * outputs multiply-adds took
// `seconds` (a median of repeats).
struct LayerTiming {
  int64_t inputs = 0;
  int64_t outputs = 0;
  double seconds = 0;
};

// Least-squares fit of seconds = intercept + slope * inputs * outputs over
// `timings` (at least two distinct sizes, all seconds finite and >= 0;
// InvalidArgument otherwise). A negative intercept or slope, which noise can
// produce, is clamped to 0 and the other coefficient refitted, so that a
// bigger layer is never estimated faster. Pure.
absl::StatusOr<v1::LayerLatencyModel> FitLayerLatency(
    v1::Activation activation, const std::vector<LayerTiming>& timings);

// InvalidArgument unless `table` names its hardware class, has a model for
// the output layer (ACTIVATION_UNSPECIFIED), at most one model per
// activation, and finite, non-negative coefficients.
absl::Status ValidateLatencyTable(const v1::LatencyTable& table);

// Estimated batch-1 forward seconds of `genome` with `inputs` inputs and
// `outputs` outputs on the hardware of `table`: the sum of its layer models
// over every affine layer of every stage (as ComputeGenomeCost counts them).
// NotFound when the table has no model for an activation the genome uses.
// Pure.
absl::StatusOr<double> EstimateLatencySeconds(const v1::Genome& genome,
                                              int64_t inputs, int64_t outputs,
                                              const v1::LatencyTable& table);

}  // namespace evonas

#endif  // EVONAS_COMMON_LATENCY_TABLE_H_
