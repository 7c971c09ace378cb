#include "server/search/strategy.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/genome.h"
#include "server/search/random_search.h"

namespace evonas::search {
namespace {

absl::Status CheckRange(absl::string_view name, double lo, double hi,
                        double min_allowed, double max_allowed) {
  if (!(lo >= min_allowed && hi <= max_allowed && lo <= hi)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "search_space: ", name, " range [", lo, ", ", hi,
        "] must satisfy ", min_allowed, " <= min <= max <= ", max_allowed));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::SearchSpace> NormalizeSearchSpace(v1::SearchSpace space) {
  if (space.min_depth() == 0) space.set_min_depth(1);
  if (space.max_depth() == 0) space.set_max_depth(std::max(4, space.min_depth()));
  if (space.min_width() == 0) space.set_min_width(8);
  if (space.max_width() == 0) space.set_max_width(std::max(128, space.min_width()));
  if (space.activations().empty()) {
    space.add_activations(v1::ACTIVATION_TANH);
    space.add_activations(v1::ACTIVATION_SILU);
    space.add_activations(v1::ACTIVATION_GELU);
  }
  if (space.min_learning_rate() == 0) space.set_min_learning_rate(1e-3);
  if (space.max_learning_rate() == 0) {
    space.set_max_learning_rate(std::max(2e-2, space.min_learning_rate()));
  }
  if (space.min_adam_steps() == 0) space.set_min_adam_steps(500);
  if (space.max_adam_steps() == 0) {
    space.set_max_adam_steps(std::max(3000, space.min_adam_steps()));
  }
  if (space.lbfgs_steps() == 0) space.set_lbfgs_steps(200);

  absl::Status status;
  status.Update(CheckRange("depth", space.min_depth(), space.max_depth(), 1,
                           kMaxHiddenLayers));
  status.Update(CheckRange("width", space.min_width(), space.max_width(), 1,
                           kMaxLayerWidth));
  status.Update(CheckRange("learning_rate", space.min_learning_rate(),
                           space.max_learning_rate(), 1e-8, 1));
  status.Update(CheckRange("adam_steps", space.min_adam_steps(),
                           space.max_adam_steps(), 1, kMaxAdamSteps));
  status.Update(CheckRange("lbfgs_steps", space.lbfgs_steps(),
                           space.lbfgs_steps(), 0, kMaxLbfgsSteps));
  for (int a : space.activations()) {
    if (a == v1::ACTIVATION_UNSPECIFIED || !v1::Activation_IsValid(a)) {
      status.Update(absl::InvalidArgumentError(
          absl::StrCat("search_space: unknown activation ", a)));
    }
  }
  if (!status.ok()) return status;
  return space;
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeStrategy(
    const v1::ExperimentSpec& spec) {
  switch (spec.strategy()) {
    case v1::STRATEGY_UNSPECIFIED:
    case v1::STRATEGY_RANDOM:
      return std::make_unique<RandomSearch>(spec.search_space(), spec.seed());
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown strategy ", spec.strategy()));
  }
}

}  // namespace evonas::search
