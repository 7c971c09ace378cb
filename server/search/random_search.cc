#include "server/search/random_search.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "common/validation_split.h"
#include "server/search/mutation.h"

namespace evonas::search {

Proposal RandomSearch::Propose(int64_t sequence,
                               const std::vector<v1::Candidate>& finished) {
  (void)finished;  // random search ignores results by design
  return {Sample(sequence), "", {}};
}

v1::Genome RandomSearch::Sample(int64_t sequence) const {
  std::mt19937_64 rng(SplitMix64(seed_ ^ SplitMix64(sequence)));
  auto uniform_int = [&rng](int lo, int hi) {
    return std::uniform_int_distribution<int>(lo, hi)(rng);
  };
  // Widths log-uniform: as many small networks as large ones.
  std::uniform_real_distribution<double> log_width(
      std::log(space_.min_width()), std::log(space_.max_width() + 1.0));
  auto sample_layers = [&](google::protobuf::RepeatedPtrField<v1::DenseLayer>&
                               layers,
                           int stage) {
    const int depth = uniform_int(space_.min_depth(), space_.max_depth());
    const auto& activations = StageActivations(space_, stage);
    const v1::Activation activation = static_cast<v1::Activation>(
        activations[uniform_int(0, activations.size() - 1)]);
    for (int i = 0; i < depth; ++i) {
      v1::DenseLayer* layer = layers.Add();
      int width = static_cast<int>(std::exp(log_width(rng)));
      layer->set_width(
          std::clamp(width, space_.min_width(), space_.max_width()));
      layer->set_activation(activation);
    }
  };
  // Drawn after the layers and training of the first stage, so that a space
  // without residual layers samples as before they existed.
  auto sample_residuals =
      [&](google::protobuf::RepeatedPtrField<v1::DenseLayer>& layers) {
        if (!space_.allow_residual()) return;
        for (int i = 1; i < layers.size(); ++i) {
          if (uniform_int(0, 1) == 1) {
            layers[i].set_residual(true);
            layers[i].set_width(layers[i - 1].width());
          }
        }
      };

  v1::Genome genome;
  sample_layers(*genome.mutable_hidden_layers(), 0);
  v1::TrainingConfig* training = genome.mutable_training();
  std::uniform_real_distribution<double> log_lr(
      std::log(space_.min_learning_rate()),
      std::log(space_.max_learning_rate()));
  training->set_learning_rate(std::exp(log_lr(rng)));
  training->set_adam_steps(
      uniform_int(space_.min_adam_steps(), space_.max_adam_steps()));
  training->set_lbfgs_steps(space_.lbfgs_steps());
  training->set_batch_size(space_.batch_size());
  sample_residuals(*genome.mutable_hidden_layers());
  if (space_.search_training_extras()) SampleTrainingExtras(*training, rng);

  const int stages = space_.max_residual_stages() > 0 && !space_.grow_stages()
                         ? uniform_int(0, space_.max_residual_stages())
                         : 0;
  for (int s = 0; s < stages; ++s) {
    v1::Stage* stage = genome.add_residual_stages();
    sample_layers(*stage->mutable_hidden_layers(), s + 1);
    sample_residuals(*stage->mutable_hidden_layers());
    *stage->mutable_training() = *training;
    if (HasSineLayer(*stage)) {
      stage->mutable_training()->set_siren_omega(space_.search_training_extras()
                                                     ? SampleSirenOmega(rng)
                                                     : kSearchSirenOmega);
    }
  }
  // Last, so that a space without convolutions samples as before they
  // existed.
  if (space_.max_conv_layers() > 0) SampleConvLayers(space_, rng, genome);
  SamplePrecision(space_, rng, genome);
  // Last again, for the same reason; dense networks only.
  if (space_.allow_layer_norm() && genome.conv_layers_size() == 0) {
    auto sample_layer_norms =
        [&](google::protobuf::RepeatedPtrField<v1::DenseLayer>& layers) {
          for (v1::DenseLayer& layer : layers) {
            if (layer.width() >= 2 && uniform_int(0, 1) == 1) {
              layer.set_layer_norm(true);
            }
          }
        };
    sample_layer_norms(*genome.mutable_hidden_layers());
    for (v1::Stage& stage : *genome.mutable_residual_stages()) {
      sample_layer_norms(*stage.mutable_hidden_layers());
    }
  }
  return genome;
}

}  // namespace evonas::search
