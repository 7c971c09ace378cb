#include "server/controller.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/dataset.h"
#include "common/genome.h"
#include "common/latency_table.h"
#include "common/requirements.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/table.h"
#include "common/timestamps.h"
#include "common/validation_split.h"
#include "server/search/pareto.h"
#include "server/search/strategy.h"
#include "server/search/successive_halving.h"

namespace evonas {
namespace {

constexpr int kMaxNameLength = 200;
// Longest id (data set, experiment, candidate, lease, worker) accepted.
constexpr size_t kMaxIdLength = 200;
// Longest piece of client-supplied text quoted in an error message, and the
// most column names listed in one, so that messages stay readable and far
// below gRPC's metadata limits whatever the input.
constexpr size_t kMaxQuotedBytes = 64;
constexpr int kMaxListedColumns = 20;
constexpr int64_t kMaxBudgetCandidates = 1000000;
// Classes a classification may have (the size of the output layer).
constexpr int32_t kMaxClasses = 1000;
// SearchSpace.batch_size 0 of a classification.
constexpr int32_t kDefaultClassificationBatch = 256;
constexpr double kDefaultValidationFraction = 0.2;
constexpr double kDefaultWithinTolerance = 1e-6;
// RefitSettings.step_fraction 0.
constexpr double kDefaultRefitStepFraction = 0.25;
// Copies of earlier candidates (Candidate.duplicate_of) recorded in one
// LeaseWork before the worker is told to come back later.
constexpr int kMaxCopiesPerCall = 4;
// After this many copies in a row the search space counts as exhausted:
// the experiment proposes nothing more and completes.
constexpr int kMaxConsecutiveCopies = 100;
// RefitSettings.front_members at most.
constexpr int32_t kMaxRefits = 100;
// ExperimentSpec.initial_genomes at most.
constexpr int kMaxInitialGenomes = 1000;
// ExperimentSpec.judging_fraction at most: half of the rows the validation
// split leaves.
constexpr double kMaxJudgingFraction = 0.5;
// Keeps the judging rows' random stream apart from the validation rows'.
constexpr uint64_t kJudgingStream = 0x4a7564676552776fULL;  // "JudgeRwo"

// Which rows of the experiment's data set are validation rows.
v1::ValidationSplit ValidationSplitOf(const v1::ExperimentSpec& spec) {
  v1::ValidationSplit split;
  split.set_seed(spec.seed());
  split.set_fraction(spec.validation_fraction());
  return split;
}

// Which of the rows the validation split leaves are judging rows.
v1::ValidationSplit JudgingSplitOf(const v1::ExperimentSpec& spec) {
  v1::ValidationSplit split;
  split.set_seed(SplitMix64(spec.seed() ^ kJudgingStream));
  split.set_fraction(spec.judging_fraction());
  return split;
}

// Whether the candidate is trained with judging rows held out: every
// candidate of an experiment that has them, except refits (which learn from
// every row).
bool HasJudgingRows(const v1::ExperimentSpec& spec,
                    const v1::Candidate& candidate) {
  return spec.judging_fraction() > 0 &&
         candidate.evaluation_level() != v1::EVALUATION_LEVEL_REFIT;
}

// Unguessable ids: a lease id is a capability of the worker holding it.
std::string RandomId(absl::string_view prefix, int bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), bytes);
  return absl::StrCat(prefix, absl::BytesToHexString(raw));
}

google::protobuf::Timestamp ToProto(int64_t unix_ms) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(unix_ms / 1000);
  ts.set_nanos(static_cast<int32_t>(unix_ms % 1000) * 1000000);
  return ts;
}

int64_t ToMs(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * 1000 + ts.nanos() / 1000000;
}

// Cuts `text` to at most `max_bytes` without splitting a UTF-8 character.
std::string Truncate(const std::string& text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
    --end;
  }
  return text.substr(0, end);
}

// `text` in double quotes for an error message: control characters and
// quotes escaped, shortened to kMaxQuotedBytes (marked by "...").
std::string Quote(const std::string& text) {
  std::string shown = Truncate(text, kMaxQuotedBytes);
  return absl::StrCat("\"", absl::Utf8SafeCHexEscape(shown), "\"",
                      shown.size() < text.size() ? "..." : "");
}

// InvalidArgument unless `id` could be an id: non-empty and not too long.
absl::Status CheckId(absl::string_view field, const std::string& id) {
  if (id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  }
  if (id.size() > kMaxIdLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", id.size(), " bytes long; ids are at most ",
                     kMaxIdLength, " bytes"));
  }
  return absl::OkStatus();
}

// A report is either a success (metrics and a model follow) or a failure
// (a reason, nothing else).
absl::Status CheckReportShape(const v1::WorkResult& result) {
  if (result.failure_reason().empty()) {
    if (!result.has_metrics()) {
      return absl::InvalidArgumentError(
          "report: set metrics on success or failure_reason on failure");
    }
    std::set<int> formats;
    for (const v1::Artifact& artifact : result.artifacts()) {
      if (artifact.format() != v1::MODEL_FORMAT_ONNX &&
          artifact.format() != v1::MODEL_FORMAT_MODEL_CARD &&
          artifact.format() != v1::MODEL_FORMAT_CHECKPOINT) {
        return absl::InvalidArgumentError(absl::StrCat(
            "report: artifacts may be MODEL_FORMAT_ONNX, "
            "MODEL_FORMAT_MODEL_CARD or MODEL_FORMAT_CHECKPOINT, got format ",
            artifact.format()));
      }
      if (!formats.insert(artifact.format()).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("report: artifact ",
                         v1::ModelFormat_Name(artifact.format()),
                         " is listed twice"));
      }
      if (artifact.size_bytes() <= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "report: artifact ", v1::ModelFormat_Name(artifact.format()),
            " has size ", artifact.size_bytes(), "; it must be positive"));
      }
    }
    return absl::OkStatus();
  }
  if (result.has_metrics() || result.model_size_bytes() != 0 ||
      !result.model_sha256().empty() || result.artifacts_size() > 0) {
    return absl::InvalidArgumentError(
        "report: a failure report carries no metrics, no model and no "
        "artifacts");
  }
  return absl::OkStatus();
}

bool IsFinal(v1::CandidateState state) {
  return state == v1::CANDIDATE_STATE_SUCCEEDED ||
         state == v1::CANDIDATE_STATE_FAILED ||
         state == v1::CANDIDATE_STATE_CANCELLED;
}

absl::Status CheckColumns(const std::vector<std::string>& wanted,
                          absl::string_view field, const v1::Dataset& dataset) {
  if (wanted.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": name at least one column"));
  }
  std::set<std::string> available(dataset.columns().begin(),
                                  dataset.columns().end());
  std::set<std::string> seen;
  for (const std::string& column : wanted) {
    if (!available.count(column)) {
      std::vector<std::string> known;
      for (int i = 0; i < dataset.columns_size() && i < kMaxListedColumns;
           ++i) {
        known.push_back(Quote(dataset.columns(i)));
      }
      std::string list = absl::StrJoin(known, ", ");
      if (dataset.columns_size() > kMaxListedColumns) {
        absl::StrAppend(&list, " and ",
                        dataset.columns_size() - kMaxListedColumns, " more");
      }
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": data set ", dataset.id().substr(0, 12),
                       " has no column ", Quote(column),
                       "; its columns are ", list));
    }
    if (!seen.insert(column).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": column ", Quote(column), " is named twice"));
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> ToVector(
    const google::protobuf::RepeatedPtrField<std::string>& field) {
  return {field.begin(), field.end()};
}

absl::Status CheckpointError(absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("report: checkpoint ", problem));
}

absl::Status CheckFinite(const google::protobuf::RepeatedField<double>& values,
                         absl::string_view where, bool positive = false) {
  for (double v : values) {
    if (!std::isfinite(v) || (positive && v <= 0)) {
      return CheckpointError(absl::StrCat(
          where, " holds ", v, "; values must be finite",
          positive ? " and positive" : ""));
    }
  }
  return absl::OkStatus();
}

// OK when `bytes` is a v1::NetworkWeights that a worker can load for
// `genome` with `inputs` and `outputs` columns: one StageWeights per stage,
// each with one layer per hidden layer plus the output layer, of the
// genome's shapes, activations and residual flags, all values finite (and
// standard deviations positive), and `parameter_count` weights and biases
// in all. Otherwise InvalidArgument naming the first mismatch.
// The convolutional trunk of `stage` against the genome's; adds its
// trainable parameters to `parameters`.
absl::Status CheckConvCheckpoint(const v1::StageWeights& stage,
                                 const v1::Genome& genome,
                                 const ImageShape& image, int64_t& parameters) {
  if (stage.conv_layers_size() != genome.conv_layers_size()) {
    return CheckpointError(absl::StrCat(
        "stage 0 has ", stage.conv_layers_size(),
        " convolutional layers; the genome has ", genome.conv_layers_size()));
  }
  if (genome.conv_layers_size() == 0) return absl::OkStatus();
  if (stage.image_height() != image.height ||
      stage.image_width() != image.width) {
    return CheckpointError(absl::StrCat(
        "stage 0 reads ", stage.image_height(), " x ", stage.image_width(),
        " images; the data set's are ", image.height, " x ", image.width));
  }
  int64_t in = 1;
  for (int l = 0; l < stage.conv_layers_size(); ++l) {
    const v1::ConvLayerWeights& w = stage.conv_layers(l);
    const v1::ConvLayer& g = genome.conv_layers(l);
    const std::string at = absl::StrCat("stage 0 conv layer ", l);
    const int64_t out = g.channels();
    const int64_t k = g.kernel_size();
    const int64_t norm = g.batch_norm() ? out : 0;
    if (w.in_channels() != in || w.out_channels() != out ||
        w.kernel_size() != k || w.weight_size() != out * in * k * k ||
        w.bias_size() != out || w.batch_norm() != g.batch_norm() ||
        w.bn_scale_size() != norm || w.bn_shift_size() != norm ||
        w.bn_running_mean_size() != norm || w.bn_running_var_size() != norm) {
      return CheckpointError(absl::StrCat(
          at, " is ", w.in_channels(), " -> ", w.out_channels(),
          " channels, kernel ", w.kernel_size(), ", ", w.weight_size(),
          " weights, ", w.bias_size(), " biases, batch norm ",
          w.batch_norm() ? "on" : "off", "; the genome needs ", in, " -> ",
          out, ", kernel ", k, ", ", out * in * k * k, " weights, ", out,
          " biases, batch norm ", g.batch_norm() ? "on" : "off"));
    }
    if (w.activation() != g.activation() || w.pooling() != g.pooling() ||
        w.residual() != g.residual()) {
      return CheckpointError(absl::StrCat(
          at, " has another activation, pooling or residual flag than the "
              "genome"));
    }
    EVONAS_RETURN_IF_ERROR(CheckFinite(w.weight(), at + " weight"));
    EVONAS_RETURN_IF_ERROR(CheckFinite(w.bias(), at + " bias"));
    EVONAS_RETURN_IF_ERROR(CheckFinite(w.bn_scale(), at + " bn_scale"));
    EVONAS_RETURN_IF_ERROR(CheckFinite(w.bn_shift(), at + " bn_shift"));
    EVONAS_RETURN_IF_ERROR(
        CheckFinite(w.bn_running_mean(), at + " bn_running_mean"));
    EVONAS_RETURN_IF_ERROR(
        CheckFinite(w.bn_running_var(), at + " bn_running_var", true));
    parameters += w.weight_size() + w.bias_size() + 2 * norm;
    in = out;
  }
  return absl::OkStatus();
}

