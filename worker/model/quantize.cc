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
// The batch normalisation's epsilon (see ConvParameters in mlp.h).
constexpr double kBatchNormEps = 1e-5;

int64_t StandardisationValues(const std::vector<double>& x_mean,
                              const std::vector<double>& x_std,
                              const std::vector<double>& y_mean,
                              const std::vector<double>& y_std) {
  return static_cast<int64_t>(x_mean.size() + x_std.size() + y_mean.size() +
                              y_std.size());
}

// Quantises `weight` as `rows` rows of `row_length` values into `q` and
// `scale` (see Quantize). A malformed shape leaves the missing rows zero.
void QuantizeRows(const std::vector<double>& weight, int64_t rows,
                  int64_t row_length, std::vector<int8_t>& q,
                  std::vector<double>& scale) {
  q.assign(weight.size(), 0);
  scale.assign(rows, 0.0);
  for (int64_t o = 0; o < rows; ++o) {
    const size_t begin = static_cast<size_t>(o * row_length);
    const size_t end =
        std::min(begin + static_cast<size_t>(row_length), weight.size());
    if (begin >= end) continue;
    double max_abs = 0.0;
    bool finite = true;
    for (size_t k = begin; k < end; ++k) {
      if (!std::isfinite(weight[k])) finite = false;
      max_abs = std::max(max_abs, std::fabs(weight[k]));
    }
    if (!finite) {
      scale[o] = std::numeric_limits<double>::quiet_NaN();
      continue;
    }
    if (max_abs == 0.0) continue;
    const double s = max_abs / kInt8Max;
    scale[o] = s;
    for (size_t k = begin; k < end; ++k) {
      const double r = std::round(weight[k] / s);
      q[k] = static_cast<int8_t>(std::max(-kInt8Max, std::min(kInt8Max, r)));
    }
  }
}

// q * scale of its row, for rows of `row_length` values.
std::vector<double> DequantizeRows(const std::vector<int8_t>& q,
                                   const std::vector<double>& scale,
                                   int64_t row_length) {
  std::vector<double> w(q.size());
  for (size_t k = 0; k < q.size(); ++k) {
    const size_t row = row_length > 0 ? k / static_cast<size_t>(row_length) : 0;
    const double s = row < scale.size() ? scale[row] : 0.0;
    w[k] = static_cast<double>(q[k]) * s;
  }
  return w;
}

}  // namespace

ConvParameters FoldBatchNorm(const ConvParameters& conv) {
  ConvParameters c = conv;
  if (!c.batch_norm) return c;
  const int64_t row = c.in_channels * c.kernel_size * c.kernel_size;
  for (int64_t o = 0; o < c.out_channels; ++o) {
    const double s =
        c.bn_scale[o] / std::sqrt(c.bn_running_var[o] + kBatchNormEps);
    for (int64_t j = 0; j < row; ++j) c.weight[o * row + j] *= s;
    c.bias[o] = (c.bias[o] - c.bn_running_mean[o]) * s + c.bn_shift[o];
  }
  c.batch_norm = false;
  c.bn_scale.clear();
  c.bn_shift.clear();
  c.bn_running_mean.clear();
  c.bn_running_var.clear();
  return c;
}

