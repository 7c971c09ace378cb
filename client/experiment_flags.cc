#include "client/experiment_flags.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/genome.h"
#include "common/status_macros.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace evonas::client {

absl::StatusOr<std::vector<std::string>> ParseColumnList(
    absl::string_view flag, const std::vector<std::string>& values) {
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (const std::string& value : values) {
    for (absl::string_view part : absl::StrSplit(value, ',')) {
      std::string name(absl::StripAsciiWhitespace(part));
      if (name.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, ": empty column name in \"", value, "\""));
      }
      if (!seen.insert(name).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, ": column \"", name, "\" given twice"));
      }
      names.push_back(std::move(name));
    }
  }
  if (names.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": at least one column is required"));
  }
  return names;
}

absl::StatusOr<v1::Strategy> ParseStrategy(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "random") return v1::STRATEGY_RANDOM;
  if (lower == "evolution") return v1::STRATEGY_REGULARIZED_EVOLUTION;
  if (lower == "lemonade") return v1::STRATEGY_LEMONADE;
  if (lower == "nsga2") return v1::STRATEGY_NSGA2;
  return absl::InvalidArgumentError(
      absl::StrCat("--strategy: unknown strategy \"", name,
                   "\" (known: random, evolution, lemonade, nsga2)"));
}

namespace {

// CLI names of the objectives, in enum order.
const std::vector<std::pair<std::string, v1::Objective>>& ObjectiveTable() {
  static const auto* table =
      new std::vector<std::pair<std::string, v1::Objective>>{
          {"error", v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR},
          {"params", v1::OBJECTIVE_PARAMETER_COUNT},
          {"seconds", v1::OBJECTIVE_TRAINING_SECONDS},
          {"bytes", v1::OBJECTIVE_MODEL_BYTES},
          {"flops", v1::OBJECTIVE_FLOPS},
          {"latency", v1::OBJECTIVE_INFERENCE_LATENCY},
          {"int8-error", v1::OBJECTIVE_INT8_MAX_ABS_ERROR},
          {"energy", v1::OBJECTIVE_TRAINING_ENERGY},
          {"error-rate", v1::OBJECTIVE_VALIDATION_ERROR_RATE},
          {"cross-entropy", v1::OBJECTIVE_VALIDATION_CROSS_ENTROPY},
          {"estimated-latency", v1::OBJECTIVE_ESTIMATED_LATENCY},
      };
  return *table;
}

}  // namespace

std::string ObjectiveNames() {
  std::vector<std::string> names;
  for (const auto& [name, objective] : ObjectiveTable()) names.push_back(name);
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<v1::Objective> ParseObjective(absl::string_view flag,
                                             absl::string_view name) {
  const std::string lower =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(name));
  for (const auto& [known, objective] : ObjectiveTable()) {
    if (lower == known) return objective;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      flag, ": unknown objective \"", name, "\" (known: ", ObjectiveNames(),
      ")"));
}

absl::StatusOr<v1::ObjectiveWeight> ParseFitnessWeight(
    absl::string_view value) {
  const size_t eq = value.find('=');
  if (eq == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--fitness-weight: expected OBJECTIVE=WEIGHT, e.g. params=0.5, got \"",
        value, "\""));
  }
  v1::ObjectiveWeight weight;
  EVONAS_ASSIGN_OR_RETURN(v1::Objective objective,
                          ParseObjective("--fitness-weight", value.substr(0, eq)));
  weight.set_objective(objective);
  double number = 0;
  if (!absl::SimpleAtod(value.substr(eq + 1), &number) ||
      !std::isfinite(number) || number < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--fitness-weight: the weight in \"", value,
        "\" must be a finite number >= 0"));
  }
  weight.set_weight(number);
  return weight;
}

absl::StatusOr<v1::Activation> ParseActivation(absl::string_view flag,
                                               absl::string_view name) {
  const std::string wanted =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(name));
  std::vector<std::string> known;
  for (int value = v1::Activation_MIN + 1; value <= v1::Activation_MAX;
       ++value) {
    if (!v1::Activation_IsValid(value)) continue;
    const auto activation = static_cast<v1::Activation>(value);
    if (ActivationName(activation) == wanted) return activation;
    known.push_back(ActivationName(activation));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(flag, ": unknown activation \"", wanted,
                   "\"; known: ", absl::StrJoin(known, ", ")));
}