absl::Status CheckCheckpoint(const std::string& bytes, const v1::Genome& genome,
                             int64_t inputs, int64_t outputs,
                             const ImageShape& image, int64_t parameter_count) {
  v1::NetworkWeights weights;
  if (!weights.ParseFromString(bytes)) {
    return CheckpointError(
        "is not a binary-serialised evonas.v1.NetworkWeights");
  }
  std::vector<const google::protobuf::RepeatedPtrField<v1::DenseLayer>*>
      stages = {&genome.hidden_layers()};
  for (const v1::Stage& stage : genome.residual_stages()) {
    stages.push_back(&stage.hidden_layers());
  }
  if (weights.stages_size() != static_cast<int>(stages.size())) {
    return CheckpointError(absl::StrCat("has ", weights.stages_size(),
                                        " stages but the genome has ",
                                        stages.size()));
  }
  int64_t parameters = 0;
  for (size_t s = 0; s < stages.size(); ++s) {
    const v1::StageWeights& stage = weights.stages(static_cast<int>(s));
    const auto& hidden = *stages[s];
    if (s == 0) {
      EVONAS_RETURN_IF_ERROR(
          CheckConvCheckpoint(stage, genome, image, parameters));
    } else if (stage.conv_layers_size() > 0) {
      return CheckpointError(absl::StrCat(
          "stage ", s, " has convolutional layers; only stage 0 may"));
    }
    const std::string where = absl::StrCat("stage ", s);
    if (stage.x_mean_size() != inputs || stage.x_std_size() != inputs ||
        stage.y_mean_size() != outputs || stage.y_std_size() != outputs) {
      return CheckpointError(absl::StrCat(
          where, " standardises ", stage.x_mean_size(), "/",
          stage.x_std_size(), " inputs and ", stage.y_mean_size(), "/",
          stage.y_std_size(), " outputs (mean/std); the experiment has ",
          inputs, " inputs and ", outputs, " outputs"));
    }
    EVONAS_RETURN_IF_ERROR(CheckFinite(stage.x_mean(), where + " x_mean"));
    EVONAS_RETURN_IF_ERROR(CheckFinite(stage.y_mean(), where + " y_mean"));
    EVONAS_RETURN_IF_ERROR(CheckFinite(stage.x_std(), where + " x_std", true));
    EVONAS_RETURN_IF_ERROR(CheckFinite(stage.y_std(), where + " y_std", true));
    if (stage.layers_size() != hidden.size() + 1) {
      return CheckpointError(absl::StrCat(
          where, " has ", stage.layers_size(), " layers; the genome has ",
          hidden.size(), " hidden layers plus the output layer"));
    }
    int64_t in = s == 0 && genome.conv_layers_size() > 0
                     ? ConvOutputShape(genome, image).size()
                     : inputs;
    for (int l = 0; l < stage.layers_size(); ++l) {
      const bool is_output = l == hidden.size();
      const v1::LayerWeights& layer = stage.layers(l);
      const int64_t out = is_output ? outputs : hidden[l].width();
      const std::string at = absl::StrCat(where, " layer ", l);
      if (layer.inputs() != in || layer.outputs() != out ||
          layer.weight_size() != in * out || layer.bias_size() != out) {
        return CheckpointError(absl::StrCat(
            at, " is ", layer.inputs(), "x", layer.outputs(), " with ",
            layer.weight_size(), " weights and ", layer.bias_size(),
            " biases; the genome needs ", in, "x", out, " with ", in * out,
            " weights and ", out, " biases"));
      }
      const v1::Activation activation =
          is_output ? v1::ACTIVATION_UNSPECIFIED : hidden[l].activation();
      const bool residual = !is_output && hidden[l].residual();
      if (layer.activation() != activation || layer.residual() != residual) {
        return CheckpointError(absl::StrCat(
            at, " has activation ", ActivationName(layer.activation()),
            layer.residual() ? " (residual)" : "", "; the genome needs ",
            ActivationName(activation), residual ? " (residual)" : ""));
      }
      EVONAS_RETURN_IF_ERROR(CheckFinite(layer.weight(), at + " weight"));
      EVONAS_RETURN_IF_ERROR(CheckFinite(layer.bias(), at + " bias"));
      parameters += layer.weight_size() + layer.bias_size();
      in = out;
    }
  }
  if (parameters != parameter_count) {
    return CheckpointError(absl::StrCat(
        "holds ", parameters, " parameters but metrics.parameter_count is ",
        parameter_count));
  }
  return absl::OkStatus();
}

// Data sets stored before DatasetFormat existed are CSV.
v1::DatasetFormat FormatOf(const v1::Dataset& dataset) {
  return dataset.format() == v1::DATASET_FORMAT_UNSPECIFIED
             ? v1::DATASET_FORMAT_CSV
             : dataset.format();
}

// The data set's images; empty for tables.
ImageShape ImageOf(const v1::Dataset& dataset) {
  if (dataset.image_shape_size() != 2) return {};
  return {dataset.image_shape(0), dataset.image_shape(1)};
}

// Units of the networks' output layer: one per output column, or one logit
// per class.
int64_t NetworkOutputs(const v1::Experiment& experiment) {
  return experiment.class_count() > 0
             ? experiment.class_count()
             : experiment.spec().output_columns_size();
}

absl::Status CheckEvaluation(const v1::Evaluation& e, absl::string_view what,
                             bool classification) {
  if (classification) {
    if (!(e.accuracy() >= 0 && e.accuracy() <= 1) ||
        !(std::isfinite(e.cross_entropy()) && e.cross_entropy() >= 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "report: ", what, ".accuracy must be in [0, 1] and ", what,
          ".cross_entropy finite and non-negative"));
    }
    if (e.row_count() <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("report: ", what, ".row_count must be positive"));
    }
    return absl::OkStatus();
  }
  for (double v : {e.max_abs_error(), e.fraction_within(), e.rmse(), e.mae()}) {
    if (!std::isfinite(v) || v < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "report: ", what, " metrics must be finite and non-negative"));
    }
  }
  if (e.fraction_within() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("report: ", what, ".fraction_within must be <= 1"));
  }
  if (e.row_count() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("report: ", what, ".row_count must be positive"));
  }
  return absl::OkStatus();
}

// The Pareto front of an experiment's search candidates (no refits; copies
// are skipped, their originals stand for them), sorted by the first
// objective, best first. experiment_id and refits are left unset.
v1::ParetoFront SearchFront(const v1::ExperimentSpec& spec,
                            std::vector<v1::Candidate> candidates) {
  // A copy stands at its original's point, which is counted once.
  candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                  [](const v1::Candidate& c) {
                                    return !c.duplicate_of().empty();
                                  }),
                   candidates.end());
  // A genome's short run stands until its promotion has succeeded.
  candidates = search::HighestFinishedLevel(candidates);
  const std::vector<v1::Objective> objectives =
      search::ExperimentObjectives(spec);
  v1::ParetoFront front;
  for (v1::Objective objective : objectives) front.add_objectives(objective);
  for (size_t i :
       search::ParetoFront(candidates, objectives, spec.requirements())) {
    if (candidates[i].feasible()) front.set_has_feasible(true);
    *front.add_candidates() = std::move(candidates[i]);
  }
  // By the first objective: the error measure of the task unless the user
  // chose otherwise (a classifier's max abs error is 0, no order at all).
  const v1::Objective first = objectives.front();
  std::stable_sort(front.mutable_candidates()->begin(),
                   front.mutable_candidates()->end(),
                   [first](const v1::Candidate& a, const v1::Candidate& b) {
                     return search::ObjectiveValue(a, first) <
                            search::ObjectiveValue(b, first);
                   });
  return front;
}

// RefitSettings.step_fraction: in (0, 1], or 0 for the default.
absl::StatusOr<double> RefitStepFraction(double fraction) {
  if (fraction == 0) return kDefaultRefitStepFraction;
  if (fraction > 0 && fraction <= 1) return fraction;
  return absl::InvalidArgumentError(
      absl::StrCat("refit.step_fraction is ", fraction,
                   "; it must be in (0, 1], or 0 for the default ",
                   kDefaultRefitStepFraction));
}

// Fraction of its genome's steps the training of `c` runs (Lease.step_fraction).
// `parent`: the candidate c.parent_id names, whose weights it starts from.
double StepFraction(const v1::ExperimentSpec& spec, const v1::Candidate& c,
                    const v1::Candidate* parent) {
  const double inherited = spec.inheritance().step_fraction() > 0
                               ? spec.inheritance().step_fraction()
                               : search::kDefaultInheritStepFraction;
  const double short_run = spec.multi_fidelity().short_step_fraction();
  switch (c.evaluation_level()) {
    case v1::EVALUATION_LEVEL_REFIT:
      // Continuing from the member, or from scratch in full.
      return parent != nullptr ? spec.refit().step_fraction() : 1;
    case v1::EVALUATION_LEVEL_SHORT:
      return short_run * (parent != nullptr ? inherited : 1);
    case v1::EVALUATION_LEVEL_FULL:
      // A promotion continues its level-1 run for the steps that run left
      // out; without that run's weights it trains from scratch in full.
      if (parent == nullptr) return 1;
      return (1 - short_run) * (parent->parent_id().empty() ? 1 : inherited);
    default:
      return parent != nullptr ? inherited : 1;
  }
}

}  // namespace

absl::Status DatasetUpload::Append(absl::string_view chunk) {
  if (static_cast<int64_t>(bytes_.size() + chunk.size()) >
      controller_->options_.max_upload_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "upload exceeds the limit of ", controller_->options_.max_upload_bytes,
        " bytes"));
  }
  if (declared_size_ > 0 &&
      static_cast<int64_t>(bytes_.size() + chunk.size()) > declared_size_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "upload is longer than the ", declared_size_,
        " bytes declared in metadata.size_bytes; nothing was stored"));
  }
  bytes_.append(chunk.data(), chunk.size());
  return absl::OkStatus();
}

absl::StatusOr<v1::Dataset> DatasetUpload::Finish(
    std::optional<std::string> owner) {
  if (declared_size_ > 0 &&
      static_cast<int64_t>(bytes_.size()) != declared_size_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "upload ended after ", bytes_.size(), " of the ", declared_size_,
        " bytes declared in metadata.size_bytes (cut off?); nothing was "
        "stored, upload the file again"));
  }
  return controller_->StoreDataset(name_, bytes_, format_, std::move(owner));
}

absl::StatusOr<std::unique_ptr<Controller>> Controller::Create(
    ControllerOptions options) {
  EVONAS_ASSIGN_OR_RETURN(auto store, store::Store::Open(options.db_path));
  EVONAS_ASSIGN_OR_RETURN(
      auto blobs, store::BlobStore::Open(options.data_dir + "/blobs"));
  // A blob is written before the row that refers to it commits, so a crash in
  // between leaves an orphan. No commit is in flight before we serve, so
  // every unreferenced blob is an orphan; see orphan_blob_grace.
  EVONAS_ASSIGN_OR_RETURN(std::set<std::string> referenced,
                          store->ReferencedBlobs());
  EVONAS_RETURN_IF_ERROR(
      blobs
          ->RemoveUnreferenced(
              referenced, std::filesystem::file_time_type::clock::now() -
                              absl::ToChronoNanoseconds(
                                  options.orphan_blob_grace))
          .status());
  return std::unique_ptr<Controller>(
      new Controller(std::move(options), std::move(store), std::move(blobs)));
}

int64_t Controller::NowMs() const {
  return absl::ToUnixMillis(options_.clock());
}

// ------------------------------------------------------------ group commit

template <typename Body>
auto Controller::InBatch(Body&& body) -> decltype(body()) {
  int64_t epoch = 0;
  decltype(body()) result = [&]() -> decltype(body()) {
    absl::MutexLock lock(&mu_);
    if (absl::Status opened = OpenBatchLocked(); !opened.ok()) return opened;
    epoch = batch_epoch_;
    return body();
  }();
  if (epoch == 0) return result;  // the batch could not even be opened
  if (absl::Status committed = AwaitCommit(epoch); !committed.ok()) {
    return committed;
  }
  return result;
}

absl::Status Controller::OpenBatchLocked() {
  if (batch_ != nullptr) return absl::OkStatus();
  EVONAS_ASSIGN_OR_RETURN(batch_, store_->BeginTransaction());
  ++batch_epoch_;
  return absl::OkStatus();
}

absl::Status Controller::AwaitCommit(int64_t epoch) {
  absl::MutexLock lock(&mu_);
  while (finished_epoch_ < epoch) {
    if (batch_ != nullptr && batch_epoch_ == epoch) {
      // Nobody is committing it: this call does, for the whole batch.
      FinishBatchLocked(absl::OkStatus());
      break;
    }
    batch_finished_.Wait(&mu_);
  }
  auto failed = failed_batches_.find(epoch);
  if (failed == failed_batches_.end()) return absl::OkStatus();
  return failed->second;
}

void Controller::FinishBatchLocked(absl::Status cause) {
  if (batch_ == nullptr) return;
  if (cause.ok()) cause = batch_->Commit();
  batch_.reset();  // rolls back unless committed
  if (!cause.ok()) {
    failed_batches_[batch_epoch_] = absl::UnavailableError(absl::StrCat(
        "the database transaction of this call was rolled back, nothing of "
        "it is stored; retry (",
        cause.message(), ")"));
    DropCachesLocked();
  }
  std::vector<std::function<void(observability::ControllerObserver&)>> events;
  events.swap(pending_events_);
  if (cause.ok()) {
    for (auto& event : events) event(*options_.observer);
  }
  finished_epoch_ = batch_epoch_;
  batch_finished_.SignalAll();
}

