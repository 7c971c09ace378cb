#include "common/genome_cost.h"

#include <algorithm>

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
    counts.weights += fan_in * width;
    counts.biases += width;
    fan_in = width;
  }
  counts.weights += fan_in * outputs;
  counts.biases += outputs;
}

}  // namespace

v1::GenomeCost ComputeGenomeCost(const v1::Genome& genome, int64_t inputs,
                                 int64_t outputs) {
  Counts counts;
  AddStage(genome.hidden_layers(), inputs, outputs, counts);
  for (const v1::Stage& stage : genome.residual_stages()) {
    AddStage(stage.hidden_layers(), inputs, outputs, counts);
  }
  const int64_t parameters = counts.weights + counts.biases;
  v1::GenomeCost cost;
  cost.set_parameter_count(parameters);
  cost.set_flops_per_sample(counts.weights);
  cost.set_float64_bytes(8 * parameters);
  cost.set_float32_bytes(4 * parameters);
  // Per output row: int8 weights, a float64 scale and a float64 bias.
  cost.set_int8_bytes(counts.weights + 16 * counts.biases);
  return cost;
}

}  // namespace evonas
