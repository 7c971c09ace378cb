#ifndef EVONAS_COMMON_LATENCY_TABLE_H_
#define EVONAS_COMMON_LATENCY_TABLE_H_

// Latency lookup tables (hierarchical evaluation, level 0): each worker times
// a set of small networks once at start-up and fits one linear layer model
// per activation (types.proto, LatencyTable); the controller estimates any
// genome's batch-1 latency from them without training it.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/genome.h"
#include "evonas/v1/types.pb.h"

namespace evonas {

// One timed network: the batch-1 forward of `genome` with `inputs` inputs
// and `outputs` outputs (on `image`, for a convolutional genome) took
// `seconds` (a median of repeats).
struct NetworkTiming {
  v1::Genome genome;
  int64_t inputs = 0;
  int64_t outputs = 0;
  double seconds = 0;
  ImageShape image;
};

// Upper bounds of a table a worker may report (a forged table cannot make
// the controller store or loop over much).
inline constexpr int kMaxHardwareClassLength = 256;

// Fits the LatencyTable of `hardware_class` to `timings`: one model per
// activation the timings' dense layers use, plus the output layer's
// (ACTIVATION_UNSPECIFIED), one per activation of their convolutional
// layers (LatencyTable.conv_layers), and, when some timed network has
// layer-normalised layers, LatencyTable.layer_norm_seconds_per_neuron. A
// network's time is modelled as the sum of its layers' models, as
// EstimateLatencySeconds sums them, so the fit is one least-squares problem
// over every coefficient at once: a whole network is what the worker can time
// (its call overhead, which no single layer shows, lands in the output layer's
// intercept, which every network has once). Residuals are relative (divided by
// the measured seconds), so that small networks, the ones a latency requirement
// is about, count as much as big ones. Coefficients are constrained to be
// non-negative (a bigger layer is never estimated faster; noise could make a
// free fit negative). InvalidArgument when a timing is not finite and positive,
// a genome has a layer of width < 1, a convolutional genome no image, or the
// timings cannot separate the coefficients (each activation and layer kind
// needs networks of at least two depths and two widths). Pure.
absl::StatusOr<v1::LatencyTable> FitLatencyTable(
    absl::string_view hardware_class, const std::vector<NetworkTiming>& timings);

// InvalidArgument unless `table` names its hardware class (at most
// kMaxHardwareClassLength bytes), has a model for the output layer
// (ACTIVATION_UNSPECIFIED), at most one model per known activation and
// layer kind (no ACTIVATION_UNSPECIFIED among the convolutional ones), and
// finite, non-negative coefficients.
absl::Status ValidateLatencyTable(const v1::LatencyTable& table);

// Estimated batch-1 forward seconds of `genome` with `inputs` inputs and
// `outputs` outputs (on `image`, for a convolutional genome) on the
// hardware of `table`: the sum of its layer models over every
// convolutional layer and every affine layer of every stage (multiply-adds
// as ComputeGenomeCost counts them). NotFound when the table has no model
// for a layer the genome has (a table from a worker that did not time
// convolutions has none for them; one without layer_norm_seconds_per_neuron
// estimates no layer-normalised genome); InvalidArgument for a convolutional
// genome without `image`. Pure.
absl::StatusOr<double> EstimateLatencySeconds(const v1::Genome& genome,
                                              int64_t inputs, int64_t outputs,
                                              const v1::LatencyTable& table,
                                              const ImageShape& image = {});

// ComputeGenomeCost, with estimated_latency_seconds the largest estimate
// over `tables` (the slowest known hardware, so that a limit met by the
// estimate is met on every worker), 0 when no table can estimate the
// genome. Pure.
v1::GenomeCost EstimateGenomeCost(const v1::Genome& genome, int64_t inputs,
                                  int64_t outputs,
                                  absl::Span<const v1::LatencyTable> tables,
                                  const ImageShape& image = {});

}  // namespace evonas

#endif  // EVONAS_COMMON_LATENCY_TABLE_H_