void Controller::NotifyLocked(
    std::function<void(observability::ControllerObserver&)> event) {
  if (options_.observer != nullptr) pending_events_.push_back(std::move(event));
}

void Controller::DropCachesLocked() {
  search_states_.clear();
  // Strategies may cache per sequence, and sequences of rolled-back
  // candidates are proposed again.
  strategies_.clear();
  worker_seconds_.clear();
  latency_tables_.reset();
}

absl::StatusOr<const std::vector<v1::LatencyTable>*>
Controller::LatencyTablesLocked() {
  if (!latency_tables_) {
    EVONAS_ASSIGN_OR_RETURN(latency_tables_, store_->ListLatencyTables());
  }
  return &*latency_tables_;
}

absl::Status Controller::RecordLatencyTableLocked(
    const v1::LatencyTable& table) {
  EVONAS_RETURN_IF_ERROR(LatencyTablesLocked().status());
  std::vector<v1::LatencyTable>* tables = &*latency_tables_;
  // Every LeaseWork of a calibrated worker carries its table: compare
  // before writing anything.
  const std::string bytes = table.SerializeAsString();
  auto same_class = std::find_if(
      tables->begin(), tables->end(), [&](const v1::LatencyTable& t) {
        return t.hardware_class() == table.hardware_class();
      });
  if (same_class != tables->end() && same_class->SerializeAsString() == bytes) {
    return absl::OkStatus();
  }
  EVONAS_RETURN_IF_ERROR(store_->PutLatencyTable(table, NowMs()));
  strategies_.clear();
  if (same_class != tables->end()) {
    // A re-measurement of a known class moves the estimates by its noise;
    // workers of one class take turns reporting theirs, so re-estimating
    // here would rewrite every candidate on every lease. Only later
    // proposals use it.
    *same_class = table;
    return absl::OkStatus();
  }
  // A new class can change every estimate (the slowest class counts).
  tables->push_back(table);
  return ReestimateLatenciesLocked();
}

absl::Status Controller::ReestimateLatenciesLocked() {
  EVONAS_ASSIGN_OR_RETURN(const std::vector<std::string> running,
                          store_->ListRunningExperimentIds());
  for (const std::string& id : running) {
    EVONAS_ASSIGN_OR_RETURN(const v1::Experiment experiment,
                            store_->GetExperiment(id));
    EVONAS_ASSIGN_OR_RETURN(std::vector<store::StoredCandidate> candidates,
                            store_->ListCandidates(id));
    for (store::StoredCandidate& stored : candidates) {
      v1::Candidate& c = stored.candidate;
      EVONAS_ASSIGN_OR_RETURN(const v1::GenomeCost cost,
                              CostLocked(experiment, c.genome()));
      if (cost.estimated_latency_seconds() ==
          c.cost().estimated_latency_seconds()) {
        continue;
      }
      *c.mutable_cost() = cost;
      // Not WriteCandidate: the candidate's state does not change.
      EVONAS_RETURN_IF_ERROR(store_->UpdateCandidate(stored));
    }
    // Its cached finished candidates hold the old estimates.
    search_states_.erase(id);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::GenomeCost> Controller::CostLocked(
    const v1::Experiment& experiment, const v1::Genome& genome) {
  EVONAS_ASSIGN_OR_RETURN(const std::vector<v1::LatencyTable>* tables,
                          LatencyTablesLocked());
  EVONAS_ASSIGN_OR_RETURN(const ImageShape image, ImageLocked(experiment));
  return EstimateGenomeCost(genome, experiment.spec().input_columns_size(),
                            NetworkOutputs(experiment), *tables, image);
}

absl::StatusOr<ImageShape> Controller::ImageLocked(
    const v1::Experiment& experiment) {
  const std::string& id = experiment.spec().dataset_id();
  auto it = images_.find(id);
  if (it == images_.end()) {
    EVONAS_ASSIGN_OR_RETURN(const v1::Dataset dataset, store_->GetDataset(id));
    it = images_.emplace(id, ImageOf(dataset)).first;
  }
  return it->second;
}

absl::StatusOr<std::vector<v1::LatencyTable>> Controller::LatencyTables() {
  absl::MutexLock lock(&mu_);
  EVONAS_ASSIGN_OR_RETURN(const std::vector<v1::LatencyTable>* tables,
                          LatencyTablesLocked());
  return *tables;
}

void Controller::AddToSearchState(const v1::Candidate& c,
                                  SearchState& state) {
  if (c.evaluation_level() == v1::EVALUATION_LEVEL_REFIT) {
    // After the search: its genome is already taken by the member.
    state.refits_queued = true;
    return;
  }
  const std::string key = GenomeKey(c.genome());
  state.genome_keys.insert(key);
  if (!c.promoted_from().empty()) {
    // The genome's best result is to come from the promotion: copies of
    // the genome wait for it rather than copy the short run.
    state.promoted.insert(c.promoted_from());
    state.original_by_key[key] = c.id();
    state.trailing_copies = 0;
  } else if (c.duplicate_of().empty()) {
    state.original_by_key.emplace(key, c.id());
    state.trailing_copies = 0;
  } else {
    ++state.trailing_copies;
  }
}

absl::StatusOr<Controller::SearchState*> Controller::SearchStateOf(
    const std::string& experiment_id) {
  auto it = search_states_.find(experiment_id);
  if (it != search_states_.end()) return &it->second;
  SearchState state;
  EVONAS_ASSIGN_OR_RETURN(state.experiment,
                          store_->GetExperiment(experiment_id));
  state.experiment.clear_counts();
  state.experiment.clear_feasible_count();
  EVONAS_ASSIGN_OR_RETURN(auto all, store_->ListCandidates(experiment_id));
  for (store::StoredCandidate& s : all) {
    const v1::Candidate& c = s.candidate;
    AddToSearchState(c, state);
    const bool final_state = IsFinal(c.state());
    state.final_by_sequence.push_back(final_state);
    if (final_state) state.finished.push_back(std::move(s.candidate));
  }
  state.total = static_cast<int64_t>(all.size());
  return &search_states_.emplace(experiment_id, std::move(state))
              .first->second;
}

absl::Status Controller::WriteCandidate(const store::StoredCandidate& stored,
                                        bool insert) {
  const v1::Candidate& c = stored.candidate;
  EVONAS_RETURN_IF_ERROR(insert ? store_->InsertCandidate(stored)
                                : store_->UpdateCandidate(stored));
  // A final candidate is never written again, so this is its transition.
  if (IsFinal(c.state())) {
    NotifyLocked([c](auto& observer) { observer.CandidateFinished(c); });
  }
  auto it = search_states_.find(c.experiment_id());
  if (it == search_states_.end()) return absl::OkStatus();
  SearchState& state = it->second;
  const int64_t sequence = c.sequence();
  if (insert) {
    if (sequence != state.total) {
      // Not the next sequence: the cache cannot follow, reload it on use.
      search_states_.erase(it);
      return absl::OkStatus();
    }
    AddToSearchState(c, state);
    state.final_by_sequence.push_back(false);
    ++state.total;
  }
  if (sequence < 0 || sequence >= state.total) {
    search_states_.erase(it);
    return absl::OkStatus();
  }
  if (IsFinal(c.state()) && !state.final_by_sequence[sequence]) {
    state.final_by_sequence[sequence] = true;
    auto at = std::upper_bound(
        state.finished.begin(), state.finished.end(), sequence,
        [](int64_t s, const v1::Candidate& f) { return s < f.sequence(); });
    state.finished.insert(at, c);
  }
  return absl::OkStatus();
}

absl::Status Controller::SetExperimentState(const std::string& id,
                                            v1::ExperimentState state) {
  EVONAS_RETURN_IF_ERROR(store_->SetExperimentState(id, state, NowMs()));
  if (state != v1::EXPERIMENT_STATE_RUNNING) {
    NotifyLocked([id, state](auto& observer) {
      observer.ExperimentFinished(id, state);
    });
  }
  // Rare: the cached experiment reloads on use.
  search_states_.erase(id);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- data sets

absl::StatusOr<std::unique_ptr<DatasetUpload>> Controller::BeginUpload(
    std::string name, int64_t declared_size, v1::DatasetFormat format) {
  if (format == v1::DATASET_FORMAT_UNSPECIFIED) format = v1::DATASET_FORMAT_CSV;
  if (format != v1::DATASET_FORMAT_CSV && format != v1::DATASET_FORMAT_IDX) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metadata.format is ", static_cast<int>(format),
        ", not a known DatasetFormat; use DATASET_FORMAT_CSV (1) or "
        "DATASET_FORMAT_IDX (2)"));
  }
  if (declared_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metadata.size_bytes is ", declared_size,
        "; give the file size in bytes, or 0 if unknown"));
  }
  if (declared_size > options_.max_upload_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "upload of ", declared_size, " bytes exceeds the limit of ",
        options_.max_upload_bytes, " bytes"));
  }
  if (name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metadata.name is longer than ", kMaxNameLength, " characters"));
  }
  return std::unique_ptr<DatasetUpload>(
      new DatasetUpload(this, std::move(name), declared_size, format));
}

absl::StatusOr<v1::Dataset> Controller::StoreDataset(
    const std::string& name, const std::string& bytes,
    v1::DatasetFormat format, std::optional<std::string> owner) {
  // Parsing is the expensive part and touches no shared state: outside the
  // lock. Checked exactly as the worker will parse it.
  DatasetLimits limits;
  limits.csv.max_bytes = options_.max_upload_bytes;
  limits.idx.max_bytes = options_.max_upload_bytes;
  limits.idx.max_values = options_.max_dataset_values;
  EVONAS_ASSIGN_OR_RETURN(DatasetShape shape,
                          InspectDataset(bytes, format, limits));
  v1::Dataset dataset;
  // The bytes alone name the data set: no byte string is both a valid CSV
  // (no NUL bytes) and a valid IDX (starts with two).
  dataset.set_id(Sha256Hex(bytes));
  dataset.set_name(name);
  for (std::string& column : shape.columns) {
    dataset.add_columns(std::move(column));
  }
  dataset.set_row_count(shape.rows);
  dataset.set_size_bytes(static_cast<int64_t>(bytes.size()));
  dataset.set_format(format);
  for (const int32_t size : shape.image_shape) dataset.add_image_shape(size);
  *dataset.mutable_created_at() = ToProto(NowMs());

  return InBatch([&]() -> absl::StatusOr<v1::Dataset> {
    absl::StatusOr<v1::Dataset> existing = store_->GetDataset(dataset.id());
    if (!existing.ok()) {
      // The blob is durable before the row that references it commits.
      EVONAS_ASSIGN_OR_RETURN(std::string sha, blobs_->Put(bytes));
      if (sha != dataset.id()) return absl::InternalError("blob hash mismatch");
    }
    // The data set and its owner commit together or not at all: a failure
    // between the two writes rolls the batch back.
    absl::Status recorded = [&]() -> absl::Status {
      if (!existing.ok()) EVONAS_RETURN_IF_ERROR(store_->InsertDataset(dataset));
      if (!owner.has_value()) return absl::OkStatus();
      return store_->AddDatasetOwner({*owner, dataset.id(), name, NowMs()});
    }();
    if (!recorded.ok()) {
      FinishBatchLocked(recorded);
      return recorded;
    }
    return existing.ok() ? *std::move(existing) : dataset;
  });
}

absl::StatusOr<v1::Dataset> Controller::GetDataset(const std::string& id) {
  EVONAS_RETURN_IF_ERROR(CheckId("dataset_id", id));
  return InBatch([&] { return store_->GetDataset(id); });
}

absl::StatusOr<std::vector<v1::Dataset>> Controller::ListDatasets() {
  return InBatch([&] { return store_->ListDatasets(); });
}

absl::StatusOr<std::string> Controller::ReadDataset(const std::string& id) {
  EVONAS_RETURN_IF_ERROR(CheckId("dataset_id", id));
  EVONAS_RETURN_IF_ERROR(
      InBatch([&] { return store_->GetDataset(id).status(); }));
  return blobs_->Read(id);
}

// -------------------------------------------------------------- experiments

absl::StatusOr<v1::Dataset> Controller::NamedDataset(absl::string_view field,
                                                    const std::string& id) {
  EVONAS_RETURN_IF_ERROR(CheckId(field, id));
  absl::StatusOr<v1::Dataset> dataset = store_->GetDataset(id);
  if (!dataset.ok()) {
    return absl::NotFoundError(
        absl::StrCat(field, ": no data set ", id, "; upload it first"));
  }
  return dataset;
}

