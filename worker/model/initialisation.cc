#include "worker/model/initialisation.h"

#include <cmath>

namespace evonas::model {
namespace {

constexpr double kPi = 3.14159265358979323846;

}  // namespace

double SirenOmega(const v1::TrainingConfig& training) {
  return training.siren_omega() > 0 ? training.siren_omega()
                                    : kDefaultSirenOmega;
}

InitialRanges FreshLayerRanges(v1::Activation activation, int64_t fan_in,
                               int64_t fan_out, bool reads_inputs,
                               std::optional<double> siren_omega) {
  const double in = static_cast<double>(fan_in);
  if (siren_omega.has_value() && activation == v1::ACTIVATION_SINE) {
    return reads_inputs
               ? InitialRanges{*siren_omega / in, kPi}
               : InitialRanges{std::sqrt(6.0 / in), 1.0 / std::sqrt(in)};
  }
  InitialRanges ranges;
  ranges.weight = activation == v1::ACTIVATION_RELU
                      ? std::sqrt(6.0 / in)
                      : std::sqrt(6.0 / (in + static_cast<double>(fan_out)));
  if (reads_inputs && activation == v1::ACTIVATION_GAUSSIAN) ranges.bias = 1.0;
  return ranges;
}

}  // namespace evonas::model
