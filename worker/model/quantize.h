#ifndef EVONAS_WORKER_MODEL_QUANTIZE_H_
#define EVONAS_WORKER_MODEL_QUANTIZE_H_

// Post-training weight-only int8 quantisation of an MLP: each weight row (one
// output neuron) gets a symmetric int8 grid with its own float64 scale;
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
};

struct QuantizedMlp {
  std::vector<double> x_mean, x_std;  // unchanged
  std::vector<double> y_mean, y_std;  // unchanged
  std::vector<QuantizedDense> layers;
};

// Quantises every layer's weights row by row: scale = max |w| / 127 over the
// row, q = round(w / scale) (half away from zero), so |w - q * scale| <=
// scale / 2 for every weight. An all-zero row gets scale 0. A row with a
// non-finite weight gets a NaN scale (its outputs become NaN after
// Dequantize, so metrics computed from it fail loudly). Expects parameters
// that pass ValidateMlp; copies the layer shapes as they are.
QuantizedMlp Quantize(const MlpParameters& parameters);

// The float64 network the int8 model computes: W = q * scale. Run Forward on
// it to measure the accuracy after quantisation.
MlpParameters Dequantize(const QuantizedMlp& quantized);

// Storage of the int8 model: one byte per weight plus eight per scale, bias
// and standardisation constant.
int64_t Int8ModelBytes(const QuantizedMlp& quantized);

// The same storage count for the float64 network: eight bytes per weight,
// bias and standardisation constant. Int8ModelBytes is about an eighth of it
// for layers wider than a few neurons.
int64_t Float64ModelBytes(const MlpParameters& parameters);

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_QUANTIZE_H_