absl::StatusOr<int32_t> Controller::CountClasses(
    const v1::ExperimentSpec& spec) {
  if (spec.output_columns_size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output_columns: a classification predicts one column, the class "
        "label; got ",
        spec.output_columns_size()));
  }
  const std::string& label = spec.output_columns(0);
  int32_t classes = 0;
  std::set<int32_t> distinct;  // labels seen in the training data set
  // The training data set fixes the classes; the test data set may not
  // hold a class the networks cannot output.
  for (const std::string* id : {&spec.dataset_id(), &spec.test_dataset_id()}) {
    if (id->empty()) continue;
    const bool training = id == &spec.dataset_id();
    const char* field = training ? "dataset_id" : "test_dataset_id";
    absl::StatusOr<v1::Dataset> dataset =
        InBatch([&] { return NamedDataset(field, *id); });
    EVONAS_RETURN_IF_ERROR(dataset.status());
    EVONAS_RETURN_IF_ERROR(CheckColumns({label}, "output_columns", *dataset));
    EVONAS_ASSIGN_OR_RETURN(std::string bytes, blobs_->Read(*id));
    DatasetLimits limits;
    limits.idx.max_values = options_.max_dataset_values;
    EVONAS_ASSIGN_OR_RETURN(Table table,
                            ParseDataset(bytes, dataset->format(), limits));
    EVONAS_ASSIGN_OR_RETURN(std::vector<int64_t> column,
                            ColumnIndices(table, {label}));
    for (int64_t r = 0; r < table.rows; ++r) {
      const double v = table.at(r, column[0]);
      const int32_t limit = training ? kMaxClasses : classes;
      if (!(v >= 0 && v < limit && v == std::floor(v))) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, " row ", r + 1, ", column ", Quote(label), ": ", v,
            training ? absl::StrCat(" is not a class label (an integer 0..",
                                    kMaxClasses - 1, ")")
                     : absl::StrCat(" is not a class of the training data "
                                    "set, whose labels are 0..",
                                    classes - 1)));
      }
      if (training) {
        classes = std::max(classes, static_cast<int32_t>(v) + 1);
        distinct.insert(static_cast<int32_t>(v));
      }
    }
  }
  if (distinct.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output_columns: column ", Quote(label),
        " holds a single class; a classification needs at least two"));
  }
  return classes;
}

absl::Status Controller::ValidateSpec(v1::ExperimentSpec& spec,
                                      int32_t class_count) {
  if (spec.name().size() > kMaxNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("name is longer than ", kMaxNameLength, " characters"));
  }
  if (!v1::Task_IsValid(spec.task())) {
    return absl::InvalidArgumentError(
        absl::StrCat("task: unknown task ", static_cast<int>(spec.task())));
  }
  const bool classification = spec.task() == v1::TASK_CLASSIFICATION;
  const v1::Requirements& r = spec.requirements();
  if (classification &&
      (r.has_max_abs_error() || r.has_min_fraction_within() ||
       r.has_within_tolerance())) {
    return absl::InvalidArgumentError(
        "requirements: max_abs_error, within_tolerance and "
        "min_fraction_within judge regression outputs; a classification is "
        "judged by min_accuracy");
  }
  if (!classification && r.has_min_accuracy()) {
    return absl::InvalidArgumentError(
        "requirements.min_accuracy judges classifiers; set task to "
        "TASK_CLASSIFICATION, or use max_abs_error for a regression");
  }
  if (classification && spec.search_space().max_residual_stages() > 0) {
    return absl::InvalidArgumentError(
        "search_space.max_residual_stages: classification networks have one "
        "stage");
  }
  EVONAS_ASSIGN_OR_RETURN(const v1::Dataset dataset,
                          NamedDataset("dataset_id", spec.dataset_id()));
  const auto outputs = ToVector(spec.output_columns());
  if (spec.input_columns().empty()) {
    for (const std::string& column : dataset.columns()) {
      if (std::find(outputs.begin(), outputs.end(), column) == outputs.end()) {
        spec.add_input_columns(column);
      }
    }
  }
  const auto inputs = ToVector(spec.input_columns());
  EVONAS_RETURN_IF_ERROR(CheckColumns(inputs, "input_columns", dataset));
  const ImageShape image = ImageOf(dataset);
  if (spec.search_space().max_conv_layers() > 0 && !image.empty()) {
    // A convolution sees the image: every pixel, in the file's order.
    const int64_t pixels = image.height * image.width;
    bool whole_image = static_cast<int64_t>(inputs.size()) == pixels;
    for (int64_t i = 0; whole_image && i < pixels; ++i) {
      whole_image = inputs[i] == dataset.columns(static_cast<int>(i));
    }
    if (!whole_image) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input_columns: convolutional layers (search_space.max_conv_layers) "
          "need all ", pixels, " pixels of the ", image.height, " x ",
          image.width, " images in order; leave input_columns empty"));
    }
  }
  EVONAS_RETURN_IF_ERROR(CheckColumns(outputs, "output_columns", dataset));
  for (const std::string& column : outputs) {
    if (std::find(inputs.begin(), inputs.end(), column) != inputs.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "column ", Quote(column), " is both an input and an output"));
    }
  }
  if (spec.initial_genomes_size() > kMaxInitialGenomes) {
    return absl::InvalidArgumentError(
        absl::StrCat("initial_genomes: ", spec.initial_genomes_size(),
                     " genomes; at most ", kMaxInitialGenomes));
  }
  for (int i = 0; i < spec.initial_genomes_size(); ++i) {
    const v1::Genome& genome = spec.initial_genomes(i);
    absl::Status valid = ValidateGenomeForImage(
        genome, static_cast<int64_t>(inputs.size()), image);
    if (valid.ok() && classification && StageCount(genome) > 1) {
      valid = absl::InvalidArgumentError(
          "residual_stages: classification networks have one stage");
    }
    if (!valid.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("initial_genomes[", i, "]: ", valid.message()));
    }
  }
  if (!spec.test_dataset_id().empty()) {
    EVONAS_ASSIGN_OR_RETURN(
        const v1::Dataset test,
        NamedDataset("test_dataset_id", spec.test_dataset_id()));
    EVONAS_RETURN_IF_ERROR(CheckColumns(inputs, "test data set inputs", test));
    EVONAS_RETURN_IF_ERROR(
        CheckColumns(outputs, "test data set outputs", test));
    if (FormatOf(test) != FormatOf(dataset)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "test_dataset_id: the test data set is ",
          DatasetFormatName(test.format()), " but the training data set is ",
          DatasetFormatName(dataset.format()), "; upload both the same way"));
    }
  }
  EVONAS_RETURN_IF_ERROR(ValidateRequirements(spec.requirements()));

  const v1::Budget& budget = spec.budget();
  if (budget.max_candidates() < 0 || budget.max_candidates() > kMaxBudgetCandidates) {
    return absl::InvalidArgumentError(absl::StrCat(
        "budget.max_candidates must be in 0..", kMaxBudgetCandidates));
  }
  if (!std::isfinite(budget.max_wall_seconds()) || budget.max_wall_seconds() < 0) {
    return absl::InvalidArgumentError(
        "budget.max_wall_seconds must be finite and non-negative");
  }
  if (!std::isfinite(budget.max_worker_seconds()) ||
      budget.max_worker_seconds() < 0) {
    return absl::InvalidArgumentError(
        "budget.max_worker_seconds must be finite and non-negative");
  }
  if (budget.max_candidates() == 0 && budget.max_wall_seconds() == 0 &&
      budget.max_worker_seconds() == 0) {
    return absl::InvalidArgumentError(
        "budget: set max_candidates, max_wall_seconds or max_worker_seconds "
        "(stop_when_feasible alone may never stop)");
  }
  EVONAS_RETURN_IF_ERROR(search::ValidateObjectives(spec));
  EVONAS_ASSIGN_OR_RETURN(
      *spec.mutable_inheritance(),
      search::NormalizeInheritanceSettings(spec.inheritance()));
  EVONAS_ASSIGN_OR_RETURN(
      *spec.mutable_multi_fidelity(),
      search::NormalizeMultiFidelitySettings(spec.multi_fidelity()));
  // The defaults in effect are stored with the experiment, so that a
  // controller with other defaults resumes it as it was started.
  if (spec.strategy() == v1::STRATEGY_LEMONADE) {
    EVONAS_ASSIGN_OR_RETURN(*spec.mutable_lemonade(),
                            search::NormalizeLemonadeSettings(spec.lemonade()));
  }
  if (spec.strategy() == v1::STRATEGY_REGULARIZED_EVOLUTION ||
      spec.strategy() == v1::STRATEGY_NSGA2) {
    EVONAS_ASSIGN_OR_RETURN(
        *spec.mutable_evolution(),
        search::NormalizeEvolutionSettings(spec.evolution()));
  }
  v1::RefitSettings* refit = spec.mutable_refit();
  if (refit->front_members() < 0 || refit->front_members() > kMaxRefits) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refit.front_members is ", refit->front_members(),
        "; it must be in 0..", kMaxRefits, " (0: no refit)"));
  }
  if (!v1::RefitStart_IsValid(refit->start())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refit.start: unknown value ", static_cast<int>(refit->start())));
  }
  EVONAS_ASSIGN_OR_RETURN(const double continued,
                          RefitStepFraction(refit->step_fraction()));
  refit->set_step_fraction(continued);

  if (spec.validation_fraction() == 0) {
    spec.set_validation_fraction(kDefaultValidationFraction);
  }
  if (!(spec.validation_fraction() > 0 && spec.validation_fraction() <= 0.9)) {
    return absl::InvalidArgumentError("validation_fraction must be in (0, 0.9]");
  }
  if (!(spec.judging_fraction() >= 0 &&
        spec.judging_fraction() <= kMaxJudgingFraction)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "judging_fraction is ", spec.judging_fraction(), "; it must be in [0, ",
        kMaxJudgingFraction, "] (0: no judging rows)"));
  }
  const RowPartition rows = PartitionRows(
      ValidationSplitOf(spec), dataset.row_count(), JudgingSplitOf(spec));
  if (rows.training.empty() || rows.validation.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data set has ", dataset.row_count(),
        " rows: too few to split into training and validation rows"));
  }
  if (spec.judging_fraction() > 0 && rows.judging.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data set has ", dataset.row_count(), " rows: judging_fraction ",
        spec.judging_fraction(),
        " selects none of them; raise it or set 0 for no judging rows"));
  }
  if (spec.strategy() == v1::STRATEGY_UNSPECIFIED) {
    spec.set_strategy(v1::STRATEGY_RANDOM);
  }
  if (classification && spec.search_space().batch_size() == 0) {
    spec.mutable_search_space()->set_batch_size(kDefaultClassificationBatch);
  }
  EVONAS_ASSIGN_OR_RETURN(
      *spec.mutable_search_space(),
      search::NormalizeSearchSpace(spec.search_space(), image));
  // The classifier's training is Adam on mini-batches: an L-BFGS gene would
  // be carried, shown and never used.
  if (classification) spec.mutable_search_space()->set_lbfgs_steps(0);
  const v1::SearchSpace& space = spec.search_space();
  if (spec.requirements().has_max_parameters()) {
    // A limit that no network of the search space meets would spend the
    // whole budget on infeasible candidates. Parameters grow with depth and
    // width, so the smallest network has min_depth layers of min_width
    // (after min_conv_layers of min_channels with the smallest kernel,
    // pooling as often as allowed).
    v1::Genome smallest;
    for (int i = 0; i < space.min_depth(); ++i) {
      smallest.add_hidden_layers()->set_width(space.min_width());
    }
    for (int i = 0; i < space.min_conv_layers(); ++i) {
      v1::ConvLayer* layer = smallest.add_conv_layers();
      layer->set_channels(space.min_channels());
      layer->set_kernel_size(*std::min_element(space.kernel_sizes().begin(),
                                               space.kernel_sizes().end()));
      if (i < space.max_pooling_layers()) {
        layer->set_pooling(v1::POOLING_MAX);
      }
    }
    const int64_t fewest = ParameterCount(
        smallest, static_cast<int64_t>(inputs.size()),
        class_count > 0 ? class_count : static_cast<int64_t>(outputs.size()),
        image);
    if (spec.requirements().max_parameters() < fewest) {
      return absl::InvalidArgumentError(absl::StrCat(
          "requirements.max_parameters ", spec.requirements().max_parameters(),
          " contradicts the search space: its smallest network (",
          space.min_depth(), " hidden layer(s) of width ", space.min_width(),
          ") has ", fewest,
          " parameters; raise the limit or lower search_space.min_width "
          "and min_depth"));
    }
  }
  return search::MakeStrategy(spec, {}, class_count, image).status();
}

