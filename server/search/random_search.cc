#include "server/search/random_search.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "common/validation_split.h"

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
  v1::Genome genome;
  const int depth = uniform_int(space_.min_depth(), space_.max_depth());
  const v1::Activation activation = static_cast<v1::Activation>(
      space_.activations(uniform_int(0, space_.activations_size() - 1)));
  // Widths log-uniform: as many small networks as large ones.
  std::uniform_real_distribution<double> log_width(
      std::log(space_.min_width()), std::log(space_.max_width() + 1.0));
  for (int i = 0; i < depth; ++i) {
    v1::DenseLayer* layer = genome.add_hidden_layers();
    int width = static_cast<int>(std::exp(log_width(rng)));
    layer->set_width(std::clamp(width, space_.min_width(), space_.max_width()));
    layer->set_activation(activation);
  }
  v1::TrainingConfig* training = genome.mutable_training();
  std::uniform_real_distribution<double> log_lr(
      std::log(space_.min_learning_rate()),
      std::log(space_.max_learning_rate()));
  training->set_learning_rate(std::exp(log_lr(rng)));
  training->set_adam_steps(
      uniform_int(space_.min_adam_steps(), space_.max_adam_steps()));
  training->set_lbfgs_steps(space_.lbfgs_steps());
  training->set_batch_size(0);
  return genome;
}

}  // namespace evonas::search
