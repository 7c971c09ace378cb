#include "worker/model/mlp.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "evonas/v1/types.pb.h"

namespace evonas::model {
namespace {

bool IsHiddenActivation(v1::Activation a) {
  switch (a) {
    case v1::ACTIVATION_TANH:
    case v1::ACTIVATION_RELU:
    case v1::ACTIVATION_SILU:
    case v1::ACTIVATION_GELU:
    case v1::ACTIVATION_SINE:
      return true;
    default:
      return false;
  }
}

absl::Status CheckSize(absl::string_view field, size_t actual,
                       int64_t expected) {
  if (static_cast<int64_t>(actual) == expected) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("MlpParameters.", field, " has ", actual,
                   " values, expected ", expected));
}

// Applies `a` to every element of `h` in place, as torch does it (see
// mlp.h); the last layer passes ACTIVATION_UNSPECIFIED and is left linear.
void Activate(v1::Activation a, std::vector<double>& h) {
  switch (a) {
    case v1::ACTIVATION_TANH:
      for (double& v : h) v = std::tanh(v);
      break;
    case v1::ACTIVATION_RELU:
      // NaN stays NaN, as in torch.relu.
      for (double& v : h) v = v < 0.0 ? 0.0 : v;
      break;
    case v1::ACTIVATION_SILU:
      for (double& v : h) v = v / (1.0 + std::exp(-v));
      break;
    case v1::ACTIVATION_GELU:
      for (double& v : h) v = v * 0.5 * (1.0 + std::erf(v * M_SQRT1_2));
      break;
    case v1::ACTIVATION_SINE:
      for (double& v : h) v = std::sin(v);
      break;
    default:
      break;
  }
}

}  // namespace

absl::Status ValidateMlp(const MlpParameters& parameters) {
  const MlpParameters& p = parameters;
  if (p.layers.empty()) {
    return absl::InvalidArgumentError("MlpParameters has no layers");
  }
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const DenseParameters& layer = p.layers[i];
    const std::string name = absl::StrCat("layers[", i, "]");
    if (layer.inputs <= 0 || layer.outputs <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MlpParameters.", name, " has ", layer.inputs, " inputs and ",
          layer.outputs, " outputs; both must be positive"));
    }
    if (i > 0 && layer.inputs != p.layers[i - 1].outputs) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MlpParameters.", name, ".inputs is ", layer.inputs,
          " but the previous layer has ", p.layers[i - 1].outputs, " outputs"));
    }
    // Compared by division so that huge shapes cannot overflow.
    const int64_t weights = static_cast<int64_t>(layer.weight.size());
    if (weights % layer.inputs != 0 ||
        weights / layer.inputs != layer.outputs) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MlpParameters.", name, ".weight has ", weights, " values, expected ",
          layer.outputs, " x ", layer.inputs));
    }
    if (auto s = CheckSize(absl::StrCat(name, ".bias"), layer.bias.size(),
                           layer.outputs);
        !s.ok()) {
      return s;
    }
    const bool last = i + 1 == p.layers.size();
    if (last && layer.activation != v1::ACTIVATION_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MlpParameters.", name,
          " is the output layer and must be linear (ACTIVATION_UNSPECIFIED), "
          "got activation ",
          static_cast<int>(layer.activation)));
    }
    if (!last && !IsHiddenActivation(layer.activation)) {
      return absl::InvalidArgumentError(
          absl::StrCat("MlpParameters.", name, " has unsupported activation ",
                       static_cast<int>(layer.activation)));
    }
    if (layer.residual && (i == 0 || last || layer.inputs != layer.outputs)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MlpParameters.", name, ".residual is set on ",
          i == 0 ? "the first layer" : last ? "the output layer" : "a layer",
          " with ", layer.inputs, " inputs and ", layer.outputs,
          " outputs; a residual layer must be a hidden layer after the first "
          "with as many outputs as inputs"));
    }
  }
  const int64_t inputs = p.layers.front().inputs;
  const int64_t outputs = p.layers.back().outputs;
  for (const auto& [field, values, expected] :
       {std::tuple<const char*, const std::vector<double>*, int64_t>{
            "x_mean", &p.x_mean, inputs},
        {"x_std", &p.x_std, inputs},
        {"y_mean", &p.y_mean, outputs},
        {"y_std", &p.y_std, outputs}}) {
    if (auto s = CheckSize(field, values->size(), expected); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::vector<double> Forward(const MlpParameters& parameters,
                            const std::vector<double>& x, int64_t rows) {
  if (!ValidateMlp(parameters).ok() || rows < 0) return {};
  const MlpParameters& p = parameters;
  const int64_t inputs = p.layers.front().inputs;
  if (rows > 0 && static_cast<int64_t>(x.size()) / rows != inputs) return {};
  if (static_cast<int64_t>(x.size()) != rows * inputs) return {};

  std::vector<double> h(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < inputs; ++j) {
      h[r * inputs + j] = (x[r * inputs + j] - p.x_mean[j]) / p.x_std[j];
    }
  }
  std::vector<double> next;
  for (const DenseParameters& layer : p.layers) {
    const int64_t in = layer.inputs, out = layer.outputs;
    next.assign(rows * out, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const double* hr = &h[r * in];
      for (int64_t o = 0; o < out; ++o) {
        const double* w = &layer.weight[o * in];
        double sum = 0.0;
        for (int64_t k = 0; k < in; ++k) sum += w[k] * hr[k];
        next[r * out + o] = layer.bias[o] + sum;
      }
    }
    Activate(layer.activation, next);
    if (layer.residual) {
      for (size_t i = 0; i < next.size(); ++i) next[i] = h[i] + next[i];
    }
    h.swap(next);
  }
  const int64_t outputs = p.layers.back().outputs;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < outputs; ++j) {
      double& v = h[r * outputs + j];
      v = v * p.y_std[j] + p.y_mean[j];
    }
  }
  return h;
}

