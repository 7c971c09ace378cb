// evonas: the command-line client of the evonas controller. This file only
// parses flags; the commands live in commands.h.

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "client/commands.h"
#include "client/controller_client.h"
#include "client/experiment_flags.h"
#include "client/output.h"

#ifndef EVONAS_VERSION
#define EVONAS_VERSION "unknown"
#endif

namespace evonas::client {
namespace {

constexpr char kDefaultController[] = "localhost:50051";

// Flags every command takes.
struct GlobalFlags {
  std::string controller;
  std::string output = "table";
  ChannelSecurity security;
};

// The value of environment variable `name`, or `fallback` if unset or empty.
std::string FromEnv(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

// A validator for numbers in a range; `lower_open` excludes `lower`.
CLI::Validator NumberIn(double lower, double upper, bool lower_open,
                        const std::string& description) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double value = 0;
        if (!absl::SimpleAtod(text, &value) || !std::isfinite(value) ||
            value < lower || (lower_open && value == lower) || value > upper) {
          return "must be " + description + ", got " + text;
        }
        return "";
      },
      "", description);
}

const CLI::Validator& Positive() {
  static const CLI::Validator* validator =
      new CLI::Validator(NumberIn(0, HUGE_VAL, true, "> 0"));
  return *validator;
}

// Adds --controller and --output to `app`, bound to `flags`. They are added
// to the top level and to every command, so both "evonas --output json
// dataset list" and "evonas dataset list --output json" work and every
// command's --help shows them.
void AddGlobalFlags(CLI::App* app, GlobalFlags* flags) {
  app->add_option("--controller", flags->controller,
                  "Controller address host:port (default: $EVONAS_CONTROLLER, "
                  "else localhost:50051)")
      ->type_name("ADDR");
  app->add_option("--token", flags->security.token,
                  "Bearer token (default: $EVONAS_TOKEN; prefer the "
                  "variable: a flag shows in the process list)")
      ->type_name("TOKEN");
  app->add_option("--tls-ca", flags->security.tls_ca_file,
                  "PEM certificate to trust for the controller, e.g. its "
                  "dev-cert (default: $EVONAS_TLS_CA, else the system's "
                  "roots)")
      ->type_name("FILE");
  app->add_flag("--plaintext", flags->security.plaintext,
                "Connect without TLS (only to a controller started with "
                "--plaintext)");
  app->add_option("--output", flags->output,
                  "Output format: table (for people), json (the API "
                  "message, for scripts) or csv (RFC 4180 with a header "
                  "row, for spreadsheets)")
      ->type_name("FORMAT")
      ->check(CLI::IsMember({"table", "json", "csv"}));
}

// Adds an optional flag whose value lands in `target` only when given.
template <typename T>
CLI::Option* AddOptional(CLI::App* app, const std::string& name,
                         std::optional<T>* target,
                         const std::string& description) {
  return app->add_option_function<T>(
      name, [target](const T& value) { *target = value; }, description);
}

using Action = std::function<absl::Status(const CommandEnv&)>;

// Sets `*action` to `run` when `command` is the one given.
void OnRun(CLI::App* command, Action* action, Action run) {
  command->callback([action, run = std::move(run)] { *action = run; });
}

