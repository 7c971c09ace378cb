#include "common/latency_table.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/genome.h"
#include "common/genome_cost.h"

namespace evonas {
namespace {

// The kinds of layer model a table has, one list each.
enum class LayerKind { kDense, kConv, kDenseFloat32 };

// Which model of a table a layer uses: its kind and activation.
struct LayerModelKey {
  LayerKind kind = LayerKind::kDense;
  v1::Activation activation = v1::ACTIVATION_UNSPECIFIED;
  bool operator<(const LayerModelKey& o) const {
    return std::make_pair(kind, activation) <
           std::make_pair(o.kind, o.activation);
  }
};

// "convolutional ", "float32 " or "", to prefix an activation's name.
const char* KindPrefix(LayerKind kind) {
  switch (kind) {
    case LayerKind::kConv:
      return "convolutional ";
    case LayerKind::kDenseFloat32:
      return "float32 ";
    case LayerKind::kDense:
      break;
  }
  return "";
}

std::string KeyName(const LayerModelKey& key) {
  return absl::StrCat(KindPrefix(key.kind),
                      v1::Activation_Name(key.activation));
}

const google::protobuf::RepeatedPtrField<v1::LayerLatencyModel>& ModelsOf(
    const v1::LatencyTable& table, LayerKind kind) {
  switch (kind) {
    case LayerKind::kConv:
      return table.conv_layers();
    case LayerKind::kDenseFloat32:
      return table.float32_layers();
    case LayerKind::kDense:
      break;
  }
  return table.layers();
}

v1::LayerLatencyModel* AddModel(v1::LatencyTable& table, LayerKind kind) {
  switch (kind) {
    case LayerKind::kConv:
      return table.add_conv_layers();
    case LayerKind::kDenseFloat32:
      return table.add_float32_layers();
    case LayerKind::kDense:
      break;
  }
  return table.add_layers();
}

// Calls `layer(key, multiply_adds, width, layer_norm)` for every layer of every
// stage of `genome` that the table models: the convolutional layers
// (multiply-adds at their input's size, before pooling; width = channels), then
// every affine layer, the linear output layer (ACTIVATION_UNSPECIFIED) last in
// each stage; the affine layers of a float32 dense genome with the float32
// models. Widths below 0 count as 0, as in ComputeGenomeCost.
void ForEachLayer(
    const v1::Genome& genome, int64_t inputs, int64_t outputs,
    const ImageShape& image,
    const std::function<void(LayerModelKey, double, int64_t, bool)>& layer) {
  int64_t first_fan_in = inputs;
  if (genome.conv_layers_size() > 0) {
    const ConvOutput trunk = WalkConvLayers(
        genome, image, [&](const v1::ConvLayer& l, const ConvOutput& in) {
          const int64_t out = std::max(0, l.channels());
          const double k = std::max(0, l.kernel_size());
          layer({LayerKind::kConv, l.activation()},
                static_cast<double>(in.height * in.width) * k * k *
                    static_cast<double>(in.channels * out),
                out, false);
        });
    first_fan_in = trunk.size();
  }
  const LayerKind dense =
      genome.conv_layers_size() == 0 &&
              EffectivePrecision(genome) == v1::PRECISION_FLOAT32
          ? LayerKind::kDenseFloat32
          : LayerKind::kDense;
  auto stage = [&](const google::protobuf::RepeatedPtrField<v1::DenseLayer>&
                       hidden,
                   int64_t fan_in) {
    for (const v1::DenseLayer& l : hidden) {
      const int64_t width = std::max<int64_t>(0, l.width());
      layer({dense, l.activation()},
            static_cast<double>(fan_in) * static_cast<double>(width), width,
            l.layer_norm());
      fan_in = width;
    }
    layer({dense, v1::ACTIVATION_UNSPECIFIED},
          static_cast<double>(fan_in) * static_cast<double>(outputs), outputs,
          false);
  };
  stage(genome.hidden_layers(), first_fan_in);
  for (const v1::Stage& s : genome.residual_stages()) {
    stage(s.hidden_layers(), inputs);
  }
}

const v1::LayerLatencyModel* ModelFor(const v1::LatencyTable& table,
                                      const LayerModelKey& key) {
  for (const v1::LayerLatencyModel& model : ModelsOf(table, key.kind)) {
    if (model.activation() == key.activation) return &model;
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
  // Two unknowns per layer model: intercept (column 2i), slope (2i + 1).
  std::map<LayerModelKey, size_t> index;
  bool layer_norm = false;  // then one more column: seconds per neuron
  for (const NetworkTiming& t : timings) {
    if (!std::isfinite(t.seconds) || !(t.seconds > 0) || t.inputs < 1 ||
        t.outputs < 1) {
      return absl::InvalidArgumentError(
          "network timings need positive inputs and outputs and finite, "
          "positive seconds");
    }
    if (t.genome.conv_layers_size() > 0 && t.image.empty()) {
      return absl::InvalidArgumentError(
          "a timed convolutional network needs its image shape");
    }
    bool bad_width = false;
    ForEachLayer(t.genome, t.inputs, t.outputs, t.image,
                 [&](LayerModelKey key, double, int64_t width, bool norm) {
                   if (width < 1) bad_width = true;
                   index.emplace(key, 0);
                   layer_norm = layer_norm || norm;
                 });
    if (bad_width) {
      return absl::InvalidArgumentError(
          "a timed network has a layer of width < 1");
    }
  }
  size_t next = 0;
  for (auto& [key, i] : index) i = next++;
  const size_t n = 2 * index.size() + (layer_norm ? 1 : 0);

  // Rows divided by the measured seconds: relative residuals.
  std::vector<std::vector<double>> rows;
  for (const NetworkTiming& t : timings) {
    std::vector<double>& row = rows.emplace_back(n, 0.0);
    ForEachLayer(
        t.genome, t.inputs, t.outputs, t.image,
        [&](LayerModelKey key, double multiply_adds, int64_t width, bool norm) {
          const size_t i = index[key];
          row[2 * i] += 1.0 / t.seconds;
          row[2 * i + 1] += multiply_adds / t.seconds;
          if (norm) {
            row[n - 1] += static_cast<double>(width) / t.seconds;
          }
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
        "activation and layer kind, networks of at least two depths and two "
        "widths (and networks with and without layer normalisation)");
  }
  const std::vector<double> x = NonNegativeLeastSquares(g, c);

  v1::LatencyTable table;
  table.set_hardware_class(std::string(hardware_class));
  table.set_calibration_points(static_cast<int32_t>(timings.size()));
  for (const auto& [key, i] : index) {
    v1::LayerLatencyModel* model = AddModel(table, key.kind);
    model->set_activation(key.activation);
    model->set_intercept_seconds(x[2 * i] / scale[2 * i]);
    model->set_seconds_per_multiply_add(x[2 * i + 1] / scale[2 * i + 1]);
  }
  if (layer_norm) {
    table.set_layer_norm_seconds_per_neuron(x[n - 1] / scale[n - 1]);
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
  std::set<LayerModelKey> seen;
  for (LayerKind kind :
       {LayerKind::kDense, LayerKind::kConv, LayerKind::kDenseFloat32}) {
    const bool conv = kind == LayerKind::kConv;
    for (const v1::LayerLatencyModel& model : ModelsOf(table, kind)) {
      const LayerModelKey key{kind, model.activation()};
      if (!v1::Activation_IsValid(model.activation()) ||
          (conv && model.activation() == v1::ACTIVATION_UNSPECIFIED)) {
        return absl::InvalidArgumentError(
            absl::StrCat("latency_table has a ", KindPrefix(kind),
                         "model for unknown activation ", model.activation()));
      }
      if (!seen.insert(key).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("latency_table has two models for ", KeyName(key)));
      }
      if (!std::isfinite(model.intercept_seconds()) ||
          model.intercept_seconds() < 0 ||
          !std::isfinite(model.seconds_per_multiply_add()) ||
          model.seconds_per_multiply_add() < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("latency_table model for ", KeyName(key),
                         " needs finite, non-negative coefficients"));
      }
    }
  }
  if (table.has_layer_norm_seconds_per_neuron() &&
      !(std::isfinite(table.layer_norm_seconds_per_neuron()) &&
        table.layer_norm_seconds_per_neuron() >= 0)) {
    return absl::InvalidArgumentError(
        "latency_table.layer_norm_seconds_per_neuron must be finite and "
        "non-negative");
  }
  if (seen.count({LayerKind::kDense, v1::ACTIVATION_UNSPECIFIED}) == 0) {
    return absl::InvalidArgumentError(
        "latency_table has no model for the linear output layer "
        "(ACTIVATION_UNSPECIFIED)");
  }
  if (table.float32_layers_size() > 0 &&
      seen.count({LayerKind::kDenseFloat32, v1::ACTIVATION_UNSPECIFIED}) == 0) {
    return absl::InvalidArgumentError(
        "latency_table.float32_layers has no model for the linear output "
        "layer (ACTIVATION_UNSPECIFIED)");
  }
  return absl::OkStatus();
}

absl::StatusOr<double> EstimateLatencySeconds(const v1::Genome& genome,
                                              int64_t inputs, int64_t outputs,
                                              const v1::LatencyTable& table,
                                              const ImageShape& image) {
  if (genome.conv_layers_size() > 0 && image.empty()) {
    return absl::InvalidArgumentError(
        "a convolutional genome's latency needs the image shape");
  }
  double seconds = 0;
  absl::Status status;
  ForEachLayer(genome, inputs, outputs, image,
               [&](LayerModelKey key, double multiply_adds, int64_t width,
                   bool norm) {
                 const v1::LayerLatencyModel* model = ModelFor(table, key);
                 if (model == nullptr) {
                   status.Update(absl::NotFoundError(
                       absl::StrCat("latency table for '",
                                    table.hardware_class(),
                                    "' has no model for ", KeyName(key))));
                   return;
                 }
                 seconds += model->intercept_seconds() +
                            model->seconds_per_multiply_add() * multiply_adds;
                 if (!norm) return;
                 if (!table.has_layer_norm_seconds_per_neuron()) {
                   status.Update(absl::NotFoundError(absl::StrCat(
                       "latency table for '", table.hardware_class(),
                       "' has no model for layer normalisation")));
                   return;
                 }
                 seconds += table.layer_norm_seconds_per_neuron() *
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
        EstimateLatencySeconds(genome, inputs, outputs, table, image);
    if (seconds.ok()) slowest = std::max(slowest, *seconds);
  }
  cost.set_estimated_latency_seconds(slowest);
  return cost;
}

}  // namespace evonas