namespace {

// Keeps the first parse error, which protobuf would otherwise log.
class FirstError : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (error.empty()) {
      error = absl::StrCat("line ", line + 1, " column ", column + 1, ": ",
                           message);
    }
  }
  std::string error;
};

}  // namespace

absl::StatusOr<v1::Genome> ReadGenomeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--initial-genome ", path, ": cannot read the file"));
  }
  const std::string content = text.str();
  v1::Genome genome;
  if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(content), "{")) {
    const auto parsed =
        google::protobuf::util::JsonStringToMessage(content, &genome);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--initial-genome ", path, ": not a Genome in JSON: ",
                       parsed.message().as_string()));
    }
    return genome;
  }
  google::protobuf::TextFormat::Parser parser;
  FirstError errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(content, &genome)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--initial-genome ", path, ": not a Genome in protobuf text format: ",
        errors.error));
  }
  return genome;
}

absl::StatusOr<v1::ExperimentSpec> BuildExperimentSpec(
    const ExperimentFlags& flags) {
  if (flags.dataset_id.empty()) {
    return absl::InvalidArgumentError("--dataset is required");
  }
  // No --inputs: every column that is not an output (the controller's
  // default).
  std::vector<std::string> inputs;
  if (!flags.inputs.empty()) {
    EVONAS_ASSIGN_OR_RETURN(inputs, ParseColumnList("--inputs", flags.inputs));
  }
  EVONAS_ASSIGN_OR_RETURN(std::vector<std::string> outputs,
                          ParseColumnList("--outputs", flags.outputs));
  for (const std::string& output : outputs) {
    if (std::find(inputs.begin(), inputs.end(), output) != inputs.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "column \"", output, "\" is in both --inputs and --outputs"));
    }
  }
  if (flags.min_fraction_within.has_value() &&
      !flags.within_tolerance.has_value()) {
    return absl::InvalidArgumentError(
        "--min-fraction-within requires --within-tolerance");
  }
  if (!flags.budget_candidates.has_value() &&
      !flags.budget_seconds.has_value() &&
      !flags.max_worker_seconds.has_value()) {
    return absl::InvalidArgumentError(
        "set a budget: --budget-candidates, --budget-seconds and/or "
        "--max-worker-seconds");
  }
  EVONAS_ASSIGN_OR_RETURN(v1::Strategy strategy, ParseStrategy(flags.strategy));
  const std::string task = absl::AsciiStrToLower(flags.task);
  if (task != "regression" && task != "classification") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--task: unknown task \"", flags.task,
        "\" (known: regression, classification)"));
  }
  const bool classification = task == "classification";
  if (classification && outputs.size() != 1) {
    return absl::InvalidArgumentError(
        "--task classification predicts one column: give the label column "
        "as the only --outputs");
  }
  if (flags.min_accuracy.has_value() && !classification) {
    return absl::InvalidArgumentError(
        "--min-accuracy requires --task classification");
  }
  if (classification &&
      (flags.max_abs_error.has_value() || flags.within_tolerance.has_value() ||
       flags.min_fraction_within.has_value())) {
    return absl::InvalidArgumentError(
        "--max-abs-error, --within-tolerance and --min-fraction-within judge "
        "regression outputs; a classifier is judged by --min-accuracy");
  }
  if (flags.inherit && strategy == v1::STRATEGY_RANDOM) {
    return absl::InvalidArgumentError(
        "--inherit needs an evolutionary --strategy (evolution, lemonade or "
        "nsga2): random search has no parents");
  }
  if (flags.inherit_step_fraction.has_value() && !flags.inherit) {
    return absl::InvalidArgumentError(
        "--inherit-step-fraction requires --inherit");
  }
  if ((flags.short_step_fraction.has_value() ||
       flags.short_row_fraction.has_value() ||
       flags.reduction_factor.has_value()) &&
      !flags.multi_fidelity) {
    return absl::InvalidArgumentError(
        "--short-step-fraction, --short-row-fraction and --reduction-factor "
        "require --multi-fidelity");
  }
  if ((!flags.refit_start.empty() || flags.refit_step_fraction.has_value()) &&
      flags.refit.value_or(0) == 0) {
    return absl::InvalidArgumentError(
        "--refit-start and --refit-step-fraction require --refit N");
  }
  v1::RefitStart refit_start = v1::REFIT_START_AUTO;
  if (!flags.refit_start.empty()) {
    const std::string name = absl::AsciiStrToLower(flags.refit_start);
    if (name == "continue") {
      refit_start = v1::REFIT_START_CONTINUE;
    } else if (name == "scratch") {
      refit_start = v1::REFIT_START_SCRATCH;
    } else if (name != "auto") {
      return absl::InvalidArgumentError(
          absl::StrCat("--refit-start: \"", flags.refit_start,
                       "\" is not auto, continue or scratch"));
    }
  }
  if (refit_start == v1::REFIT_START_SCRATCH &&
      flags.refit_step_fraction.has_value()) {
    return absl::InvalidArgumentError(
        "--refit-step-fraction is for refits that continue from the "
        "member's weights; from scratch they train all steps");
  }
  if (flags.lemonade_children.has_value() &&
      strategy != v1::STRATEGY_LEMONADE) {
    return absl::InvalidArgumentError(
        "--lemonade-children requires --strategy lemonade");
  }
  if (flags.lemonade_random_fraction.has_value() &&
      strategy != v1::STRATEGY_LEMONADE) {
    return absl::InvalidArgumentError(
        "--lemonade-random-fraction requires --strategy lemonade");
  }
  std::vector<v1::Objective> objectives;
  for (const std::string& list : flags.objectives) {
    for (absl::string_view name : absl::StrSplit(list, ',')) {
      EVONAS_ASSIGN_OR_RETURN(v1::Objective objective,
                              ParseObjective("--objectives", name));
      if (std::find(objectives.begin(), objectives.end(), objective) !=
          objectives.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--objectives: \"", absl::StripAsciiWhitespace(name),
            "\" given twice"));
      }
      objectives.push_back(objective);
    }
  }
  std::vector<v1::ObjectiveWeight> weights;
  for (const std::string& value : flags.fitness_weights) {
    EVONAS_ASSIGN_OR_RETURN(v1::ObjectiveWeight weight,
                            ParseFitnessWeight(value));
    for (const v1::ObjectiveWeight& earlier : weights) {
      if (earlier.objective() == weight.objective()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--fitness-weight: the objective of \"", value,
            "\" has a weight already"));
      }
    }
    weights.push_back(weight);
  }

  v1::ExperimentSpec spec;
  spec.set_name(flags.name);
  spec.set_dataset_id(flags.dataset_id);
  spec.set_test_dataset_id(flags.test_dataset_id);
  for (std::string& name : inputs) spec.add_input_columns(std::move(name));
  for (std::string& name : outputs) spec.add_output_columns(std::move(name));

  v1::Requirements& req = *spec.mutable_requirements();
  if (classification) spec.set_task(v1::TASK_CLASSIFICATION);
  if (flags.min_accuracy) req.set_min_accuracy(*flags.min_accuracy);
  if (flags.max_abs_error) req.set_max_abs_error(*flags.max_abs_error);
  if (flags.within_tolerance) req.set_within_tolerance(*flags.within_tolerance);
  if (flags.min_fraction_within) {
    req.set_min_fraction_within(*flags.min_fraction_within);
  }
  if (flags.max_parameters) req.set_max_parameters(*flags.max_parameters);
  if (flags.max_model_bytes) req.set_max_model_bytes(*flags.max_model_bytes);
  if (flags.max_training_seconds) {
    req.set_max_training_seconds(*flags.max_training_seconds);
  }
  if (flags.max_inference_latency_seconds) {
    req.set_max_inference_latency_seconds(*flags.max_inference_latency_seconds);
  }

  v1::Budget& budget = *spec.mutable_budget();
  if (flags.budget_candidates) {
    budget.set_max_candidates(*flags.budget_candidates);
  }
  if (flags.budget_seconds) budget.set_max_wall_seconds(*flags.budget_seconds);
  if (flags.max_worker_seconds) {
    budget.set_max_worker_seconds(*flags.max_worker_seconds);
  }
  budget.set_stop_when_feasible(flags.stop_when_feasible);

  if (flags.seed) spec.set_seed(*flags.seed);
  if (flags.validation_fraction) {
    spec.set_validation_fraction(*flags.validation_fraction);
  }
  if (flags.judging_fraction)
    spec.set_judging_fraction(*flags.judging_fraction);
  spec.set_strategy(strategy);
  if (flags.inherit) {
    spec.mutable_inheritance()->set_enabled(true);
    if (flags.inherit_step_fraction) {
      spec.mutable_inheritance()->set_step_fraction(
          *flags.inherit_step_fraction);
    }
  }
  if (flags.multi_fidelity) {
    v1::MultiFidelitySettings* fidelity = spec.mutable_multi_fidelity();
    fidelity->set_enabled(true);
    if (flags.short_step_fraction) {
      fidelity->set_short_step_fraction(*flags.short_step_fraction);
    }
    if (flags.short_row_fraction) {
      fidelity->set_short_row_fraction(*flags.short_row_fraction);
    }
    if (flags.reduction_factor) {
      fidelity->set_reduction_factor(*flags.reduction_factor);
    }
  }
  for (const std::string& path : flags.initial_genome_files) {
    EVONAS_ASSIGN_OR_RETURN(*spec.add_initial_genomes(), ReadGenomeFile(path));
  }
  if (flags.refit) spec.mutable_refit()->set_front_members(*flags.refit);
  if (refit_start != v1::REFIT_START_AUTO) {
    spec.mutable_refit()->set_start(refit_start);
  }
  if (flags.refit_step_fraction) {
    spec.mutable_refit()->set_step_fraction(*flags.refit_step_fraction);
  }
  if (flags.lemonade_children) {
    spec.mutable_lemonade()->set_children_per_proposal(
        *flags.lemonade_children);
  }
  if (flags.lemonade_random_fraction) {
    spec.mutable_lemonade()->set_random_fraction(
        *flags.lemonade_random_fraction);
  }
  for (v1::Objective objective : objectives) spec.add_objectives(objective);
  for (v1::ObjectiveWeight& weight : weights) {
    *spec.add_fitness_weights() = std::move(weight);
  }

  v1::SearchSpace& space = *spec.mutable_search_space();
  if (flags.min_depth) space.set_min_depth(*flags.min_depth);
  if (flags.max_depth) space.set_max_depth(*flags.max_depth);
  if (flags.min_width) space.set_min_width(*flags.min_width);
  if (flags.batch_size) space.set_batch_size(*flags.batch_size);
  if (flags.max_width) space.set_max_width(*flags.max_width);
  for (const std::string& list : flags.activations) {
    for (absl::string_view name : absl::StrSplit(list, ',')) {
      EVONAS_ASSIGN_OR_RETURN(v1::Activation activation,
                              ParseActivation("--activations", name));
      space.add_activations(activation);
    }
  }
  for (const std::string& list : flags.stage_activations) {
    for (absl::string_view name : absl::StrSplit(list, ',')) {
      EVONAS_ASSIGN_OR_RETURN(v1::Activation activation,
                              ParseActivation("--stage-activations", name));
      space.add_residual_stage_activations(activation);
    }
  }
  if (flags.min_adam_steps) space.set_min_adam_steps(*flags.min_adam_steps);
  if (flags.max_adam_steps) space.set_max_adam_steps(*flags.max_adam_steps);
  if (flags.lbfgs_steps) space.set_lbfgs_steps(*flags.lbfgs_steps);
  if (flags.max_stages) space.set_max_residual_stages(*flags.max_stages);
  if (flags.min_conv_layers) space.set_min_conv_layers(*flags.min_conv_layers);
  if (flags.max_conv_layers) space.set_max_conv_layers(*flags.max_conv_layers);
  if (flags.min_channels) space.set_min_channels(*flags.min_channels);
  if (flags.max_channels) space.set_max_channels(*flags.max_channels);
  if (flags.max_pooling_layers) {
    space.set_max_pooling_layers(*flags.max_pooling_layers);
  }
  for (const std::string& list : flags.kernel_sizes) {
    for (absl::string_view text : absl::StrSplit(list, ',')) {
      int kernel = 0;
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &kernel) ||
          kernel < 1 || kernel > 7 || kernel % 2 == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--kernel-sizes: \"", text, "\" is not one of 1, 3, 5, 7"));
      }
      space.add_kernel_sizes(kernel);
    }
  }
  for (const std::string& list : flags.precisions) {
    for (absl::string_view text : absl::StrSplit(list, ',')) {
      const absl::string_view name = absl::StripAsciiWhitespace(text);
      if (name == "float64") {
        space.add_precisions(v1::PRECISION_FLOAT64);
      } else if (name == "float32") {
        space.add_precisions(v1::PRECISION_FLOAT32);
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "--precisions: \"", name, "\" is not float64 or float32"));
      }
    }
  }
  space.set_allow_residual(flags.allow_residual);
  space.set_allow_layer_norm(flags.allow_layer_norm);
  space.set_grow_stages(flags.grow_stages);
  space.set_search_training_extras(flags.search_training_extras);
  return spec;
}

}  // namespace evonas::client
