#ifndef EVONAS_WORKER_MODEL_INITIALISATION_H_
#define EVONAS_WORKER_MODEL_INITIALISATION_H_

// How a fresh layer starts: one rule for the MLP trainer, the convolutional
// trainer and the morphisms that add neurons or stages. The morphisms ask for
// no SIREN start (morphism.cc, NewStage, says why).

#include <cstdint>
#include <optional>

#include "evonas/v1/types.pb.h"

namespace evonas::model {

// SIREN's first-layer frequency factor omega_0 where TrainingConfig
// .siren_omega is 0. Sitzmann et al. 2020 use 30 for inputs in [-1, 1]; the
// inputs here are standardised, spanning about [-1.7, 1.7], and a data set
// of a few thousand rows in 3 dimensions samples a wavelength of 2 pi / 10
// with about ten rows.
inline constexpr double kDefaultSirenOmega = 10.0;

// The omega_0 of a stage trained with `training`.
double SirenOmega(const v1::TrainingConfig& training);

// Half-widths of the uniform distributions a fresh layer's weights and
// biases are drawn from, weights first. A zero bias range means zero biases,
// drawn from nothing.
struct InitialRanges {
  double weight = 0;
  double bias = 0;
};

// The ranges of a fresh layer with `activation` (UNSPECIFIED: the linear
// output layer) and fan-in and fan-out `fan_in` and `fan_out` (a
// convolution's count channels times kernel area). `reads_inputs`: the layer
// reads the standardised inputs. `siren_omega`: sine layers get SIREN's
// initialisation with this omega_0 (the stages after the first).
//
// Glorot-uniform weights, He-uniform before ReLU, and zero biases; except
//  - SIREN sine layers: omega_0 U(-1/fan_in, 1/fan_in) with phases
//    U(-pi, pi) where they read the inputs (so that the features are neither
//    all odd nor all low-frequency), U(-sqrt(6/fan_in), sqrt(6/fan_in)) with
//    biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) after that;
//  - a Gaussian layer reading the inputs: biases U(-1, 1), since with zero
//    biases every exp(-(w x)^2) is even in x, and so is the whole network.
InitialRanges FreshLayerRanges(v1::Activation activation, int64_t fan_in,
                               int64_t fan_out, bool reads_inputs,
                               std::optional<double> siren_omega);

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_INITIALISATION_H_