absl::Status ValidateNetwork(const NetworkParameters& network) {
  if (network.stages.empty()) {
    return absl::InvalidArgumentError("NetworkParameters has no stages");
  }
  for (size_t k = 0; k < network.stages.size(); ++k) {
    const MlpParameters& stage = network.stages[k];
    if (absl::Status s = ValidateMlp(stage); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("NetworkParameters.stages[", k, "]: ", s.message()));
    }
    const MlpParameters& first = network.stages.front();
    if (stage.layers.front().inputs != first.layers.front().inputs ||
        stage.layers.back().outputs != first.layers.back().outputs) {
      return absl::InvalidArgumentError(absl::StrCat(
          "NetworkParameters.stages[", k, "] has ",
          stage.layers.front().inputs, " inputs and ",
          stage.layers.back().outputs, " outputs, stages[0] has ",
          first.layers.front().inputs, " and ", first.layers.back().outputs));
    }
  }
  return absl::OkStatus();
}

std::vector<double> Forward(const NetworkParameters& network,
                            const std::vector<double>& x, int64_t rows) {
  if (!ValidateNetwork(network).ok()) return {};
  std::vector<double> sum;
  for (const MlpParameters& stage : network.stages) {
    std::vector<double> out = Forward(stage, x, rows);
    if (out.empty() && rows > 0) return {};
    if (sum.empty()) {
      sum = std::move(out);
      continue;
    }
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += out[i];
  }
  return sum;
}

int64_t ParameterCount(const NetworkParameters& network) {
  int64_t count = 0;
  for (const MlpParameters& stage : network.stages) {
    count += ParameterCount(stage);
  }
  return count;
}

int64_t ParameterCount(const MlpParameters& parameters) {
  int64_t count = 0;
  for (const DenseParameters& layer : parameters.layers) {
    count += static_cast<int64_t>(layer.weight.size() + layer.bias.size());
  }
  return count;
}

}  // namespace evonas::model
