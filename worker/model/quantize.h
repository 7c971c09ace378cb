#ifndef EVONAS_WORKER_MODEL_QUANTIZE_H_
#define EVONAS_WORKER_MODEL_QUANTIZE_H_

// Post-training weight-only int8 quantisation of an MLP or a convolutional
// network: each weight row (one output neuron, or one output channel of a
// convolution) gets a symmetric int8 grid with its own float64 scale;
// biases and the standardisation stay float64. No LibTorch.

#include <cstdint>
#include <vector>

#include "evonas/v1/types.pb.h"
#include "worker/model/mlp.h"

namespace evonas::model {

// One affine layer with int8 weights: W[o][i] ~= weight[o * inputs + i] *
// scale[o].
struct QuantizedDense {
  int64_t inputs = 0;
  int64_t outputs = 0;
  std::vector<int8_t> weight;  // outputs x inputs, row-major, in [-127, 127]
  std::vector<double> scale;   // outputs: max |W[o][.]| / 127
  std::vector<double> bias;    // outputs, unchanged
  v1::Activation activation = v1::ACTIVATION_UNSPECIFIED;
  bool residual = false;
  // Layer normalisation's scale and shift, unchanged (empty without it).
  std::vector<double> ln_scale, ln_shift;
};

// One convolutional layer with int8 weights and its batch normalisation
// folded in (FoldBatchNorm), as an int8 runtime deploys it: W[o][c][y][x]
// ~= weight[((o * in + c) * k + y) * k + x] * scale[o].
struct QuantizedConv {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t kernel_size = 0;
  std::vector<int8_t> weight;  // out x in x k x k, in [-127, 127]
  std::vector<double> scale;   // out_channels: max |W[o][...]| / 127
  std::vector<double> bias;    // out_channels, batch norm folded in
  v1::Activation activation = v1::ACTIVATION_RELU;
  v1::Pooling pooling = v1::POOLING_NONE;
  bool residual = false;
  double dropout = 0;
};

struct QuantizedMlp {
  std::vector<double> x_mean, x_std;  // unchanged
  std::vector<double> y_mean, y_std;  // unchanged
  std::vector<QuantizedConv> conv_layers;
  int64_t image_height = 0;
  int64_t image_width = 0;
  std::vector<QuantizedDense> layers;
};

// `conv` with its batch normalisation folded into the convolution, computed
// in float64: per output channel s = bn_scale / sqrt(bn_running_var + 1e-5),
// weight * s and (bias - bn_running_mean) * s + bn_shift, and batch_norm
// off. Computes what `conv` computes up to rounding; unchanged without
// batch norm. The ONNX export writes these weights too.
ConvParameters FoldBatchNorm(const ConvParameters& conv);

// Quantises every layer's weights row by row (a convolution's after
// FoldBatchNorm, one row per output channel): scale = max |w| / 127 over
// the row, q = round(w / scale) (half away from zero), so |w - q * scale|
// <= scale / 2 for every weight. An all-zero row gets scale 0. A row with a
// non-finite weight gets a NaN scale (its outputs become NaN after
// Dequantize, so metrics computed from it fail loudly). Expects parameters
// that pass ValidateMlp; copies the layer shapes as they are.
QuantizedMlp Quantize(const MlpParameters& parameters);

// The float64 network the int8 model computes: W = q * scale, convolutions
// without batch norm (it is folded). Run Forward on it to measure the
// accuracy after quantisation.
MlpParameters Dequantize(const QuantizedMlp& quantized);

// Storage of the int8 model: one byte per weight plus eight per scale, bias
// and standardisation constant.
int64_t Int8ModelBytes(const QuantizedMlp& quantized);

// The same storage count for the float64 network: eight bytes per weight,
// bias, batch norm value (scale, shift and the running statistics) and
// standardisation constant. Int8ModelBytes is about an eighth of it for
// layers wider than a few neurons.
int64_t Float64ModelBytes(const MlpParameters& parameters);

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_QUANTIZE_H_
