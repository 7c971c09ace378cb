#ifndef EVONAS_SERVER_SEARCH_MUTATION_H_
#define EVONAS_SERVER_SEARCH_MUTATION_H_

#include <optional>
#include <random>

#include "evonas/v1/types.pb.h"

namespace evonas::search {

// Variation operators of the evolutionary strategies. Every function is pure
// apart from drawing from `rng`, and takes a normalised SearchSpace (see
// NormalizeSearchSpace). A genome they return passes ValidateGenome and lies
// within the space's bounds: depth, widths, activations drawn from the
// space's list, learning rate, Adam steps, and lbfgs_steps equal to the
// space's. The input genome is first clamped into the space (ClampToSpace),
// so a parent from a wider space yields a child inside this one.
//
// The single-step operators return nullopt when they cannot change the
// clamped genome (e.g. AddLayer at the maximum depth); otherwise the result
// differs from it in exactly the gene the operator names.

// The nearest genome inside `space`: depth cut to max_depth (or the last
// layer repeated up to min_depth), widths, learning rate and Adam steps
// clamped, an activation not in the space replaced by the space's first,
// lbfgs_steps set to the space's, a negative batch size set to 0 (full
// batch). A genome with no layers gets min_depth layers of min_width.
v1::Genome ClampToSpace(const v1::Genome& genome, const v1::SearchSpace& space);

// Inserts a hidden layer at a random position; it copies the width and
// activation of the layer before it (of the first layer, when inserted at
// the input). nullopt at max_depth.
std::optional<v1::Genome> AddLayer(const v1::Genome& genome,
                                   const v1::SearchSpace& space,
                                   std::mt19937_64& rng);

// Removes a random hidden layer. nullopt at min_depth.
std::optional<v1::Genome> RemoveLayer(const v1::Genome& genome,
                                      const v1::SearchSpace& space,
                                      std::mt19937_64& rng);

// Multiplies the width of one random layer that is below max_width by a
// factor drawn log-uniformly from (1, 2] (at least +1 neuron, clamped to
// max_width). nullopt when every layer is at max_width.
std::optional<v1::Genome> Widen(const v1::Genome& genome,
                                const v1::SearchSpace& space,
                                std::mt19937_64& rng);

// Divides the width of one random layer that is above min_width by a factor
// drawn log-uniformly from (1, 2] (at least -1 neuron, clamped to
// min_width). nullopt when every layer is at min_width.
std::optional<v1::Genome> Narrow(const v1::Genome& genome,
                                 const v1::SearchSpace& space,
                                 std::mt19937_64& rng);

// Gives one random layer another activation from the space, drawn
// uniformly. nullopt when the space has a single activation.
std::optional<v1::Genome> ChangeActivation(const v1::Genome& genome,
                                           const v1::SearchSpace& space,
                                           std::mt19937_64& rng);

// Multiplies the learning rate by 2^u, u uniform in ±[0.1, 1], rounds it to
// three significant digits (so that nearby rates coincide and duplicates are
// recognised) and clamps it to the space; the direction flips when the
// first one leaves the value unchanged at a bound. nullopt when the space
// fixes the learning rate.
std::optional<v1::Genome> PerturbLearningRate(const v1::Genome& genome,
                                              const v1::SearchSpace& space,
                                              std::mt19937_64& rng);

// Multiplies the Adam steps by 2^u, u uniform in ±[0.1, 1], rounded to a
// multiple of 10 where the space allows and clamped to it; the direction
// flips at a bound. nullopt when the space fixes the Adam steps.
std::optional<v1::Genome> PerturbAdamSteps(const v1::Genome& genome,
                                           const v1::SearchSpace& space,
                                           std::mt19937_64& rng);

// Layer-wise uniform crossover aligned from the input: the child takes its
// depth (and lbfgs_steps and batch size) from one parent chosen at random;
// layer i comes from either parent with equal probability when both have
// it, else from the parent that has it. Learning rate and Adam steps come
// each from a random parent. The result is clamped into `space`.
v1::Genome Crossover(const v1::Genome& a, const v1::Genome& b,
                     const v1::SearchSpace& space, std::mt19937_64& rng);

// Applies one operator, drawn uniformly from those that can change the
// (clamped) genome: add layer, remove layer, widen, narrow, change
// activation, perturb learning rate, perturb Adam steps. Returns the clamped
// genome unchanged only when the space admits no other genome near it.
v1::Genome Mutate(const v1::Genome& genome, const v1::SearchSpace& space,
                  std::mt19937_64& rng);

}  // namespace evonas::search

#endif  // EVONAS_SERVER_SEARCH_MUTATION_H_
