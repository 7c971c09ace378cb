#ifndef EVONAS_WORKER_MODEL_MODEL_CARD_H_
#define EVONAS_WORKER_MODEL_MODEL_CARD_H_

// The model card shipped with a trained network: a JSON document saying what
// the network is, what it was trained on, how well it does and whether it
// meets the customer's requirements. No LibTorch.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/requirements.h"
#include "evonas/v1/types.pb.h"
#include "worker/model/mlp.h"

namespace evonas::model {

// The model card of `parameters`, trained from `genome` on the data set with
// SHA-256 `dataset_id`, as one JSON object (UTF-8, newline-terminated):
//   "model_card_version" (1), "producer" ("evonas VERSION"), "dataset_id",
//   "input_columns", "output_columns" (arrays of strings, may be empty),
//   "architecture": {"description", "inputs", "outputs", "parameter_count"
//     (all stages), "layers": [{"inputs", "outputs", "activation",
//     "residual", "layer_norm"}...] of the first stage with "linear" for the
//     output layer,
//     "stages": [{"parameter_count", "layers"}...] for every stage,
//     "standardisation", "precision" ("float64", or "float32" for a float32
//     or convolutional network: what the model computes in); "kind" "mlp",
//     or "cnn" for a convolutional network,
//     which also has "image": {"height", "width", "channels" (1)} and
//     "conv_layers": [{"in_channels", "out_channels", "kernel_size",
//     "activation", "batch_norm", "pooling" ("none", "max", "average"),
//     "dropout", "residual"}...] in the order they run, and whose "inputs"
//     are its pixels},
//   "genome", "metrics": the protos in protobuf's JSON mapping with the proto
//     field names (so int64 values are strings and NaN is "NaN"),
//   "judged_on": the rows the accuracy requirements are judged on
//     ("validation"; a refit, trained on every row: "test", or "training"
//     without a test data set),
//   "requirements": one entry per set requirement, in proto field order:
//     {"name" (the proto field), "limit", "achieved", "met" (true/false) and,
//     for min_fraction_within, "within_tolerance"}, "met" decided by
//     evonas::Assess so that it agrees with the controller,
//   "feasible" (every requirement met) and "violations" (Assess's sentences).
// Non-finite numbers outside the protos are written "NaN", "Infinity" or
// "-Infinity", as protobuf does. InvalidArgument when ValidateNetwork fails
// or a column list is neither empty nor one name per input (output).
// Thread-safe.
absl::StatusOr<std::string> ModelCardJson(
    const NetworkParameters& parameters, const v1::Genome& genome,
    const v1::Metrics& metrics, const v1::Requirements& requirements,
    const std::string& dataset_id,
    const std::vector<std::string>& input_columns,
    const std::vector<std::string>& output_columns,
    JudgedRows judged_rows = JudgedRows::kValidation);

// `text` as a JSON string literal, quotes included: '"' and '\' escaped,
// control characters as \n, \t... or \u00XX, and every byte sequence that is
// not valid UTF-8 replaced by U+FFFD, so the result always parses.
std::string JsonQuote(absl::string_view text);

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_MODEL_CARD_H_