QuantizedMlp Quantize(const MlpParameters& parameters) {
  QuantizedMlp q;
  q.x_mean = parameters.x_mean;
  q.x_std = parameters.x_std;
  q.y_mean = parameters.y_mean;
  q.y_std = parameters.y_std;
  q.image_height = parameters.image_height;
  q.image_width = parameters.image_width;
  for (const ConvParameters& conv : parameters.conv_layers) {
    // Folding first quantises what an int8 runtime runs. Per output
    // channel, folding multiplies the row by one factor, so the grid is the
    // same as that of the unfolded weights, scaled.
    const ConvParameters folded = FoldBatchNorm(conv);
    QuantizedConv& qc = q.conv_layers.emplace_back();
    qc.in_channels = folded.in_channels;
    qc.out_channels = folded.out_channels;
    qc.kernel_size = folded.kernel_size;
    qc.bias = folded.bias;
    qc.activation = folded.activation;
    qc.pooling = folded.pooling;
    qc.residual = folded.residual;
    qc.dropout = folded.dropout;
    QuantizeRows(folded.weight, folded.out_channels,
                 folded.in_channels * folded.kernel_size * folded.kernel_size,
                 qc.weight, qc.scale);
  }
  for (const DenseParameters& layer : parameters.layers) {
    QuantizedDense& ql = q.layers.emplace_back();
    ql.inputs = layer.inputs;
    ql.outputs = layer.outputs;
    ql.bias = layer.bias;
    ql.activation = layer.activation;
    ql.residual = layer.residual;
    ql.ln_scale = layer.ln_scale;
    ql.ln_shift = layer.ln_shift;
    QuantizeRows(layer.weight, layer.outputs, layer.inputs, ql.weight,
                 ql.scale);
  }
  return q;
}

MlpParameters Dequantize(const QuantizedMlp& quantized) {
  MlpParameters p;
  p.x_mean = quantized.x_mean;
  p.x_std = quantized.x_std;
  p.y_mean = quantized.y_mean;
  p.y_std = quantized.y_std;
  p.image_height = quantized.image_height;
  p.image_width = quantized.image_width;
  for (const QuantizedConv& qc : quantized.conv_layers) {
    ConvParameters& c = p.conv_layers.emplace_back();
    c.in_channels = qc.in_channels;
    c.out_channels = qc.out_channels;
    c.kernel_size = qc.kernel_size;
    c.bias = qc.bias;
    c.activation = qc.activation;
    c.pooling = qc.pooling;
    c.residual = qc.residual;
    c.dropout = qc.dropout;
    c.weight = DequantizeRows(qc.weight, qc.scale,
                              qc.in_channels * qc.kernel_size * qc.kernel_size);
  }
  for (const QuantizedDense& ql : quantized.layers) {
    DenseParameters& layer = p.layers.emplace_back();
    layer.inputs = ql.inputs;
    layer.outputs = ql.outputs;
    layer.bias = ql.bias;
    layer.activation = ql.activation;
    layer.residual = ql.residual;
    layer.ln_scale = ql.ln_scale;
    layer.ln_shift = ql.ln_shift;
    layer.weight = DequantizeRows(ql.weight, ql.scale, ql.inputs);
  }
  return p;
}

int64_t Int8ModelBytes(const QuantizedMlp& quantized) {
  const QuantizedMlp& q = quantized;
  int64_t bytes =
      8 * StandardisationValues(q.x_mean, q.x_std, q.y_mean, q.y_std);
  for (const QuantizedConv& conv : q.conv_layers) {
    bytes += static_cast<int64_t>(conv.weight.size()) +
             8 * static_cast<int64_t>(conv.scale.size() + conv.bias.size());
  }
  for (const QuantizedDense& layer : q.layers) {
    bytes +=
        static_cast<int64_t>(layer.weight.size()) +
        8 * static_cast<int64_t>(layer.scale.size() + layer.bias.size() +
                                 layer.ln_scale.size() + layer.ln_shift.size());
  }
  return bytes;
}

int64_t Float64ModelBytes(const MlpParameters& parameters) {
  const MlpParameters& p = parameters;
  // ParameterCount leaves out the running statistics (they are not
  // trained), but the float64 model stores them.
  int64_t running = 0;
  for (const ConvParameters& c : p.conv_layers) {
    running += static_cast<int64_t>(c.bn_running_mean.size() +
                                    c.bn_running_var.size());
  }
  return 8 * (StandardisationValues(p.x_mean, p.x_std, p.y_mean, p.y_std) +
              ParameterCount(p) + running);
}

}  // namespace evonas::model
