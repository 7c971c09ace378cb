#include "server/search/strategy.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/genome.h"
#include "common/genome_cost.h"
#include "common/latency_table.h"
#include "common/status_macros.h"
#include "server/search/lemonade.h"
#include "server/search/nsga2.h"
#include "server/search/pareto.h"
#include "server/search/random_search.h"
#include "server/search/regularized_evolution.h"

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

absl::StatusOr<v1::SearchSpace> NormalizeSearchSpace(
    v1::SearchSpace space, const ImageShape& image) {
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
  const bool conv = space.max_conv_layers() > 0 || space.min_conv_layers() > 0;
  if (conv) {
    if (space.min_channels() == 0) space.set_min_channels(4);
    if (space.max_channels() == 0) {
      space.set_max_channels(std::max(64, space.min_channels()));
    }
    if (space.kernel_sizes().empty()) {
      space.add_kernel_sizes(3);
      space.add_kernel_sizes(5);
    }
    if (image.empty()) {
      return absl::InvalidArgumentError(
          "search_space.max_conv_layers needs an image data set (IDX); the "
          "data set is a table: leave it 0 to search MLPs");
    }
    const int most = MaxPoolingLayers(image);
    if (space.max_pooling_layers() == 0) space.set_max_pooling_layers(most);
    if (space.max_pooling_layers() > most) {
      return absl::InvalidArgumentError(absl::StrCat(
          "search_space.max_pooling_layers ", space.max_pooling_layers(),
          " is more than ", image.height, " x ", image.width,
          " images admit (", most, "; each pooling halves both sides)"));
    }
    if (space.max_residual_stages() > 0) {
      return absl::InvalidArgumentError(
          "search_space: max_conv_layers and max_residual_stages exclude each "
          "other (convolutional networks are single-stage)");
    }
  }

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
  status.Update(CheckRange("batch_size", 0, space.batch_size(), 0,
                           kMaxBatchSize));
  status.Update(CheckRange("max_residual_stages", 0,
                           space.max_residual_stages(), 0, kMaxResidualStages));
  if (conv) {
    status.Update(CheckRange("conv_layers", space.min_conv_layers(),
                             space.max_conv_layers(), 0, kMaxConvLayers));
    status.Update(CheckRange("channels", space.min_channels(),
                             space.max_channels(), 1, kMaxConvChannels));
    for (int k : space.kernel_sizes()) {
      if (k < 1 || k > kMaxConvKernel || k % 2 == 0) {
        status.Update(absl::InvalidArgumentError(absl::StrCat(
            "search_space.kernel_sizes: ", k, " is not 1, 3, 5 or 7")));
      }
    }
  } else if (space.max_pooling_layers() != 0 || space.min_channels() != 0 ||
             space.max_channels() != 0 || !space.kernel_sizes().empty()) {
    status.Update(absl::InvalidArgumentError(
        "search_space: channels, kernel_sizes and max_pooling_layers need "
        "max_conv_layers > 0"));
  }
  for (int i = 0; i < space.precisions_size(); ++i) {
    const int p = space.precisions(i);
    if (p == v1::PRECISION_UNSPECIFIED || !v1::Precision_IsValid(p)) {
      status.Update(absl::InvalidArgumentError(absl::StrCat(
          "search_space.precisions: ", p, " is not FLOAT64 (1) or FLOAT32 (2)")));
    } else if (std::count(space.precisions().begin(),
                          space.precisions().begin() + i, p) > 0) {
      status.Update(absl::InvalidArgumentError(absl::StrCat(
          "search_space.precisions: ", v1::Precision_Name(p),
          " is listed twice")));
    }
  }
  for (const auto* list :
       {&space.activations(), &space.residual_stage_activations()}) {
    for (int a : *list) {
      if (a == v1::ACTIVATION_UNSPECIFIED || !v1::Activation_IsValid(a)) {
        status.Update(absl::InvalidArgumentError(
            absl::StrCat("search_space: unknown activation ", a)));
      }
    }
  }
  if (!space.residual_stage_activations().empty() &&
      space.max_residual_stages() == 0) {
    status.Update(absl::InvalidArgumentError(
        "search_space.residual_stage_activations needs max_residual_stages "
        "> 0: without stages after the first they would never be used"));
  }
  if (space.grow_stages() && space.max_residual_stages() == 0) {
    status.Update(absl::InvalidArgumentError(
        "search_space.grow_stages needs max_residual_stages > 0: there is no "
        "stage to grow"));
  }
  if (!status.ok()) return status;
  return space;
}