absl::Status Controller::TenantHasRoomLocked(
    const ExperimentOwnership& owner) {
  EVONAS_ASSIGN_OR_RETURN(int64_t running,
                          store_->CountRunningExperiments(owner.tenant));
  if (running < owner.max_running_experiments) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "tenant ", owner.tenant, " has ", running,
      " running experiments, the most this controller allows "
      "(--max-running-experiments); wait for one to finish or cancel one"));
}

absl::StatusOr<v1::Experiment> Controller::CreateExperiment(
    v1::ExperimentSpec spec, std::optional<ExperimentOwnership> owner) {
  int32_t class_count = 0;
  if (spec.task() == v1::TASK_CLASSIFICATION) {
    // Counting classes parses the whole data set, outside the lock: a
    // tenant without room is told so before paying for that.
    if (owner.has_value()) {
      EVONAS_RETURN_IF_ERROR(
          InBatch([&] { return TenantHasRoomLocked(*owner); }));
    }
    EVONAS_ASSIGN_OR_RETURN(class_count, CountClasses(spec));
  }
  return InBatch([&]() -> absl::StatusOr<v1::Experiment> {
    if (owner.has_value()) {
      // Checked again under mu_ in the batch that inserts: two concurrent
      // creations cannot both take the tenant's last place.
      EVONAS_RETURN_IF_ERROR(TenantHasRoomLocked(*owner));
    }
    EVONAS_RETURN_IF_ERROR(ValidateSpec(spec, class_count));
    v1::Experiment experiment;
    experiment.set_id(RandomId("exp-", 6));
    *experiment.mutable_spec() = std::move(spec);
    experiment.set_class_count(class_count);
    experiment.set_state(v1::EXPERIMENT_STATE_RUNNING);
    *experiment.mutable_created_at() = ToProto(NowMs());
    // The experiment and its owner commit together or not at all: a failure
    // between the two writes rolls the batch back.
    absl::Status inserted = [&]() -> absl::Status {
      EVONAS_RETURN_IF_ERROR(store_->InsertExperiment(experiment));
      if (!owner.has_value()) return absl::OkStatus();
      return store_->SetExperimentOwner(experiment.id(), owner->tenant);
    }();
    if (!inserted.ok()) {
      FinishBatchLocked(inserted);
      return inserted;
    }
    NotifyLocked([experiment, tenant = owner ? owner->tenant : ""](
                     auto& observer) {
      observer.ExperimentCreated(experiment, tenant);
    });
    return LoadExperiment(experiment.id());
  });
}

absl::StatusOr<v1::Experiment> Controller::LoadExperiment(
    const std::string& id) {
  EVONAS_ASSIGN_OR_RETURN(v1::Experiment experiment, store_->GetExperiment(id));
  EVONAS_ASSIGN_OR_RETURN(double worker_seconds, WorkerSecondsOf(id));
  experiment.set_worker_seconds(worker_seconds);
  return experiment;
}

absl::StatusOr<double> Controller::WorkerSecondsOf(
    const std::string& experiment_id) {
  auto it = worker_seconds_.find(experiment_id);
  if (it != worker_seconds_.end()) return it->second;
  EVONAS_ASSIGN_OR_RETURN(auto candidates,
                          store_->ListCandidates(experiment_id));
  double total = 0;
  for (const store::StoredCandidate& s : candidates) {
    total += s.candidate.worker_seconds();
  }
  worker_seconds_[experiment_id] = total;
  return total;
}

void Controller::AddWorkerSeconds(const std::string& experiment_id,
                                  double seconds) {
  auto it = worker_seconds_.find(experiment_id);
  if (it != worker_seconds_.end()) it->second += seconds;
}

double Controller::EndLease(store::StoredCandidate& stored) {
  v1::Candidate& c = stored.candidate;
  if (!IsSet(c.leased_at())) return 0;  // leased before leased_at existed
  const double seconds =
      std::max<int64_t>(0, NowMs() - ToMs(c.leased_at())) / 1000.0;
  c.set_worker_seconds(c.worker_seconds() + seconds);
  return seconds;
}

absl::StatusOr<v1::Experiment> Controller::GetExperiment(const std::string& id) {
  EVONAS_RETURN_IF_ERROR(CheckId("experiment_id", id));
  return InBatch([&] { return LoadExperiment(id); });
}

absl::StatusOr<std::vector<v1::Experiment>> Controller::ListExperiments() {
  return InBatch([&]() -> absl::StatusOr<std::vector<v1::Experiment>> {
    EVONAS_ASSIGN_OR_RETURN(auto experiments, store_->ListExperiments());
    for (v1::Experiment& experiment : experiments) {
      EVONAS_ASSIGN_OR_RETURN(double worker_seconds,
                              WorkerSecondsOf(experiment.id()));
      experiment.set_worker_seconds(worker_seconds);
    }
    return experiments;
  });
}

absl::StatusOr<v1::Experiment> Controller::CancelExperiment(
    const std::string& id) {
  EVONAS_RETURN_IF_ERROR(CheckId("experiment_id", id));
  return InBatch([&]() -> absl::StatusOr<v1::Experiment> {
    EVONAS_ASSIGN_OR_RETURN(v1::Experiment experiment,
                            store_->GetExperiment(id));
    if (experiment.state() != v1::EXPERIMENT_STATE_RUNNING) {
      return absl::FailedPreconditionError(
          absl::StrCat("experiment ", id, " is not running"));
    }
    // All or nothing: a failure halfway rolls the batch back.
    absl::Status cancelled = [&]() -> absl::Status {
      EVONAS_ASSIGN_OR_RETURN(auto candidates, store_->ListCandidates(id));
      for (store::StoredCandidate& stored : candidates) {
        if (stored.candidate.state() != v1::CANDIDATE_STATE_QUEUED) continue;
        stored.candidate.set_state(v1::CANDIDATE_STATE_CANCELLED);
        *stored.candidate.mutable_finished_at() = ToProto(NowMs());
        EVONAS_RETURN_IF_ERROR(WriteCandidate(stored, /*insert=*/false));
      }
      return SetExperimentState(id, v1::EXPERIMENT_STATE_CANCELLED);
    }();
    if (!cancelled.ok()) {
      FinishBatchLocked(cancelled);
      return cancelled;
    }
    return LoadExperiment(id);
  });
}

absl::StatusOr<std::vector<v1::Candidate>> Controller::ListCandidates(
    const std::string& experiment_id) {
  EVONAS_RETURN_IF_ERROR(CheckId("experiment_id", experiment_id));
  return InBatch([&]() -> absl::StatusOr<std::vector<v1::Candidate>> {
    EVONAS_RETURN_IF_ERROR(store_->GetExperiment(experiment_id).status());
    EVONAS_ASSIGN_OR_RETURN(auto stored,
                            store_->ListCandidates(experiment_id));
    std::vector<v1::Candidate> candidates;
    candidates.reserve(stored.size());
    for (auto& s : stored) candidates.push_back(std::move(s.candidate));
    return candidates;
  });
}

absl::StatusOr<v1::Candidate> Controller::GetCandidate(const std::string& id) {
  EVONAS_RETURN_IF_ERROR(CheckId("candidate_id", id));
  return InBatch([&]() -> absl::StatusOr<v1::Candidate> {
    EVONAS_ASSIGN_OR_RETURN(store::StoredCandidate stored,
                            store_->GetCandidate(id));
    return std::move(stored.candidate);
  });
}

absl::StatusOr<v1::ParetoFront> Controller::GetParetoFront(
    const std::string& experiment_id) {
  EVONAS_RETURN_IF_ERROR(CheckId("experiment_id", experiment_id));
  v1::Experiment experiment;
  std::vector<store::StoredCandidate> stored;
  EVONAS_RETURN_IF_ERROR(InBatch([&]() -> absl::Status {
    EVONAS_ASSIGN_OR_RETURN(experiment, store_->GetExperiment(experiment_id));
    EVONAS_ASSIGN_OR_RETURN(stored, store_->ListCandidates(experiment_id));
    return absl::OkStatus();
  }));
  std::vector<v1::Candidate> candidates;
  std::map<std::string, v1::Candidate> refit_of_member;
  for (store::StoredCandidate& s : stored) {
    if (s.candidate.evaluation_level() == v1::EVALUATION_LEVEL_REFIT) {
      refit_of_member[s.candidate.refit_of()] = std::move(s.candidate);
    } else {
      candidates.push_back(std::move(s.candidate));
    }
  }
  v1::ParetoFront front = SearchFront(experiment.spec(), std::move(candidates));
  front.set_experiment_id(experiment_id);
  for (const v1::Candidate& member : front.candidates()) {
    auto refit = refit_of_member.find(member.id());
    if (refit != refit_of_member.end()) {
      *front.add_refits() = std::move(refit->second);
    }
  }
  return front;
}

absl::StatusOr<std::string> Controller::ReadModel(
    const std::string& candidate_id, v1::ModelFormat format) {
  EVONAS_RETURN_IF_ERROR(CheckId("candidate_id", candidate_id));
  std::string sha;
  std::optional<std::string> inline_bytes;
  EVONAS_RETURN_IF_ERROR(InBatch([&]() -> absl::Status {
    EVONAS_ASSIGN_OR_RETURN(store::StoredCandidate stored,
                            store_->GetCandidate(candidate_id));
    if (stored.candidate.state() != v1::CANDIDATE_STATE_SUCCEEDED) {
      return absl::FailedPreconditionError(absl::StrCat(
          "candidate ", candidate_id, " has no model: it is ",
          v1::CandidateState_Name(stored.candidate.state())));
    }
    if (format == v1::MODEL_FORMAT_UNSPECIFIED ||
        format == v1::MODEL_FORMAT_TORCHSCRIPT) {
      sha = stored.model_sha256;
    } else if (!v1::ModelFormat_IsValid(format)) {
      return absl::InvalidArgumentError(
          absl::StrCat("format: unknown model format ", format));
    } else {
      // A copy has no files of its own: they are its original's.
      const std::string& owner = stored.candidate.duplicate_of().empty()
                                     ? candidate_id
                                     : stored.candidate.duplicate_of();
      EVONAS_ASSIGN_OR_RETURN(sha, store_->ArtifactSha256(owner, format));
    }
    // Small files are rows of the database; larger ones are read from
    // their files outside the lock.
    EVONAS_ASSIGN_OR_RETURN(inline_bytes, store_->InlineBlob(sha));
    return absl::OkStatus();
  }));
  if (inline_bytes.has_value()) return *std::move(inline_bytes);
  return blobs_->Read(sha);
}

// ------------------------------------------------------------------ workers

absl::StatusOr<Controller::BudgetState> Controller::CheckBudget(
    const v1::Experiment& experiment) {
  const v1::Budget& budget = experiment.spec().budget();
  if (budget.max_wall_seconds() > 0 &&
      NowMs() - ToMs(experiment.created_at()) >=
          budget.max_wall_seconds() * 1000) {
    return BudgetState::kStop;
  }
  if (budget.max_worker_seconds() > 0) {
    EVONAS_ASSIGN_OR_RETURN(double spent, WorkerSecondsOf(experiment.id()));
    if (spent >= budget.max_worker_seconds()) return BudgetState::kStop;
  }
  if (budget.stop_when_feasible()) {
    // Counting reads every candidate: only experiments that ask pay for it.
    EVONAS_ASSIGN_OR_RETURN(v1::Experiment counted,
                            store_->GetExperiment(experiment.id()));
    if (counted.feasible_count() > 0) return BudgetState::kStop;
  }
  if (budget.max_candidates() > 0) {
    EVONAS_ASSIGN_OR_RETURN(SearchState * state,
                            SearchStateOf(experiment.id()));
    if (state->total >= budget.max_candidates()) {
      return BudgetState::kNoNewCandidates;
    }
  }
  return BudgetState::kLeft;
}