void AddDatasetCommands(CLI::App* app, GlobalFlags* globals, Action* action) {
  CLI::App* dataset =
      app->add_subcommand("dataset", "Upload and inspect data sets");
  dataset->require_subcommand(1);

  struct UploadArgs {
    DatasetUploadOptions options;
    std::string format = "csv";
  };
  auto upload_args = std::make_shared<UploadArgs>();
  CLI::App* upload = dataset->add_subcommand(
      "upload",
      "Upload a CSV file (header row of column names, numeric cells), or "
      "images and labels in the IDX format of MNIST and Fashion-MNIST, and "
      "print the stored data set. Gzip files (.gz) are decompressed first");
  upload
      ->add_option("FILE", upload_args->options.path,
                   "CSV file, or with --format idx the images file "
                   "(e.g. train-images-idx3-ubyte.gz)")
      ->required()
      ->check(CLI::ExistingFile);
  upload->add_option("--name", upload_args->options.name,
                     "Name to remember the data set by (default: the file's "
                     "base name)");
  upload
      ->add_option("--format", upload_args->format,
                   "csv, or idx for images (FILE) with labels (--labels); "
                   "the columns are then pixel_0 .. pixel_{h*w-1} and label")
      ->type_name("FORMAT")
      ->check(CLI::IsMember({"csv", "idx"}));
  upload
      ->add_option("--labels", upload_args->options.labels_path,
                   "With --format idx: the labels file (e.g. "
                   "train-labels-idx1-ubyte.gz)")
      ->type_name("FILE")
      ->check(CLI::ExistingFile);
  upload
      ->add_option(kMaxGunzipBytesFlag,
                   upload_args->options.max_decompressed_bytes,
                   "Most bytes a gzip file (and the data set) may decompress "
                   "to in memory; the controller's --max-upload-bytes bounds "
                   "the upload too")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  AddGlobalFlags(upload, globals);
  OnRun(upload, action, [upload_args](const CommandEnv& env) {
    DatasetUploadOptions options = upload_args->options;
    options.format = upload_args->format == "idx" ? v1::DATASET_FORMAT_IDX
                                                  : v1::DATASET_FORMAT_CSV;
    return RunDatasetUpload(env, options);
  });

  CLI::App* list =
      dataset->add_subcommand("list", "List data sets, newest first");
  AddGlobalFlags(list, globals);
  OnRun(list, action,
        [](const CommandEnv& env) { return RunDatasetList(env); });

  auto show_id = std::make_shared<std::string>();
  CLI::App* show = dataset->add_subcommand("show", "Show one data set");
  show->add_option("ID", *show_id, "Data set id")->required();
  AddGlobalFlags(show, globals);
  OnRun(show, action, [show_id](const CommandEnv& env) {
    return RunDatasetShow(env, *show_id);
  });
}

