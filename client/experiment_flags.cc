#include "client/experiment_flags.h"

#include <algorithm>
#include <set>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

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
  return absl::InvalidArgumentError(
      absl::StrCat("--strategy: unknown strategy \"", name,
                   "\" (known: random, evolution)"));
}

absl::StatusOr<v1::ExperimentSpec> BuildExperimentSpec(
    const ExperimentFlags& flags) {
  if (flags.dataset_id.empty()) {
    return absl::InvalidArgumentError("--dataset is required");
  }
  EVONAS_ASSIGN_OR_RETURN(std::vector<std::string> inputs,
                          ParseColumnList("--inputs", flags.inputs));
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
      !flags.budget_seconds.has_value()) {
    return absl::InvalidArgumentError(
        "set a budget: --budget-candidates and/or --budget-seconds");
  }
  EVONAS_ASSIGN_OR_RETURN(v1::Strategy strategy, ParseStrategy(flags.strategy));

  v1::ExperimentSpec spec;
  spec.set_name(flags.name);
  spec.set_dataset_id(flags.dataset_id);
  spec.set_test_dataset_id(flags.test_dataset_id);
  for (std::string& name : inputs) spec.add_input_columns(std::move(name));
  for (std::string& name : outputs) spec.add_output_columns(std::move(name));

  v1::Requirements& req = *spec.mutable_requirements();
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

  if (flags.seed) spec.set_seed(*flags.seed);
  if (flags.validation_fraction) {
    spec.set_validation_fraction(*flags.validation_fraction);
  }
  spec.set_strategy(strategy);
  return spec;
}

}  // namespace evonas::client
