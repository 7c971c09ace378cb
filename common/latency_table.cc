#include "common/latency_table.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/genome_cost.h"

namespace evonas {
namespace {

// Calls `layer(activation, fan_in, width)` for every affine layer of every
// stage of `genome`, the linear output layer (ACTIVATION_UNSPECIFIED) last in
// each stage. Widths below 0 count as 0, as in ComputeGenomeCost.
void ForEachLayer(
    const v1::Genome& genome, int64_t inputs, int64_t outputs,
    const std::function<void(v1::Activation, int64_t, int64_t)>& layer) {
  auto stage = [&](const google::protobuf::RepeatedPtrField<v1::DenseLayer>&
                       hidden) {
    int64_t fan_in = inputs;
    for (const v1::DenseLayer& l : hidden) {
      const int64_t width = std::max<int64_t>(0, l.width());
      layer(l.activation(), fan_in, width);
      fan_in = width;
    }
    layer(v1::ACTIVATION_UNSPECIFIED, fan_in, outputs);
  };
  stage(genome.hidden_layers());
  for (const v1::Stage& s : genome.residual_stages()) stage(s.hidden_layers());
}

const v1::LayerLatencyModel* ModelFor(const v1::LatencyTable& table,
                                      v1::Activation activation) {
  for (const v1::LayerLatencyModel& model : table.layers()) {
    if (model.activation() == activation) return &model;
  }
  return nullptr;
}

// Minimises |A x - b|^2 subject to x >= 0 by cyclic coordinate descent on
// the normal equations (G = A'A, c = A'b, both n x n / n): each step
// minimises exactly along one coordinate and clamps at 0, which converges
// to the constrained optimum of this convex problem. The caller scales the
// columns so that G has a unit diagonal. n is a dozen at most.
std::vector<double> NonNegativeLeastSquares(
    const std::vector<std::vector<double>>& g, const std::vector<double>& c) {
  const size_t n = c.size();
  std::vector<double> x(n, 0.0);
  for (int sweep = 0; sweep < 100000; ++sweep) {
    double largest_step = 0;
    for (size_t j = 0; j < n; ++j) {
      double gradient = -c[j];
      for (size_t k = 0; k < n; ++k) gradient += g[j][k] * x[k];
      const double next = std::max(0.0, x[j] - gradient / g[j][j]);
      largest_step = std::max(largest_step, std::abs(next - x[j]));
      x[j] = next;
    }
    if (largest_step < 1e-13) break;
  }
  return x;
}

// Whether the symmetric matrix `g` (unit diagonal) is numerically positive
// definite: its Cholesky pivots stay clear of zero.
bool PositiveDefinite(std::vector<std::vector<double>> g) {
  const size_t n = g.size();
  for (size_t j = 0; j < n; ++j) {
    double pivot = g[j][j];
    for (size_t k = 0; k < j; ++k) pivot -= g[j][k] * g[j][k];
    if (!(pivot > 1e-9)) return false;
    const double root = std::sqrt(pivot);
    g[j][j] = root;
    for (size_t i = j + 1; i < n; ++i) {
      double v = g[i][j];
      for (size_t k = 0; k < j; ++k) v -= g[i][k] * g[j][k];
      g[i][j] = v / root;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<v1::LatencyTable> FitLatencyTable(
    absl::string_view hardware_class,
    const std::vector<NetworkTiming>& timings) {
  // Two unknowns per activation: intercept (column 2i), slope (2i + 1).
  std::map<v1::Activation, size_t> index;
  for (const NetworkTiming& t : timings) {
    if (!std::isfinite(t.seconds) || !(t.seconds > 0) || t.inputs < 1 ||
        t.outputs < 1) {
      return absl::InvalidArgumentError(
          "network timings need positive inputs and outputs and finite, "
          "positive seconds");
    }
    bool bad_width = false;
    ForEachLayer(t.genome, t.inputs, t.outputs,
                 [&](v1::Activation activation, int64_t, int64_t width) {
                   if (width < 1) bad_width = true;
                   index.emplace(activation, 0);
                 });
    if (bad_width) {
      return absl::InvalidArgumentError(
          "a timed network has a layer of width < 1");
    }
  }
  size_t next = 0;
  for (auto& [activation, i] : index) i = next++;
  const size_t n = 2 * index.size();

  // Rows divided by the measured seconds: relative residuals.
  std::vector<std::vector<double>> rows;
  for (const NetworkTiming& t : timings) {
    std::vector<double>& row = rows.emplace_back(n, 0.0);
    ForEachLayer(t.genome, t.inputs, t.outputs,
                 [&](v1::Activation activation, int64_t fan_in, int64_t width) {
                   const size_t i = index[activation];
                   row[2 * i] += 1.0 / t.seconds;
                   row[2 * i + 1] += static_cast<double>(fan_in) *
                                     static_cast<double>(width) / t.seconds;
                 });
  }
  // Columns scaled to unit norm, so that intercepts (~1e-6 s) and slopes
  // (~1e-10 s per multiply-add) are solved on one scale.
  std::vector<double> scale(n, 0.0);
  for (const auto& row : rows) {
    for (size_t j = 0; j < n; ++j) scale[j] += row[j] * row[j];
  }
  for (double& s : scale) s = std::sqrt(s);
  std::vector<std::vector<double>> g(n, std::vector<double>(n, 0.0));
  std::vector<double> c(n, 0.0);
  for (const auto& row : rows) {
    for (size_t j = 0; j < n; ++j) {
      if (scale[j] == 0) continue;
      c[j] += row[j] / scale[j];  // the target of every row is 1
      for (size_t k = 0; k < n; ++k) {
        if (scale[k] != 0) g[j][k] += row[j] * row[k] / (scale[j] * scale[k]);
      }
    }
  }
  if (n == 0 || !PositiveDefinite(g)) {
    return absl::InvalidArgumentError(
        "the network timings cannot separate the layer models: time, per "
        "activation, networks of at least two depths and two widths");
  }
  const std::vector<double> x = NonNegativeLeastSquares(g, c);

  v1::LatencyTable table;
  table.set_hardware_class(std::string(hardware_class));
  table.set_calibration_points(static_cast<int32_t>(timings.size()));
  for (const auto& [activation, i] : index) {
    v1::LayerLatencyModel* model = table.add_layers();
    model->set_activation(activation);
    model->set_intercept_seconds(x[2 * i] / scale[2 * i]);
    model->set_seconds_per_multiply_add(x[2 * i + 1] / scale[2 * i + 1]);
  }
  return table;
}

absl::Status ValidateLatencyTable(const v1::LatencyTable& table) {
  if (table.hardware_class().empty()) {
    return absl::InvalidArgumentError("latency_table.hardware_class is empty");
  }
  if (table.hardware_class().size() > kMaxHardwareClassLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("latency_table.hardware_class is longer than ",
                     kMaxHardwareClassLength, " bytes"));
  }
  std::set<int> seen;
  for (const v1::LayerLatencyModel& model : table.layers()) {
    if (!v1::Activation_IsValid(model.activation())) {
      return absl::InvalidArgumentError(
          absl::StrCat("latency_table has a model for unknown activation ",
                       model.activation()));
    }
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
  if (genome.conv_layers_size() > 0) {
    return absl::UnimplementedError(
        "latency tables model dense layers only; convolutional layers are "
        "not calibrated");
  }
  double seconds = 0;
  absl::Status status;
  ForEachLayer(genome, inputs, outputs,
               [&](v1::Activation activation, int64_t fan_in, int64_t width) {
                 const v1::LayerLatencyModel* model =
                     ModelFor(table, activation);
                 if (model == nullptr) {
                   status.Update(absl::NotFoundError(absl::StrCat(
                       "latency table for '", table.hardware_class(),
                       "' has no model for ",
                       v1::Activation_Name(activation))));
                   return;
                 }
                 seconds += model->intercept_seconds() +
                            model->seconds_per_multiply_add() *
                                static_cast<double>(fan_in) *
                                static_cast<double>(width);
               });
  if (!status.ok()) return status;
  return seconds;
}

v1::GenomeCost EstimateGenomeCost(const v1::Genome& genome, int64_t inputs,
                                  int64_t outputs,
                                  absl::Span<const v1::LatencyTable> tables,
                                  const ImageShape& image) {
  v1::GenomeCost cost = ComputeGenomeCost(genome, inputs, outputs, image);
  double slowest = 0;
  for (const v1::LatencyTable& table : tables) {
    absl::StatusOr<double> seconds =
        EstimateLatencySeconds(genome, inputs, outputs, table);
    if (seconds.ok()) slowest = std::max(slowest, *seconds);
  }
  cost.set_estimated_latency_seconds(slowest);
  return cost;
}

}  // namespace evonas