void AddExperimentCreate(CLI::App* experiment, GlobalFlags* globals,
                         Action* action) {
  auto flags = std::make_shared<ExperimentFlags>();
  CLI::App* create = experiment->add_subcommand(
      "create",
      "Start an architecture search on a data set and print the new "
      "experiment");
  create->add_option("--name", flags->name,
                     "Human-readable name of the experiment");
  create->add_option("--dataset", flags->dataset_id, "Training data set id")
      ->type_name("ID")
      ->required()
      ->group("Data");
  create
      ->add_option("--inputs", flags->inputs,
                   "Input columns, comma-separated (e.g. x1,x2,x3; default: "
                   "every column that is not an output)")
      ->type_name("COLS")
      ->group("Data");
  create
      ->add_option("--outputs", flags->outputs,
                   "Output columns to predict, comma-separated")
      ->type_name("COLS")
      ->required()
      ->group("Data");
  create
      ->add_option("--test-dataset", flags->test_dataset_id,
                   "Data set with the same columns, never used for "
                   "selection; every candidate is scored on it")
      ->type_name("ID")
      ->group("Data");
  AddOptional(create, "--validation-fraction", &flags->validation_fraction,
              "Fraction of rows held out for validation, in (0, 0.9] "
              "(controller default 0.2)")
      ->check(NumberIn(0, 0.9, true, "in (0, 0.9]"))
      ->group("Data");
  AddOptional(create, "--judging-fraction", &flags->judging_fraction,
              "Fraction of the remaining rows held out for judging, in "
              "[0, 0.5]: neither trained on nor used to choose weights, the "
              "requirements and the front are judged on them (default 0: "
              "judged on the validation rows)")
      ->check(NumberIn(0, 0.5, false, "in [0, 0.5]"))
      ->group("Data");

  const std::string kReq = "Requirements (a candidate meeting all is feasible)";
  AddOptional(create, "--max-abs-error", &flags->max_abs_error,
              "Largest allowed |prediction - target| on validation rows")
      ->check(Positive())
      ->group(kReq);
  AddOptional(create, "--within-tolerance", &flags->within_tolerance,
              "Error tolerance for --min-fraction-within (and the reported "
              "within fraction)")
      ->check(Positive())
      ->group(kReq);
  AddOptional(create, "--min-fraction-within", &flags->min_fraction_within,
              "Smallest allowed fraction (0..1) of validation points within "
              "--within-tolerance")
      ->check(NumberIn(0, 1, false, "in [0, 1]"))
      ->group(kReq);
  AddOptional(create, "--min-accuracy", &flags->min_accuracy,
              "Classification: smallest allowed fraction (0..1] of validation "
              "rows classified correctly")
      ->check(NumberIn(0, 1, true, "in (0, 1]"))
      ->group(kReq);
  AddOptional(create, "--max-params", &flags->max_parameters,
              "Largest allowed number of trainable parameters")
      ->check(Positive())
      ->group(kReq);
  AddOptional(create, "--max-model-bytes", &flags->max_model_bytes,
              "Largest allowed size of the exported model file")
      ->check(Positive())
      ->group(kReq);
  AddOptional(create, "--max-training-seconds", &flags->max_training_seconds,
              "Largest allowed training time of one candidate")
      ->check(Positive())
      ->group(kReq);
  AddOptional(create, "--max-latency-seconds",
              &flags->max_inference_latency_seconds,
              "Largest allowed inference latency for one sample")
      ->check(Positive())
      ->group(kReq);

  const std::string kSearch = "Search (at least one budget flag is required)";
  AddOptional(create, "--budget-candidates", &flags->budget_candidates,
              "Stop after training this many candidates")
      ->check(Positive())
      ->group(kSearch);
  AddOptional(create, "--budget-seconds", &flags->budget_seconds,
              "Stop handing out work this many seconds after creation")
      ->check(Positive())
      ->group(kSearch);
  AddOptional(create, "--seed", &flags->seed,
              "Seed of the search and of training (default 0)")
      ->group(kSearch);
  AddOptional(create, "--max-worker-seconds", &flags->max_worker_seconds,
              "Stop when the experiment's leases add up to this many "
              "worker-seconds")
      ->check(Positive())
      ->group(kSearch);
  create->add_flag("--stop-when-feasible", flags->stop_when_feasible,
                   "Stop as soon as one candidate meets every requirement")
      ->group(kSearch);
  create->add_option("--task", flags->task,
                     "What the network predicts: regression (real-valued "
                     "--outputs) or classification (one --outputs column of "
                     "class labels 0..C-1; the network outputs C logits)")
      ->check(CLI::IsMember({"regression", "classification"}))
      ->capture_default_str()
      ->group("Data");
  create->add_option("--strategy", flags->strategy,
                     "Search strategy: random (uniform sampling), evolution "
                     "(regularized evolution), lemonade (Pareto front, "
                     "inverse-density parents, morphisms) or nsga2")
      ->check(CLI::IsMember({"random", "evolution", "lemonade", "nsga2"}))
      ->capture_default_str()
      ->group(kSearch);
  create->add_flag("--inherit", flags->inherit,
                   "Children made by a network morphism start from their "
                   "parent's trained weights")
      ->group(kSearch);
  AddOptional(create, "--inherit-step-fraction", &flags->inherit_step_fraction,
              "Fraction (0, 1] of its steps an inheriting child trains "
              "(default 1)")
      ->check(NumberIn(0, 1, true, "in (0, 1]"))
      ->group(kSearch);
  create->add_flag("--multi-fidelity", flags->multi_fidelity,
                   "Successive halving: train every new candidate for a "
                   "fraction of its steps, and only the best of those "
                   "(1 in --reduction-factor) in full")
      ->group(kSearch);
  AddOptional(create, "--short-step-fraction", &flags->short_step_fraction,
              "Fraction (0, 1) of its steps a first, short run trains "
              "(default 0.25)")
      ->check(NumberIn(0, std::nextafter(1.0, 0.0), true, "in (0, 1)"))
      ->group(kSearch);
  AddOptional(create, "--short-row-fraction", &flags->short_row_fraction,
              "Fraction (0, 1] of the training rows a short run trains on "
              "(default 1); a promotion trains on all of them")
      ->check(NumberIn(0, 1, true, "in (0, 1]"))
      ->group(kSearch);
  AddOptional(create, "--reduction-factor", &flags->reduction_factor,
              "Successive halving's eta: 1 in this many short runs is "
              "trained in full (default 3; 2..100)")
      ->check(CLI::Range(2, 100))
      ->group(kSearch);
  AddOptional(create, "--refit", &flags->refit,
              "After the search, train the best N front members again on "
              "all rows, validation rows included, and judge them on the "
              "test data set (0..100)")
      ->check(CLI::Range(0, 100))
      ->group(kSearch);
  create->add_option("--initial-genome", flags->initial_genome_files,
                     "A design to train first, before the search proposes "
                     "anything: a file holding one Genome in protobuf text "
                     "format or JSON (repeatable; in the order given)")
      ->type_name("FILE")
      ->group(kSearch);
  create->add_option("--refit-start", flags->refit_start,
                     "Where refits start: auto (from scratch when the member "
                     "was, else from its weights), continue (from the "
                     "member's weights) or scratch (default auto)")
      ->type_name("HOW")
      ->group(kSearch);
  AddOptional(create, "--refit-step-fraction", &flags->refit_step_fraction,
              "Fraction (0, 1] of its steps a refit continues the member's "
              "training for (default 0.25)")
      ->check(NumberIn(0, 1, true, "in (0, 1]"))
      ->group(kSearch);
  AddOptional(create, "--lemonade-children", &flags->lemonade_children,
              "LEMONADE: children generated per accepted child (default 16)")
      ->check(Positive())
      ->group(kSearch);
  AddOptional(create, "--lemonade-random-fraction",
              &flags->lemonade_random_fraction,
              "LEMONADE: fraction [0, 1] of the proposals after the initial "
              "population that are random samples trained from scratch "
              "(default 0)")
      ->check(NumberIn(0, 1, false, "in [0, 1]"))
      ->group(kSearch);
  create
      ->add_option("--objectives", flags->objectives,
                   "Objectives of the Pareto front, comma-separated, of " +
                       ObjectiveNames() + " (default error,params,seconds)")
      ->type_name("OBJS")
      ->group(kSearch);
  create
      ->add_option("--fitness-weight", flags->fitness_weights,
                   "Weighted-sum fitness term OBJECTIVE=WEIGHT on log10 "
                   "values (repeatable)")
      ->type_name("OBJ=W")
      ->group(kSearch);

  const std::string kSpace = "Search space (unset: the controller's defaults)";
  AddOptional(create, "--min-depth", &flags->min_depth,
              "Fewest hidden layers per stage (default 1)")
      ->group(kSpace);
  AddOptional(create, "--max-depth", &flags->max_depth,
              "Most hidden layers per stage (default 4)")
      ->group(kSpace);
  AddOptional(create, "--batch-size", &flags->batch_size,
              "Adam mini-batch rows of every candidate (0: full batch; "
              "controller default full batch, 256 for classification)")
      ->check(CLI::Range(0, 1000000))
      ->group(kSpace);
  AddOptional(create, "--min-width", &flags->min_width,
              "Narrowest hidden layer (default 8)")
      ->group(kSpace);
  AddOptional(create, "--max-width", &flags->max_width,
              "Widest hidden layer (default 128)")
      ->group(kSpace);
  create
      ->add_option("--activations", flags->activations,
                   "Activations to choose from, comma-separated, of tanh, "
                   "relu, silu, gelu, sine, gaussian (default "
                   "tanh,silu,gelu); with "
                   "--stage-activations, of the first stage only")
      ->type_name("LIST")
      ->group(kSpace);
  create
      ->add_option("--stage-activations", flags->stage_activations,
                   "Activations of the stages after the first, "
                   "comma-separated (default: as --activations); needs "
                   "--max-stages")
      ->type_name("LIST")
      ->group(kSpace);
  AddOptional(create, "--min-adam-steps", &flags->min_adam_steps,
              "Fewest Adam steps (default 500)")
      ->group(kSpace);
  AddOptional(create, "--max-adam-steps", &flags->max_adam_steps,
              "Most Adam steps (default 3000)")
      ->group(kSpace);
  AddOptional(create, "--lbfgs-steps", &flags->lbfgs_steps,
              "L-BFGS polish iterations (default 200)")
      ->group(kSpace);
  AddOptional(create, "--max-stages", &flags->max_stages,
              "Most residual stages after the first, 0..7 (default 0): "
              "multi-stage networks, each fitting the residual of the ones "
              "before")
      ->group(kSpace);
  create
      ->add_flag("--grow-stages", flags->grow_stages,
                 "Evolutionary strategies grow multi-stage networks one "
                 "full-size stage at a time instead of sampling them whole "
                 "(best with --inherit); needs --max-stages")
      ->group(kSpace);
  create->add_flag("--allow-residual", flags->allow_residual,
                   "Hidden (and convolutional) layers may be residual (skip "
                   "connections)")
      ->group(kSpace);
  create
      ->add_flag("--allow-layer-norm", flags->allow_layer_norm,
                 "Dense hidden layers may be layer-normalised (before "
                 "their activation; not in convolutional networks)")
      ->group(kSpace);
  AddOptional(create, "--max-conv-layers", &flags->max_conv_layers,
              "Most convolutional layers before the dense ones, 0..16 "
              "(default 0: MLPs); needs an image (IDX) data set")
      ->group(kSpace);
  AddOptional(create, "--min-conv-layers", &flags->min_conv_layers,
              "Fewest convolutional layers (default 0)")
      ->group(kSpace);
  AddOptional(create, "--min-channels", &flags->min_channels,
              "Fewest channels of a convolutional layer (default 4)")
      ->group(kSpace);
  AddOptional(create, "--max-channels", &flags->max_channels,
              "Most channels of a convolutional layer (default 64)")
      ->group(kSpace);
  AddOptional(create, "--max-pooling-layers", &flags->max_pooling_layers,
              "Most 2x2 poolings (default: as many as the image allows)")
      ->group(kSpace);
  create
      ->add_option("--kernel-sizes", flags->kernel_sizes,
                   "Convolution kernel sizes to choose from, comma-separated, "
                   "of 1, 3, 5, 7 (default 3,5)")
      ->type_name("LIST")
      ->group(kSpace);
  create
      ->add_option("--precisions", flags->precisions,
                   "Precisions of single-stage dense networks to choose "
                   "from, comma-separated: float64, float32 (default float64)")
      ->type_name("LIST")
      ->group(kSpace);
  create->add_flag("--search-training-extras", flags->search_training_extras,
                   "Also search warm-up, weight decay, patience, the "
                   "max-error phase and later stages' SIREN omega")
      ->group(kSpace);
  AddGlobalFlags(create, globals);

  create->callback([flags, action] {
    absl::StatusOr<v1::ExperimentSpec> spec = BuildExperimentSpec(*flags);
    if (!spec.ok())
      throw CLI::ValidationError(std::string(spec.status().message()));
    *action = [spec = *std::move(spec)](const CommandEnv& env) {
      return RunExperimentCreate(env, spec);
    };
  });
}