absl::StatusOr<v1::EvolutionSettings> NormalizeEvolutionSettings(
    v1::EvolutionSettings settings) {
  if (settings.population_size() == 0) settings.set_population_size(20);
  if (settings.tournament_size() == 0) {
    settings.set_tournament_size(std::min(5, settings.population_size()));
  }
  absl::Status status;
  status.Update(CheckRange("evolution.population_size",
                           settings.population_size(),
                           settings.population_size(), 1, 10000));
  if (!(settings.tournament_size() >= 1 &&
        settings.tournament_size() <= settings.population_size())) {
    status.Update(absl::InvalidArgumentError(absl::StrCat(
        "evolution.tournament_size ", settings.tournament_size(),
        " must be in 1..population_size (", settings.population_size(), ")")));
  }
  if (!status.ok()) return status;
  return settings;
}

absl::StatusOr<v1::LemonadeSettings> NormalizeLemonadeSettings(
    v1::LemonadeSettings settings) {
  if (settings.children_per_proposal() == 0) {
    settings.set_children_per_proposal(16);
  }
  if (settings.initial_population() == 0) settings.set_initial_population(10);
  if (!settings.has_random_fraction()) {
    settings.set_random_fraction(kDefaultLemonadeRandomFraction);
  }
  absl::Status status;
  status.Update(CheckRange("lemonade.children_per_proposal",
                           settings.children_per_proposal(),
                           settings.children_per_proposal(), 1, 1000));
  status.Update(CheckRange("lemonade.initial_population",
                           settings.initial_population(),
                           settings.initial_population(), 1, 1000));
  const double f = settings.random_fraction();
  if (!(f >= 0 && f <= 1)) {
    status.Update(absl::InvalidArgumentError(
        absl::StrCat("lemonade.random_fraction is ", f,
                     "; it must be in [0, 1], or unset for the default ",
                     kDefaultLemonadeRandomFraction)));
  }
  if (!status.ok()) return status;
  return settings;
}

absl::StatusOr<v1::InheritanceSettings> NormalizeInheritanceSettings(
    v1::InheritanceSettings settings) {
  if (settings.step_fraction() == 0) {
    settings.set_step_fraction(kDefaultInheritStepFraction);
  }
  const double f = settings.step_fraction();
  if (!(f > 0 && f <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("inheritance.step_fraction is ", f,
                     "; it must be in (0, 1], or 0 for the default ",
                     kDefaultInheritStepFraction));
  }
  return settings;
}

namespace {

bool ScreensOnCost(const v1::Requirements& requirements,
                   absl::Span<const v1::LatencyTable> tables) {
  return requirements.has_max_parameters() ||
         requirements.has_max_model_bytes() ||
         (requirements.has_max_inference_latency_seconds() && !tables.empty());
}

class ScreenedStrategy : public Strategy {
 public:
  ScreenedStrategy(std::unique_ptr<Strategy> inner,
                   v1::Requirements requirements, int64_t inputs,
                   int64_t outputs, std::vector<v1::LatencyTable> tables,
                   ImageShape image)
      : inner_(std::move(inner)),
        requirements_(std::move(requirements)),
        inputs_(inputs),
        outputs_(outputs),
        tables_(std::move(tables)),
        image_(image) {}

  Proposal Propose(int64_t sequence,
                   const std::vector<v1::Candidate>& finished) override {
    Proposal first = inner_->Propose(sequence, finished);
    if (PassesLevelZero(first.genome)) return first;
    for (int j = 1; j < kScreenAttempts; ++j) {
      Proposal next = inner_->Propose(sequence + j * kScreenStride, finished);
      if (PassesLevelZero(next.genome)) return next;
    }
    return first;
  }

 private:
  bool PassesLevelZero(const v1::Genome& genome) const {
    const v1::GenomeCost cost =
        EstimateGenomeCost(genome, inputs_, outputs_, tables_, image_);
    const v1::Requirements& r = requirements_;
    // 0: no table can estimate this genome, so nothing is known.
    const double latency = cost.estimated_latency_seconds();
    return !(r.has_max_parameters() &&
             cost.parameter_count() > r.max_parameters()) &&
           !(r.has_max_model_bytes() &&
             TrainedWeightBytes(genome, cost) > r.max_model_bytes()) &&
           !(r.has_max_inference_latency_seconds() && latency > 0 &&
             latency >
                 kLatencyScreenMargin * r.max_inference_latency_seconds());
  }

