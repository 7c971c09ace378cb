// The worker's checkpoint parser (worker/model/checkpoint.h): a child
// candidate loads its parent's checkpoint from the controller, so the bytes
// are another worker's output. An accepted checkpoint must survive a
// serialisation round trip and run the reference forward pass on one row.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz/fuzz_proto.h"
#include "worker/model/checkpoint.h"
#include "worker/model/mlp.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  // The binary bytes as the worker receives them ...
  absl::StatusOr<evonas::model::NetworkParameters> direct =
      evonas::model::ParseCheckpoint(std::string(bytes));
  if (!direct.ok() &&
      direct.status().code() != absl::StatusCode::kInvalidArgument) {
    std::abort();
  }
  // ... and the proto of a hand-written (text) seed or its mutations.
  evonas::v1::NetworkWeights weights;
  if (!evonas::fuzz::ParseTextOrBinary(bytes, &weights)) return 0;
  absl::StatusOr<evonas::model::NetworkParameters> network =
      evonas::model::FromNetworkWeights(weights);
  if (!network.ok()) {
    if (network.status().code() != absl::StatusCode::kInvalidArgument ||
        network.status().message().empty()) {
      std::abort();
    }
    return 0;
  }
  absl::StatusOr<evonas::model::NetworkParameters> again =
      evonas::model::ParseCheckpoint(
          evonas::model::SerializeCheckpoint(*network));
  if (!again.ok() || evonas::model::ParameterCount(*again) !=
                         evonas::model::ParameterCount(*network)) {
    std::abort();
  }
  const int64_t inputs =
      static_cast<int64_t>(network->stages[0].x_mean.size());
  std::vector<double> row(inputs, 0.5);
  const std::vector<double> out = evonas::model::Forward(*network, row, 1);
  const int64_t outputs =
      static_cast<int64_t>(network->stages[0].y_mean.size());
  if (static_cast<int64_t>(out.size()) != outputs) std::abort();
  return 0;
}