void AddExperimentCommands(CLI::App* app, GlobalFlags* globals,
                           Action* action) {
  CLI::App* experiment = app->add_subcommand(
      "experiment", "Start, follow and inspect architecture searches");
  experiment->require_subcommand(1);
  AddExperimentCreate(experiment, globals, action);

  // The commands that take just an experiment id.
  struct IdCommand {
    const char* name;
    const char* description;
    absl::Status (*run)(const CommandEnv&, const std::string&);
  };
  const IdCommand id_commands[] = {
      {"status",
       "Show an experiment: state, candidate counts, feasible count, elapsed "
       "time",
       RunExperimentStatus},
      {"cancel",
       "Cancel an experiment: queued candidates are dropped, running ones "
       "may still report",
       RunExperimentCancel},
      {"candidates",
       "List an experiment's candidates in the order they were proposed",
       RunExperimentCandidates},
      {"front",
       "Show the Pareto front (validation error vs. parameters vs. training "
       "time) and whether any candidate meets all requirements",
       RunExperimentFront},
  };
  for (const IdCommand& c : id_commands) {
    auto id = std::make_shared<std::string>();
    CLI::App* command = experiment->add_subcommand(c.name, c.description);
    command->add_option("ID", *id, "Experiment id")->required();
    AddGlobalFlags(command, globals);
    OnRun(command, action,
          [id, run = c.run](const CommandEnv& env) { return run(env, *id); });
  }

  CLI::App* list =
      experiment->add_subcommand("list", "List experiments, newest first");
  AddGlobalFlags(list, globals);
  OnRun(list, action,
        [](const CommandEnv& env) { return RunExperimentList(env); });

  struct WaitArgs {
    std::string id;
    double poll_seconds = 2;
    double timeout_seconds = 0;
  };
  auto wait_args = std::make_shared<WaitArgs>();
  CLI::App* wait = experiment->add_subcommand(
      "wait",
      "Wait until an experiment finishes, printing a line whenever its "
      "counts change; exit 0 when it completed, 5 when it was cancelled, 6 "
      "when the timeout passed");
  wait->add_option("ID", wait_args->id, "Experiment id")->required();
  wait->add_option("--poll-seconds", wait_args->poll_seconds,
                   "Seconds between status requests")
      ->check(Positive())
      ->capture_default_str();
  wait->add_option("--timeout-seconds", wait_args->timeout_seconds,
                   "Give up after this many seconds; 0 waits forever")
      ->check(NumberIn(0, HUGE_VAL, false, ">= 0"))
      ->capture_default_str();
  AddGlobalFlags(wait, globals);
  OnRun(wait, action, [wait_args](const CommandEnv& env) {
    WaitOptions options;
    options.poll_interval = absl::Seconds(wait_args->poll_seconds);
    options.timeout = absl::Seconds(wait_args->timeout_seconds);
    return RunExperimentWait(env, wait_args->id, options);
  });

  struct WatchArgs {
    std::string id;
    double timeout_seconds = 0;
  };
  auto watch_args = std::make_shared<WatchArgs>();
  CLI::App* watch = experiment->add_subcommand(
      "watch",
      "Follow an experiment live until it finishes: candidates done, "
      "running, queued and failed, best feasible error, front size, elapsed "
      "and estimated remaining time. On a terminal one line is redrawn in "
      "place; piped, a line per change (a JSON object or CSV row per change "
      "with --output json|csv). Exit 0 when it completed, 5 when it was "
      "cancelled, 6 when the timeout passed");
  watch->add_option("ID", watch_args->id, "Experiment id")->required();
  watch->add_option("--timeout-seconds", watch_args->timeout_seconds,
                    "Give up after this many seconds; 0 watches until the "
                    "experiment finishes")
      ->check(NumberIn(0, HUGE_VAL, false, ">= 0"))
      ->capture_default_str();
  AddGlobalFlags(watch, globals);
  OnRun(watch, action, [watch_args](const CommandEnv& env) {
    WatchOptions options;
    options.timeout = absl::Seconds(watch_args->timeout_seconds);
    return RunExperimentWatch(env, watch_args->id, options);
  });

  struct ReportArgs {
    std::string id;
    ReportOptions options;
  };
  auto report_args = std::make_shared<ReportArgs>();
  CLI::App* report = experiment->add_subcommand(
      "report",
      "Write the report for a customer: one self-contained HTML file (no "
      "network needed to view it) with the requirements, the data set, the "
      "Pareto front plotted against size and latency, a table of the front "
      "with a tick or cross per requirement, and the search's progress. "
      "--format svg or png writes just the front plot (error against "
      "parameters), for slides");
  report->add_option("ID", report_args->id, "Experiment id")->required();
  report
      ->add_option("-o,--file", report_args->options.path,
                   "Where to write (written to FILE.tmp first, then "
                   "renamed); - writes to standard output")
      ->type_name("FILE")
      ->required();
  report
      ->add_option("--format", report_args->options.format,
                   "html (the whole report), svg (the front plot: error "
                   "against parameters) or png (the same plot, 1920x1200 "
                   "pixels, for slides)")
      ->type_name("FORMAT")
      ->check(CLI::IsMember({"html", "svg", "png"}))
      ->capture_default_str();
  AddGlobalFlags(report, globals);
  OnRun(report, action, [report_args](const CommandEnv& env) {
    return RunExperimentReport(env, report_args->id, report_args->options);
  });
}

