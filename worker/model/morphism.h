#ifndef EVONAS_WORKER_MODEL_MORPHISM_H_
#define EVONAS_WORKER_MODEL_MORPHISM_H_

// Network morphisms on trained weights (Lamarckian inheritance, LEMONADE;
// SNARE's score-based narrowing): a child genome derived from its parent's
// by one v1::Morphism starts from the parent's weights, transformed to fit.
// Pure functions on plain structs; no LibTorch.

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "evonas/v1/types.pb.h"
#include "worker/model/mlp.h"
#include "worker/model/trainer.h"

namespace evonas::model {

// True for the kinds whose child computes exactly the parent's function
// before training: CONTINUE, WIDEN, DEEPEN and ADD_STAGE.
bool IsFunctionPreserving(v1::MorphismKind kind);

// OK when `child` is exactly `parent` with `morphism` applied, comparing
// the architecture (stages; per hidden layer width, activation, residual)
// and ignoring the training genes, which a child may change freely:
//   CONTINUE      the same architecture (`stage` names an existing stage:
//                 the first whose training genes changed);
//   WIDEN         layer `layer` of stage `stage` wider, nothing else;
//   NARROW        that layer narrower (at least one neuron), nothing else;
//   DEEPEN        a residual layer inserted as layer `layer` (>= 1) of stage
//                 `stage`, as wide as the layer before it;
//   REMOVE_LAYER  residual layer `layer` of stage `stage` removed;
//   ADD_STAGE     one more stage, at index `stage` = the parent's stage count.
// A residual layer must stay as wide as its input in the child. With
// Morphism.conv, WIDEN, NARROW, DEEPEN and REMOVE_LAYER apply to the
// convolutional trunk (types.proto) and the dense layers stay; otherwise a
// network with convolutional layers keeps its trunk. Dropout, which acts in
// training only, may change like the training genes. Otherwise
// InvalidArgument naming what differs. The stages before `stage` are the
// same in parent and child: an inheriting child can keep them frozen.
absl::Status CheckMorphism(const v1::Genome& parent, const v1::Genome& child,
                           const v1::Morphism& morphism);

// OK when `network` has the architecture of `genome` (stage count,
// convolutional layers, layer widths, activations and residual flags) and
// `inputs`/`outputs` in every stage; InvalidArgument naming the first
// difference otherwise.
absl::Status CheckNetworkMatchesGenome(const NetworkParameters& network,
                                       const v1::Genome& genome);

// The child's weights: `parent` (trained weights of `parent_genome`)
// transformed by `morphism` (checked with CheckMorphism against
// `child_genome`):
//   CONTINUE      a copy.
//   WIDEN         Net2Wider, exactly function-preserving: new neurons get
//                 incoming weights and biases drawn as for a fresh layer
//                 (initialisation.h) and zero outgoing weights.
//   DEEPEN        a residual layer with zero weights and biases: the
//                 identity, since every activation is 0 at 0.
//   ADD_STAGE     a new last stage: fresh hidden layers (initialisation.h;
//                 sine layers without SIREN's start, measured better in the
//                 search), a zero output layer; inputs standardised as in
//                 the first stage, y_mean 0 and y_std the root mean square of
//                 the parent's residual (targets - outputs) on `sample` (1
//                 where it is 0), the scale the trainer trains a later stage at
//                 (trainer.h).
//   NARROW        keeps the layer's highest-scoring neurons in their order;
//                 score = mean |activation| on `sample` (at most 1024 evenly
//                 spaced rows of it) x the Euclidean norm
//                 of the neuron's outgoing weights (ties: lower index
//                 first). A dropped neuron's mean contribution is added to
//                 the next layer's biases, so the outputs change only by its
//                 deviation from its mean.
//   REMOVE_LAYER  the residual layer is dropped; the mean of what it added
//                 to its input on `sample` (at most 1024 evenly spaced rows
//                 of it) moves into the next layer's
//                 biases (exact for the mean output when that layer is the
//                 linear output layer).
// With Morphism.conv, WIDEN, DEEPEN, NARROW and REMOVE_LAYER do the same to
// the trunk's channels and layers (WidenConv-style zero outgoing weights;
// a zero residual layer; channels scored as neurons are, by their mean
// |output| over rows and pixels; the removed or dropped part's mean output
// folded into the biases of the layer that reads it, exactly in the mean for
// the dense layer after the trunk and up to the zero-padded border for a
// convolutional one). The means come from at most 256 sample images.
// `seed` drives the random weights. `sample` (raw units; the training rows)
// is used by NARROW and REMOVE_LAYER (inputs) and ADD_STAGE (inputs and
// targets), which return InvalidArgument when it has no rows or the wrong
// columns.
// InvalidArgument also when the genomes do not match the morphism or
// `parent` does not match `parent_genome`.
absl::StatusOr<NetworkParameters> ApplyMorphism(
    const v1::Genome& parent_genome, const NetworkParameters& parent,
    const v1::Morphism& morphism, const v1::Genome& child_genome,
    uint64_t seed, const Samples& sample);

// Largest |b - a| over the outputs of both networks on the raw inputs `x`,
// divided by the largest |a| (by 1 when every output of `a` is 0): how far a
// function-preserving morphism moved the outputs; infinity when an output of
// `b` is not finite. InvalidArgument when a network cannot be evaluated on
// `x` or an output of the reference `a` is not finite.
absl::StatusOr<double> MaxRelativeOutputDifference(const NetworkParameters& a,
                                                   const NetworkParameters& b,
                                                   const Matrix& x);

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_MORPHISM_H_
