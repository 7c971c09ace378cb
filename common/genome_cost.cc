#include "common/genome_cost.h"

#include <algorithm>

#include "common/saturating.h"

namespace evonas {
namespace {

struct Counts {
  int64_t weights = 0;
  int64_t biases = 0;
};

void AddStage(const google::protobuf::RepeatedPtrField<v1::DenseLayer>& layers,
              int64_t inputs, int64_t outputs, Counts& counts) {
  int64_t fan_in = inputs;
  for (const v1::DenseLayer& layer : layers) {
    const int64_t width = std::max<int64_t>(0, layer.width());
    counts.weights = SaturatingAdd(counts.weights, SaturatingMul(fan_in, width));
    counts.biases = SaturatingAdd(counts.biases, width);
    fan_in = width;
  }
  counts.weights = SaturatingAdd(counts.weights, SaturatingMul(fan_in, outputs));
  counts.biases = SaturatingAdd(counts.biases, outputs);
}

}  // namespace

v1::GenomeCost ComputeGenomeCost(const v1::Genome& genome, int64_t inputs,
                                 int64_t outputs) {
  Counts counts;
  AddStage(genome.hidden_layers(), inputs, outputs, counts);
  for (const v1::Stage& stage : genome.residual_stages()) {
    AddStage(stage.hidden_layers(), inputs, outputs, counts);
  }
  const int64_t parameters = SaturatingAdd(counts.weights, counts.biases);
  v1::GenomeCost cost;
  cost.set_parameter_count(parameters);
  cost.set_flops_per_sample(counts.weights);
  cost.set_float64_bytes(SaturatingMul(8, parameters));
  cost.set_float32_bytes(SaturatingMul(4, parameters));
  // Per output row: int8 weights, a float64 scale and a float64 bias.
  cost.set_int8_bytes(
      SaturatingAdd(counts.weights, SaturatingMul(16, counts.biases)));
  return cost;
}

}  // namespace evonas