absl::Status Controller::FinishIfDone(const std::string& experiment_id) {
  EVONAS_ASSIGN_OR_RETURN(SearchState * state, SearchStateOf(experiment_id));
  if (state->experiment.state() != v1::EXPERIMENT_STATE_RUNNING) {
    return absl::OkStatus();
  }
  EVONAS_ASSIGN_OR_RETURN(BudgetState budget, CheckBudget(state->experiment));
  // With budget left, only a search that ended early (its space exhausted)
  // and queued refits is done once they have finished.
  if (budget == BudgetState::kLeft && !state->refits_queued) {
    return absl::OkStatus();
  }
  // All or nothing: a failure halfway rolls the batch back.
  absl::Status finished = [&]() -> absl::Status {
    EVONAS_ASSIGN_OR_RETURN(v1::Experiment experiment,
                            store_->GetExperiment(experiment_id));
    int64_t unfinished = experiment.counts().running();
    if (budget == BudgetState::kStop) {
      // Out of time or compute, or done: queued search work is dropped;
      // running work may still report. Refits come after the budget.
      EVONAS_ASSIGN_OR_RETURN(auto candidates,
                              store_->ListCandidates(experiment_id));
      for (store::StoredCandidate& stored : candidates) {
        if (stored.candidate.state() != v1::CANDIDATE_STATE_QUEUED) continue;
        if (stored.candidate.evaluation_level() ==
            v1::EVALUATION_LEVEL_REFIT) {
          ++unfinished;
          continue;
        }
        stored.candidate.set_state(v1::CANDIDATE_STATE_CANCELLED);
        *stored.candidate.mutable_finished_at() = ToProto(NowMs());
        EVONAS_RETURN_IF_ERROR(WriteCandidate(stored, /*insert=*/false));
      }
    } else {
      unfinished += experiment.counts().queued();
    }
    if (unfinished == 0) EVONAS_RETURN_IF_ERROR(EndSearch(experiment_id));
    return absl::OkStatus();
  }();
  if (!finished.ok()) FinishBatchLocked(finished);
  return finished;
}

absl::Status Controller::EndSearch(const std::string& experiment_id) {
  EVONAS_ASSIGN_OR_RETURN(SearchState * state, SearchStateOf(experiment_id));
  const v1::Experiment experiment = state->experiment;
  const int32_t wanted = experiment.spec().refit().front_members();
  if (wanted > 0 && !state->refits_queued) {
    EVONAS_ASSIGN_OR_RETURN(auto stored, store_->ListCandidates(experiment_id));
    std::vector<v1::Candidate> candidates;
    for (store::StoredCandidate& s : stored) {
      candidates.push_back(std::move(s.candidate));
    }
    const v1::ParetoFront front =
        SearchFront(experiment.spec(), std::move(candidates));
    const int count = std::min(wanted, front.candidates_size());
    for (int i = 0; i < count; ++i) {
      const v1::Candidate& member = front.candidates(i);
      bool continuing = false;
      switch (experiment.spec().refit().start()) {
        case v1::REFIT_START_CONTINUE:
          continuing = true;
          break;
        case v1::REFIT_START_SCRATCH:
          break;
        default:
          continuing = !member.parent_id().empty();
      }
      EVONAS_RETURN_IF_ERROR(QueueRerun(experiment, member,
                                        v1::EVALUATION_LEVEL_REFIT,
                                        continuing)
                                 .status());
    }
    if (count > 0) return absl::OkStatus();
  }
  return SetExperimentState(experiment_id, v1::EXPERIMENT_STATE_COMPLETED);
}

absl::Status Controller::Maintain() {
  return InBatch([&] { return MaintainLocked(); });
}

