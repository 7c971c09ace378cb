#ifndef EVONAS_COMMON_GENOME_COST_H_
#define EVONAS_COMMON_GENOME_COST_H_

#include <cstdint>

#include "common/genome.h"
#include "evonas/v1/types.pb.h"

namespace evonas {

// The cheap objectives of `genome` (types.proto, GenomeCost) for a network
// with `inputs` inputs and `outputs` outputs, summed over every stage
// (Genome.hidden_layers and each of Genome.residual_stages; each stage is a
// full MLP from the inputs to the outputs). Per affine layer with n_in
// inputs and n_out outputs (hidden layers, residual or not, and the linear
// output layer): n_in * n_out weights and n_out biases.
//   parameter_count  = weights + biases
//   flops_per_sample = weights (one multiply-add per weight; residual
//                      additions, biases and activations are not counted)
//   float64_bytes    = 8 * parameter_count
//   float32_bytes    = 4 * parameter_count
//   int8_bytes       = weights + 8 * rows + 8 * biases, where rows = biases
//                      (one float64 scale per output row)
// A layer-normalised hidden layer (DenseLayer.layer_norm) of width n adds
// 2 * n parameters (its scales and shifts; 8 bytes each also in int8) and
// 5 * n operations per sample to flops_per_sample.
// Standardisation constants are not weights and not counted. A
// convolutional layer with k x k kernels, `in` and `out` channels on an
// h x w input (before its pooling) has k * k * in * out weights, out biases
// (3 * out with batch normalisation's scale and shift, as ParameterCount
// counts them) and h * w * k * k * in * out multiply-adds; the first dense
// layer's fan-in is the trunk's flattened output (ConvOutputShape, for
// `image`). Does not validate `genome`; a layer with a non-positive width
// counts as width 0, and counts beyond int64 saturate at its maximum.
// Thread-safe, pure.
v1::GenomeCost ComputeGenomeCost(const v1::Genome& genome, int64_t inputs,
                                 int64_t outputs, const ImageShape& image = {});

// The bytes of `genome`'s weights in the type it is trained and exported in
// (EffectivePrecision): cost.float32_bytes or cost.float64_bytes. What a
// max_model_bytes requirement screens at level 0.
int64_t TrainedWeightBytes(const v1::Genome& genome,
                           const v1::GenomeCost& cost);

}  // namespace evonas

#endif  // EVONAS_COMMON_GENOME_COST_H_
