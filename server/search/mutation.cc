#include "server/search/mutation.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/genome.h"
#include "google/protobuf/util/message_differencer.h"

namespace evonas::search {
namespace {

using Layers = google::protobuf::RepeatedPtrField<v1::DenseLayer>;
using ConvLayers = google::protobuf::RepeatedPtrField<v1::ConvLayer>;
using Operator = std::optional<Child> (*)(const v1::Genome&,
                                          const v1::SearchSpace&,
                                          std::mt19937_64&);

// A hidden layer: its stage and its index within the stage.
struct Location {
  int stage = 0;
  int layer = 0;
};

int UniformInt(std::mt19937_64& rng, int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

bool Coin(std::mt19937_64& rng) { return UniformInt(rng, 0, 1) == 1; }

template <typename T>
const T& PickOne(const std::vector<T>& items, std::mt19937_64& rng) {
  return items[UniformInt(rng, 0, static_cast<int>(items.size()) - 1)];
}

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

bool InList(v1::Activation activation,
            const google::protobuf::RepeatedField<int>& list) {
  return std::find(list.begin(), list.end(), activation) != list.end();
}

v1::Activation DrawActivation(const google::protobuf::RepeatedField<int>& list,
                              std::mt19937_64& rng) {
  return static_cast<v1::Activation>(
      list[UniformInt(rng, 0, list.size() - 1)]);
}

double SampleDropout(std::mt19937_64& rng) {
  // Half the layers without dropout; the rest 0.1..0.5 in steps of 0.1.
  return Coin(rng) ? 0.0 : 0.1 * UniformInt(rng, 1, 5);
}

// Positive `x` rounded to three significant decimal digits; the nearest
// double to that decimal, so the result does not depend on rounding noise.
double RoundToThreeDigits(double x) {
  return std::strtod(absl::StrFormat("%.2e", x).c_str(), nullptr);
}

int StageCount(const v1::Genome& genome) {
  return 1 + genome.residual_stages_size();
}

const Layers& StageLayers(const v1::Genome& genome, int stage) {
  return stage == 0 ? genome.hidden_layers()
                    : genome.residual_stages(stage - 1).hidden_layers();
}

Layers& MutableStageLayers(v1::Genome& genome, int stage) {
  return stage == 0
             ? *genome.mutable_hidden_layers()
             : *genome.mutable_residual_stages(stage - 1)->mutable_hidden_layers();
}

v1::TrainingConfig& MutableStageTraining(v1::Genome& genome, int stage) {
  return stage == 0 ? *genome.mutable_training()
                    : *genome.mutable_residual_stages(stage - 1)
                           ->mutable_training();
}

// Clears residual flags that the proto's rule (width equal to the
// predecessor's, never first) or the space forbids.
void FixResiduals(Layers& layers, bool allowed) {
  for (int i = 0; i < layers.size(); ++i) {
    v1::DenseLayer& layer = layers[i];
    if (layer.residual() &&
        (!allowed || i == 0 || layer.width() != layers[i - 1].width())) {
      layer.set_residual(false);
    }
  }
}

// Clears layer-normalisation flags that the space or the layer's width
// (at least 2) forbids; `allowed` is false for a convolutional genome.
void FixLayerNorms(Layers& layers, bool allowed) {
  for (v1::DenseLayer& layer : layers) {
    if (layer.layer_norm() && (!allowed || layer.width() < 2)) {
      layer.set_layer_norm(false);
    }
  }
}

void ClampLayers(Layers& layers, const v1::SearchSpace& space, int stage,
                 bool convolutional) {
  const auto& activations = StageActivations(space, stage);
  if (layers.empty()) {
    v1::DenseLayer* layer = layers.Add();
    layer->set_width(space.min_width());
    layer->set_activation(static_cast<v1::Activation>(activations[0]));
  }
  while (layers.size() > space.max_depth()) layers.RemoveLast();
  while (layers.size() < space.min_depth()) {
    v1::DenseLayer last = layers.Get(layers.size() - 1);
    *layers.Add() = last;
  }
  for (v1::DenseLayer& layer : layers) {
    layer.set_width(
        std::clamp(layer.width(), space.min_width(), space.max_width()));
    if (!InList(layer.activation(), activations)) {
      layer.set_activation(static_cast<v1::Activation>(activations[0]));
    }
  }
  FixResiduals(layers, space.allow_residual());
  FixLayerNorms(layers, space.allow_layer_norm() && !convolutional);
}

int PoolingCount(const ConvLayers& layers) {
  int count = 0;
  for (const v1::ConvLayer& layer : layers) {
    if (layer.pooling() != v1::POOLING_NONE) ++count;
  }
  return count;
}

// Clears residual flags that ConvLayer's rule (channels equal to the
// predecessor's, no pooling, never first) or the space forbids.
void FixConvResiduals(ConvLayers& layers, bool allowed) {
  for (int i = 0; i < layers.size(); ++i) {
    v1::ConvLayer& layer = layers[i];
    if (layer.residual() &&
        (!allowed || i == 0 || layer.pooling() != v1::POOLING_NONE ||
         layer.channels() != layers[i - 1].channels())) {
      layer.set_residual(false);
    }
  }
}

// Drops poolings beyond the space's most, the last first: early poolings
// shrink the network most.
void TrimPoolings(ConvLayers& layers, const v1::SearchSpace& space) {
  for (int i = layers.size() - 1;
       i >= 0 && PoolingCount(layers) > space.max_pooling_layers(); --i) {
    layers[i].set_pooling(v1::POOLING_NONE);
  }
}

bool KernelInSpace(int kernel, const v1::SearchSpace& space) {
  return std::find(space.kernel_sizes().begin(), space.kernel_sizes().end(),
                   kernel) != space.kernel_sizes().end();
}

void ClampConvLayers(v1::Genome& genome, const v1::SearchSpace& space) {
  ConvLayers& layers = *genome.mutable_conv_layers();
  if (space.max_conv_layers() == 0) {
    layers.Clear();
    return;
  }
  genome.clear_residual_stages();
  if (layers.empty() && space.min_conv_layers() > 0) {
    v1::ConvLayer* layer = layers.Add();
    layer->set_channels(space.min_channels());
    layer->set_kernel_size(space.kernel_sizes(0));
    layer->set_activation(static_cast<v1::Activation>(space.activations(0)));
  }
  while (layers.size() > space.max_conv_layers()) layers.RemoveLast();
  while (layers.size() < space.min_conv_layers()) {
    v1::ConvLayer last = layers.Get(layers.size() - 1);
    last.set_pooling(v1::POOLING_NONE);
    *layers.Add() = last;
  }
  for (v1::ConvLayer& layer : layers) {
    layer.set_channels(
        std::clamp(layer.channels(), space.min_channels(), space.max_channels()));
    if (!KernelInSpace(layer.kernel_size(), space)) {
      layer.set_kernel_size(space.kernel_sizes(0));
    }
    if (!InList(layer.activation(), space.activations())) {
      layer.set_activation(static_cast<v1::Activation>(space.activations(0)));
    }
    if (!v1::Pooling_IsValid(layer.pooling())) {
      layer.set_pooling(v1::POOLING_NONE);
    }
    const double dropout = layer.dropout();
    layer.set_dropout(dropout > 0 ? std::min(dropout, kMaxDropout) : 0);
  }
  TrimPoolings(layers, space);
  FixConvResiduals(layers, space.allow_residual());
}

void ClampTraining(v1::TrainingConfig& training,
                   const v1::SearchSpace& space) {
  double lr = training.learning_rate();
  if (!(lr >= space.min_learning_rate())) lr = space.min_learning_rate();
  if (!(lr <= space.max_learning_rate())) lr = space.max_learning_rate();
  training.set_learning_rate(lr);
  training.set_adam_steps(std::clamp(
      training.adam_steps(), space.min_adam_steps(), space.max_adam_steps()));
  training.set_lbfgs_steps(space.lbfgs_steps());
  training.set_batch_size(space.batch_size());
  training.set_warmup_steps(
      std::clamp(training.warmup_steps(), 0, training.adam_steps()));
  const double decay = training.weight_decay();
  training.set_weight_decay(decay > 0 ? std::min(decay, kMaxWeightDecay) : 0);
  const double penalty = training.weight_penalty();
  training.set_weight_penalty(penalty > 0 ? std::min(penalty, kMaxWeightPenalty)
                                          : 0);
  training.set_patience_steps(
      std::clamp(training.patience_steps(), 0, kMaxPatienceSteps));
  training.set_max_error_steps(
      std::clamp(training.max_error_steps(), 0, kMaxMaxErrorSteps));
  const int power = training.max_error_power();
  if (power != 0 && (power < kMinMaxErrorPower || power > kMaxMaxErrorPower ||
                     power % 2 != 0)) {
    training.set_max_error_power(0);
  }
  training.set_max_error_rounds(
      std::clamp(training.max_error_rounds(), 0, kMaxMaxErrorRounds));
}

// Whether the search chooses `genome`'s precision: only a single-stage
// dense network can be either (Genome.precision).
bool PrecisionIsAGene(const v1::Genome& genome) {
  return genome.conv_layers_size() == 0 && genome.residual_stages_size() == 0;
}

bool InSpace(v1::Precision precision, const v1::SearchSpace& space) {
  return std::find(space.precisions().begin(), space.precisions().end(),
                   precision) != space.precisions().end();
}

// Brings the precision back into the space after the network changed:
// unspecified where it is not a gene or the space has none; else kept when
// in the space, or the space's first.
void FixPrecision(v1::Genome& genome, const v1::SearchSpace& space) {
  if (space.precisions().empty() || !PrecisionIsAGene(genome)) {
    genome.set_precision(v1::PRECISION_UNSPECIFIED);
  } else if (!InSpace(genome.precision(), space)) {
    genome.set_precision(
        static_cast<v1::Precision>(space.precisions(0)));
  }
}

// A child that trains from scratch.
Child FromScratch(v1::Genome out) { return {std::move(out), {}}; }

// The child `out` of `parent` (whose clamped form is `clamped`): a morphism
// of the given kind when the parent was inside the space.
Child MakeChild(const v1::Genome& parent, const v1::Genome& clamped,
                v1::Genome out, v1::MorphismKind kind, Location where,
                bool conv = false) {
  Child child;
  child.genome = std::move(out);
  if (kind != v1::MORPHISM_KIND_UNSPECIFIED &&
      google::protobuf::util::MessageDifferencer::Equals(parent, clamped)) {
    child.morphism.set_kind(kind);
    child.morphism.set_stage(where.stage);
    child.morphism.set_layer(where.layer);
    child.morphism.set_conv(conv);
  }
  return child;
}

// Every layer of every stage for which `eligible(layers, index)` holds.
template <typename Predicate>
std::vector<Location> Eligible(const v1::Genome& genome, Predicate eligible) {
  std::vector<Location> found;
  for (int s = 0; s < StageCount(genome); ++s) {
    const Layers& layers = StageLayers(genome, s);
    for (int i = 0; i < layers.size(); ++i) {
      if (eligible(layers, i)) found.push_back({s, i});
    }
  }
  return found;
}

// Outside residual chains: resizing the layer (dense or convolutional)
// breaks no width equality.
template <typename RepeatedLayers>
bool Resizable(const RepeatedLayers& layers, int i) {
  return !layers[i].residual() &&
         !(i + 1 < layers.size() && layers[i + 1].residual());
}

std::optional<Child> RemoveAt(const v1::Genome& genome,
                              const v1::SearchSpace& space, bool residual_only,
                              std::mt19937_64& rng) {
  v1::Genome out = ClampToSpace(genome, space);
  const int min_depth = space.min_depth();
  const std::vector<Location> eligible =
      Eligible(out, [&](const Layers& layers, int i) {
        return layers.size() > min_depth &&
               (!residual_only || layers[i].residual());
      });
  if (eligible.empty()) return std::nullopt;
  const Location where = PickOne(eligible, rng);
  Layers& layers = MutableStageLayers(out, where.stage);
  const bool residual = layers[where.layer].residual();
  layers.erase(layers.begin() + where.layer);
  FixResiduals(layers, space.allow_residual());
  return MakeChild(genome, ClampToSpace(genome, space), std::move(out),
                   residual ? v1::MORPHISM_KIND_REMOVE_LAYER
                            : v1::MORPHISM_KIND_UNSPECIFIED,
                   where);
}

// The stage whose training a training-gene operator changes.
int PickTrainingStage(const v1::Genome& genome, std::mt19937_64& rng) {
  const int stages = StageCount(genome);
  return stages > 1 ? UniformInt(rng, 0, stages - 1) : 0;
}

std::optional<Child> ApplyFirstApplicable(std::vector<Operator> operators,
                                          const v1::Genome& genome,
                                          const v1::SearchSpace& space,
                                          std::mt19937_64& rng) {
  // The first applicable operator of a random permutation is uniform over
  // the applicable ones.
  std::shuffle(operators.begin(), operators.end(), rng);
  for (Operator op : operators) {
    std::optional<Child> child = op(genome, space, rng);
    if (child) return child;
  }
  return std::nullopt;
}

// The inserted layer of a DEEPEN morphism, x + f(W x + b) with W = 0 and
// b = 0 and its input's activation f, is the identity only if f(0) = 0
// (not the Gaussian's exp(0) = 1), and trains only if f'(0) != 0 (not
// ReLU's: its weights would get no gradient and stay zero).
bool StartsAsATrainableIdentity(v1::Activation activation) {
  return activation != v1::ACTIVATION_GAUSSIAN &&
         activation != v1::ACTIVATION_RELU;
}

}  // namespace

const google::protobuf::RepeatedField<int>& StageActivations(
    const v1::SearchSpace& space, int stage) {
  return stage == 0 || space.residual_stage_activations().empty()
             ? space.activations()
             : space.residual_stage_activations();
}

v1::Genome ClampToSpace(const v1::Genome& genome,
                        const v1::SearchSpace& space) {
  v1::Genome out = genome;
  while (out.residual_stages_size() > space.max_residual_stages()) {
    out.mutable_residual_stages()->RemoveLast();
  }
  ClampConvLayers(out, space);
  for (int s = 0; s < StageCount(out); ++s) {
    ClampLayers(MutableStageLayers(out, s), space, s,
                out.conv_layers_size() > 0);
    ClampTraining(MutableStageTraining(out, s), space);
  }
  FixPrecision(out, space);
  return out;
}

std::optional<Child> AddLayer(const v1::Genome& genome,
                              const v1::SearchSpace& space,
                              std::mt19937_64& rng) {
  v1::Genome out = ClampToSpace(genome, space);
  // Insert positions 0..depth of every stage below max_depth.
  std::vector<Location> positions;
  for (int s = 0; s < StageCount(out); ++s) {
    const int depth = StageLayers(out, s).size();
    if (depth >= space.max_depth()) continue;
    for (int p = 0; p <= depth; ++p) positions.push_back({s, p});
  }
  if (positions.empty()) return std::nullopt;
  const Location where = PickOne(positions, rng);
  Layers& layers = MutableStageLayers(out, where.stage);
  v1::DenseLayer copy = layers[std::max(0, where.layer - 1)];
  if (where.layer == 0) copy.set_residual(false);
  layers.Add();
  for (int i = layers.size() - 1; i > where.layer; --i) {
    layers.SwapElements(i, i - 1);
  }
  layers[where.layer] = copy;
  return FromScratch(std::move(out));
}

std::optional<Child> AddResidualLayer(const v1::Genome& genome,
                                      const v1::SearchSpace& space,
                                      std::mt19937_64& rng) {
  if (!space.allow_residual()) return std::nullopt;
  const v1::Genome clamped = ClampToSpace(genome, space);
  std::vector<Location> positions;
  for (int s = 0; s < StageCount(clamped); ++s) {
    const Layers& layers = StageLayers(clamped, s);
    if (layers.size() >= space.max_depth()) continue;
    for (int p = 1; p <= layers.size(); ++p) {
      if (StartsAsATrainableIdentity(layers[p - 1].activation())) {
        positions.push_back({s, p});
      }
    }
  }
  if (positions.empty()) return std::nullopt;
  const Location where = PickOne(positions, rng);
  v1::Genome out = clamped;
  Layers& layers = MutableStageLayers(out, where.stage);
  v1::DenseLayer inserted;
  inserted.set_width(layers[where.layer - 1].width());
  inserted.set_activation(layers[where.layer - 1].activation());
  inserted.set_residual(true);
  layers.Add();
  for (int i = layers.size() - 1; i > where.layer; --i) {
    layers.SwapElements(i, i - 1);
  }
  layers[where.layer] = inserted;
  return MakeChild(genome, clamped, std::move(out),
                   v1::MORPHISM_KIND_DEEPEN, where);
}

std::optional<Child> RemoveLayer(const v1::Genome& genome,
                                 const v1::SearchSpace& space,
                                 std::mt19937_64& rng) {
  return RemoveAt(genome, space, /*residual_only=*/false, rng);
}

std::optional<Child> RemoveResidualLayer(const v1::Genome& genome,
                                         const v1::SearchSpace& space,
                                         std::mt19937_64& rng) {
  return RemoveAt(genome, space, /*residual_only=*/true, rng);
}

std::optional<Child> WidenLayer(const v1::Genome& genome,
                                const v1::SearchSpace& space,
                                bool morphism_only, std::mt19937_64& rng) {
  const v1::Genome clamped = ClampToSpace(genome, space);
  const std::vector<Location> eligible =
      Eligible(clamped, [&](const Layers& layers, int i) {
        return layers[i].width() < space.max_width() && Resizable(layers, i) &&
               !(morphism_only && layers[i].layer_norm());
      });
  if (eligible.empty()) return std::nullopt;
  const Location where = PickOne(eligible, rng);
  v1::Genome out = clamped;
  v1::DenseLayer& layer = MutableStageLayers(out, where.stage)[where.layer];
  const int width = layer.width();
  const long wider = std::lround(width * GrowthFactor(rng));
  layer.set_width(static_cast<int>(std::clamp<long>(
      std::max<long>(width + 1, wider), width + 1, space.max_width())));
  // New neurons would change a normalised layer's mean and variance.
  if (layer.layer_norm()) return FromScratch(std::move(out));
  return MakeChild(genome, clamped, std::move(out), v1::MORPHISM_KIND_WIDEN,
                   where);
}

// Widen for MutateByMorphism: layers that Net2Wider can widen only.
std::optional<Child> WidenByMorphism(const v1::Genome& genome,
                                     const v1::SearchSpace& space,
                                     std::mt19937_64& rng) {
  return WidenLayer(genome, space, /*morphism_only=*/true, rng);
}

std::optional<Child> Widen(const v1::Genome& genome,
                           const v1::SearchSpace& space, std::mt19937_64& rng) {
  return WidenLayer(genome, space, /*morphism_only=*/false, rng);
}

std::optional<Child> Narrow(const v1::Genome& genome,
                            const v1::SearchSpace& space,
                            std::mt19937_64& rng) {
  const v1::Genome clamped = ClampToSpace(genome, space);
  // A normalised layer keeps at least 2 neurons.
  const auto narrowest = [&](const v1::DenseLayer& layer) {
    return layer.layer_norm() ? std::max(2, space.min_width())
                              : space.min_width();
  };
  const std::vector<Location> eligible =
      Eligible(clamped, [&](const Layers& layers, int i) {
        return layers[i].width() > narrowest(layers[i]) && Resizable(layers, i);
      });
  if (eligible.empty()) return std::nullopt;
  const Location where = PickOne(eligible, rng);
  v1::Genome out = clamped;
  v1::DenseLayer& layer = MutableStageLayers(out, where.stage)[where.layer];
  const int width = layer.width();
  const long narrower = std::lround(width / GrowthFactor(rng));
  layer.set_width(static_cast<int>(std::clamp<long>(
      std::min<long>(width - 1, narrower), narrowest(layer), width - 1)));
  return MakeChild(genome, clamped, std::move(out), v1::MORPHISM_KIND_NARROW,
                   where);
}

std::optional<Child> ChangeActivation(const v1::Genome& genome,
                                      const v1::SearchSpace& space,
                                      std::mt19937_64& rng) {
  v1::Genome out = ClampToSpace(genome, space);
  const std::vector<Location> all =
      Eligible(out, [](const Layers&, int) { return true; });
  const Location where = PickOne(all, rng);
  Layers& layers = MutableStageLayers(out, where.stage);
  // ClampToSpace left every layer in the stage's list: with one activation
  // there is nothing to change, and no coin is drawn.
  const auto& list = StageActivations(space, where.stage);
  if (std::all_of(list.begin(), list.end(),
                  [&](int a) { return a == list[0]; })) {
    return std::nullopt;
  }
  // The whole stage or the one layer: a stage's activation can switch in
  // one step instead of through a mixed stage per layer (mixed stages
  // trained worse than either pure one, BENCHMARKS.md), and mixed stages
  // stay reachable.
  const bool whole_stage = Coin(rng);
  const int first = whole_stage ? 0 : where.layer;
  const int last = whole_stage ? layers.size() - 1 : where.layer;
  // Activations that change at least one of the layers.
  std::vector<v1::Activation> others;
  for (int a : list) {
    const auto activation = static_cast<v1::Activation>(a);
    bool changes = false;
    for (int i = first; i <= last; ++i) {
      changes |= layers[i].activation() != activation;
    }
    if (changes &&
        std::find(others.begin(), others.end(), activation) == others.end()) {
      others.push_back(activation);
    }
  }
  if (others.empty()) return std::nullopt;
  const v1::Activation activation = PickOne(others, rng);
  for (int i = first; i <= last; ++i) layers[i].set_activation(activation);
  return FromScratch(std::move(out));
}

std::optional<Child> ToggleLayerNorm(const v1::Genome& genome,
                                     const v1::SearchSpace& space,
                                     std::mt19937_64& rng) {
  if (!space.allow_layer_norm()) return std::nullopt;
  v1::Genome out = ClampToSpace(genome, space);
  if (out.conv_layers_size() > 0) return std::nullopt;
  const std::vector<Location> eligible = Eligible(
      out, [](const Layers& layers, int i) { return layers[i].width() >= 2; });
  if (eligible.empty()) return std::nullopt;
  const Location where = PickOne(eligible, rng);
  v1::DenseLayer& layer = MutableStageLayers(out, where.stage)[where.layer];
  layer.set_layer_norm(!layer.layer_norm());
  return FromScratch(std::move(out));
}

std::optional<Child> AddStage(const v1::Genome& genome,
                              const v1::SearchSpace& space,
                              std::mt19937_64& rng) {
  const v1::Genome clamped = ClampToSpace(genome, space);
  if (clamped.residual_stages_size() >= space.max_residual_stages()) {
    return std::nullopt;
  }
  v1::Genome out = clamped;
  const v1::TrainingConfig last_training =
      MutableStageTraining(out, StageCount(out) - 1);
  v1::Stage* stage = out.add_residual_stages();
  // Small: at most 32 wide, unless the space's narrowest is wider; when the
  // search grows its stages, as large as the space allows, since small
  // stages bought almost nothing there (BENCHMARKS.md).
  const bool grow = space.grow_stages();
  const int widest =
      grow ? space.max_width()
           : std::max(space.min_width(), std::min(space.max_width(), 32));
  std::uniform_real_distribution<double> log_width(std::log(space.min_width()),
                                                   std::log(widest + 1.0));
  const int width = std::clamp(static_cast<int>(std::exp(log_width(rng))),
                               space.min_width(), widest);
  const v1::Activation activation =
      DrawActivation(StageActivations(space, StageCount(out) - 1), rng);
  const int depth = grow ? std::clamp(2, space.min_depth(), space.max_depth())
                         : space.min_depth();
  for (int i = 0; i < depth; ++i) {
    v1::DenseLayer* layer = stage->add_hidden_layers();
    layer->set_width(width);
    layer->set_activation(activation);
    layer->set_residual(grow && i > 0 && space.allow_residual());
  }
  *stage->mutable_training() = last_training;
  if (activation == v1::ACTIVATION_SINE &&
      stage->training().siren_omega() == 0) {
    stage->mutable_training()->set_siren_omega(kSearchSirenOmega);
  }
  // A float32 parent's child is float64: later stages need its precision.
  FixPrecision(out, space);
  const Location where{StageCount(out) - 1, 0};
  return MakeChild(genome, clamped, std::move(out),
                   v1::MORPHISM_KIND_ADD_STAGE, where);
}

std::optional<Child> PerturbLearningRate(const v1::Genome& genome,
                                         const v1::SearchSpace& space,
                                         std::mt19937_64& rng) {
  const double lo = space.min_learning_rate();
  const double hi = space.max_learning_rate();
  if (!(lo < hi)) return std::nullopt;
  const v1::Genome clamped = ClampToSpace(genome, space);
  v1::Genome out = clamped;
  const int stage = PickTrainingStage(out, rng);
  v1::TrainingConfig& training = MutableStageTraining(out, stage);
  const double lr = training.learning_rate();
  const double exponent = PerturbationExponent(rng);
  for (double direction : {1.0, -1.0}) {
    const double changed = std::clamp(
        RoundToThreeDigits(lr * std::exp2(direction * exponent)), lo, hi);
    if (changed != lr) {
      training.set_learning_rate(changed);
      return MakeChild(genome, clamped, std::move(out),
                       v1::MORPHISM_KIND_CONTINUE, {stage, 0});
    }
  }
  return std::nullopt;
}

std::optional<Child> PerturbAdamSteps(const v1::Genome& genome,
                                      const v1::SearchSpace& space,
                                      std::mt19937_64& rng) {
  const int lo = space.min_adam_steps();
  const int hi = space.max_adam_steps();
  if (lo >= hi) return std::nullopt;
  const v1::Genome clamped = ClampToSpace(genome, space);
  v1::Genome out = clamped;
  const int stage = PickTrainingStage(out, rng);
  v1::TrainingConfig& training = MutableStageTraining(out, stage);
  const int steps = training.adam_steps();
  const double exponent = PerturbationExponent(rng);
  int changed = steps;
  for (double direction : {1.0, -1.0}) {
    const long scaled = std::lround(steps * std::exp2(direction * exponent));
    const long rounded = std::lround(scaled / 10.0) * 10;
    changed = static_cast<int>(rounded != steps && rounded >= lo &&
                                       rounded <= hi
                                   ? rounded
                                   : std::clamp<long>(scaled, lo, hi));
    if (changed != steps) break;
  }
  // Tiny step counts: a relative change rounds away; move by one instead.
  if (changed == steps) changed = steps < hi ? steps + 1 : steps - 1;
  training.set_adam_steps(changed);
  // Warmup may not exceed the steps.
  training.set_warmup_steps(std::min(training.warmup_steps(), changed));
  return MakeChild(genome, clamped, std::move(out), v1::MORPHISM_KIND_CONTINUE,
                   {stage, 0});
}

std::optional<Child> AddConvLayer(const v1::Genome& genome,
                                  const v1::SearchSpace& space,
                                  std::mt19937_64& rng) {
  v1::Genome out = ClampToSpace(genome, space);
  ConvLayers& layers = *out.mutable_conv_layers();
  if (layers.size() >= space.max_conv_layers()) return std::nullopt;
  const int where = UniformInt(rng, 0, layers.size());
  v1::ConvLayer inserted;
  if (layers.empty()) {
    SampleConvLayer(space, /*channels=*/0, rng, inserted);
    inserted.set_pooling(v1::POOLING_NONE);
  } else {
    // A copy of its predecessor (of the first layer, at the input) that
    // keeps the image size: a new layer adds capacity, not pooling.
    inserted = layers[std::max(0, where - 1)];
    inserted.set_pooling(v1::POOLING_NONE);
    inserted.set_residual(where > 0 && space.allow_residual() && Coin(rng));
  }
  layers.Add();
  for (int i = layers.size() - 1; i > where; --i) layers.SwapElements(i, i - 1);
  layers[where] = inserted;
  FixConvResiduals(layers, space.allow_residual());
  FixPrecision(out, space);
  return FromScratch(std::move(out));
}

std::optional<Child> RemoveConvLayer(const v1::Genome& genome,
                                     const v1::SearchSpace& space,
                                     std::mt19937_64& rng) {
  v1::Genome out = ClampToSpace(genome, space);
  ConvLayers& layers = *out.mutable_conv_layers();
  if (layers.size() <= space.min_conv_layers() || layers.empty()) {
    return std::nullopt;
  }
  const int where = UniformInt(rng, 0, layers.size() - 1);
  const bool residual = layers[where].residual();
  layers.erase(layers.begin() + where);
  FixConvResiduals(layers, space.allow_residual());
  FixPrecision(out, space);
  // A residual layer goes by morphism: its input and output have the same
  // shape, so the rest of the trunk keeps its weights.
  if (!residual) return FromScratch(std::move(out));
  return MakeChild(genome, ClampToSpace(genome, space), std::move(out),
                   v1::MORPHISM_KIND_REMOVE_LAYER, {0, where}, /*conv=*/true);
}

std::optional<Child> ResizeConvLayer(const v1::Genome& genome,
                                     const v1::SearchSpace& space,
                                     std::mt19937_64& rng) {
  v1::Genome out = ClampToSpace(genome, space);
  ConvLayers& layers = *out.mutable_conv_layers();
  std::vector<int> eligible;
  for (int i = 0; i < layers.size(); ++i) {
    if (space.min_channels() < space.max_channels()) eligible.push_back(i);
  }
  if (eligible.empty()) return std::nullopt;
  v1::ConvLayer& layer = layers[PickOne(eligible, rng)];
  const int channels = layer.channels();
  const double factor = GrowthFactor(rng);
  // Toward the inside at a bound; at least one channel of change.
  const bool grow = channels <= space.min_channels()   ? true
                    : channels >= space.max_channels() ? false
                                                       : Coin(rng);
  const long resized =
      grow ? std::max<long>(channels + 1, std::lround(channels * factor))
           : std::min<long>(channels - 1, std::lround(channels / factor));
  layer.set_channels(static_cast<int>(
      std::clamp<long>(resized, space.min_channels(), space.max_channels())));
  FixConvResiduals(layers, space.allow_residual());
  return FromScratch(std::move(out));
}

std::optional<Child> WidenConvLayer(const v1::Genome& genome,
                                    const v1::SearchSpace& space,
                                    std::mt19937_64& rng) {
  const v1::Genome clamped = ClampToSpace(genome, space);
  const ConvLayers& layers = clamped.conv_layers();
  std::vector<int> eligible;
  for (int i = 0; i < layers.size(); ++i) {
    if (layers[i].channels() < space.max_channels() && Resizable(layers, i)) {
      eligible.push_back(i);
    }
  }
  if (eligible.empty()) return std::nullopt;
  const int where = PickOne(eligible, rng);
  v1::Genome out = clamped;
  v1::ConvLayer& layer = *out.mutable_conv_layers(where);
  const int channels = layer.channels();
  const long wider = std::lround(channels * GrowthFactor(rng));
  layer.set_channels(static_cast<int>(std::clamp<long>(
      std::max<long>(channels + 1, wider), channels + 1, space.max_channels())));
  return MakeChild(genome, clamped, std::move(out), v1::MORPHISM_KIND_WIDEN,
                   {0, where}, /*conv=*/true);
}

std::optional<Child> NarrowConvLayer(const v1::Genome& genome,
                                     const v1::SearchSpace& space,
                                     std::mt19937_64& rng) {
  const v1::Genome clamped = ClampToSpace(genome, space);
  const ConvLayers& layers = clamped.conv_layers();
  std::vector<int> eligible;
  for (int i = 0; i < layers.size(); ++i) {
    if (layers[i].channels() > space.min_channels() && Resizable(layers, i)) {
      eligible.push_back(i);
    }
  }
  if (eligible.empty()) return std::nullopt;
  const int where = PickOne(eligible, rng);
  v1::Genome out = clamped;
  v1::ConvLayer& layer = *out.mutable_conv_layers(where);
  const int channels = layer.channels();
  const long narrower = std::lround(channels / GrowthFactor(rng));
  layer.set_channels(
      static_cast<int>(std::clamp<long>(std::min<long>(channels - 1, narrower),
                                        space.min_channels(), channels - 1)));
  return MakeChild(genome, clamped, std::move(out), v1::MORPHISM_KIND_NARROW,
                   {0, where}, /*conv=*/true);
}

std::optional<Child> AddResidualConvLayer(const v1::Genome& genome,
                                          const v1::SearchSpace& space,
                                          std::mt19937_64& rng) {
  if (!space.allow_residual()) return std::nullopt;
  const v1::Genome clamped = ClampToSpace(genome, space);
  const int count = clamped.conv_layers_size();
  if (count < 1 || count >= space.max_conv_layers()) return std::nullopt;
  std::vector<int> positions;
  for (int p = 1; p <= count; ++p) {
    if (StartsAsATrainableIdentity(clamped.conv_layers(p - 1).activation())) {
      positions.push_back(p);
    }
  }
  if (positions.empty()) return std::nullopt;
  const int where = PickOne(positions, rng);
  const v1::ConvLayer& before = clamped.conv_layers(where - 1);
  v1::ConvLayer inserted;
  inserted.set_channels(before.channels());
  inserted.set_kernel_size(before.kernel_size());
  inserted.set_activation(before.activation());
  inserted.set_residual(true);
  v1::Genome out = clamped;
  ConvLayers& layers = *out.mutable_conv_layers();
  layers.Add();
  for (int i = layers.size() - 1; i > where; --i) layers.SwapElements(i, i - 1);
  layers[where] = inserted;
  return MakeChild(genome, clamped, std::move(out), v1::MORPHISM_KIND_DEEPEN,
                   {0, where}, /*conv=*/true);
}

std::optional<Child> ChangeConvLayer(const v1::Genome& genome,
                                     const v1::SearchSpace& space,
                                     std::mt19937_64& rng) {
  v1::Genome out = ClampToSpace(genome, space);
  ConvLayers& layers = *out.mutable_conv_layers();
  if (layers.empty()) return std::nullopt;
  const int index = UniformInt(rng, 0, layers.size() - 1);
  v1::ConvLayer& layer = layers[index];
  const v1::ConvLayer before = layer;
  // Ten tries to find a gene the space lets change (a single kernel size
  // and activation leave only batch norm, pooling and dropout).
  for (int attempt = 0; attempt < 10; ++attempt) {
    switch (UniformInt(rng, 0, 4)) {
      case 0:
        layer.set_kernel_size(space.kernel_sizes(
            UniformInt(rng, 0, space.kernel_sizes_size() - 1)));
        break;
      case 1:
        layer.set_activation(DrawActivation(space.activations(), rng));
        break;
      case 2:
        layer.set_batch_norm(!layer.batch_norm());
        break;
      case 3:
        if (layer.pooling() != v1::POOLING_NONE) {
          layer.set_pooling(Coin(rng) ? v1::POOLING_NONE
                            : layer.pooling() == v1::POOLING_MAX
                                ? v1::POOLING_AVERAGE
                                : v1::POOLING_MAX);
        } else if (PoolingCount(layers) < space.max_pooling_layers()) {
          layer.set_pooling(Coin(rng) ? v1::POOLING_MAX : v1::POOLING_AVERAGE);
          layer.set_residual(false);
        }
        break;
      default:
        layer.set_dropout(SampleDropout(rng));
        break;
    }
    if (!google::protobuf::util::MessageDifferencer::Equals(layer, before)) {
      FixConvResiduals(layers, space.allow_residual());
      return FromScratch(std::move(out));
    }
  }
  return std::nullopt;
}


void SampleConvLayer(const v1::SearchSpace& space, int channels,
                     std::mt19937_64& rng, v1::ConvLayer& layer) {
  if (channels == 0) {
    std::uniform_real_distribution<double> log_channels(
        std::log(space.min_channels()), std::log(space.max_channels() + 1.0));
    channels = std::clamp(static_cast<int>(std::exp(log_channels(rng))),
                          space.min_channels(), space.max_channels());
  }
  layer.set_channels(channels);
  layer.set_kernel_size(
      space.kernel_sizes(UniformInt(rng, 0, space.kernel_sizes_size() - 1)));
  layer.set_activation(DrawActivation(space.activations(), rng));
  layer.set_batch_norm(Coin(rng));
  layer.set_pooling(Coin(rng) ? v1::POOLING_MAX : v1::POOLING_NONE);
  layer.set_dropout(SampleDropout(rng));
}

void SampleConvLayers(const v1::SearchSpace& space, std::mt19937_64& rng,
                      v1::Genome& genome) {
  const int count =
      UniformInt(rng, space.min_conv_layers(), space.max_conv_layers());
  ConvLayers& layers = *genome.mutable_conv_layers();
  for (int i = 0; i < count; ++i) {
    v1::ConvLayer* layer = layers.Add();
    SampleConvLayer(space, 0, rng, *layer);
    if (i > 0 && space.allow_residual() && Coin(rng)) {
      layer->set_channels(layers[i - 1].channels());
      layer->set_pooling(v1::POOLING_NONE);
      layer->set_residual(true);
    }
  }
  TrimPoolings(layers, space);
  if (count > 0) genome.clear_residual_stages();
}

void SampleTrainingExtras(v1::TrainingConfig& training, std::mt19937_64& rng) {
  const int max_warmup = training.adam_steps() / 5;
  training.set_warmup_steps(Coin(rng) && max_warmup >= 10
                                ? 10 * UniformInt(rng, 1, max_warmup / 10)
                                : 0);
  std::uniform_real_distribution<double> log_decay(std::log(1e-6),
                                                   std::log(1e-2));
  training.set_weight_decay(
      Coin(rng) ? RoundToThreeDigits(std::exp(log_decay(rng))) : 0);
  training.set_patience_steps(Coin(rng) ? 50 * UniformInt(rng, 10, 100) : 0);
  const bool polish = Coin(rng);
  training.set_max_error_steps(polish ? 10 * UniformInt(rng, 5, 50) : 0);
  if (polish && training.max_error_power() == 0) {
    training.set_max_error_power(kDefaultMaxErrorPower);
  }
}

void SamplePrecision(const v1::SearchSpace& space, std::mt19937_64& rng,
                     v1::Genome& genome) {
  if (space.precisions().empty()) return;
  const auto drawn = static_cast<v1::Precision>(
      space.precisions(UniformInt(rng, 0, space.precisions_size() - 1)));
  genome.set_precision(PrecisionIsAGene(genome) ? drawn
                                                : v1::PRECISION_UNSPECIFIED);
}

std::optional<Child> ChangePrecision(const v1::Genome& genome,
                                     const v1::SearchSpace& space,
                                     std::mt19937_64& rng) {
  v1::Genome out = ClampToSpace(genome, space);
  if (space.precisions_size() < 2 || !PrecisionIsAGene(out)) {
    return std::nullopt;
  }
  std::vector<v1::Precision> others;
  for (int p : space.precisions()) {
    if (p != out.precision()) others.push_back(static_cast<v1::Precision>(p));
  }
  out.set_precision(PickOne(others, rng));
  return FromScratch(std::move(out));
}

double SampleSirenOmega(std::mt19937_64& rng) {
  if (Coin(rng)) return kSearchSirenOmega;
  std::uniform_real_distribution<double> log_omega(std::log(2.0),
                                                   std::log(30.0));
  return RoundToThreeDigits(std::exp(log_omega(rng)));
}

bool HasSineLayer(const v1::Stage& stage) {
  for (const v1::DenseLayer& layer : stage.hidden_layers()) {
    if (layer.activation() == v1::ACTIVATION_SINE) return true;
  }
  return false;
}

std::optional<Child> PerturbTrainingExtras(const v1::Genome& genome,
                                           const v1::SearchSpace& space,
                                           std::mt19937_64& rng) {
  if (!space.search_training_extras()) return std::nullopt;
  const v1::Genome clamped = ClampToSpace(genome, space);
  v1::Genome out = clamped;
  const int stage = PickTrainingStage(out, rng);
  v1::TrainingConfig& training = MutableStageTraining(out, stage);
  // siren_omega acts only on the sine layers of a stage after the first.
  const bool omega_acts =
      stage > 0 && HasSineLayer(out.residual_stages(stage - 1));
  const int gene = UniformInt(rng, 0, omega_acts ? 4 : 3);
  if (gene == 4) {
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double omega = SampleSirenOmega(rng);
      if (omega != training.siren_omega()) {
        training.set_siren_omega(omega);
        return MakeChild(genome, clamped, std::move(out),
                         v1::MORPHISM_KIND_CONTINUE, {stage, 0});
      }
    }
    return std::nullopt;
  }
  for (int attempt = 0; attempt < 10; ++attempt) {
    v1::TrainingConfig drawn = training;
    SampleTrainingExtras(drawn, rng);
    bool changed = false;
    switch (gene) {
      case 0:
        changed = drawn.warmup_steps() != training.warmup_steps();
        if (changed) training.set_warmup_steps(drawn.warmup_steps());
        break;
      case 1:
        changed = drawn.weight_decay() != training.weight_decay();
        if (changed) training.set_weight_decay(drawn.weight_decay());
        break;
      case 2:
        changed = drawn.patience_steps() != training.patience_steps();
        if (changed) training.set_patience_steps(drawn.patience_steps());
        break;
      default:
        changed = drawn.max_error_steps() != training.max_error_steps();
        if (changed) {
          training.set_max_error_steps(drawn.max_error_steps());
          training.set_max_error_power(drawn.max_error_power());
        }
        break;
    }
    if (changed) {
      return MakeChild(genome, clamped, std::move(out),
                       v1::MORPHISM_KIND_CONTINUE, {stage, 0});
    }
  }
  return std::nullopt;
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
  *child.mutable_residual_stages() = shape.residual_stages();
  *child.mutable_conv_layers() = shape.conv_layers();
  v1::TrainingConfig* training = child.mutable_training();
  *training = shape.training();
  training->set_learning_rate((Coin(rng) ? a : b).training().learning_rate());
  training->set_adam_steps((Coin(rng) ? a : b).training().adam_steps());
  return ClampToSpace(child, space);
}

// With SearchSpace.grow_stages, half of the children of a parent that can
// take another stage get one.
std::optional<Child> GrowByHalf(const v1::Genome& genome,
                                const v1::SearchSpace& space,
                                std::mt19937_64& rng) {
  if (!space.grow_stages() || !Coin(rng)) return std::nullopt;
  return AddStage(genome, space, rng);
}

Child Mutate(const v1::Genome& genome, const v1::SearchSpace& space,
             std::mt19937_64& rng) {
  if (std::optional<Child> grown = GrowByHalf(genome, space, rng)) {
    return *std::move(grown);
  }
  std::vector<Operator> operators = {
      &AddLayer,         &RemoveLayer,         &Widen,
      &Narrow,           &ChangeActivation,    &PerturbLearningRate,
      &PerturbAdamSteps,
  };
  // Operators of optional parts of the space join only when the space has
  // them, so that a plain space draws as it always has.
  if (space.allow_residual()) operators.push_back(&AddResidualLayer);
  if (space.allow_layer_norm()) operators.push_back(&ToggleLayerNorm);
  if (space.max_residual_stages() > 0) operators.push_back(&AddStage);
  if (space.search_training_extras()) {
    operators.push_back(&PerturbTrainingExtras);
  }
  if (space.precisions_size() > 1) operators.push_back(&ChangePrecision);
  if (space.max_conv_layers() > 0) {
    for (Operator op : {&AddConvLayer, &RemoveConvLayer, &ResizeConvLayer,
                        &ChangeConvLayer, &WidenConvLayer, &NarrowConvLayer}) {
      operators.push_back(op);
    }
    if (space.allow_residual()) operators.push_back(&AddResidualConvLayer);
  }
  std::optional<Child> child =
      ApplyFirstApplicable(std::move(operators), genome, space, rng);
  if (child) return *std::move(child);
  return FromScratch(ClampToSpace(genome, space));
}

std::optional<Child> MutateByMorphism(const v1::Genome& genome,
                                      const v1::SearchSpace& space,
                                      std::mt19937_64& rng) {
  if (std::optional<Child> grown = GrowByHalf(genome, space, rng)) {
    return grown;
  }
  std::vector<Operator> operators = {&AddResidualLayer, &RemoveResidualLayer,
                                     &WidenByMorphism,  &Narrow,
                                     &AddStage,         &PerturbLearningRate,
                                     &PerturbAdamSteps, &PerturbTrainingExtras};
  if (space.precisions_size() > 1) operators.push_back(&ChangePrecision);
  // From scratch, as ChangePrecision: the front could otherwise never gain
  // or lose a normalisation.
  if (space.allow_layer_norm()) operators.push_back(&ToggleLayerNorm);
  if (space.max_conv_layers() > 0) {
    for (Operator op :
         {&WidenConvLayer, &NarrowConvLayer, &AddResidualConvLayer,
          &AddConvLayer, &RemoveConvLayer, &ChangeConvLayer}) {
      operators.push_back(op);
    }
  }
  return ApplyFirstApplicable(std::move(operators), genome, space, rng);
}

}  // namespace evonas::search