absl::Status Controller::MaintainLocked() {
  last_maintenance_ms_ = NowMs();
  EVONAS_ASSIGN_OR_RETURN(auto expired, store_->ExpiredLeases(NowMs()));
  for (store::StoredCandidate& stored : expired) {
    v1::Candidate& c = stored.candidate;
    const std::string worker_id = c.worker_id();
    // The dead worker's time is spent all the same.
    const double seconds = EndLease(stored);
    stored.lease_id.clear();
    stored.lease_deadline_ms = 0;
    if (c.attempts() >= options_.max_attempts) {
      c.set_state(v1::CANDIDATE_STATE_FAILED);
      c.set_failure_reason(absl::StrCat("lease expired ", c.attempts(),
                                        " times; last worker ", c.worker_id()));
      *c.mutable_finished_at() = ToProto(NowMs());
    } else {
      c.set_state(v1::CANDIDATE_STATE_QUEUED);
      c.clear_worker_id();
    }
    EVONAS_RETURN_IF_ERROR(WriteCandidate(stored, /*insert=*/false));
    AddWorkerSeconds(c.experiment_id(), seconds);
    NotifyLocked([c, worker_id](auto& observer) {
      observer.LeaseExpired(c, worker_id);
    });
  }
  EVONAS_ASSIGN_OR_RETURN(auto running, store_->ListRunningExperimentIds());
  for (const std::string& id : running) {
    EVONAS_RETURN_IF_ERROR(FinishIfDone(id));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> Controller::InheritableParent(
    const std::string& parent_id) {
  absl::StatusOr<store::StoredCandidate> parent = store_->GetCandidate(parent_id);
  if (absl::IsNotFound(parent.status())) return std::nullopt;
  EVONAS_RETURN_IF_ERROR(parent.status());
  if (parent->candidate.state() != v1::CANDIDATE_STATE_SUCCEEDED) {
    return std::nullopt;
  }
  // A copy's weights are its original's.
  const std::string& owner = parent->candidate.duplicate_of().empty()
                                 ? parent_id
                                 : parent->candidate.duplicate_of();
  absl::StatusOr<std::string> checkpoint =
      store_->ArtifactSha256(owner, v1::MODEL_FORMAT_CHECKPOINT);
  if (absl::IsNotFound(checkpoint.status())) return std::nullopt;
  EVONAS_RETURN_IF_ERROR(checkpoint.status());
  return owner;
}

absl::StatusOr<store::StoredCandidate> Controller::NewCandidate(
    const v1::Experiment& experiment, int64_t sequence, v1::Genome genome) {
  store::StoredCandidate stored;
  v1::Candidate& c = stored.candidate;
  c.set_id(absl::StrFormat("%s-c%05d", experiment.id(), sequence));
  c.set_experiment_id(experiment.id());
  c.set_sequence(sequence);
  *c.mutable_genome() = std::move(genome);
  EVONAS_ASSIGN_OR_RETURN(*c.mutable_cost(),
                          CostLocked(experiment, c.genome()));
  return stored;
}

absl::Status Controller::RecordDuplicate(
    const v1::Experiment& experiment, int64_t sequence, v1::Genome genome,
    const store::StoredCandidate& original) {
  const v1::Candidate& o = original.candidate;
  EVONAS_ASSIGN_OR_RETURN(store::StoredCandidate stored,
                          NewCandidate(experiment, sequence, std::move(genome)));
  v1::Candidate& c = stored.candidate;
  c.set_duplicate_of(o.id());
  c.set_evaluation_level(o.evaluation_level());
  c.set_state(o.state());
  if (o.state() == v1::CANDIDATE_STATE_SUCCEEDED) {
    *c.mutable_metrics() = o.metrics();
    c.set_feasible(o.feasible());
    *c.mutable_violations() = o.violations();
    stored.model_sha256 = original.model_sha256;
    stored.violation = original.violation;
  } else {
    c.set_failure_reason(Truncate(
        absl::StrCat("same genome as ", o.id(), ", which failed: ",
                     o.failure_reason()),
        2000));
  }
  *c.mutable_created_at() = ToProto(NowMs());
  *c.mutable_finished_at() = ToProto(NowMs());
  return WriteCandidate(stored, /*insert=*/true);
}

absl::StatusOr<store::StoredCandidate> Controller::QueueRerun(
    const v1::Experiment& experiment, const v1::Candidate& source,
    v1::EvaluationLevel level, bool continue_training) {
  EVONAS_ASSIGN_OR_RETURN(SearchState * state, SearchStateOf(experiment.id()));
  EVONAS_ASSIGN_OR_RETURN(
      store::StoredCandidate stored,
      NewCandidate(experiment, state->total, source.genome()));
  v1::Candidate& c = stored.candidate;
  c.set_evaluation_level(level);
  if (level == v1::EVALUATION_LEVEL_REFIT) {
    c.set_refit_of(source.id());
  } else {
    c.set_promoted_from(source.id());
  }
  if (continue_training) {
    EVONAS_ASSIGN_OR_RETURN(std::optional<std::string> parent,
                            InheritableParent(source.id()));
    // Without the source's checkpoint the rerun trains from scratch.
    if (parent) {
      c.set_parent_id(*parent);
      c.mutable_morphism()->set_kind(v1::MORPHISM_KIND_CONTINUE);
    }
  }
  c.set_state(v1::CANDIDATE_STATE_QUEUED);
  *c.mutable_created_at() = ToProto(NowMs());
  EVONAS_RETURN_IF_ERROR(WriteCandidate(stored, /*insert=*/true));
  return stored;
}

absl::StatusOr<std::optional<store::StoredCandidate>>
Controller::ProposeCandidate(const v1::Experiment& experiment) {
  auto it = strategies_.find(experiment.id());
  if (it == strategies_.end()) {
    EVONAS_ASSIGN_OR_RETURN(const std::vector<v1::LatencyTable>* tables,
                            LatencyTablesLocked());
    EVONAS_ASSIGN_OR_RETURN(const ImageShape image, ImageLocked(experiment));
    EVONAS_ASSIGN_OR_RETURN(
        auto strategy,
        options_.make_strategy(experiment.spec(), *tables,
                               NetworkOutputs(experiment), image));
    it = strategies_.emplace(experiment.id(), std::move(strategy)).first;
  }
  for (int copies = 0;; ++copies) {
    EVONAS_ASSIGN_OR_RETURN(SearchState * state,
                            SearchStateOf(experiment.id()));
    EVONAS_ASSIGN_OR_RETURN(BudgetState budget,
                            CheckBudget(state->experiment));
    if (budget != BudgetState::kLeft) {
      if (copies > 0) EVONAS_RETURN_IF_ERROR(FinishIfDone(experiment.id()));
      return std::nullopt;
    }
    if (state->trailing_copies >= kMaxConsecutiveCopies) {
      // The search keeps proposing trained genomes: the space is exhausted.
      EVONAS_ASSIGN_OR_RETURN(v1::Experiment fresh,
                              store_->GetExperiment(experiment.id()));
      if (fresh.counts().queued() + fresh.counts().running() == 0) {
        EVONAS_RETURN_IF_ERROR(EndSearch(experiment.id()));
      }
      return std::nullopt;
    }
    const v1::MultiFidelitySettings& fidelity =
        experiment.spec().multi_fidelity();
    const std::vector<v1::Candidate>* finished = &state->finished;
    std::vector<v1::Candidate> view;
    if (fidelity.enabled()) {
      // Promotions come first (ASHA): they finish what the search started.
      const std::optional<size_t> promote = search::NextPromotion(
          state->finished, state->promoted,
          search::ExperimentObjectives(experiment.spec()),
          experiment.spec().requirements(), fidelity.reduction_factor());
      if (promote) {
        return QueueRerun(experiment, state->finished[*promote],
                          v1::EVALUATION_LEVEL_FULL,
                          /*continue_training=*/true);
      }
      view = search::MultiFidelitySearchView(state->finished, fidelity);
      finished = &view;
    }
    // Every genome the experiment already holds, in any state, is taken:
    // the same architecture and training config is never trained twice.
    const int64_t sequence = state->total;
    // A duplicate is re-proposed with salted sequence numbers, which keeps
    // the search deterministic. After this many duplicates in a row the
    // search space is nearly exhausted and the genome gets the stored result
    // of the earlier candidate instead of a second training.
    constexpr int kMaxProposalAttempts = 20;
    search::UniqueProposal proposal;
    if (sequence < experiment.spec().initial_genomes_size()) {
      // The user's designs come first, as given.
      proposal.genome = experiment.spec().initial_genomes(
          static_cast<int>(sequence));
      proposal.attempts = 1;
      proposal.unique =
          state->genome_keys.count(GenomeKey(proposal.genome)) == 0;
    } else {
      proposal = search::ProposeUnique(*it->second, sequence, *finished,
                                       state->genome_keys,
                                       kMaxProposalAttempts);
    }
    EVONAS_RETURN_IF_ERROR(ValidateGenome(proposal.genome));
    if (!proposal.unique) {
      auto original_id =
          state->original_by_key.find(GenomeKey(proposal.genome));
      std::optional<store::StoredCandidate> original;
      if (original_id != state->original_by_key.end()) {
        EVONAS_ASSIGN_OR_RETURN(original,
                                store_->GetCandidate(original_id->second));
      }
      // While the earlier candidate is queued or running its result is not
      // known yet: no work now; a later call copies it.
      if (!original ||
          (original->candidate.state() != v1::CANDIDATE_STATE_SUCCEEDED &&
           original->candidate.state() != v1::CANDIDATE_STATE_FAILED) ||
          copies == kMaxCopiesPerCall) {
        if (copies > 0) EVONAS_RETURN_IF_ERROR(FinishIfDone(experiment.id()));
        return std::nullopt;
      }
      EVONAS_RETURN_IF_ERROR(RecordDuplicate(
          experiment, sequence, std::move(proposal.genome), *original));
      continue;
    }
    EVONAS_ASSIGN_OR_RETURN(
        store::StoredCandidate stored,
        NewCandidate(experiment, sequence, std::move(proposal.genome)));
    v1::Candidate& c = stored.candidate;
    if (!proposal.parent_id.empty() &&
        experiment.spec().inheritance().enabled()) {
      EVONAS_ASSIGN_OR_RETURN(std::optional<std::string> parent,
                              InheritableParent(proposal.parent_id));
      // Without a checkpoint to start from the child trains from scratch.
      if (parent) {
        c.set_parent_id(*parent);
        *c.mutable_morphism() = proposal.morphism;
      }
    }
    if (fidelity.enabled()) c.set_evaluation_level(v1::EVALUATION_LEVEL_SHORT);
    c.set_state(v1::CANDIDATE_STATE_QUEUED);
    *c.mutable_created_at() = ToProto(NowMs());
    EVONAS_RETURN_IF_ERROR(WriteCandidate(stored, /*insert=*/true));
    return stored;
  }
}

absl::StatusOr<v1::Lease> Controller::MakeLease(
    const store::StoredCandidate& stored) {
  EVONAS_ASSIGN_OR_RETURN(SearchState * state,
                          SearchStateOf(stored.candidate.experiment_id()));
  const v1::Experiment& experiment = state->experiment;
  const v1::ExperimentSpec& spec = experiment.spec();
  v1::Lease lease;
  lease.set_lease_id(stored.lease_id);
  lease.set_candidate_id(stored.candidate.id());
  lease.set_experiment_id(experiment.id());
  *lease.mutable_genome() = stored.candidate.genome();
  lease.set_dataset_id(spec.dataset_id());
  EVONAS_ASSIGN_OR_RETURN(v1::Dataset dataset,
                          store_->GetDataset(spec.dataset_id()));
  lease.set_dataset_format(FormatOf(dataset));
  lease.set_task(spec.task() == v1::TASK_CLASSIFICATION
                     ? v1::TASK_CLASSIFICATION
                     : v1::TASK_REGRESSION);
  lease.set_class_count(experiment.class_count());
  if (stored.candidate.genome().conv_layers_size() > 0) {
    *lease.mutable_image_shape() = dataset.image_shape();
  }
  *lease.mutable_input_columns() = spec.input_columns();
  *lease.mutable_output_columns() = spec.output_columns();
  const bool refit =
      stored.candidate.evaluation_level() == v1::EVALUATION_LEVEL_REFIT;
  *lease.mutable_validation_split() = ValidationSplitOf(spec);
  // A refit learns from every row.
  if (refit) lease.mutable_validation_split()->set_fraction(0);
  if (HasJudgingRows(spec, stored.candidate)) {
    *lease.mutable_judging_split() = JudgingSplitOf(spec);
  }
  if (stored.candidate.evaluation_level() == v1::EVALUATION_LEVEL_SHORT) {
    lease.set_training_row_fraction(spec.multi_fidelity().short_row_fraction());
  }
  lease.set_test_dataset_id(spec.test_dataset_id());
  lease.set_within_tolerance(spec.requirements().has_within_tolerance()
                                 ? spec.requirements().within_tolerance()
                                 : kDefaultWithinTolerance);
  int64_t seed_sequence = stored.candidate.sequence();
  if (refit) {
    // The member's initialisation: only the rows differ.
    EVONAS_ASSIGN_OR_RETURN(store::StoredCandidate member,
                            store_->GetCandidate(stored.candidate.refit_of()));
    seed_sequence = member.candidate.sequence();
  }
  lease.set_seed(SplitMix64(spec.seed() ^ SplitMix64(seed_sequence)));
  *lease.mutable_deadline() = ToProto(stored.lease_deadline_ms);
  lease.set_heartbeat_interval_seconds(
      absl::ToDoubleSeconds(options_.heartbeat_interval));
  *lease.mutable_requirements() = spec.requirements();
  const std::string& parent_id = stored.candidate.parent_id();
  if (parent_id.empty()) {
    lease.set_step_fraction(StepFraction(spec, stored.candidate, nullptr));
  } else {
    EVONAS_ASSIGN_OR_RETURN(store::StoredCandidate parent,
                            store_->GetCandidate(parent_id));
    EVONAS_ASSIGN_OR_RETURN(
        std::string sha,
        store_->ArtifactSha256(parent_id, v1::MODEL_FORMAT_CHECKPOINT));
    // The store keeps no size beside the hash that is readable here; a
    // checkpoint is small next to the data set a worker fetches.
    EVONAS_ASSIGN_OR_RETURN(std::optional<std::string> inline_checkpoint,
                            store_->InlineBlob(sha));
    std::string checkpoint;
    if (inline_checkpoint.has_value()) {
      checkpoint = *std::move(inline_checkpoint);
    } else {
      EVONAS_ASSIGN_OR_RETURN(checkpoint, blobs_->Read(sha));
    }
    v1::Inheritance* inheritance = lease.mutable_inheritance();
    inheritance->set_parent_candidate_id(parent_id);
    *inheritance->mutable_parent_genome() = parent.candidate.genome();
    *inheritance->mutable_morphism() = stored.candidate.morphism();
    inheritance->set_checkpoint_size_bytes(
        static_cast<int64_t>(checkpoint.size()));
    inheritance->set_checkpoint_sha256(sha);
    lease.set_step_fraction(
        StepFraction(spec, stored.candidate, &parent.candidate));
    inheritance->set_step_fraction(lease.step_fraction());
    inheritance->set_parent_step_fraction(
        parent.candidate.evaluation_level() == v1::EVALUATION_LEVEL_SHORT
            ? spec.multi_fidelity().short_step_fraction()
            : 1);
  }
  return lease;
}

absl::StatusOr<v1::Lease> Controller::GrantLease(store::StoredCandidate& stored,
                                                 const std::string& worker_id) {
  v1::Candidate& c = stored.candidate;
  c.set_state(v1::CANDIDATE_STATE_RUNNING);
  c.set_worker_id(worker_id);
  c.set_attempts(c.attempts() + 1);
  *c.mutable_leased_at() = ToProto(NowMs());
  stored.lease_id = RandomId("lease-", 16);
  stored.lease_deadline_ms =
      NowMs() + absl::ToInt64Milliseconds(options_.lease_timeout);
  EVONAS_RETURN_IF_ERROR(WriteCandidate(stored, /*insert=*/false));
  return MakeLease(stored);
}

absl::StatusOr<std::optional<v1::Lease>> Controller::LeaseWork(
    const std::string& worker_id, const v1::WorkerInfo& info) {
  if (worker_id.empty() || worker_id.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker_id is required and at most ", kMaxNameLength, " characters"));
  }
  if (info.has_latency_table()) {
    absl::Status valid = ValidateLatencyTable(info.latency_table());
    if (!valid.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("info.", valid.message(),
                       "; recalibrate the worker (restart it)"));
    }
  }
  if (options_.observer != nullptr) options_.observer->WorkerSeen(worker_id);
  return InBatch([&]() -> absl::StatusOr<std::optional<v1::Lease>> {
    // Every call would be one pass over all running leases and experiments:
    // at most one pass per interval, and the server runs it periodically.
    if (NowMs() - last_maintenance_ms_ >=
            absl::ToInt64Milliseconds(options_.maintenance_interval) ||
        NowMs() < last_maintenance_ms_) {
      EVONAS_RETURN_IF_ERROR(MaintainLocked());
    }
    if (info.has_latency_table()) {
      EVONAS_RETURN_IF_ERROR(RecordLatencyTableLocked(info.latency_table()));
    }
    EVONAS_ASSIGN_OR_RETURN(auto active, store_->ActiveLeaseOf(worker_id));
    if (active) {
      // A retried call gets the same lease back: no double work.
      active->lease_deadline_ms =
          NowMs() + absl::ToInt64Milliseconds(options_.lease_timeout);
      EVONAS_RETURN_IF_ERROR(WriteCandidate(*active, /*insert=*/false));
      return MakeLease(*active);
    }
    EVONAS_ASSIGN_OR_RETURN(auto queued, store_->NextQueuedCandidate());
    if (queued) return GrantLease(*queued, worker_id);
    EVONAS_ASSIGN_OR_RETURN(auto running, store_->ListRunningExperimentIds());
    for (const std::string& id : running) {
      EVONAS_ASSIGN_OR_RETURN(SearchState * state, SearchStateOf(id));
      const v1::Experiment experiment = state->experiment;
      EVONAS_ASSIGN_OR_RETURN(auto proposed, ProposeCandidate(experiment));
      if (proposed) return GrantLease(*proposed, worker_id);
    }
    return std::nullopt;
  });
}

absl::StatusOr<store::StoredCandidate> Controller::HeldLease(
    const std::string& worker_id, const std::string& lease_id) {
  EVONAS_RETURN_IF_ERROR(CheckId("worker_id", worker_id));
  EVONAS_RETURN_IF_ERROR(CheckId("lease_id", lease_id));
  EVONAS_ASSIGN_OR_RETURN(auto found, store_->CandidateByLease(lease_id));
  if (!found || found->candidate.worker_id() != worker_id) {
    return absl::AbortedError(absl::StrCat(
        "lease ", lease_id, " is not held by worker ", worker_id,
        " (it expired, was released, or never existed); drop the work"));
  }
  if (found->candidate.state() != v1::CANDIDATE_STATE_RUNNING) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lease ", lease_id, " was already reported (candidate ",
        found->candidate.id(), " is ",
        v1::CandidateState_Name(found->candidate.state()), ")"));
  }
  return std::move(*found);
}

absl::StatusOr<absl::Time> Controller::Heartbeat(const std::string& worker_id,
                                                 const std::string& lease_id) {
  if (options_.observer != nullptr && CheckId("worker_id", worker_id).ok()) {
    options_.observer->WorkerSeen(worker_id);
  }
  return InBatch([&]() -> absl::StatusOr<absl::Time> {
    EVONAS_ASSIGN_OR_RETURN(store::StoredCandidate stored,
                            HeldLease(worker_id, lease_id));
    stored.lease_deadline_ms =
        NowMs() + absl::ToInt64Milliseconds(options_.lease_timeout);
    EVONAS_RETURN_IF_ERROR(WriteCandidate(stored, /*insert=*/false));
    return absl::FromUnixMillis(stored.lease_deadline_ms);
  });
}

absl::Status Controller::ReleaseLease(const std::string& worker_id,
                                      const std::string& lease_id) {
  return InBatch([&]() -> absl::Status {
    EVONAS_ASSIGN_OR_RETURN(store::StoredCandidate stored,
                            HeldLease(worker_id, lease_id));
    const double seconds = EndLease(stored);
    stored.candidate.set_state(v1::CANDIDATE_STATE_QUEUED);
    stored.candidate.clear_worker_id();
    stored.candidate.set_attempts(
        std::max(0, stored.candidate.attempts() - 1));
    stored.lease_id.clear();
    stored.lease_deadline_ms = 0;
    EVONAS_RETURN_IF_ERROR(WriteCandidate(stored, /*insert=*/false));
    AddWorkerSeconds(stored.candidate.experiment_id(), seconds);
    return FinishIfDone(stored.candidate.experiment_id());
  });
}

absl::StatusOr<std::string> Controller::FetchCheckpoint(
    const std::string& worker_id, const std::string& lease_id) {
  std::string sha;
  std::optional<std::string> inline_bytes;
  EVONAS_RETURN_IF_ERROR(InBatch([&]() -> absl::Status {
    EVONAS_ASSIGN_OR_RETURN(store::StoredCandidate stored,
                            HeldLease(worker_id, lease_id));
    const v1::Candidate& c = stored.candidate;
    if (c.parent_id().empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "lease ", lease_id, " does not inherit: candidate ", c.id(),
          " is trained from scratch, so there is no checkpoint to fetch"));
    }
    EVONAS_ASSIGN_OR_RETURN(sha, store_->ArtifactSha256(
                                     c.parent_id(), v1::MODEL_FORMAT_CHECKPOINT));
    // Small files are rows of the database; larger ones are read from
    // their files outside the lock.
    EVONAS_ASSIGN_OR_RETURN(inline_bytes, store_->InlineBlob(sha));
    return absl::OkStatus();
  }));
  if (inline_bytes.has_value()) return *std::move(inline_bytes);
  return blobs_->Read(sha);
}

