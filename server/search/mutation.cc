#include "server/search/mutation.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_format.h"

namespace evonas::search {
namespace {

using Operator = std::optional<v1::Genome> (*)(const v1::Genome&,
                                               const v1::SearchSpace&,
                                               std::mt19937_64&);

int UniformInt(std::mt19937_64& rng, int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

bool Coin(std::mt19937_64& rng) { return UniformInt(rng, 0, 1) == 1; }

// A factor in (1, 2], log-uniform.
double GrowthFactor(std::mt19937_64& rng) {
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  return std::exp2(1.0 - u);
}

// Exponent of a perturbation: uniform in ±[0.1, 1], sign random.
double PerturbationExponent(std::mt19937_64& rng) {
  const double u = std::uniform_real_distribution<double>(0.1, 1.0)(rng);
  return Coin(rng) ? u : -u;
}

bool InSpace(v1::Activation activation, const v1::SearchSpace& space) {
  return std::find(space.activations().begin(), space.activations().end(),
                   activation) != space.activations().end();
}

// Positive `x` rounded to three significant decimal digits; the nearest
// double to that decimal, so the result does not depend on rounding noise.
double RoundToThreeDigits(double x) {
  return std::strtod(absl::StrFormat("%.2e", x).c_str(), nullptr);
}

}  // namespace

v1::Genome ClampToSpace(const v1::Genome& genome,
                        const v1::SearchSpace& space) {
  v1::Genome out = genome;
  auto* layers = out.mutable_hidden_layers();
  if (layers->empty()) {
    v1::DenseLayer* layer = layers->Add();
    layer->set_width(space.min_width());
    layer->set_activation(static_cast<v1::Activation>(space.activations(0)));
  }
  while (layers->size() > space.max_depth()) layers->RemoveLast();
  while (layers->size() < space.min_depth()) {
    v1::DenseLayer last = layers->Get(layers->size() - 1);
    *layers->Add() = last;
  }
  for (v1::DenseLayer& layer : *layers) {
    layer.set_width(
        std::clamp(layer.width(), space.min_width(), space.max_width()));
    if (!InSpace(layer.activation(), space)) {
      layer.set_activation(static_cast<v1::Activation>(space.activations(0)));
    }
  }
  v1::TrainingConfig* training = out.mutable_training();
  double lr = training->learning_rate();
  if (!(lr >= space.min_learning_rate())) lr = space.min_learning_rate();
  if (!(lr <= space.max_learning_rate())) lr = space.max_learning_rate();
  training->set_learning_rate(lr);
  training->set_adam_steps(std::clamp(
      training->adam_steps(), space.min_adam_steps(), space.max_adam_steps()));
  training->set_lbfgs_steps(space.lbfgs_steps());
  if (training->batch_size() < 0) training->set_batch_size(0);
  return out;
}

std::optional<v1::Genome> AddLayer(const v1::Genome& genome,
                                   const v1::SearchSpace& space,
                                   std::mt19937_64& rng) {
  v1::Genome out = ClampToSpace(genome, space);
  const int depth = out.hidden_layers_size();
  if (depth >= space.max_depth()) return std::nullopt;
  const int position = UniformInt(rng, 0, depth);
  std::vector<v1::DenseLayer> layers(out.hidden_layers().begin(),
                                     out.hidden_layers().end());
  const v1::DenseLayer copy = layers[std::max(0, position - 1)];
  layers.insert(layers.begin() + position, copy);
  out.clear_hidden_layers();
  for (v1::DenseLayer& layer : layers) *out.add_hidden_layers() = layer;
  return out;
}

std::optional<v1::Genome> RemoveLayer(const v1::Genome& genome,
                                      const v1::SearchSpace& space,
                                      std::mt19937_64& rng) {
  v1::Genome out = ClampToSpace(genome, space);
  const int depth = out.hidden_layers_size();
  if (depth <= space.min_depth()) return std::nullopt;
  const int position = UniformInt(rng, 0, depth - 1);
  out.mutable_hidden_layers()->erase(out.mutable_hidden_layers()->begin() +
                                     position);
  return out;
}

std::optional<v1::Genome> Widen(const v1::Genome& genome,
                                const v1::SearchSpace& space,
                                std::mt19937_64& rng) {
  v1::Genome out = ClampToSpace(genome, space);
  std::vector<int> eligible;
  for (int i = 0; i < out.hidden_layers_size(); ++i) {
    if (out.hidden_layers(i).width() < space.max_width()) eligible.push_back(i);
  }
  if (eligible.empty()) return std::nullopt;
  v1::DenseLayer* layer = out.mutable_hidden_layers(
      eligible[UniformInt(rng, 0, static_cast<int>(eligible.size()) - 1)]);
  const int width = layer->width();
  const long wider = std::lround(width * GrowthFactor(rng));
  layer->set_width(static_cast<int>(std::clamp<long>(
      std::max<long>(width + 1, wider), width + 1, space.max_width())));
  return out;
}

std::optional<v1::Genome> Narrow(const v1::Genome& genome,
                                 const v1::SearchSpace& space,
                                 std::mt19937_64& rng) {
  v1::Genome out = ClampToSpace(genome, space);
  std::vector<int> eligible;
  for (int i = 0; i < out.hidden_layers_size(); ++i) {
    if (out.hidden_layers(i).width() > space.min_width()) eligible.push_back(i);
  }
  if (eligible.empty()) return std::nullopt;
  v1::DenseLayer* layer = out.mutable_hidden_layers(
      eligible[UniformInt(rng, 0, static_cast<int>(eligible.size()) - 1)]);
  const int width = layer->width();
  const long narrower = std::lround(width / GrowthFactor(rng));
  layer->set_width(static_cast<int>(std::clamp<long>(
      std::min<long>(width - 1, narrower), space.min_width(), width - 1)));
  return out;
}

std::optional<v1::Genome> ChangeActivation(const v1::Genome& genome,
                                           const v1::SearchSpace& space,
                                           std::mt19937_64& rng) {
  v1::Genome out = ClampToSpace(genome, space);
  v1::DenseLayer* layer = out.mutable_hidden_layers(
      UniformInt(rng, 0, out.hidden_layers_size() - 1));
  std::vector<v1::Activation> others;
  for (int a : space.activations()) {
    const auto activation = static_cast<v1::Activation>(a);
    if (activation != layer->activation() &&
        std::find(others.begin(), others.end(), activation) == others.end()) {
      others.push_back(activation);
    }
  }
  if (others.empty()) return std::nullopt;
  layer->set_activation(
      others[UniformInt(rng, 0, static_cast<int>(others.size()) - 1)]);
  return out;
}

std::optional<v1::Genome> PerturbLearningRate(const v1::Genome& genome,
                                              const v1::SearchSpace& space,
                                              std::mt19937_64& rng) {
  v1::Genome out = ClampToSpace(genome, space);
  const double lo = space.min_learning_rate();
  const double hi = space.max_learning_rate();
  if (!(lo < hi)) return std::nullopt;
  const double lr = out.training().learning_rate();
  const double exponent = PerturbationExponent(rng);
  for (double direction : {1.0, -1.0}) {
    const double changed = std::clamp(
        RoundToThreeDigits(lr * std::exp2(direction * exponent)), lo, hi);
    if (changed != lr) {
      out.mutable_training()->set_learning_rate(changed);
      return out;
    }
  }
  return std::nullopt;
}

std::optional<v1::Genome> PerturbAdamSteps(const v1::Genome& genome,
                                           const v1::SearchSpace& space,
                                           std::mt19937_64& rng) {
  v1::Genome out = ClampToSpace(genome, space);
  const int lo = space.min_adam_steps();
  const int hi = space.max_adam_steps();
  if (lo >= hi) return std::nullopt;
  const int steps = out.training().adam_steps();
  const double exponent = PerturbationExponent(rng);
  for (double direction : {1.0, -1.0}) {
    const long scaled = std::lround(steps * std::exp2(direction * exponent));
    const long rounded = std::lround(scaled / 10.0) * 10;
    long changed = rounded != steps && rounded >= lo && rounded <= hi
                       ? rounded
                       : std::clamp<long>(scaled, lo, hi);
    if (changed != steps) {
      out.mutable_training()->set_adam_steps(static_cast<int>(changed));
      return out;
    }
  }
  // Tiny step counts: a relative change rounds away; move by one instead.
  out.mutable_training()->set_adam_steps(steps < hi ? steps + 1 : steps - 1);
  return out;
}

v1::Genome Crossover(const v1::Genome& a, const v1::Genome& b,
                     const v1::SearchSpace& space, std::mt19937_64& rng) {
  const bool depth_from_a = Coin(rng);
  const v1::Genome& shape = depth_from_a ? a : b;
  const v1::Genome& other = depth_from_a ? b : a;
  v1::Genome child;
  for (int i = 0; i < shape.hidden_layers_size(); ++i) {
    const bool take_other = i < other.hidden_layers_size() && Coin(rng);
    *child.add_hidden_layers() =
        take_other ? other.hidden_layers(i) : shape.hidden_layers(i);
  }
  v1::TrainingConfig* training = child.mutable_training();
  *training = shape.training();
  training->set_learning_rate((Coin(rng) ? a : b).training().learning_rate());
  training->set_adam_steps((Coin(rng) ? a : b).training().adam_steps());
  return ClampToSpace(child, space);
}

v1::Genome Mutate(const v1::Genome& genome, const v1::SearchSpace& space,
                  std::mt19937_64& rng) {
  std::array<Operator, 7> operators = {
      &AddLayer,         &RemoveLayer,      &Widen,
      &Narrow,           &ChangeActivation, &PerturbLearningRate,
      &PerturbAdamSteps,
  };
  // The first applicable operator of a random permutation is uniform over
  // the applicable ones.
  std::shuffle(operators.begin(), operators.end(), rng);
  for (Operator op : operators) {
    std::optional<v1::Genome> child = op(genome, space, rng);
    if (child) return *std::move(child);
  }
  return ClampToSpace(genome, space);
}

}  // namespace evonas::search
