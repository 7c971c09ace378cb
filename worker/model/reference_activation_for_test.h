#ifndef EVONAS_WORKER_MODEL_REFERENCE_ACTIVATION_FOR_TEST_H_
#define EVONAS_WORKER_MODEL_REFERENCE_ACTIVATION_FOR_TEST_H_

// For tests only: the activations written out from their definitions, one
// scalar at a time, as an independent check of the kernels and exporters.

#include <cmath>

#include "evonas/v1/types.pb.h"

namespace evonas::model {

// ACTIVATION_UNSPECIFIED (the linear output layer) returns z.
inline double ReferenceActivation(v1::Activation a, double z) {
  switch (a) {
    case v1::ACTIVATION_TANH:
      return std::tanh(z);
    case v1::ACTIVATION_RELU:
      return z > 0 ? z : 0.0;
    case v1::ACTIVATION_SILU:
      return z / (1 + std::exp(-z));
    case v1::ACTIVATION_GELU:
      return 0.5 * z * (1 + std::erf(z / std::sqrt(2.0)));
    case v1::ACTIVATION_SINE:
      return std::sin(z);
    case v1::ACTIVATION_GAUSSIAN:
      return std::exp(-z * z);
    default:
      return z;
  }
}

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_REFERENCE_ACTIVATION_FOR_TEST_H_
