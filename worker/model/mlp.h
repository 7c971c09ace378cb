#ifndef EVONAS_WORKER_MODEL_MLP_H_
#define EVONAS_WORKER_MODEL_MLP_H_

// A trained MLP as plain numbers: what the exporters (TorchScript, ONNX), the
// quantiser and the reference forward pass need. No LibTorch here.

#include <cstdint>
#include <vector>

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

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_MLP_H_