void AddModelCommands(CLI::App* app, GlobalFlags* globals, Action* action) {
  CLI::App* model = app->add_subcommand("model", "Download trained models");
  model->require_subcommand(1);

  struct DownloadArgs {
    std::string candidate_id;
    std::string file;
    std::string format = "torchscript";
  };
  auto args = std::make_shared<DownloadArgs>();
  CLI::App* download = model->add_subcommand(
      "download",
      "Download a succeeded candidate's model and verify its SHA-256: "
      "TorchScript (raw inputs to raw outputs, float64; the file the metrics "
      "were computed with), ONNX (float32, opset 13) or its JSON model card");
  download->add_option("CANDIDATE_ID", args->candidate_id, "Candidate id")
      ->required();
  download
      ->add_option("-o,--file", args->file,
                   "Where to write the model; written to FILE.tmp first "
                   "and renamed once verified")
      ->type_name("FILE")
      ->required();
  download
      ->add_option("--format", args->format,
                   "torchscript, onnx or card (the model card, JSON)")
      ->capture_default_str()
      ->check(CLI::IsMember({"torchscript", "onnx", "card"}));
  AddGlobalFlags(download, globals);
  OnRun(download, action, [args](const CommandEnv& env) {
    const v1::ModelFormat format =
        args->format == "onnx"   ? v1::MODEL_FORMAT_ONNX
        : args->format == "card" ? v1::MODEL_FORMAT_MODEL_CARD
                                 : v1::MODEL_FORMAT_TORCHSCRIPT;
    return RunModelDownload(env, args->candidate_id, args->file, format);
  });
}