bool Controller::StoredInline(absl::string_view bytes) const {
  return static_cast<int64_t>(bytes.size()) <= options_.inline_blob_max_bytes;
}

absl::Status Controller::PutReportFiles(
    const v1::WorkResult& result, const std::string& model,
    const std::vector<std::string>& artifacts) {
  // Blobs are content-addressed and appear only complete and synced (rename
  // after fsync): one that exists need not be written again, which spares
  // the identical checkpoints of same-shaped genomes.
  auto put = [&](const std::string& bytes,
                 const std::string& sha) -> absl::Status {
    if (StoredInline(bytes) || blobs_->Contains(sha)) return absl::OkStatus();
    return blobs_->Put(bytes).status();
  };
  EVONAS_RETURN_IF_ERROR(put(model, result.model_sha256()));
  for (size_t i = 0; i < artifacts.size(); ++i) {
    EVONAS_RETURN_IF_ERROR(
        put(artifacts[i], result.artifacts(static_cast<int>(i)).sha256()));
  }
  return absl::OkStatus();
}

absl::Status Controller::PutInlineReportFilesLocked(
    const v1::WorkResult& result, const std::string& model,
    const std::vector<std::string>& artifacts) {
  // CheckReport has matched every hash to its bytes.
  if (StoredInline(model)) {
    EVONAS_RETURN_IF_ERROR(store_->PutInlineBlob(result.model_sha256(), model));
  }
  for (size_t i = 0; i < artifacts.size(); ++i) {
    if (!StoredInline(artifacts[i])) continue;
    EVONAS_RETURN_IF_ERROR(store_->PutInlineBlob(
        result.artifacts(static_cast<int>(i)).sha256(), artifacts[i]));
  }
  return absl::OkStatus();
}

absl::Status Controller::CheckMetrics(const v1::WorkResult& result,
                                      const std::string& model,
                                      const store::StoredCandidate& stored) {
  const v1::Metrics& m = result.metrics();
  EVONAS_ASSIGN_OR_RETURN(SearchState * state,
                          SearchStateOf(stored.candidate.experiment_id()));
  const v1::Experiment& experiment = state->experiment;
  const bool classification = experiment.class_count() > 0;
  EVONAS_RETURN_IF_ERROR(
      CheckEvaluation(m.validation(), "validation", classification));
  if (!experiment.spec().test_dataset_id().empty()) {
    EVONAS_RETURN_IF_ERROR(CheckEvaluation(m.test(), "test", classification));
  }
  // The search judges on them: a report without them cannot be ranked.
  const bool judging = HasJudgingRows(experiment.spec(), stored.candidate);
  if (judging && !m.has_judging()) {
    return absl::InvalidArgumentError(
        "report: metrics.judging is missing, but the lease has judging rows "
        "(ExperimentSpec.judging_fraction); a worker that predates them "
        "ignores Lease.judging_split: upgrade it");
  }
  if (!judging && m.has_judging()) {
    return absl::InvalidArgumentError(
        "report: metrics.judging is set, but the lease has no judging rows");
  }
  if (judging) {
    EVONAS_RETURN_IF_ERROR(
        CheckEvaluation(m.judging(), "judging", classification));
  }
  if (m.has_int8()) {
    EVONAS_RETURN_IF_ERROR(CheckEvaluation(m.int8().validation(),
                                           "int8.validation", classification));
    if (!experiment.spec().test_dataset_id().empty()) {
      EVONAS_RETURN_IF_ERROR(
          CheckEvaluation(m.int8().test(), "int8.test", classification));
    }
    if (judging) {
      EVONAS_RETURN_IF_ERROR(
          CheckEvaluation(m.int8().judging(), "int8.judging", classification));
    }
    if (m.int8().model_bytes() <= 0) {
      return absl::InvalidArgumentError(
          "report: int8.model_bytes must be positive");
    }
  }
  for (double v : {m.training_seconds(), m.inference_latency_seconds()}) {
    if (!std::isfinite(v) || v < 0) {
      return absl::InvalidArgumentError(
          "report: times must be finite and non-negative");
    }
  }
  if (m.peak_memory_bytes() < 0) {
    return absl::InvalidArgumentError(
        "report: peak_memory_bytes must be non-negative");
  }
  if (m.stopped_at_time_limit() &&
      !experiment.spec().requirements().has_max_training_seconds()) {
    return absl::InvalidArgumentError(
        "report: stopped_at_time_limit, but the experiment has no "
        "requirements.max_training_seconds");
  }
  EVONAS_ASSIGN_OR_RETURN(const ImageShape image, ImageLocked(experiment));
  const int64_t expected_params =
      ParameterCount(stored.candidate.genome(),
                     experiment.spec().input_columns_size(),
                     NetworkOutputs(experiment), image);
  if (m.parameter_count() != expected_params) {
    return absl::InvalidArgumentError(absl::StrCat(
        "report: parameter_count ", m.parameter_count(),
        " does not match the genome, which has ", expected_params));
  }
  if (model.empty() ||
      static_cast<int64_t>(model.size()) != result.model_size_bytes() ||
      m.model_bytes() != result.model_size_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "report: model is ", model.size(), " bytes but the report declares ",
        result.model_size_bytes(), " (metrics say ", m.model_bytes(), ")"));
  }
  if (Sha256Hex(model) != result.model_sha256()) {
    return absl::InvalidArgumentError(
        "report: model_sha256 does not match the model bytes received");
  }
  return absl::OkStatus();
}

absl::Status Controller::CheckArtifacts(
    const v1::WorkResult& result, const std::vector<std::string>& artifacts,
    const v1::Genome& genome, const v1::Experiment& experiment) {
  EVONAS_ASSIGN_OR_RETURN(const ImageShape image, ImageLocked(experiment));
  if (static_cast<int>(artifacts.size()) != result.artifacts_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "report: ", result.artifacts_size(), " artifacts declared but ",
        artifacts.size(), " received"));
  }
  for (int i = 0; i < result.artifacts_size(); ++i) {
    const v1::Artifact& declared = result.artifacts(i);
    if (static_cast<int64_t>(artifacts[i].size()) != declared.size_bytes() ||
        Sha256Hex(artifacts[i]) != declared.sha256()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "report: artifact ", v1::ModelFormat_Name(declared.format()),
          " does not match its declared size and SHA-256"));
    }
    if (declared.format() == v1::MODEL_FORMAT_CHECKPOINT) {
      EVONAS_RETURN_IF_ERROR(CheckCheckpoint(
          artifacts[i], genome, experiment.spec().input_columns_size(),
          NetworkOutputs(experiment), image,
          result.metrics().parameter_count()));
    }
  }
  return absl::OkStatus();
}

absl::Status Controller::BeginReport(const v1::WorkResult& result) {
  EVONAS_RETURN_IF_ERROR(CheckId("worker_id", result.worker_id()));
  EVONAS_RETURN_IF_ERROR(CheckId("lease_id", result.lease_id()));
  if (result.model_size_bytes() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "report: model_size_bytes is ", result.model_size_bytes(),
        "; give the model file's size in bytes"));
  }
  if (result.model_size_bytes() > options_.max_model_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "report: model_size_bytes ", result.model_size_bytes(),
        " exceeds the controller's limit of ", options_.max_model_bytes,
        " bytes per model"));
  }
  for (const v1::Artifact& artifact : result.artifacts()) {
    if (artifact.size_bytes() > options_.max_model_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "report: artifact ", v1::ModelFormat_Name(artifact.format()), " of ",
          artifact.size_bytes(), " bytes exceeds the controller's limit of ",
          options_.max_model_bytes, " bytes per file"));
    }
  }
  return InBatch([&]() -> absl::Status {
    EVONAS_RETURN_IF_ERROR(
        HeldLease(result.worker_id(), result.lease_id()).status());
    return CheckReportShape(result);
  });
}

absl::StatusOr<store::StoredCandidate> Controller::CheckReport(
    const v1::WorkResult& result, const std::string& model,
    const std::vector<std::string>& artifacts) {
  EVONAS_ASSIGN_OR_RETURN(store::StoredCandidate stored,
                          HeldLease(result.worker_id(), result.lease_id()));
  EVONAS_RETURN_IF_ERROR(CheckReportShape(result));
  if (result.failure_reason().empty()) {
    EVONAS_RETURN_IF_ERROR(CheckMetrics(result, model, stored));
    EVONAS_ASSIGN_OR_RETURN(SearchState * state,
                            SearchStateOf(stored.candidate.experiment_id()));
    EVONAS_RETURN_IF_ERROR(CheckArtifacts(result, artifacts,
                                          stored.candidate.genome(),
                                          state->experiment));
  } else if (!model.empty() || result.has_metrics()) {
    return absl::InvalidArgumentError(
        "report: a failure report carries no metrics and no model");
  }
  return stored;
}

absl::StatusOr<bool> Controller::Report(
    const v1::WorkResult& result, const std::string& model,
    const std::vector<std::string>& artifacts) {
  if (static_cast<int64_t>(model.size()) > options_.max_model_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "model exceeds the limit of ", options_.max_model_bytes, " bytes"));
  }
  const bool succeeded = result.failure_reason().empty();
  // The files of a report that passes the checks are made durable outside
  // the lock, so that their fsyncs overlap with other calls instead of
  // queueing behind the mutex; everything is checked again below. A refused
  // report writes nothing. (If the lease changes hands in between, the files
  // are left unreferenced and the start-up sweep removes them.)
  bool files_stored = false;
  if (succeeded) {
    bool acceptable = false;
    {
      absl::MutexLock lock(&mu_);
      acceptable = CheckReport(result, model, artifacts).ok();
    }
    if (acceptable) {
      EVONAS_RETURN_IF_ERROR(PutReportFiles(result, model, artifacts));
      files_stored = true;
    }
  }
  return InBatch([&]() -> absl::StatusOr<bool> {
    EVONAS_ASSIGN_OR_RETURN(store::StoredCandidate stored,
                            CheckReport(result, model, artifacts));
    v1::Candidate& c = stored.candidate;
    if (succeeded) {
      // Durable blob files first; the rows referencing them commit after.
      // (Small files are written below, with the rows.)
      if (!files_stored) {
        EVONAS_RETURN_IF_ERROR(PutReportFiles(result, model, artifacts));
      }
      stored.model_sha256 = result.model_sha256();
      EVONAS_ASSIGN_OR_RETURN(SearchState * state,
                              SearchStateOf(c.experiment_id()));
      const v1::ExperimentSpec& spec = state->experiment.spec();
      Assessment assessment = Assess(
          spec.requirements(), result.metrics(),
          JudgedRowsOf(c.evaluation_level() == v1::EVALUATION_LEVEL_REFIT,
                       !spec.test_dataset_id().empty(),
                       result.metrics().has_judging()));
      c.set_state(v1::CANDIDATE_STATE_SUCCEEDED);
      *c.mutable_metrics() = result.metrics();
      c.set_feasible(assessment.feasible);
      for (std::string& v : assessment.violations) {
        c.add_violations(std::move(v));
      }
      stored.violation = assessment.violation;
    } else {
      c.set_state(v1::CANDIDATE_STATE_FAILED);
      c.set_failure_reason(Truncate(result.failure_reason(), 2000));
    }
    *c.mutable_finished_at() = ToProto(NowMs());
    const double seconds = EndLease(stored);
    stored.lease_deadline_ms = 0;  // lease_id stays: a repeat report is detected
    // The result and its files are accepted together or not at all: a
    // failure halfway rolls the batch back.
    absl::Status recorded = [&]() -> absl::Status {
      EVONAS_RETURN_IF_ERROR(WriteCandidate(stored, /*insert=*/false));
      if (succeeded) {
        EVONAS_RETURN_IF_ERROR(
            PutInlineReportFilesLocked(result, model, artifacts));
        for (const v1::Artifact& artifact : result.artifacts()) {
          EVONAS_RETURN_IF_ERROR(store_->InsertArtifact(
              c.id(), artifact.format(), artifact.sha256(),
              artifact.size_bytes()));
        }
      }
      return absl::OkStatus();
    }();
    if (!recorded.ok()) {
      FinishBatchLocked(recorded);
      return recorded;
    }
    AddWorkerSeconds(c.experiment_id(), seconds);
    EVONAS_RETURN_IF_ERROR(FinishIfDone(c.experiment_id()));
    return c.feasible();
  });
}

// --------------------------------------------------------------- operations

absl::StatusOr<std::map<std::string, int64_t>> Controller::RowCounts() {
  return InBatch([&] { return store_->RowCounts(); });
}

absl::Status Controller::IntegrityCheck() {
  return InBatch([&] { return store_->IntegrityCheck(); });
}

}  // namespace evonas
