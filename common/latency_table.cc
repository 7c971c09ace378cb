#include "common/latency_table.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"

namespace evonas {
namespace {

const v1::LayerLatencyModel* ModelFor(const v1::LatencyTable& table,
                                      v1::Activation activation) {
  for (const v1::LayerLatencyModel& model : table.layers()) {
    if (model.activation() == activation) return &model;
  }
  return nullptr;
}

absl::Status AddStage(
    const google::protobuf::RepeatedPtrField<v1::DenseLayer>& layers,
    int64_t inputs, int64_t outputs, const v1::LatencyTable& table,
    double& seconds) {
  int64_t fan_in = inputs;
  auto add = [&](v1::Activation activation, int64_t width) -> absl::Status {
    const v1::LayerLatencyModel* model = ModelFor(table, activation);
    if (model == nullptr) {
      return absl::NotFoundError(absl::StrCat(
          "latency table for '", table.hardware_class(), "' has no model for ",
          v1::Activation_Name(activation)));
    }
    seconds += model->intercept_seconds() +
               model->seconds_per_multiply_add() *
                   static_cast<double>(fan_in) * static_cast<double>(width);
    fan_in = width;
    return absl::OkStatus();
  };
  for (const v1::DenseLayer& layer : layers) {
    absl::Status status =
        add(layer.activation(), std::max<int64_t>(0, layer.width()));
    if (!status.ok()) return status;
  }
  return add(v1::ACTIVATION_UNSPECIFIED, outputs);
}

}  // namespace

absl::StatusOr<v1::LayerLatencyModel> FitLayerLatency(
    v1::Activation activation, const std::vector<LayerTiming>& timings) {
  std::set<double> sizes;
  double sx = 0, sy = 0;
  for (const LayerTiming& t : timings) {
    if (!std::isfinite(t.seconds) || t.seconds < 0 || t.inputs < 1 ||
        t.outputs < 1) {
      return absl::InvalidArgumentError(
          "layer timings need positive sizes and finite, non-negative "
          "seconds");
    }
    const double x = static_cast<double>(t.inputs) * t.outputs;
    sizes.insert(x);
    sx += x;
    sy += t.seconds;
  }
  if (sizes.size() < 2) {
    return absl::InvalidArgumentError(
        "fitting a layer latency model needs timings of at least two sizes");
  }
  const double n = static_cast<double>(timings.size());
  const double mx = sx / n, my = sy / n;
  double sxy = 0, sxx = 0, sxx0 = 0, sxy0 = 0;
  for (const LayerTiming& t : timings) {
    const double x = static_cast<double>(t.inputs) * t.outputs;
    sxy += (x - mx) * (t.seconds - my);
    sxx += (x - mx) * (x - mx);
    sxy0 += x * t.seconds;
    sxx0 += x * x;
  }
  double slope = sxy / sxx;
  double intercept = my - slope * mx;
  if (slope < 0) {
    slope = 0;
    intercept = my;
  } else if (intercept < 0) {
    intercept = 0;
    slope = sxy0 / sxx0;  // through the origin
  }
  v1::LayerLatencyModel model;
  model.set_activation(activation);
  model.set_intercept_seconds(intercept);
  model.set_seconds_per_multiply_add(slope);
  return model;
}

absl::Status ValidateLatencyTable(const v1::LatencyTable& table) {
  if (table.hardware_class().empty()) {
    return absl::InvalidArgumentError("latency_table.hardware_class is empty");
  }
  std::set<int> seen;
  for (const v1::LayerLatencyModel& model : table.layers()) {
    if (!seen.insert(model.activation()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("latency_table has two models for ",
                       v1::Activation_Name(model.activation())));
    }
    if (!std::isfinite(model.intercept_seconds()) ||
        model.intercept_seconds() < 0 ||
        !std::isfinite(model.seconds_per_multiply_add()) ||
        model.seconds_per_multiply_add() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "latency_table model for ", v1::Activation_Name(model.activation()),
          " needs finite, non-negative coefficients"));
    }
  }
  if (seen.count(v1::ACTIVATION_UNSPECIFIED) == 0) {
    return absl::InvalidArgumentError(
        "latency_table has no model for the linear output layer "
        "(ACTIVATION_UNSPECIFIED)");
  }
  return absl::OkStatus();
}

absl::StatusOr<double> EstimateLatencySeconds(const v1::Genome& genome,
                                              int64_t inputs, int64_t outputs,
                                              const v1::LatencyTable& table) {
  double seconds = 0;
  absl::Status status =
      AddStage(genome.hidden_layers(), inputs, outputs, table, seconds);
  if (!status.ok()) return status;
  for (const v1::Stage& stage : genome.residual_stages()) {
    status = AddStage(stage.hidden_layers(), inputs, outputs, table, seconds);
    if (!status.ok()) return status;
  }
  return seconds;
}

}  // namespace evonas
