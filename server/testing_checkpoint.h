#ifndef EVONAS_SERVER_TESTING_CHECKPOINT_H_
#define EVONAS_SERVER_TESTING_CHECKPOINT_H_

#include <cstdint>
#include <string>

#include "evonas/v1/types.pb.h"

namespace evonas::testing {

// A checkpoint (v1::NetworkWeights) of the shapes a worker writes for
// `genome` with `inputs` inputs and `outputs` outputs: unit standardisation
// and small finite weights. Tests of the controller's checks change it.
inline v1::NetworkWeights CheckpointWeights(const v1::Genome& genome,
                                            int64_t inputs, int64_t outputs) {
  v1::NetworkWeights weights;
  auto add_stage = [&](const auto& hidden_layers) {
    v1::StageWeights* stage = weights.add_stages();
    for (int64_t i = 0; i < inputs; ++i) {
      stage->add_x_mean(0.5);
      stage->add_x_std(2.0);
    }
    for (int64_t i = 0; i < outputs; ++i) {
      stage->add_y_mean(-1.0);
      stage->add_y_std(3.0);
    }
    int64_t in = inputs;
    auto add_layer = [&](int64_t out, v1::Activation activation,
                         bool residual) {
      v1::LayerWeights* layer = stage->add_layers();
      layer->set_inputs(in);
      layer->set_outputs(out);
      for (int64_t k = 0; k < in * out; ++k) layer->add_weight(0.01 * (k % 7));
      for (int64_t k = 0; k < out; ++k) layer->add_bias(-0.02 * k);
      layer->set_activation(activation);
      layer->set_residual(residual);
      in = out;
    };
    for (const v1::DenseLayer& hidden : hidden_layers) {
      add_layer(hidden.width(), hidden.activation(), hidden.residual());
    }
    add_layer(outputs, v1::ACTIVATION_UNSPECIFIED, false);
  };
  add_stage(genome.hidden_layers());
  for (const v1::Stage& stage : genome.residual_stages()) {
    add_stage(stage.hidden_layers());
  }
  return weights;
}

inline std::string Checkpoint(const v1::Genome& genome, int64_t inputs,
                              int64_t outputs) {
  return CheckpointWeights(genome, inputs, outputs).SerializeAsString();
}

}  // namespace evonas::testing

#endif  // EVONAS_SERVER_TESTING_CHECKPOINT_H_
