#include "common/genome_cost.h"

#include <algorithm>

#include "common/genome.h"
#include "common/saturating.h"

namespace evonas {
namespace {

struct Counts {
  int64_t weights = 0;
  int64_t biases = 0;  // biases, and batch normalisation's scales and shifts
  int64_t multiply_adds = 0;  // per sample, beyond `weights`
  int64_t batch_norm = 0;     // scales and shifts, folded away for int8
  int64_t layer_norm = 0;     // scales and shifts, kept in float64 for int8
};

// Each convolutional layer applies its k * k * in * out weights at every
// pixel of its (unpooled) input. Returns the trunk's flattened output size.
int64_t AddConvLayers(const v1::Genome& genome, const ImageShape& image,
                      Counts& counts) {
  const ConvOutput trunk = WalkConvLayers(
      genome, image, [&](const v1::ConvLayer& layer, const ConvOutput& in) {
        const int64_t out = std::max(0, layer.channels());
        const int64_t k = std::max(0, layer.kernel_size());
        const int64_t weights =
            SaturatingMul(SaturatingMul(k, k), SaturatingMul(in.channels, out));
        counts.weights = SaturatingAdd(counts.weights, weights);
        counts.biases = SaturatingAdd(counts.biases, out);
        if (layer.batch_norm()) {
          counts.batch_norm = SaturatingAdd(counts.batch_norm, 2 * out);
        }
        counts.multiply_adds = SaturatingAdd(
            counts.multiply_adds,
            SaturatingMul(weights, SaturatingMul(in.height, in.width) - 1));
      });
  return SaturatingMul(trunk.channels,
                       SaturatingMul(trunk.height, trunk.width));
}

void AddStage(const google::protobuf::RepeatedPtrField<v1::DenseLayer>& layers,
              int64_t inputs, int64_t outputs, Counts& counts) {
  int64_t fan_in = inputs;
  for (const v1::DenseLayer& layer : layers) {
    const int64_t width = std::max<int64_t>(0, layer.width());
    counts.weights = SaturatingAdd(counts.weights, SaturatingMul(fan_in, width));
    counts.biases = SaturatingAdd(counts.biases, width);
    if (layer.layer_norm()) {
      // Scales and shifts; per sample a mean, a variance and the
      // normalisation: about 5 operations per neuron.
      counts.layer_norm = SaturatingAdd(counts.layer_norm, 2 * width);
      counts.multiply_adds =
          SaturatingAdd(counts.multiply_adds, SaturatingMul(5, width));
    }
    fan_in = width;
  }
  counts.weights = SaturatingAdd(counts.weights, SaturatingMul(fan_in, outputs));
  counts.biases = SaturatingAdd(counts.biases, outputs);
}

}  // namespace

v1::GenomeCost ComputeGenomeCost(const v1::Genome& genome, int64_t inputs,
                                 int64_t outputs, const ImageShape& image) {
  Counts counts;
  if (genome.conv_layers_size() > 0) {
    inputs = AddConvLayers(genome, image, counts);
  }
  AddStage(genome.hidden_layers(), inputs, outputs, counts);
  for (const v1::Stage& stage : genome.residual_stages()) {
    AddStage(stage.hidden_layers(), inputs, outputs, counts);
  }
  const int64_t parameters =
      SaturatingAdd(SaturatingAdd(counts.weights, counts.biases),
                    SaturatingAdd(counts.batch_norm, counts.layer_norm));
  v1::GenomeCost cost;
  cost.set_parameter_count(parameters);
  cost.set_flops_per_sample(
      SaturatingAdd(counts.weights, counts.multiply_adds));
  cost.set_float64_bytes(SaturatingMul(8, parameters));
  cost.set_float32_bytes(SaturatingMul(4, parameters));
  // Per output row (or channel): int8 weights, a float64 scale and a float64
  // bias; batch normalisation folds into the convolution, layer
  // normalisation's scales and shifts stay float64.
  cost.set_int8_bytes(SaturatingAdd(
      SaturatingAdd(counts.weights, SaturatingMul(16, counts.biases)),
      SaturatingMul(8, counts.layer_norm)));
  return cost;
}

int64_t TrainedWeightBytes(const v1::Genome& genome,
                           const v1::GenomeCost& cost) {
  return EffectivePrecision(genome) == v1::PRECISION_FLOAT32
             ? cost.float32_bytes()
             : cost.float64_bytes();
}

}  // namespace evonas
