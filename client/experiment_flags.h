#ifndef EVONAS_CLIENT_EXPERIMENT_FLAGS_H_
#define EVONAS_CLIENT_EXPERIMENT_FLAGS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "evonas/v1/types.pb.h"

namespace evonas::client {

// The flags of `evonas experiment create`, as parsed; unset optionals were
// not given on the command line.
struct ExperimentFlags {
  std::string name;
  std::string dataset_id;
  std::string test_dataset_id;
  // Column lists as given; each entry may hold several comma-separated names
  // ("--inputs x1,x2 --inputs x3").
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;

  std::optional<double> max_abs_error;
  std::optional<double> within_tolerance;
  std::optional<double> min_fraction_within;
  std::optional<double> min_accuracy;  // classification
  std::optional<int64_t> max_parameters;
  std::optional<int64_t> max_model_bytes;
  std::optional<double> max_training_seconds;
  std::optional<double> max_inference_latency_seconds;

  std::optional<int64_t> budget_candidates;
  std::optional<double> budget_seconds;
  std::optional<double> max_worker_seconds;
  bool stop_when_feasible = false;
  std::optional<uint64_t> seed;
  std::optional<double> validation_fraction;
  std::optional<double> judging_fraction;
  std::string strategy = "random";
  std::string task = "regression";

  // Lamarckian inheritance (--inherit, --inherit-step-fraction).
  bool inherit = false;
  std::optional<double> inherit_step_fraction;
  // Multi-fidelity evaluation (--multi-fidelity, --short-step-fraction,
  // --reduction-factor).
  bool multi_fidelity = false;
  std::optional<double> short_step_fraction;
  std::optional<double> short_row_fraction;
  std::optional<int> reduction_factor;
  // --refit: front members retrained on all rows after the search;
  // --refit-start (auto, continue or scratch; empty: auto),
  // --refit-step-fraction: how.
  std::optional<int> refit;
  // --initial-genome: files holding one Genome each, in protobuf text
  // format or JSON (a Candidate's "genome" as `--output json` prints it).
  std::vector<std::string> initial_genome_files;
  std::string refit_start;
  std::optional<double> refit_step_fraction;
  // --lemonade-children: children generated per accepted one;
  // --lemonade-random-fraction: share of proposals sampled at random.
  std::optional<int> lemonade_children;
  std::optional<double> lemonade_random_fraction;
  // Objective lists as given, each comma-separated (--objectives); and
  // --fitness-weight values, each "OBJECTIVE=WEIGHT".
  std::vector<std::string> objectives;
  std::vector<std::string> fitness_weights;

  // Search-space bounds; unset ones take the controller's defaults
  // (v1::SearchSpace). Activations as given, each comma-separated.
  std::optional<int> min_depth, max_depth, min_width, max_width;
  std::optional<int> batch_size;
  std::vector<std::string> activations;
  std::vector<std::string> stage_activations;
  std::optional<int> min_adam_steps, max_adam_steps, lbfgs_steps;
  std::optional<int> max_stages;
  // The convolutional space (image data sets); kernel sizes as given, each
  // comma-separated.
  std::optional<int> min_conv_layers, max_conv_layers;
  std::optional<int> min_channels, max_channels, max_pooling_layers;
  std::vector<std::string> kernel_sizes;
  // Precisions of dense networks ("float64", "float32"), each
  // comma-separated.
  std::vector<std::string> precisions;
  bool allow_residual = false;
  bool allow_layer_norm = false;
  bool grow_stages = false;
  bool search_training_extras = false;
};

// Splits comma-separated column lists into names, trimming blanks. Returns
// InvalidArgument (naming `flag`) for an empty name, a duplicate, or an empty
// list.
absl::StatusOr<std::vector<std::string>> ParseColumnList(
    absl::string_view flag, const std::vector<std::string>& values);

// Maps a --strategy value to the enum, ignoring case: "random" (uniform
// random search), "evolution" (regularized evolution), "lemonade" or
// "nsga2"; InvalidArgument otherwise.
absl::StatusOr<v1::Strategy> ParseStrategy(absl::string_view name);

// Maps an objective name to the enum, ignoring case: "error" (validation
// max abs error), "params", "seconds" (training), "bytes" (model file),
// "flops", "latency", "int8-error", "energy". InvalidArgument naming `flag`
// and the known names otherwise.
absl::StatusOr<v1::Objective> ParseObjective(absl::string_view flag,
                                             absl::string_view name);

// Maps an activation name as ActivationName prints it ("tanh", "relu",
// "silu", "gelu", "sine"), ignoring case; InvalidArgument naming `flag` and
// the known names otherwise.
absl::StatusOr<v1::Activation> ParseActivation(absl::string_view flag,
                                               absl::string_view name);

// The names ParseObjective knows, comma-separated, for help texts.
std::string ObjectiveNames();

// Parses a --fitness-weight value "OBJECTIVE=WEIGHT" (e.g. "params=0.5"):
// a known objective and a finite, non-negative weight. InvalidArgument
// naming the flag otherwise.
absl::StatusOr<v1::ObjectiveWeight> ParseFitnessWeight(absl::string_view value);

// Builds the spec CreateExperiment takes. Only flags that were given become
// set fields. Checks what the command line alone can tell: required flags,
// column lists (inputs and outputs disjoint), --min-fraction-within needing
// --within-tolerance, a budget (--budget-candidates, --budget-seconds or
// --max-worker-seconds), objective names (none twice), --inherit only with
// an evolutionary strategy, --inherit-step-fraction only with --inherit,
// --short-step-fraction and --reduction-factor only with --multi-fidelity,
// --lemonade-children only with --strategy lemonade, --refit-from-scratch
// and --refit-step-fraction only with --refit; reads the --initial-genome
// files. Value ranges are left to the controller. Errors are
// InvalidArgument naming the flag.
absl::StatusOr<v1::ExperimentSpec> BuildExperimentSpec(
    const ExperimentFlags& flags);

// One Genome from `path`: JSON when the file starts with "{", protobuf text
// format otherwise. InvalidArgument naming the file and, for text format,
// the line and column of the first error.
absl::StatusOr<v1::Genome> ReadGenomeFile(const std::string& path);

}  // namespace evonas::client

#endif  // EVONAS_CLIENT_EXPERIMENT_FLAGS_H_
