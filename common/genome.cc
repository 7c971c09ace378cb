#include "common/genome.h"

#include <cmath>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "evonas/v1/types.pb.h"

namespace evonas {
namespace {

// `x` in scientific notation with up to four significant digits and no
// trailing zeros: 0.003 -> "3e-03", 0.0015 -> "1.5e-03".
std::string ShortScientific(double x) {
  std::string s = absl::StrFormat("%.3e", x);
  const size_t e = s.find('e');
  if (e == std::string::npos) return s;  // nan, inf
  size_t end = e;
  while (end > 0 && s[end - 1] == '0') --end;
  if (end > 0 && s[end - 1] == '.') --end;
  return s.substr(0, end) + s.substr(e);
}

}  // namespace

absl::Status ValidateGenome(const v1::Genome& genome) {
  const int layers = genome.hidden_layers_size();
  if (layers < 1 || layers > kMaxHiddenLayers) {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden_layers must hold 1..", kMaxHiddenLayers,
                     " layers, got ", layers));
  }
  for (int i = 0; i < layers; ++i) {
    const v1::DenseLayer& layer = genome.hidden_layers(i);
    if (layer.width() < 1 || layer.width() > kMaxLayerWidth) {
      return absl::InvalidArgumentError(
          absl::StrCat("hidden_layers[", i, "].width must be in 1..",
                       kMaxLayerWidth, ", got ", layer.width()));
    }
    if (layer.activation() == v1::ACTIVATION_UNSPECIFIED) {
      return absl::InvalidArgumentError(
          absl::StrCat("hidden_layers[", i, "].activation must be specified"));
    }
    if (!v1::Activation_IsValid(layer.activation())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "hidden_layers[", i, "].activation ",
          static_cast<int>(layer.activation()), " is not a known activation"));
    }
  }
  const v1::TrainingConfig& training = genome.training();
  const double lr = training.learning_rate();
  if (!(std::isfinite(lr) && lr > 0 && lr <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("training.learning_rate must be in (0, 1], got ",
                     absl::StrFormat("%g", lr)));
  }
  if (training.adam_steps() < 0 || training.adam_steps() > kMaxAdamSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("training.adam_steps must be in 0..", kMaxAdamSteps,
                     ", got ", training.adam_steps()));
  }
  if (training.lbfgs_steps() < 0 || training.lbfgs_steps() > kMaxLbfgsSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("training.lbfgs_steps must be in 0..", kMaxLbfgsSteps,
                     ", got ", training.lbfgs_steps()));
  }
  if (training.adam_steps() + training.lbfgs_steps() == 0) {
    return absl::InvalidArgumentError(
        "training.adam_steps + training.lbfgs_steps must be positive, got 0");
  }
  if (training.batch_size() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("training.batch_size must be >= 0 (0 = full batch), got ",
                     training.batch_size()));
  }
  return absl::OkStatus();
}

int64_t ParameterCount(const v1::Genome& genome, int64_t inputs,
                       int64_t outputs) {
  int64_t total = 0;
  int64_t in = inputs;
  for (const v1::DenseLayer& layer : genome.hidden_layers()) {
    const int64_t out = layer.width();
    total += in * out + out;
    in = out;
  }
  total += in * outputs + outputs;  // the implicit linear output layer
  return total;
}

std::string GenomeKey(const v1::Genome& genome) {
  std::string key = "L";
  for (int i = 0; i < genome.hidden_layers_size(); ++i) {
    const v1::DenseLayer& layer = genome.hidden_layers(i);
    absl::StrAppend(&key, i == 0 ? "" : "-", layer.width(), ".",
                    static_cast<int>(layer.activation()));
  }
  const v1::TrainingConfig& training = genome.training();
  // %a is exact and canonical for finite values; + 0.0 maps -0 to 0.
  absl::StrAppend(&key, "|lr",
                  absl::StrFormat("%a", training.learning_rate() + 0.0),
                  "|a", training.adam_steps(), "|l", training.lbfgs_steps(),
                  "|b", training.batch_size());
  return key;
}

std::string DescribeGenome(const v1::Genome& genome) {
  std::string out;
  for (const v1::DenseLayer& layer : genome.hidden_layers()) {
    if (!out.empty()) out += '-';
    absl::StrAppend(&out, layer.width(), ActivationName(layer.activation()));
  }
  if (out.empty()) out = "linear";
  const v1::TrainingConfig& training = genome.training();
  absl::StrAppend(&out, " lr=", ShortScientific(training.learning_rate()),
                  " adam=", training.adam_steps(),
                  " lbfgs=", training.lbfgs_steps(), " batch=");
  if (training.batch_size() == 0) {
    out += "full";
  } else {
    absl::StrAppend(&out, training.batch_size());
  }
  return out;
}

std::string ActivationName(v1::Activation activation) {
  switch (activation) {
    case v1::ACTIVATION_TANH:
      return "tanh";
    case v1::ACTIVATION_RELU:
      return "relu";
    case v1::ACTIVATION_SILU:
      return "silu";
    case v1::ACTIVATION_GELU:
      return "gelu";
    case v1::ACTIVATION_SINE:
      return "sine";
    case v1::ACTIVATION_UNSPECIFIED:
      return "unspecified";
    default:
      return absl::StrCat("activation", static_cast<int>(activation));
  }
}

}  // namespace evonas