  std::unique_ptr<Strategy> inner_;
  const v1::Requirements requirements_;
  const int64_t inputs_;
  const int64_t outputs_;
  const std::vector<v1::LatencyTable> tables_;
  const ImageShape image_;
};

absl::StatusOr<std::unique_ptr<Strategy>> MakeUnscreenedStrategy(
    const v1::ExperimentSpec& spec, int64_t outputs, const ImageShape& image) {
  switch (spec.strategy()) {
    case v1::STRATEGY_UNSPECIFIED:
    case v1::STRATEGY_RANDOM:
      return std::make_unique<RandomSearch>(spec.search_space(), spec.seed());
    case v1::STRATEGY_REGULARIZED_EVOLUTION: {
      EVONAS_ASSIGN_OR_RETURN(v1::EvolutionSettings settings,
                              NormalizeEvolutionSettings(spec.evolution()));
      return std::make_unique<RegularizedEvolution>(
          spec.search_space(), std::move(settings), spec.requirements(),
          spec.seed(), ExperimentObjectives(spec), spec.fitness_weights(),
          spec.inheritance().enabled());
    }
    case v1::STRATEGY_LEMONADE: {
      EVONAS_ASSIGN_OR_RETURN(v1::LemonadeSettings settings,
                              NormalizeLemonadeSettings(spec.lemonade()));
      return std::make_unique<Lemonade>(
          spec.search_space(), std::move(settings),
          spec.inheritance().enabled(), spec.requirements(),
          ExperimentObjectives(spec),
          std::max(1, spec.input_columns_size()), outputs, spec.seed(),
          image);
    }
    case v1::STRATEGY_NSGA2: {
      EVONAS_ASSIGN_OR_RETURN(v1::EvolutionSettings settings,
                              NormalizeEvolutionSettings(spec.evolution()));
      return std::make_unique<Nsga2>(
          spec.search_space(), std::move(settings),
          spec.inheritance().enabled(), spec.requirements(),
          ExperimentObjectives(spec), spec.seed());
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown strategy ", spec.strategy()));
  }
}

}  // namespace

std::unique_ptr<Strategy> ScreenedByCost(
    std::unique_ptr<Strategy> inner, v1::Requirements requirements,
    int64_t inputs, int64_t outputs,
    absl::Span<const v1::LatencyTable> tables, const ImageShape& image) {
  return std::make_unique<ScreenedStrategy>(
      std::move(inner), std::move(requirements), inputs, outputs,
      std::vector<v1::LatencyTable>(tables.begin(), tables.end()), image);
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeStrategy(
    const v1::ExperimentSpec& spec,
    absl::Span<const v1::LatencyTable> latency_tables,
    int64_t network_outputs, const ImageShape& image) {
  const int64_t outputs =
      network_outputs > 0
          ? network_outputs
          : std::max<int64_t>(1, spec.output_columns_size());
  EVONAS_RETURN_IF_ERROR(ValidateObjectives(spec));
  if (spec.search_space().grow_stages() &&
      (spec.strategy() == v1::STRATEGY_UNSPECIFIED ||
       spec.strategy() == v1::STRATEGY_RANDOM)) {
    return absl::InvalidArgumentError(
        "search_space.grow_stages needs an evolutionary strategy: random "
        "search has no children to add stages to");
  }
  EVONAS_RETURN_IF_ERROR(
      NormalizeInheritanceSettings(spec.inheritance()).status());
  EVONAS_ASSIGN_OR_RETURN(std::unique_ptr<Strategy> strategy,
                          MakeUnscreenedStrategy(spec, outputs, image));
  const v1::Requirements& requirements = spec.requirements();
  if (!ScreensOnCost(requirements, latency_tables)) return strategy;
  return ScreenedByCost(std::move(strategy), requirements,
                        std::max(1, spec.input_columns_size()), outputs,
                        latency_tables, image);
}

UniqueProposal ProposeUnique(Strategy& strategy, int64_t sequence,
                             const std::vector<v1::Candidate>& finished,
                             const std::unordered_set<std::string>& taken,
                             int max_attempts) {
  UniqueProposal first;
  for (int k = 0; k < std::max(1, max_attempts); ++k) {
    Proposal proposal =
        strategy.Propose(sequence + k * kResaltStride, finished);
    const bool is_new = !taken.count(GenomeKey(proposal.genome));
    if (is_new || k == 0) {
      first.genome = std::move(proposal.genome);
      first.parent_id = std::move(proposal.parent_id);
      first.morphism = std::move(proposal.morphism);
    }
    first.attempts = k + 1;
    if (is_new) return first;
  }
  first.unique = false;
  return first;
}

}  // namespace evonas::search
