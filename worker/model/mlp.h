#ifndef EVONAS_WORKER_MODEL_MLP_H_
#define EVONAS_WORKER_MODEL_MLP_H_

// A trained MLP as plain numbers: what the exporters (TorchScript, ONNX), the
// quantiser and the reference forward pass need. No LibTorch here.

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "evonas/v1/types.pb.h"

namespace evonas::model {

// One affine layer y = activation(W x + b).
struct DenseParameters {
  int64_t inputs = 0;
  int64_t outputs = 0;
  std::vector<double> weight;  // outputs x inputs, row-major (PyTorch layout)
  std::vector<double> bias;    // outputs
  // ACTIVATION_UNSPECIFIED for the final (linear) layer.
  v1::Activation activation = v1::ACTIVATION_UNSPECIFIED;
};

// The whole network in raw units: x_std = (x - x_mean) / x_std, then the
// layers, then y = out * y_std + y_mean.
struct MlpParameters {
  std::vector<double> x_mean, x_std;  // one per input
  std::vector<double> y_mean, y_std;  // one per output
  std::vector<DenseParameters> layers;
};

// OK when `parameters` describes a network Forward and the exporters can
// run: at least one layer, each layer's inputs equal to the previous one's
// outputs, weight and bias sizes matching, one mean and deviation per input
// of the first layer and per output of the last, a known activation on every
// layer but the last and none on the last. Otherwise InvalidArgument naming
// the field. Does not look at the values (NaN weights are "valid").
absl::Status ValidateMlp(const MlpParameters& parameters);

// The reference forward pass in plain float64 C++: `x` holds `rows` rows of
// raw inputs (row-major, rows x inputs); returns rows x outputs raw outputs.
// Computes what the trainer's TorchScript model computes, in the same order:
// (x - x_mean) / x_std, per layer activation(W h + b) with tanh, relu,
// silu(h) = h / (1 + exp(-h)), gelu(h) = (h / 2) (1 + erf(h / sqrt(2))) and
// sin, a linear last layer, then out * y_std + y_mean. Results agree with
// LibTorch to rounding (summation order differs). Returns an empty vector
// when ValidateMlp fails or x.size() != rows * inputs. Thread-safe.
std::vector<double> Forward(const MlpParameters& parameters,
                            const std::vector<double>& x, int64_t rows);

// Trainable parameters: every weight and bias (the standardisation constants
// are not counted), as v1::Metrics.parameter_count and evonas::ParameterCount
// of the genome count them.
int64_t ParameterCount(const MlpParameters& parameters);

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_MLP_H_