int Main(int argc, char** argv) {
  GlobalFlags globals;
  globals.controller = FromEnv("EVONAS_CONTROLLER", kDefaultController);
  globals.security.token = FromEnv("EVONAS_TOKEN", "");
  globals.security.tls_ca_file = FromEnv("EVONAS_TLS_CA", "");

  CLI::App app(
      "evonas: client of the evonas controller. Upload CSV data sets, search "
      "for neural networks that meet your requirements, follow the search, "
      "read the Pareto front and download trained models.",
      "evonas");
  app.set_version_flag("--version", std::string("evonas ") + EVONAS_VERSION);
  app.require_subcommand(1);
  app.get_formatter()->column_width(36);  // Shared with the subcommands.
  AddGlobalFlags(&app, &globals);

  Action action;
  AddDatasetCommands(&app, &globals, &action);
  AddExperimentCommands(&app, &globals, &action);
  AddModelCommands(&app, &globals, &action);
  // Set after adding the subcommands so that they do not inherit it.
  app.footer(
      "Environment:\n"
      "  EVONAS_CONTROLLER  default for --controller\n"
      "  EVONAS_TOKEN       default for --token\n"
      "  EVONAS_TLS_CA      default for --tls-ca\n"
      "  NO_COLOR           set to print no colour on a terminal\n"
      "Exit status (errors print \"error: CODE: message\" on stderr):\n"
      "  0  success\n"
      "  1  any other error: the controller refused the request (e.g.\n"
      "     INVALID_ARGUMENT, FAILED_PRECONDITION) or a local failure\n"
      "  2  usage error: unknown command or flag, bad flag value\n"
      "  3  the controller cannot be reached (UNAVAILABLE)\n"
      "  4  not found: unknown data set, experiment or candidate id, or a\n"
      "     missing file (NOT_FOUND)\n"
      "  5  the experiment that wait or watch followed was cancelled\n"
      "  6  a deadline passed: --timeout-seconds of wait or watch, or a slow\n"
      "     controller (DEADLINE_EXCEEDED)\n"
      "  7  the token is missing, unknown or revoked (UNAUTHENTICATED), or\n"
      "     of the wrong kind (PERMISSION_DENIED)\n"
      "Run \"evonas COMMAND SUBCOMMAND --help\" for a command's flags.");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every other parse error is a usage error.
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  if (!action) {
    std::cerr << app.help();
    return kExitUsage;
  }

  CommandEnv env;
  env.format = *ParseOutputFormat(globals.output);  // Checked by CLI11.
  env.out = &std::cout;
  env.err = &std::cerr;
  const char* no_color = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  const auto is_terminal = [term](int fd) {
    return isatty(fd) == 1 && (term == nullptr || std::string(term) != "dumb");
  };
  env.tty = is_terminal(STDOUT_FILENO);
  env.color = env.tty && (no_color == nullptr || *no_color == '\0');
  env.err_tty = is_terminal(STDERR_FILENO);
  absl::StatusOr<std::unique_ptr<ControllerClient>> client =
      ControllerClient::Connect(globals.controller, globals.security,
                                ClientOptions());
  const absl::Status status = [&] {
    if (!client.ok()) return client.status();
    env.client = client->get();
    return action(env);
  }();
  std::cout.flush();
  if (!status.ok()) {
    std::cerr << "error: " << absl::StatusCodeToString(status.code());
    if (!status.message().empty()) std::cerr << ": " << status.message();
    std::cerr << "\n";
  }
  return ExitCodeFor(status);
}

}  // namespace
}  // namespace evonas::client

int main(int argc, char** argv) { return evonas::client::Main(argc, argv); }
