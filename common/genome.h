#ifndef EVONAS_COMMON_GENOME_H_
#define EVONAS_COMMON_GENOME_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "evonas/v1/types.pb.h"

namespace evonas {

// Largest values a genome may hold; ValidateGenome enforces them.
inline constexpr int kMaxHiddenLayers = 32;
inline constexpr int kMaxLayerWidth = 4096;
inline constexpr int kMaxAdamSteps = 1000000;
inline constexpr int kMaxLbfgsSteps = 100000;

// OK when a worker can build and train `genome`; otherwise InvalidArgument
// naming the offending field.
absl::Status ValidateGenome(const v1::Genome& genome);

// Trainable parameters of the MLP `genome` describes with `inputs` inputs
// and `outputs` outputs: weights and biases of every hidden layer and of the
// implicit linear output layer. Does not validate `genome`.
int64_t ParameterCount(const v1::Genome& genome, int64_t inputs,
                       int64_t outputs);

// Short human-readable description, e.g. "64tanh-32silu lr=3e-03 adam=2000
// lbfgs=200 batch=full".
std::string DescribeGenome(const v1::Genome& genome);

// Name of an activation as used in descriptions and the CLI: "tanh", "relu",
// "silu", "gelu", "sine"; "unspecified" for 0 and "activationN" for an
// unknown value N.
std::string ActivationName(v1::Activation activation);

}  // namespace evonas

#endif  // EVONAS_COMMON_GENOME_H_
