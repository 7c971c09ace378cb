#include "worker/model/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "worker/model/mlp.h"

namespace evonas::model {
namespace {

constexpr double kInt8Max = 127.0;

int64_t StandardisationValues(const std::vector<double>& x_mean,
                              const std::vector<double>& x_std,
                              const std::vector<double>& y_mean,
                              const std::vector<double>& y_std) {
  return static_cast<int64_t>(x_mean.size() + x_std.size() + y_mean.size() +
                              y_std.size());
}

}  // namespace

QuantizedMlp Quantize(const MlpParameters& parameters) {
  QuantizedMlp q;
  q.x_mean = parameters.x_mean;
  q.x_std = parameters.x_std;
  q.y_mean = parameters.y_mean;
  q.y_std = parameters.y_std;
  for (const DenseParameters& layer : parameters.layers) {
    QuantizedDense& ql = q.layers.emplace_back();
    ql.inputs = layer.inputs;
    ql.outputs = layer.outputs;
    ql.bias = layer.bias;
    ql.activation = layer.activation;
    ql.weight.assign(layer.weight.size(), 0);
    ql.scale.assign(layer.outputs, 0.0);
    for (int64_t o = 0; o < layer.outputs; ++o) {
      const size_t begin = static_cast<size_t>(o * layer.inputs);
      const size_t end = std::min(begin + static_cast<size_t>(layer.inputs),
                                  layer.weight.size());
      if (begin >= end) continue;  // malformed shape; leave the row zero
      double max_abs = 0.0;
      bool finite = true;
      for (size_t k = begin; k < end; ++k) {
        if (!std::isfinite(layer.weight[k])) finite = false;
        max_abs = std::max(max_abs, std::fabs(layer.weight[k]));
      }
      if (!finite) {
        ql.scale[o] = std::numeric_limits<double>::quiet_NaN();
        continue;
      }
      if (max_abs == 0.0) continue;
      const double scale = max_abs / kInt8Max;
      ql.scale[o] = scale;
      for (size_t k = begin; k < end; ++k) {
        const double r = std::round(layer.weight[k] / scale);
        ql.weight[k] =
            static_cast<int8_t>(std::max(-kInt8Max, std::min(kInt8Max, r)));
      }
    }
  }
  return q;
}

MlpParameters Dequantize(const QuantizedMlp& quantized) {
  MlpParameters p;
  p.x_mean = quantized.x_mean;
  p.x_std = quantized.x_std;
  p.y_mean = quantized.y_mean;
  p.y_std = quantized.y_std;
  for (const QuantizedDense& ql : quantized.layers) {
    DenseParameters& layer = p.layers.emplace_back();
    layer.inputs = ql.inputs;
    layer.outputs = ql.outputs;
    layer.bias = ql.bias;
    layer.activation = ql.activation;
    layer.weight.resize(ql.weight.size());
    for (size_t k = 0; k < ql.weight.size(); ++k) {
      const size_t row = ql.inputs > 0 ? k / static_cast<size_t>(ql.inputs) : 0;
      const double scale = row < ql.scale.size() ? ql.scale[row] : 0.0;
      layer.weight[k] = static_cast<double>(ql.weight[k]) * scale;
    }
  }
  return p;
}

int64_t Int8ModelBytes(const QuantizedMlp& quantized) {
  const QuantizedMlp& q = quantized;
  int64_t bytes =
      8 * StandardisationValues(q.x_mean, q.x_std, q.y_mean, q.y_std);
  for (const QuantizedDense& layer : q.layers) {
    bytes += static_cast<int64_t>(layer.weight.size()) +
             8 * static_cast<int64_t>(layer.scale.size() + layer.bias.size());
  }
  return bytes;
}

int64_t Float64ModelBytes(const MlpParameters& parameters) {
  const MlpParameters& p = parameters;
  return 8 * (StandardisationValues(p.x_mean, p.x_std, p.y_mean, p.y_std) +
              ParameterCount(p));
}

}  // namespace evonas::model
