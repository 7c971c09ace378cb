#ifndef EVONAS_SERVER_SEARCH_MUTATION_H_
#define EVONAS_SERVER_SEARCH_MUTATION_H_

#include <optional>
#include <random>

#include "evonas/v1/types.pb.h"

namespace evonas::search {

// Variation operators of the evolutionary strategies. Every function is pure
// apart from drawing from `rng`, and takes a normalised SearchSpace (see
// NormalizeSearchSpace). A genome they return passes ValidateGenome and lies
// within the space's bounds: in every stage depth, widths and activations
// drawn from the stage's list (StageActivations); residual layers only when
// the space allows them, at most max_residual_stages further stages; learning rate, Adam
// steps, and lbfgs_steps equal to the space's. The input genome is first
// clamped into the space (ClampToSpace), so a parent from a wider space
// yields a child inside this one.
//
// Stage s is Genome.hidden_layers and .training for s = 0, and
// Genome.residual_stages(s - 1) for s >= 1. Operators that pick "a layer"
// pick among the layers of every stage.
//
// The single-step operators return nullopt when they cannot change the
// clamped genome (e.g. AddLayer at the maximum depth of every stage);
// otherwise the result differs from it in exactly the gene the operator
// names.

// A child genome, and how it derives from its parent. morphism.kind() is set
// when the child's network is the parent's transformed by that morphism
// (types.proto, MorphismKind; stage and layer as documented there), so that
// it can start from the parent's trained weights. MORPHISM_KIND_UNSPECIFIED:
// it must be trained from scratch. A morphism is only reported when the
// parent was inside the space (clamping changed nothing): it describes the
// step from the parent's actual genome.
struct Child {
  v1::Genome genome;
  v1::Morphism morphism;
  bool IsMorphism() const {
    return morphism.kind() != v1::MORPHISM_KIND_UNSPECIFIED;
  }
};

// The nearest genome inside `space`: convolutional layers (if the space has
// any; else they are dropped) cut to max_conv_layers or the last repeated,
// without pooling, up to min_conv_layers (an empty trunk gets one layer of
// min_channels, the first kernel size and activation), channels clamped,
// kernel sizes and activations not in the space replaced by its first,
// dropout clamped to [0, 0.5], poolings beyond max_pooling_layers removed
// from the last layers, residual flags that no longer fit cleared, and
// residual stages dropped; in every stage, depth cut to max_depth
// (or the last layer repeated up to min_depth), widths clamped, an
// activation not in the stage's list replaced by the list's first; stages
// beyond max_residual_stages dropped; a residual flag cleared where the space
// forbids residual layers, on a stage's first layer, or where the layer's
// width differs from its predecessor's; a layer_norm flag cleared where the
// space does not allow it, on a layer narrower than 2, or in a
// convolutional genome; learning rate and Adam steps
// clamped, lbfgs_steps set to the space's, a negative batch size set to 0
// (full batch), and the other training genes clamped into their valid
// ranges (warmup_steps <= adam_steps, weight_decay in [0, 0.1], ...) but
// otherwise carried along, even when the space does not search them. A
// stage with no layers gets min_depth layers of min_width.
v1::Genome ClampToSpace(const v1::Genome& genome, const v1::SearchSpace& space);

// The activations that stage `stage` (0 = the first) and, for stage 0, the
// convolutional layers may use: SearchSpace.activations, or for a later
// stage residual_stage_activations when that is set.
const google::protobuf::RepeatedField<int>& StageActivations(
    const v1::SearchSpace& space, int stage);

// Inserts a hidden layer at a random position of a random stage below
// max_depth; it copies the width, activation and residual flag of the layer
// before it (of the first layer, when inserted at the input, and then not
// residual). Not a morphism. nullopt when every stage is at max_depth.
std::optional<Child> AddLayer(const v1::Genome& genome,
                              const v1::SearchSpace& space,
                              std::mt19937_64& rng);

// DEEPEN: inserts a residual layer at a random position of a random stage
// below max_depth, never as the stage's first layer; it takes the width and
// activation of the layer before it, so that with zero weights it computes
// the identity. Never after a Gaussian layer (exp(0) = 1: not the identity)
// or a ReLU layer (no gradient at 0: it would never train). Morphism
// {DEEPEN, stage, position}. nullopt when the space forbids residual
// layers or no stage below max_depth has such a position.
std::optional<Child> AddResidualLayer(const v1::Genome& genome,
                                      const v1::SearchSpace& space,
                                      std::mt19937_64& rng);

// Removes a random hidden layer of a stage above min_depth. Removing a
// residual layer is the REMOVE_LAYER morphism {REMOVE_LAYER, stage, layer}
// and changes nothing else; removing a plain layer is not a morphism, and a
// residual layer that no longer fits (now first, or its predecessor's width
// differs) loses its residual flag. nullopt when every stage is at
// min_depth.
std::optional<Child> RemoveLayer(const v1::Genome& genome,
                                 const v1::SearchSpace& space,
                                 std::mt19937_64& rng);

// REMOVE_LAYER only: removes a random residual layer of a stage above
// min_depth. nullopt when there is none.
std::optional<Child> RemoveResidualLayer(const v1::Genome& genome,
                                         const v1::SearchSpace& space,
                                         std::mt19937_64& rng);

// WIDEN: multiplies the width of one random layer that is below max_width
// by a factor drawn log-uniformly from (1, 2] (at least +1 neuron, clamped
// to max_width). Only layers outside residual chains (neither residual nor
// followed by a residual layer) are eligible, since a residual layer's
// width must equal its input's. Morphism {WIDEN, stage, layer}, except for
// a layer-normalised layer, whose child trains from scratch (Net2Wider
// would change its mean and variance; MutateByMorphism does not widen
// such layers). nullopt when no layer is eligible.
std::optional<Child> Widen(const v1::Genome& genome,
                           const v1::SearchSpace& space, std::mt19937_64& rng);

// NARROW: divides the width of one random eligible layer (as for Widen)
// that is above min_width (and 2, when layer-normalised) by a factor drawn
// log-uniformly from (1, 2] (at least -1 neuron, clamped to that bound).
// Morphism {NARROW, stage, layer}. nullopt when no layer is eligible.
std::optional<Child> Narrow(const v1::Genome& genome,
                            const v1::SearchSpace& space, std::mt19937_64& rng);

// Picks a random layer and, with probability 1/2, its whole stage, and gives
// the layer (or every layer of the stage) one activation from the stage's
// list (StageActivations), drawn uniformly among those that change at least
// one of them. Not a morphism. nullopt when the stage has a single
// activation; then it has drawn only the layer, as before it could change
// whole stages, so that such spaces keep their random streams.
std::optional<Child> ChangeActivation(const v1::Genome& genome,
                                      const v1::SearchSpace& space,
                                      std::mt19937_64& rng);

// Switches layer normalisation on or off in one random layer of width 2 or
// more. Not a morphism. nullopt unless the space allows layer
// normalisation and the genome has no convolutional layers.
std::optional<Child> ToggleLayerNorm(const v1::Genome& genome,
                                     const v1::SearchSpace& space,
                                     std::mt19937_64& rng);

// ADD_STAGE: appends a stage of min_depth layers of one width, drawn
// log-uniformly from [min_width, max(min_width, min(max_width, 32))] (a
// small network: it fits the residual of the stages before it), with one
// activation drawn from the space, trained as the last stage is (a sine
// stage with siren_omega 0 gets kSearchSirenOmega). With grow_stages the
// stage is as large as the space allows: its width drawn from [min_width,
// max_width], two layers (clamped to min_depth..max_depth), the layers after
// the first residual when the space allows residual layers. Morphism
// {ADD_STAGE, new stage index, 0}. nullopt at max_residual_stages.
std::optional<Child> AddStage(const v1::Genome& genome,
                              const v1::SearchSpace& space,
                              std::mt19937_64& rng);

// The training-gene operators change one gene of one stage's training
// (the stage drawn uniformly when there are several) and are the CONTINUE
// morphism {CONTINUE, stage, 0}: the same network, trained further with
// other genes.
//
// Multiplies the learning rate by 2^u, u uniform in ±[0.1, 1], rounds it to
// three significant digits (so that nearby rates coincide and duplicates are
// recognised) and clamps it to the space; the direction flips when the
// first one leaves the value unchanged at a bound. nullopt when the space
// fixes the learning rate.
std::optional<Child> PerturbLearningRate(const v1::Genome& genome,
                                         const v1::SearchSpace& space,
                                         std::mt19937_64& rng);

// Multiplies the Adam steps by 2^u, u uniform in ±[0.1, 1], rounded to a
// multiple of 10 where the space allows and clamped to it; the direction
// flips at a bound. nullopt when the space fixes the Adam steps.
std::optional<Child> PerturbAdamSteps(const v1::Genome& genome,
                                      const v1::SearchSpace& space,
                                      std::mt19937_64& rng);

// Redraws one of warmup_steps, weight_decay, patience_steps and
// max_error_steps, and, for a stage after the first with sine layers,
// siren_omega (drawn uniformly) from the distribution random search uses
// for it (SampleTrainingExtras, SampleSirenOmega), until it differs (ten
// tries).
// max_error_power is carried along, and set to 8 when max_error_steps
// becomes positive while it is 0. nullopt unless the space has
// search_training_extras.
std::optional<Child> PerturbTrainingExtras(const v1::Genome& genome,
                                           const v1::SearchSpace& space,
                                           std::mt19937_64& rng);

// Draws warmup_steps (0 or uniform 10..adam_steps / 5, a multiple of 10),
// weight_decay (0 or log-uniform 1e-6..1e-2, three digits), patience_steps
// (0 or 500..5000, a multiple of 50) and max_error_steps (0 or 50..500, a
// multiple of 10, with max_error_power 8), each 0 with probability 1/2.
// The rest of `training` is unchanged.
void SampleTrainingExtras(v1::TrainingConfig& training, std::mt19937_64& rng);

// The SIREN omega_0 the search gives a later stage's sine layers
// (TrainingConfig.siren_omega) unless it searches the gene: 5, which
// interpolated hartmann3's residuals 2.8x better than the trainer's default
// of 10 (BENCHMARKS.md, "Lower sine frequencies").
inline constexpr double kSearchSirenOmega = 5;

// SIREN's omega_0 for a later stage's sine layers when the space searches
// training extras: kSearchSirenOmega with probability 1/2, else
// log-uniform in [2, 30] to three digits.
double SampleSirenOmega(std::mt19937_64& rng);

// Whether `stage` has a sine layer, on which siren_omega acts.
bool HasSineLayer(const v1::Stage& stage);

// Sets the precision (Genome.precision) of a single-stage dense genome to
// one of space.precisions, drawn uniformly; leaves other genomes, and every
// genome of a space without precisions, unspecified. Draws once whenever
// the space has precisions, so that a genome's other genes do not depend on
// its shape.
void SamplePrecision(const v1::SearchSpace& space, std::mt19937_64& rng,
                     v1::Genome& genome);

// Switches a single-stage dense genome to another of space.precisions
// (drawn uniformly). Not a morphism: the child trains from scratch. nullopt
// unless the space has two or more precisions and the genome is such a
// network.
std::optional<Child> ChangePrecision(const v1::Genome& genome,
                                     const v1::SearchSpace& space,
                                     std::mt19937_64& rng);

// Convolutional operators, for spaces with max_conv_layers > 0. WIDEN,
// NARROW, DEEPEN and the removal of a residual layer are morphisms of the
// trunk (Morphism.conv); the others train from scratch. On a convolutional
// genome the dense operators above report their morphisms as on any other.
//
// WIDEN (conv): multiplies one random layer's channels, below
// max_channels and outside residual chains, by a factor drawn log-uniformly
// from (1, 2] (at least one more). Morphism {WIDEN, 0, layer, conv}.
std::optional<Child> WidenConvLayer(const v1::Genome& genome,
                                    const v1::SearchSpace& space,
                                    std::mt19937_64& rng);

// NARROW (conv): divides one random layer's channels, above min_channels
// and outside residual chains, by a factor drawn log-uniformly from (1, 2]
// (at least one fewer): SNARE's score-based reduction, the worker keeping
// the highest-scoring channels. Morphism {NARROW, 0, layer, conv}.
std::optional<Child> NarrowConvLayer(const v1::Genome& genome,
                                     const v1::SearchSpace& space,
                                     std::mt19937_64& rng);

// DEEPEN (conv): inserts a residual layer at a random position 1..depth of
// a trunk below max_conv_layers, with the channels, kernel and activation
// of the layer before it, no batch normalisation, pooling or dropout: with
// zero weights it computes the identity; not after Gaussian or ReLU layers,
// as AddResidualLayer. Morphism {DEEPEN, 0, position, conv}. nullopt unless
// the space allows residual layers and the trunk has such a position.
std::optional<Child> AddResidualConvLayer(const v1::Genome& genome,
                                          const v1::SearchSpace& space,
                                          std::mt19937_64& rng);

// Inserts a convolutional layer below max_conv_layers at a random position:
// a copy of the layer before it (of the first, at the input) without
// pooling, residual with probability 1/2 when the space allows residual
// layers; into an empty trunk, a layer drawn as SampleConvLayer draws one,
// without pooling.
std::optional<Child> AddConvLayer(const v1::Genome& genome,
                                  const v1::SearchSpace& space,
                                  std::mt19937_64& rng);

// Removes a random convolutional layer above min_conv_layers; residual flags
// that no longer fit are cleared. A residual layer's removal is a morphism
// {REMOVE_LAYER, 0, layer, conv}; another layer's child trains from scratch.
std::optional<Child> RemoveConvLayer(const v1::Genome& genome,
                                     const v1::SearchSpace& space,
                                     std::mt19937_64& rng);

// Multiplies or divides (each with probability 1/2; toward the inside at a
// bound) one random layer's channels by a factor drawn log-uniformly from
// (1, 2], at least one channel of change, clamped to the space. Residual flags that no longer fit
// are cleared. nullopt when the space fixes the channels.
std::optional<Child> ResizeConvLayer(const v1::Genome& genome,
                                     const v1::SearchSpace& space,
                                     std::mt19937_64& rng);

// Changes one gene of one random convolutional layer: kernel size or
// activation (redrawn from the space), batch normalisation (toggled),
// pooling (removed or switched between max and average; added, max or
// average, when the space's max_pooling_layers allows one more), or dropout
// (redrawn). nullopt when ten draws change nothing.
std::optional<Child> ChangeConvLayer(const v1::Genome& genome,
                                     const v1::SearchSpace& space,
                                     std::mt19937_64& rng);

// One convolutional layer as random search draws it: channels log-uniform
// in [min_channels, max_channels] (or `channels` when positive), kernel
// size and activation uniform from the space's lists, batch normalisation
// and max pooling each with probability 1/2, dropout 0 with probability
// 1/2 else 0.1..0.5 in steps of 0.1; not residual.
void SampleConvLayer(const v1::SearchSpace& space, int channels,
                     std::mt19937_64& rng, v1::ConvLayer& layer);

// Appends min_conv_layers..max_conv_layers layers (uniform) drawn by
// SampleConvLayer to `genome`; with allow_residual each after the first is
// made residual with probability 1/2 (it takes its predecessor's channels
// and does not pool). Poolings beyond max_pooling_layers are removed from
// the last layers. A genome that gets layers loses its residual stages.
void SampleConvLayers(const v1::SearchSpace& space, std::mt19937_64& rng,
                      v1::Genome& genome);

// Layer-wise uniform crossover aligned from the input, in the first stage:
// the child takes its depth, convolutional trunk, later stages, lbfgs_steps, batch size and other
// training genes from one parent chosen at random; layer i comes from
// either parent with equal probability when both have it, else from the
// parent that has it. Learning rate and Adam steps come each from a random
// parent. The result is clamped into `space` (which drops residual flags
// that no longer fit). Not a morphism: the child trains from scratch.
v1::Genome Crossover(const v1::Genome& a, const v1::Genome& b,
                     const v1::SearchSpace& space, std::mt19937_64& rng);

// Applies one operator, drawn uniformly from those that can change the
// (clamped) genome: add layer, remove layer, widen, narrow, change
// activation, perturb learning rate, perturb Adam steps; plus add residual
// layer when the space allows residual layers, toggle layer normalisation
// when it allows that, add stage when it allows
// further stages, perturb training extras when it searches them, change
// precision when it has two or more, and the convolutional operators when
// it has convolutional layers.
// With grow_stages, AddStage is tried first for half of the calls (a coin
// drawn first).
// Returns the clamped genome unchanged (no morphism) only when the space
// admits no other genome near it.
Child Mutate(const v1::Genome& genome, const v1::SearchSpace& space,
             std::mt19937_64& rng);

// Like Mutate, over the operators that give a morphism only (LEMONADE's
// network operators): add residual layer, remove residual layer, widen,
// narrow, add stage, and the training-gene operators; and, in a space with
// convolutional layers, the convolutional operators but ResizeConvLayer
// (WidenConvLayer and NarrowConvLayer resize by morphism): the widen,
// narrow and deepen morphisms, remove layer, and add and change layer, whose
// children train from scratch (the front could otherwise never gain a
// pooling or another kernel); and change precision and toggle
// layer normalisation (from scratch too; the front could otherwise never
// reach the other precision or normalisation). Widen here leaves
// layer-normalised layers alone. With grow_stages, AddStage first for half
// of the calls, as in Mutate.
// nullopt when none can change the genome.
std::optional<Child> MutateByMorphism(const v1::Genome& genome,
                                      const v1::SearchSpace& space,
                                      std::mt19937_64& rng);

}  // namespace evonas::search

#endif  // EVONAS_SERVER_SEARCH_MUTATION_H_
