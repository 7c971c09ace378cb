#include "worker/model/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <time.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <sstream>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/genome.h"
#include "common/metrics.h"
#include "common/status_macros.h"
#include "google/protobuf/repeated_field.h"
#include "worker/model/conv_trainer.h"
#include "worker/model/initialisation.h"
#include "worker/model/mlp_kernels.h"
#include "worker/model/quantize.h"
#include "worker/model/tensors.h"
#include "worker/model/time_limit.h"

namespace evonas::model {
namespace {

using Clock = std::chrono::steady_clock;

// Adam steps between two checks of the cancel flag.
constexpr int kCancelPollSteps = 10;
// Adam steps between two evaluations of the validation error (the early
// stopping check of TrainingConfig.patience_steps).
constexpr int kSelectEverySteps = 50;
// L-BFGS iterations per optimizer.step() call; the cancel flag is polled and
// the validation error evaluated between calls.
constexpr int kLbfgsChunk = 10;
constexpr int kLbfgsHistory = 50;
// Times L-BFGS starts again with an empty history when a chunk made no
// progress, before the phase gives up.
constexpr int kLbfgsRestarts = 2;
// Adam's learning rate decays along a cosine to this fraction of the initial
// rate.
constexpr double kFinalLrFraction = 0.01;
// Single-row forward calls timed for Metrics.inference_latency_seconds.
constexpr int kLatencyWarmup = 5;
constexpr int kLatencyRuns = 50;
// Batches of kLatencyBatchRows rows timed for
// Metrics.inference_latency_batch_seconds.
constexpr int64_t kLatencyBatchRows = 1024;
constexpr int kLatencyBatchRuns = 11;
// Rows per forward call when Predict runs an image network (one with
// convolutional layers): its activations take channels x pixels values per
// row, and Fashion-MNIST's 12,000 validation images at once would need
// gigabytes. MLPs run in one call, as they always did.
constexpr int64_t kImagePredictRows = 1024;

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// CPU seconds the process has used, all threads.
double ProcessCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

bool Cancelled(const TrainJob& job) {
  return job.cancel != nullptr && job.cancel->load(std::memory_order_relaxed);
}

// --- Validation of the job ----------------------------------------------

absl::Status CheckMatrix(const Matrix& m, const std::string& name,
                         bool require_finite) {
  if (m.rows < 0 || m.cols < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": negative shape ", m.rows, "x", m.cols));
  }
  if (static_cast<uint64_t>(m.rows) * static_cast<uint64_t>(m.cols) !=
      m.data.size()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": shape ", m.rows,
                                                   "x", m.cols, " but ",
                                                   m.data.size(), " values"));
  }
  if (require_finite) {
    for (size_t i = 0; i < m.data.size(); ++i) {
      if (!std::isfinite(m.data[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ": non-finite value at row ", i / m.cols,
                         ", column ", i % m.cols));
      }
    }
  }
  return absl::OkStatus();
}

// Labels of a classification job: integers in [0, classes).
absl::Status CheckLabels(const Matrix& y, const std::string& name,
                         int classes) {
  for (int64_t r = 0; r < y.rows; ++r) {
    const double label = y.data[r];
    if (!(label >= 0 && label < classes && label == std::floor(label))) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, " row ", r, ": label ", label, " is not a class index 0..",
          classes - 1));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSamples(const Samples& s, const std::string& name,
                          int64_t inputs, int64_t outputs, int classes) {
  EVONAS_RETURN_IF_ERROR(CheckMatrix(s.x, name + " inputs", true));
  EVONAS_RETURN_IF_ERROR(CheckMatrix(s.y, name + " targets", true));
  if (classes > 0) EVONAS_RETURN_IF_ERROR(CheckLabels(s.y, name, classes));
  if (s.x.rows != s.y.rows) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": ", s.x.rows, " input rows but ", s.y.rows, " target rows"));
  }
  if (s.x.cols != inputs || s.y.cols != outputs) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": ", s.x.cols, " inputs and ", s.y.cols,
                     " outputs, training has ", inputs, " and ", outputs));
  }
  return absl::OkStatus();
}

using Layers = google::protobuf::RepeatedPtrField<v1::DenseLayer>;

// One stage of the genome: its hidden layers, training genes and field name.
struct StageGenes {
  const Layers* layers;
  const v1::TrainingConfig* training;
  std::string name;  // "genome." or "genome.residual_stages[k]."
};

std::vector<StageGenes> StagesOf(const v1::Genome& genome) {
  std::vector<StageGenes> stages = {
      {&genome.hidden_layers(), &genome.training(), "genome."}};
  for (int k = 0; k < genome.residual_stages_size(); ++k) {
    const v1::Stage& stage = genome.residual_stages(k);
    stages.push_back({&stage.hidden_layers(), &stage.training(),
                      absl::StrCat("genome.residual_stages[", k, "].")});
  }
  return stages;
}

// Checks what the trainer needs to build and run one stage safely. The
// learning rate may be any finite positive number here; ValidateGenome's
// upper bound is the search's policy, not a limit of the trainer.
absl::Status CheckStage(const StageGenes& stage) {
  const Layers& layers = *stage.layers;
  const std::string& n = stage.name;
  const int depth = layers.size();
  if (depth < 1 || depth > kMaxHiddenLayers) {
    return absl::InvalidArgumentError(absl::StrCat(
        n, "hidden_layers: ", depth, " layers, want 1..", kMaxHiddenLayers));
  }
  for (int i = 0; i < depth; ++i) {
    const v1::DenseLayer& layer = layers.Get(i);
    if (layer.width() < 1 || layer.width() > kMaxLayerWidth) {
      return absl::InvalidArgumentError(
          absl::StrCat(n, "hidden_layers[", i, "].width: ", layer.width(),
                       ", want 1..", kMaxLayerWidth));
    }
    switch (layer.activation()) {
      case v1::ACTIVATION_TANH:
      case v1::ACTIVATION_RELU:
      case v1::ACTIVATION_SILU:
      case v1::ACTIVATION_GELU:
      case v1::ACTIVATION_SINE:
      case v1::ACTIVATION_GAUSSIAN:
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            n, "hidden_layers[", i, "].activation: unsupported value ",
            static_cast<int>(layer.activation())));
    }
    if (layer.residual() &&
        (i == 0 || layers.Get(i - 1).width() != layer.width())) {
      return absl::InvalidArgumentError(absl::StrCat(
          n, "hidden_layers[", i,
          "].residual: a residual layer must follow a layer of its width"));
    }
  }
  const v1::TrainingConfig& t = *stage.training;
  const std::string tn = n + "training.";
  if (!std::isfinite(t.learning_rate()) || t.learning_rate() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(tn, "learning_rate: ", t.learning_rate(),
                     ", want a finite positive number"));
  }
  if (t.adam_steps() < 0 || t.adam_steps() > kMaxAdamSteps) {
    return absl::InvalidArgumentError(absl::StrCat(
        tn, "adam_steps: ", t.adam_steps(), ", want 0..", kMaxAdamSteps));
  }
  if (t.lbfgs_steps() < 0 || t.lbfgs_steps() > kMaxLbfgsSteps) {
    return absl::InvalidArgumentError(absl::StrCat(
        tn, "lbfgs_steps: ", t.lbfgs_steps(), ", want 0..", kMaxLbfgsSteps));
  }
  if (t.batch_size() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(tn, "batch_size: ", t.batch_size(), ", want >= 0"));
  }
  if (t.warmup_steps() < 0 || t.warmup_steps() > t.adam_steps()) {
    return absl::InvalidArgumentError(
        absl::StrCat(tn, "warmup_steps: ", t.warmup_steps(), ", want 0..",
                     t.adam_steps(), " (adam_steps)"));
  }
  if (!(t.weight_decay() >= 0 && t.weight_decay() <= kMaxWeightDecay)) {
    return absl::InvalidArgumentError(
        absl::StrCat(tn, "weight_decay: ", t.weight_decay(), ", want [0, ",
                     kMaxWeightDecay, "]"));
  }
  if (!(t.weight_penalty() >= 0 && t.weight_penalty() <= kMaxWeightPenalty)) {
    return absl::InvalidArgumentError(
        absl::StrCat(tn, "weight_penalty: ", t.weight_penalty(), ", want [0, ",
                     kMaxWeightPenalty, "]"));
  }
  if (t.patience_steps() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        tn, "patience_steps: ", t.patience_steps(), ", want >= 0"));
  }
  if (t.max_error_steps() < 0 || t.max_error_steps() > kMaxMaxErrorSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat(tn, "max_error_steps: ", t.max_error_steps(),
                     ", want 0..", kMaxMaxErrorSteps));
  }
  const int power = t.max_error_power();
  if (power != 0 && (power < kMinMaxErrorPower ||
                     power > kMaxMaxErrorPower || power % 2 != 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(tn, "max_error_power: ", power, ", want 0 or an even "
                     "number in ", kMinMaxErrorPower, "..", kMaxMaxErrorPower));
  }
  if (t.max_error_rounds() < 0 || t.max_error_rounds() > kMaxMaxErrorRounds) {
    return absl::InvalidArgumentError(
        absl::StrCat(tn, "max_error_rounds: ", t.max_error_rounds(),
                     ", want 0..", kMaxMaxErrorRounds));
  }
  if (!(t.siren_omega() >= 0 && t.siren_omega() <= kMaxSirenOmega)) {
    return absl::InvalidArgumentError(
        absl::StrCat(tn, "siren_omega: ", t.siren_omega(), ", want [0, ",
                     kMaxSirenOmega, "]"));
  }
  return absl::OkStatus();
}

absl::Status CheckGenome(const v1::Genome& genome) {
  if (genome.residual_stages_size() > kMaxResidualStages) {
    return absl::InvalidArgumentError(
        absl::StrCat("genome.residual_stages: ", genome.residual_stages_size(),
                     " stages, want 0..", kMaxResidualStages));
  }
  for (const StageGenes& stage : StagesOf(genome)) {
    EVONAS_RETURN_IF_ERROR(CheckStage(stage));
  }
  return absl::OkStatus();
}

// Checks that inherited weights have the shape of the genome's network.
absl::Status CheckInitial(const NetworkParameters& initial,
                          const v1::Genome& genome, int64_t inputs,
                          int64_t outputs) {
  if (absl::Status s = ValidateNetwork(initial); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("initial weights: ", s.message()));
  }
  const std::vector<StageGenes> stages = StagesOf(genome);
  if (initial.stages.size() != stages.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "initial weights have ", initial.stages.size(),
        " stages, the genome has ", stages.size()));
  }
  for (size_t k = 0; k < stages.size(); ++k) {
    const MlpParameters& stage = initial.stages[k];
    const Layers& layers = *stages[k].layers;
    const std::string name = absl::StrCat("initial weights: stages[", k, "]");
    if (stage.layers.size() != static_cast<size_t>(layers.size()) + 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " has ", stage.layers.size(), " layers, ",
                       stages[k].name, "hidden_layers has ", layers.size(),
                       " plus the output layer"));
    }
    for (const auto* scale : {&stage.x_std, &stage.y_std}) {
      for (double v : *scale) {
        if (!(v > 0) || !std::isfinite(v)) {
          return absl::InvalidArgumentError(absl::StrCat(
              name, " has a standard deviation of ", v,
              "; x_std and y_std must be finite and positive"));
        }
      }
    }
    if (stage.layers.front().inputs != inputs ||
        stage.layers.back().outputs != outputs) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, " has ", stage.layers.front().inputs, " inputs and ",
          stage.layers.back().outputs, " outputs, the data ", inputs, " and ",
          outputs));
    }
    for (int i = 0; i < layers.size(); ++i) {
      const DenseParameters& have = stage.layers[i];
      const v1::DenseLayer& want = layers.Get(i);
      if (have.outputs != want.width() ||
          have.activation != want.activation() ||
          have.residual != want.residual() ||
          have.layer_norm() != want.layer_norm()) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, ".layers[", i, "] (", have.outputs, " ",
            ActivationName(have.activation), have.residual ? " residual" : "",
            have.layer_norm() ? " layer-normalised" : "", ") differs from ",
            stages[k].name, "hidden_layers[", i, "] (", want.width(), " ",
            ActivationName(want.activation()),
            want.residual() ? " residual" : "",
            want.layer_norm() ? " layer-normalised" : "", ")"));
      }
    }
  }
  return absl::OkStatus();
}

// Units of the network's output layer: one per target column, or one logit
// per class.
int64_t NetworkOutputs(const TrainJob& job) {
  return job.class_count > 0 ? job.class_count : job.training.y.cols;
}

absl::Status CheckJob(const TrainJob& job) {
  EVONAS_RETURN_IF_ERROR(CheckGenome(job.genome));
  const int64_t inputs = job.training.x.cols;
  const int64_t outputs = job.training.y.cols;
  if (job.training.x.rows < 1) {
    return absl::InvalidArgumentError("training: no rows");
  }
  if (inputs < 1 || outputs < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("training: ", inputs, " inputs and ", outputs,
                     " outputs, want at least one of each"));
  }
  if (job.class_count < 0 || (job.class_count > 0 && outputs != 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "class_count ", job.class_count, " with ", outputs,
        " target columns: classification wants one label column"));
  }
  if (job.class_count > 0 && StageCount(job.genome) != 1) {
    return absl::InvalidArgumentError(
        "genome.residual_stages: classification networks have one stage");
  }
  const v1::Precision precision = EffectivePrecision(job.genome);
  if (precision == v1::PRECISION_FLOAT32 && StageCount(job.genome) != 1) {
    return absl::InvalidArgumentError(
        "genome.precision: float32 networks have one stage");
  }
  if (precision != v1::PRECISION_FLOAT32 && job.genome.conv_layers_size() > 0) {
    return absl::InvalidArgumentError(
        "genome.precision: convolutional networks train in float32");
  }
  if (precision != v1::PRECISION_FLOAT32 &&
      precision != v1::PRECISION_FLOAT64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "genome.precision: ", static_cast<int>(precision), " is unknown"));
  }
  const int classes = job.class_count;
  EVONAS_RETURN_IF_ERROR(
      CheckSamples(job.training, "training", inputs, outputs, classes));
  EVONAS_RETURN_IF_ERROR(
      CheckSamples(job.validation, "validation", inputs, outputs, classes));
  if (job.test.has_value()) {
    EVONAS_RETURN_IF_ERROR(
        CheckSamples(*job.test, "test", inputs, outputs, classes));
  }
  if (job.judging.has_value()) {
    EVONAS_RETURN_IF_ERROR(
        CheckSamples(*job.judging, "judging", inputs, outputs, classes));
    if (job.judging->x.rows == 0) {
      return absl::InvalidArgumentError(
          "judging: no rows (leave it unset for none)");
    }
  }
  if (!(job.within_tolerance >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("within_tolerance: ", job.within_tolerance));
  }
  const int stages = StageCount(job.genome);
  if (job.genome.conv_layers_size() > 0) {
    // Also checks the initial weights, whose first dense layer takes the
    // convolutional trunk's outputs.
    EVONAS_RETURN_IF_ERROR(CheckConvJob(job));
  } else if (job.initial.has_value()) {
    EVONAS_RETURN_IF_ERROR(
        CheckInitial(*job.initial, job.genome, inputs, NetworkOutputs(job)));
  }
  if (job.first_trainable_stage < 0 || job.first_trainable_stage >= stages ||
      (job.first_trainable_stage > 0 && !job.initial.has_value())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "first_trainable_stage: ", job.first_trainable_stage, ", want 0..",
        stages - 1, job.initial.has_value() ? "" : " and 0 without initial "
                                                   "weights"));
  }
  if (!(job.step_fraction > 0 && job.step_fraction <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step_fraction: ", job.step_fraction, ", want (0, 1]"));
  }
  if (!(job.max_training_seconds >= 0 &&
        std::isfinite(job.max_training_seconds))) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_training_seconds: ", job.max_training_seconds,
                     ", want a finite number of seconds >= 0 (0: no limit)"));
  }
  return absl::OkStatus();
}

// --- Data -----------------------------------------------------------------

torch::Tensor ToTensor(const Matrix& m) {
  if (m.data.empty()) return torch::empty({m.rows, m.cols}, torch::kFloat64);
  return torch::from_blob(const_cast<double*>(m.data.data()), {m.rows, m.cols},
                          torch::kFloat64)
      .clone();
}

// Per-column mean and standard deviation (population) of `m`; a zero
// deviation becomes 1 so that constant columns map to 0. InvalidArgument
// when they overflow.
absl::Status ColumnStats(const Matrix& m, const char* what,
                         std::vector<double>& mean, std::vector<double>& std) {
  mean.assign(m.cols, 0.0);
  std.assign(m.cols, 0.0);
  const double rows = static_cast<double>(m.rows);
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t j = 0; j < m.cols; ++j) mean[j] += m.data[r * m.cols + j];
  }
  for (double& v : mean) v /= rows;
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t j = 0; j < m.cols; ++j) {
      const double d = m.data[r * m.cols + j] - mean[j];
      std[j] += d * d;
    }
  }
  for (int64_t j = 0; j < m.cols; ++j) {
    std[j] = std::sqrt(std[j] / rows);
    if (!std::isfinite(mean[j]) || !std::isfinite(std[j])) {
      return absl::InvalidArgumentError(
          absl::StrCat("training ", what,
                       " are too large to standardise (mean or standard "
                       "deviation overflows)"));
    }
    if (std[j] == 0) std[j] = 1;
  }
  return absl::OkStatus();
}

// (v - mean) / std per column of a row-major [rows, mean.size()] array,
// computed in double and rounded to Scalar, as the exported model rounds
// the standardised inputs of a float32 network.
template <typename Scalar = double>
std::vector<Scalar> Standardised(const std::vector<double>& v,
                                 const std::vector<double>& mean,
                                 const std::vector<double>& std) {
  std::vector<Scalar> out(v.size());
  const size_t cols = mean.size();
  for (size_t i = 0; i < v.size(); ++i) {
    out[i] = static_cast<Scalar>((v[i] - mean[i % cols]) / std[i % cols]);
  }
  return out;
}

// Standardised(v, ...) from `v`, which is freed: in place for double, so
// that a large data set is never held twice.
template <typename Scalar>
std::vector<Scalar> StandardisedReleasing(std::vector<double>& v,
                                          const std::vector<double>& mean,
                                          const std::vector<double>& std) {
  if constexpr (std::is_same_v<Scalar, double>) {
    std::vector<double> out = std::move(v);
    v = {};
    const size_t cols = mean.size();
    for (size_t i = 0; i < out.size(); ++i) {
      out[i] = (out[i] - mean[i % cols]) / std[i % cols];
    }
    return out;
  } else {
    std::vector<Scalar> out = Standardised<Scalar>(v, mean, std);
    std::vector<double>().swap(v);
    return out;
  }
}

// `v` as doubles (no copy when it already is).
const std::vector<double>& AsDoubles(const std::vector<double>& v) { return v; }
std::vector<double> AsDoubles(const std::vector<float>& v) {
  return {v.begin(), v.end()};
}

// `v` as Scalars.
template <typename Scalar>
std::vector<Scalar> Rounded(const std::vector<double>& v) {
  return {v.begin(), v.end()};
}

// --- The network ----------------------------------------------------------

// TorchScript expression applying `a` to `arg`; the same function as the
// activation kernels of mlp_kernels.cc.
std::string ScriptActivation(v1::Activation a, const std::string& arg) {
  switch (a) {
    case v1::ACTIVATION_TANH:
      return absl::StrCat("torch.tanh(", arg, ")");
    case v1::ACTIVATION_RELU:
      return absl::StrCat("torch.relu(", arg, ")");
    case v1::ACTIVATION_SILU:
      return absl::StrCat("torch.silu(", arg, ")");
    case v1::ACTIVATION_GELU:
      return absl::StrCat("torch.gelu(", arg, ")");
    case v1::ACTIVATION_SINE:
      return absl::StrCat("torch.sin(", arg, ")");
    case v1::ACTIVATION_GAUSSIAN:
      return absl::StrCat("torch.exp(-torch.square(", arg, "))");
    default:
      break;
  }
  TORCH_CHECK(false, "unsupported activation ", static_cast<int>(a));
  return arg;
}

// Layer sizes (inputs, hidden widths, outputs), hidden activations and
// residual flags of one stage.
struct Architecture {
  std::vector<int64_t> sizes;
  std::vector<v1::Activation> activations;
  std::vector<bool> residual;
  std::vector<bool> layer_norm;
};

Architecture ArchitectureOf(const Layers& layers, int64_t inputs,
                            int64_t outputs) {
  Architecture arch;
  arch.sizes.push_back(inputs);
  for (const v1::DenseLayer& layer : layers) {
    arch.sizes.push_back(layer.width());
    arch.activations.push_back(layer.activation());
    arch.residual.push_back(layer.residual());
    arch.layer_norm.push_back(layer.layer_norm());
  }
  arch.sizes.push_back(outputs);
  return arch;
}

torch::Tensor ToTensor(const std::vector<double>& v,
                       std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<double*>(v.data()), shape, torch::kFloat64)
      .clone();
}

// A fresh stage's parameters (initialisation.h) drawn from `gen`, in
// MlpKernels' flat layout [W_0, b_0, W_1, b_1, ...]; `siren_omega` as for
// FreshLayerRanges.
std::vector<double> InitialParameters(const Architecture& arch,
                                      std::optional<double> siren_omega,
                                      at::Generator& gen) {
  std::vector<double> params;
  for (size_t i = 0; i + 1 < arch.sizes.size(); ++i) {
    const int64_t fan_in = arch.sizes[i], fan_out = arch.sizes[i + 1];
    const bool hidden = i < arch.activations.size();
    const v1::Activation a =
        hidden ? arch.activations[i] : v1::ACTIVATION_UNSPECIFIED;
    const InitialRanges ranges = FreshLayerRanges(
        a, fan_in, fan_out, /*reads_inputs=*/i == 0, siren_omega);
    const std::vector<double> weight =
        Uniform(fan_in * fan_out, ranges.weight, gen);
    const std::vector<double> bias = Uniform(fan_out, ranges.bias, gen);
    params.insert(params.end(), weight.begin(), weight.end());
    params.insert(params.end(), bias.begin(), bias.end());
    if (hidden && arch.layer_norm[i]) {
      // nn.LayerNorm's start: the identity scale and no shift.
      params.insert(params.end(), fan_out, 1.0);
      params.insert(params.end(), fan_out, 0.0);
    }
  }
  return params;
}

// The flat parameters of `stage` in MlpKernels' layout.
std::vector<double> FlatParameters(const MlpParameters& stage) {
  std::vector<double> params;
  for (const DenseParameters& layer : stage.layers) {
    params.insert(params.end(), layer.weight.begin(), layer.weight.end());
    params.insert(params.end(), layer.bias.begin(), layer.bias.end());
    params.insert(params.end(), layer.ln_scale.begin(), layer.ln_scale.end());
    params.insert(params.end(), layer.ln_shift.begin(), layer.ln_shift.end());
  }
  return params;
}

// Fills `stage.layers` from the flat parameters `params` of `kernels`;
// keeps the standardisation already in `stage`.
template <typename Scalar>
void SetLayers(const Architecture& arch, const BasicMlpKernels<Scalar>& kernels,
               const std::vector<Scalar>& params, MlpParameters& stage) {
  stage.layers.clear();
  for (int i = 0; i < kernels.layer_count(); ++i) {
    DenseParameters layer;
    layer.inputs = arch.sizes[i];
    layer.outputs = arch.sizes[i + 1];
    const Scalar* w = params.data() + kernels.weight_offset(i);
    const Scalar* b = params.data() + kernels.bias_offset(i);
    layer.weight.assign(w, w + layer.inputs * layer.outputs);
    layer.bias.assign(b, b + layer.outputs);
    if (i < static_cast<int>(arch.activations.size())) {
      layer.activation = arch.activations[i];
      layer.residual = arch.residual[i];
    }
    if (kernels.layer_norm(i)) {
      const Scalar* scale = params.data() + kernels.scale_offset(i);
      const Scalar* shift = params.data() + kernels.shift_offset(i);
      layer.ln_scale.assign(scale, scale + layer.outputs);
      layer.ln_shift.assign(shift, shift + layer.outputs);
    }
    stage.layers.push_back(std::move(layer));
  }
}

// Names of stage k's tensors in the exported module: stage 0 keeps the
// single-stage names ("W0", "x_mean"), later stages are prefixed "s<k>_".
std::string TensorName(size_t stage, const std::string& name) {
  return stage == 0 ? name : absl::StrCat("s", stage, "_", name);
}

// Generated source of the exported module's forward(): the sum of the
// stages, in stage order, as Forward(NetworkParameters) sums them.
std::string ForwardSource(const NetworkParameters& network) {
  std::string src = "def forward(self, x):\n";
  for (size_t k = 0; k < network.stages.size(); ++k) {
    const MlpParameters& p = network.stages[k];
    const auto t = [k](const std::string& name) {
      return absl::StrCat("self.", TensorName(k, name));
    };
    absl::StrAppend(&src, "    h = (x - ", t("x_mean"), ") / ", t("x_std"),
                    "\n");
    if (!p.conv_layers.empty()) {
      // The image network computes in float32 between the float64
      // standardisation and output (types.proto: Genome.conv_layers).
      absl::StrAppend(&src, "    h = h.view([h.size(0), 1, ", p.image_height,
                      ", ", p.image_width, "]).float()\n");
      for (size_t i = 0; i < p.conv_layers.size(); ++i) {
        const ConvParameters& c = p.conv_layers[i];
        const int64_t pad = c.kernel_size / 2;
        const std::string conv = absl::StrCat(
            "torch.conv2d(h, ", t(absl::StrCat("C", i)), ", ",
            t(absl::StrCat("c", i)), ", [1, 1], [", pad, ", ", pad, "])");
        absl::StrAppend(&src, "    h = ", c.residual ? "h + " : "",
                        ScriptActivation(c.activation, conv), "\n");
        if (c.pooling == v1::POOLING_MAX) {
          absl::StrAppend(&src,
                          "    h = torch.max_pool2d(h, [2, 2], [2, 2])\n");
        } else if (c.pooling == v1::POOLING_AVERAGE) {
          absl::StrAppend(&src,
                          "    h = torch.avg_pool2d(h, [2, 2], [2, 2])\n");
        }
      }
      absl::StrAppend(&src, "    h = torch.flatten(h, 1)\n");
    } else if (p.float32) {
      absl::StrAppend(&src, "    h = h.float()\n");
    }
    const size_t last = p.layers.size() - 1;
    for (size_t i = 0; i < last; ++i) {
      std::string affine =
          absl::StrCat("torch.addmm(", t(absl::StrCat("b", i)), ", h, ",
                       t(absl::StrCat("W", i)), ".t())");
      if (p.layers[i].layer_norm()) {
        affine = absl::StrCat(
            "torch.layer_norm(", affine, ", [", p.layers[i].outputs, "], ",
            t(absl::StrCat("g", i)), ", ", t(absl::StrCat("e", i)), ", ",
            absl::StrFormat("%g", kLayerNormEpsilon), ")");
      }
      absl::StrAppend(&src, "    h = ", p.layers[i].residual ? "h + " : "",
                      ScriptActivation(p.layers[i].activation, affine), "\n");
    }
    const std::string out =
        absl::StrCat("torch.addmm(", t(absl::StrCat("b", last)), ", h, ",
                     t(absl::StrCat("W", last)), ".t())",
                     ComputesInFloat32(p) ? ".double()" : "", " * ",
                     t("y_std"), " + ", t("y_mean"));
    if (k == 0) {
      absl::StrAppend(&src, "    y = ", out, "\n");
    } else {
      absl::StrAppend(&src, "    y = y + (", out, ")\n");
    }
  }
  absl::StrAppend(&src, "    return y\n");
  return src;
}

// The convolution of `c` with its batch normalisation (eval mode) folded in:
// weight * s and (bias - running_mean) * s + shift per output channel, s =
// scale / sqrt(running_var + eps). Without batch normalisation, its own
// weight and bias.
std::pair<std::vector<double>, std::vector<double>> FoldedConv(
    const ConvParameters& c) {
  std::vector<double> weight = c.weight, bias = c.bias;
  if (!c.batch_norm) return {weight, bias};
  const size_t per_channel = weight.size() / bias.size();
  for (size_t o = 0; o < bias.size(); ++o) {
    const double s =
        c.bn_scale[o] / std::sqrt(c.bn_running_var[o] + kBatchNormEps);
    for (size_t j = 0; j < per_channel; ++j) weight[o * per_channel + j] *= s;
    bias[o] = (bias[o] - c.bn_running_mean[o]) * s + c.bn_shift[o];
  }
  return {weight, bias};
}

// Builds the TorchScript module (raw inputs -> raw outputs) holding exactly
// the numbers of `network` (an image stage's weights rounded to float32,
// its batch normalisation folded into the convolutions) and serialises it.
std::string Export(const NetworkParameters& network) {
  torch::jit::Module module("__torch__.evonas.Mlp");
  const auto size = [](const std::vector<double>& v) {
    return static_cast<int64_t>(v.size());
  };
  for (size_t k = 0; k < network.stages.size(); ++k) {
    const MlpParameters& p = network.stages[k];
    const auto dtype =
        ComputesInFloat32(p) ? torch::kFloat32 : torch::kFloat64;
    // A trainable tensor of stage k, e.g. "W0" or "C1", in the stage's dtype.
    const auto add_parameter = [&](const std::string& name,
                                   const std::vector<double>& values,
                                   std::vector<int64_t> shape) {
      module.register_parameter(
          TensorName(k, name),
          ToTensor(values, std::move(shape)).to(dtype).requires_grad_(true),
          /*is_buffer=*/false);
    };
    for (size_t i = 0; i < p.conv_layers.size(); ++i) {
      const ConvParameters& c = p.conv_layers[i];
      const auto [weight, bias] = FoldedConv(c);
      add_parameter(absl::StrCat("C", i), weight,
                    {c.out_channels, c.in_channels, c.kernel_size,
                     c.kernel_size});
      add_parameter(absl::StrCat("c", i), bias, {c.out_channels});
    }
    for (size_t i = 0; i < p.layers.size(); ++i) {
      const DenseParameters& layer = p.layers[i];
      add_parameter(absl::StrCat("W", i), layer.weight,
                    {layer.outputs, layer.inputs});
      add_parameter(absl::StrCat("b", i), layer.bias, {layer.outputs});
      if (layer.layer_norm()) {
        // g<i>, e<i>: nn.LayerNorm's weight (gamma) and bias (beta).
        add_parameter(absl::StrCat("g", i), layer.ln_scale, {layer.outputs});
        add_parameter(absl::StrCat("e", i), layer.ln_shift, {layer.outputs});
      }
    }
    module.register_buffer(TensorName(k, "x_mean"),
                           ToTensor(p.x_mean, {size(p.x_mean)}));
    module.register_buffer(TensorName(k, "x_std"),
                           ToTensor(p.x_std, {size(p.x_std)}));
    module.register_buffer(TensorName(k, "y_mean"),
                           ToTensor(p.y_mean, {size(p.y_mean)}));
    module.register_buffer(TensorName(k, "y_std"),
                           ToTensor(p.y_std, {size(p.y_std)}));
  }
  module.define(ForwardSource(network));
  module.eval();
  std::ostringstream out;
  module.save(out);
  return std::move(out).str();
}

torch::jit::Module Load(const std::string& model_file) {
  std::istringstream in(model_file);
  torch::jit::Module module = torch::jit::load(in);
  module.eval();
  return module;
}

// --- Training -------------------------------------------------------------

// How many of each kind of step one stage runs (the genes times
// TrainJob.step_fraction).
struct StageSteps {
  int adam = 0;
  int warmup = 0;
  int lbfgs = 0;
  int max_error = 0;
  int patience = 0;
  int power = kDefaultMaxErrorPower;
  int max_error_rounds = 1;
};

int Scaled(int steps, double fraction) {
  if (steps <= 0) return 0;
  return std::max(1, static_cast<int>(std::lround(steps * fraction)));
}

StageSteps StepsOf(const v1::TrainingConfig& t, double fraction,
                   bool classification) {
  StageSteps s;
  s.adam = Scaled(t.adam_steps(), fraction);
  s.warmup = std::min(s.adam, Scaled(t.warmup_steps(), fraction));
  if (!classification) {
    s.lbfgs = Scaled(t.lbfgs_steps(), fraction);
    s.max_error = Scaled(t.max_error_steps(), fraction);
  }
  s.patience = t.patience_steps();
  if (t.max_error_power() != 0) s.power = t.max_error_power();
  // A round needs at least one iteration.
  s.max_error_rounds =
      std::clamp(t.max_error_rounds(), 1, std::max(1, s.max_error));
  return s;
}

// Standardised data, one stage's parameters and the best-on-validation
// bookkeeping of its training, in Scalar (the genome's precision). The
// forward and backward passes and Adam run on MlpKernels; L-BFGS is
// LibTorch's, on a tensor that shares the parameters' memory. The selection
// targets stay double, so that errors are measured against the data, not
// against their float32 rounding.
template <typename Scalar>
class Training {
 public:
  using Kernels = BasicMlpKernels<Scalar>;
  static constexpr auto kDtype =
      std::is_same_v<Scalar, float> ? torch::kFloat32 : torch::kFloat64;

  // `x`, `y`: standardised training rows (inputs, the stage's targets);
  // `select_x`, `select_y`: standardised selection rows; `y_std`: one per
  // output, the stage's output scale.
  Training(const TrainJob& job, const v1::TrainingConfig& config,
           StageSteps steps, TimeLimit& limit, Kernels kernels,
           std::vector<Scalar> params, std::vector<Scalar> x,
           std::vector<Scalar> y, std::vector<Scalar> select_x,
           std::vector<double> select_y, std::vector<double> y_std)
      : job_(job),
        config_(config),
        steps_(steps),
        limit_(limit),
        kernels_(std::move(kernels)),
        params_(std::move(params)),
        grad_(params_.size()),
        x_(std::move(x)),
        y_(std::move(y)),
        classification_(job.class_count > 0),
        y_stride_(classification_ ? 1 : kernels_.outputs()),
        rows_(static_cast<int64_t>(y_.size()) / y_stride_),
        select_x_(std::move(select_x)),
        select_y_(std::move(select_y)),
        select_rows_(static_cast<int64_t>(select_y_.size()) / y_stride_),
        y_std_(std::move(y_std)) {}

  const Kernels& kernels() const { return kernels_; }
  const std::vector<Scalar>& params() const { return params_; }
  const StageReport& report() const { return report_; }

  // Every phase, in order, ending with the best weights in the network; the
  // time limit skips the phases after the one it stopped.
  absl::Status Run(at::Generator& gen) {
    // The starting weights compete too: an inherited network is never made
    // worse on the validation rows.
    Select();
    auto phase_start = Clock::now();
    EVONAS_RETURN_IF_ERROR(RunAdam(gen));
    report_.after_adam = best_error_;
    report_.adam_seconds = Seconds(Clock::now() - phase_start);
    phase_start = Clock::now();
    if (!limit_.reached()) {
      EVONAS_RETURN_IF_ERROR(
          RunLbfgs(steps_.lbfgs, 2, 1.0, nullptr, "lbfgs iteration",
                   report_.lbfgs_iterations, report_.lbfgs_best_iteration));
    }
    report_.after_lbfgs = best_error_;
    report_.lbfgs_seconds = Seconds(Clock::now() - phase_start);
    phase_start = Clock::now();
    if (!limit_.reached()) EVONAS_RETURN_IF_ERROR(RunMaxError());
    report_.after_max_error = best_error_;
    report_.max_error_seconds = Seconds(Clock::now() - phase_start);
    report_.time_limited = limit_.reached();
    Restore();
    return absl::OkStatus();
  }

 private:
  absl::Status RunAdam(at::Generator& gen) {
    const int steps = steps_.adam;
    if (steps == 0) return absl::OkStatus();
    BasicAdam<Scalar> adam(kernels_.parameter_count(), config_.weight_decay(),
                           kernels_.weight_ranges());
    const int64_t n = rows_;
    const int64_t inputs = kernels_.inputs(), outputs = y_stride_;
    const int64_t batch = config_.batch_size() > 0 && config_.batch_size() < n
                              ? config_.batch_size()
                              : 0;
    std::vector<Scalar> batch_x(batch * inputs), batch_y(batch * outputs);
    torch::Tensor perm;
    int64_t pos = n;  // forces a shuffle before the first mini-batch
    int last_selection = 0;
    TimeLimit::Steps timed(limit_);
    for (int step = 0; step < steps; ++step) {
      if (step % kCancelPollSteps == 0 && Cancelled(job_)) {
        return absl::CancelledError(
            absl::StrCat("training cancelled at adam step ", step));
      }
      if (!timed.Fits()) {
        // The steps since the last selection count too.
        if (step > last_selection && Select()) report_.adam_best_step = step;
        break;
      }
      const Scalar* xb = x_.data();
      const Scalar* yb = y_.data();
      int64_t rows = n;
      if (batch > 0) {
        if (pos + batch > n) {
          perm = torch::randperm(n, gen, torch::kLong);
          pos = 0;
        }
        const int64_t* idx = perm.data_ptr<int64_t>() + pos;
        for (int64_t i = 0; i < batch; ++i) {
          std::copy_n(x_.data() + idx[i] * inputs, inputs,
                      batch_x.data() + i * inputs);
          std::copy_n(y_.data() + idx[i] * outputs, outputs,
                      batch_y.data() + i * outputs);
        }
        pos += batch;
        xb = batch_x.data();
        yb = batch_y.data();
        rows = batch;
      }
      const double loss =
          classification_
              ? kernels_.CrossEntropyAndGradient(params_.data(), xb, yb, rows,
                                                 grad_.data())
              : kernels_.LossAndGradient(params_.data(), xb, yb, rows,
                                         grad_.data());
      if (!std::isfinite(loss)) return Diverged(loss, "adam step", step);
      adam.Step(ScheduledLearningRate(config_.learning_rate(), step,
                                      steps_.adam, steps_.warmup,
                                      kFinalLrFraction),
                grad_.data(), params_.data());
      ++report_.adam_steps;
      timed.Done();
      if ((step + 1) % kSelectEverySteps == 0 || step + 1 == steps) {
        last_selection = step + 1;
        if (Select()) report_.adam_best_step = step + 1;
        // Early stopping on the validation maximum, not the training loss.
        if (steps_.patience > 0 &&
            step + 1 - report_.adam_best_step >= steps_.patience) {
          break;
        }
      }
    }
    return absl::OkStatus();
  }

  // The max-error phase: L-BFGS on the mean of (|error| / e0)^p from the
  // best weights so far, e0 their largest training error, in
  // max_error_rounds rounds. From the second round on, each row's term is
  // weighted, and before every round the weights are multiplied by the rows'
  // errors over the largest (Lawson's update): a row's weight is the product
  // of its relative errors at the start of the earlier rounds.
  absl::Status RunMaxError() {
    if (steps_.max_error == 0) return absl::OkStatus();
    const int rounds = steps_.max_error_rounds;
    std::vector<double> row_weights;
    for (int round = 0; round < rounds && !limit_.reached(); ++round) {
      Restore();
      predicted_.resize(y_.size());
      kernels_.Forward(params_.data(), x_.data(), rows_, predicted_.data());
      std::vector<double> row_errors(rows_, 0.0);
      for (size_t i = 0; i < y_.size(); ++i) {
        double& row = row_errors[i / y_stride_];
        row = std::max(row, std::fabs(static_cast<double>(predicted_[i]) -
                                      static_cast<double>(y_[i])));
      }
      const double largest =
          row_errors.empty()
              ? 0.0
              : *std::max_element(row_errors.begin(), row_errors.end());
      if (!(largest > 0) || !std::isfinite(largest)) break;
      if (round > 0) {
        if (row_weights.empty()) row_weights.assign(rows_, 1.0);
        double sum = 0;
        for (int64_t r = 0; r < rows_; ++r) {
          row_weights[r] *= row_errors[r] / largest;
          sum += row_weights[r];
        }
        if (!(sum > 0)) break;
        const double to_mean_one = static_cast<double>(rows_) / sum;
        for (double& w : row_weights) w *= to_mean_one;
      }
      const int iterations = steps_.max_error * (round + 1) / rounds -
                             steps_.max_error * round / rounds;
      int done = 0, best = 0;
      EVONAS_RETURN_IF_ERROR(
          RunLbfgs(iterations, steps_.power, largest,
                   row_weights.empty() ? nullptr : row_weights.data(),
                   "max-error iteration", done, best));
      if (best > 0) {
        report_.max_error_best_iteration = report_.max_error_iterations + best;
      }
      report_.max_error_iterations += done;
    }
    return absl::OkStatus();
  }

  // `iterations` L-BFGS iterations on the mean of ((out - y) / scale)^power
  // (each row's terms times its entry of `row_weights`, when not null)
  // from the best weights so far, in chunks between which the cancel flag is
  // polled and the validation error evaluated; a chunk without progress
  // restarts L-BFGS with an empty history, up to kLbfgsRestarts times. An
  // evaluation of the loss that the time limit refuses ends the phase.
  // `best_iteration`: the iteration after which the best weights were found,
  // if any were.
  absl::Status RunLbfgs(int iterations, int power, double scale,
                        const double* row_weights, const char* phase,
                        int& done_iterations, int& best_iteration) {
    if (iterations == 0) return absl::OkStatus();
    Restore();
    torch::optim::LBFGSOptions opts(1.0);
    opts.max_iter(kLbfgsChunk)
        .max_eval(kLbfgsChunk * 25)
        .tolerance_grad(1e-14)
        .tolerance_change(1e-18)
        .history_size(kLbfgsHistory)
        .line_search_fn("strong_wolfe");
    // One flat parameter tensor over params_ and its gradient over grad_:
    // L-BFGS sees the same flat vector it would gather from the per-layer
    // tensors, and its in-place updates land in params_.
    const int64_t size = kernels_.parameter_count();
    torch::Tensor param =
        torch::from_blob(params_.data(), {size}, kDtype).requires_grad_(true);
    param.mutable_grad() = torch::from_blob(grad_.data(), {size}, kDtype);
    auto lbfgs = std::make_unique<torch::optim::LBFGS>(
        std::vector<torch::Tensor>{param}, opts);
    // LibTorch's L-BFGS cannot be told to stop within a step: the closure
    // throws this instead of evaluating when the time limit refuses.
    struct OutOfTime {};
    TimeLimit::Steps evaluations(limit_);
    auto closure = [&]() {
      if (!evaluations.Fits()) throw OutOfTime{};
      const double loss =
          kernels_.LossAndGradient(params_.data(), x_.data(), y_.data(), rows_,
                                   grad_.data(), power, scale, row_weights);
      const double penalty = AddWeightPenalty(grad_.data());
      evaluations.Done();
      return torch::tensor(loss + penalty, kDtype);
    };
    double previous = std::numeric_limits<double>::quiet_NaN();
    int restarts = 0;
    for (int done = 0; done < iterations;) {
      if (Cancelled(job_)) {
        return absl::CancelledError(
            absl::StrCat("training cancelled at ", phase, " ", done));
      }
      const int chunk = std::min(kLbfgsChunk, iterations - done);
      auto& options = static_cast<torch::optim::LBFGSOptions&>(
          lbfgs->param_groups()[0].options());
      options.max_iter(chunk).max_eval(chunk * 25);
      try {
        lbfgs->step(closure);
      } catch (const OutOfTime&) {
        // Mid-step weights, perhaps mid line search: they compete, and
        // Restore() brings back the best.
        if (Select()) best_iteration = done + 1;
        break;
      }
      done += chunk;
      done_iterations = done;
      const double loss = Loss(power, scale, row_weights);
      if (!std::isfinite(loss)) return Diverged(loss, phase, done);
      if (Select()) best_iteration = done;
      if (loss == previous) {  // no progress: restart, or give up
        if (restarts++ == kLbfgsRestarts) break;
        lbfgs = std::make_unique<torch::optim::LBFGS>(
            std::vector<torch::Tensor>{param}, opts);
      }
      previous = loss;
    }
    return absl::OkStatus();
  }

  // Puts the best-on-validation weights (if any) into the network.
  void Restore() {
    if (!best_.empty()) params_ = best_;
  }

  absl::Status Diverged(double value, const char* phase, int step) const {
    return absl::AbortedError(absl::StrCat("training diverged: loss became ",
                                           std::isnan(value) ? "NaN" : "inf",
                                           " at ", phase, " ", step));
  }

  // weight_penalty * (sum of the squared weight-matrix entries); adds its
  // gradient to `grad` unless that is null.
  double AddWeightPenalty(Scalar* grad) const {
    const double penalty = config_.weight_penalty();
    if (penalty == 0) return 0;
    double sum = 0;
    for (const ParameterRange& range : kernels_.weight_ranges()) {
      for (int64_t i = range.begin; i < range.end; ++i) {
        const double w = params_[i];
        sum += w * w;
        if (grad != nullptr) grad[i] += static_cast<Scalar>(2 * penalty * w);
      }
    }
    return penalty * sum;
  }

  // Mean of ((out - y) / scale)^power on the training rows (each row's
  // terms times its entry of `row_weights`, when not null), plus the weight
  // penalty: the loss the L-BFGS phases minimise.
  double Loss(int power, double scale, const double* row_weights) {
    predicted_.resize(y_.size());
    kernels_.Forward(params_.data(), x_.data(), rows_, predicted_.data());
    double sum = 0;
    for (size_t i = 0; i < y_.size(); ++i) {
      const double e = (static_cast<double>(predicted_[i]) -
                        static_cast<double>(y_[i])) /
                       scale;
      const double term = power == 2 ? e * e : std::pow(e, power);
      sum += row_weights == nullptr ? term : row_weights[i / y_stride_] * term;
    }
    return sum / static_cast<double>(y_.size()) + AddWeightPenalty(nullptr);
  }

  // Evaluates the weights on the selection rows and keeps a copy when they
  // are the best so far; returns whether they were. Its time is the time
  // limit's reserve for ending a phase.
  bool Select() {
    return limit_.TimeSelection([this] {
      return classification_ ? SelectClassifier() : SelectSmallestMaximum();
    });
  }

  // Select() for regression: the largest absolute error in output units.
  bool SelectSmallestMaximum() {
    predicted_.resize(select_y_.size());
    kernels_.Forward(params_.data(), select_x_.data(), select_rows_,
                     predicted_.data());
    const size_t outputs = y_std_.size();
    double error = 0;
    for (size_t i = 0; i < select_y_.size(); ++i) {
      const double e = std::fabs(static_cast<double>(predicted_[i]) -
                                 select_y_[i]) *
                       y_std_[i % outputs];
      if (std::isnan(e)) return false;
      error = std::max(error, e);
    }
    if (!std::isfinite(error) || error >= best_error_) return false;
    best_error_ = error;
    best_ = params_;
    return true;
  }

  // Select() for classification: fewest misclassified selection rows, then
  // lowest cross-entropy (ClassifierSelection, shared with the convolutional
  // trainer). best_error_ holds the error rate.
  bool SelectClassifier() {
    const int64_t classes = kernels_.outputs();
    predicted_.resize(select_rows_ * classes);
    kernels_.Forward(params_.data(), select_x_.data(), select_rows_,
                     predicted_.data());
    if (!selection_.Offer(EvaluateClassification(AsDoubles(predicted_),
                                                 select_y_, classes))) {
      return false;
    }
    best_error_ = selection_.error_rate();
    best_ = params_;
    return true;
  }

  const TrainJob& job_;
  const v1::TrainingConfig& config_;
  const StageSteps steps_;
  TimeLimit& limit_;
  Kernels kernels_;
  std::vector<Scalar> params_, grad_;
  std::vector<Scalar> x_, y_;  // standardised training rows (labels as is)
  const bool classification_;
  const int64_t y_stride_;  // values of y_ per row
  int64_t rows_;
  std::vector<Scalar> select_x_;  // standardised selection rows
  std::vector<double> select_y_;
  int64_t select_rows_;
  std::vector<double> y_std_;  // one per output
  std::vector<Scalar> predicted_;
  double best_error_ = std::numeric_limits<double>::infinity();
  ClassifierSelection selection_;
  std::vector<Scalar> best_;
  StageReport report_;
};

// Median seconds of one forward call of the model on `rows` rows taken
// cyclically from `x`.
absl::StatusOr<double> MedianLatency(const std::string& model_file,
                                     const Matrix& x, int64_t rows, int runs) {
  torch::jit::Module module = Load(model_file);
  torch::NoGradGuard no_grad;
  torch::Tensor all = ToTensor(x);
  torch::Tensor batch =
      all.index_select(0, torch::arange(rows, torch::kLong) % x.rows);
  std::vector<torch::jit::IValue> args{batch};
  for (int i = 0; i < kLatencyWarmup; ++i) module.forward(args);
  std::vector<double> times;
  for (int i = 0; i < runs; ++i) {
    const auto start = Clock::now();
    module.forward(args);
    times.push_back(Seconds(Clock::now() - start));
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2,
                   times.end());
  return times[times.size() / 2];
}

absl::StatusOr<v1::Evaluation> Evaluate(const std::string& model_file,
                                        const Samples& s, double tolerance,
                                        int classes) {
  EVONAS_ASSIGN_OR_RETURN(Matrix predicted, Predict(model_file, s.x));
  if (classes > 0) {
    return EvaluateClassification(predicted.data, s.y.data, classes);
  }
  return EvaluatePredictions(predicted.data, s.y.data, s.y.cols, tolerance);
}

// Runs `f` and turns any exception into a Status naming `what`.
template <typename F>
auto Guard(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat(what, ": libtorch error: ", e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": out of memory"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(what, ": unknown exception"));
  }
}

// Evaluates `model` on the job's held-out rows into `metrics` (v1::Metrics
// or v1::QuantizedMetrics): the test data set and the judging rows, those
// the job has.
template <typename HeldOutMetrics>
absl::Status EvaluateHeldOut(const std::string& model, const TrainJob& job,
                             HeldOutMetrics& metrics) {
  if (job.test.has_value()) {
    EVONAS_ASSIGN_OR_RETURN(
        *metrics.mutable_test(),
        Evaluate(model, *job.test, job.within_tolerance, job.class_count));
  }
  if (job.judging.has_value()) {
    EVONAS_ASSIGN_OR_RETURN(
        *metrics.mutable_judging(),
        Evaluate(model, *job.judging, job.within_tolerance, job.class_count));
  }
  return absl::OkStatus();
}

// Metrics.int8 of `output`: every stage quantised weight-only on its own
// (quantize.h), their sum evaluated as the trained network is, on the
// selection and held-out rows. An error when the int8 network cannot be built
// or evaluated.
absl::Status AddInt8Metrics(const TrainJob& job, const Samples& select,
                            TrainOutput& output) {
  NetworkParameters dequantized;
  int64_t bytes = 0;
  for (const MlpParameters& stage : output.parameters.stages) {
    const QuantizedMlp quantized = Quantize(stage);
    dequantized.stages.push_back(Dequantize(quantized));
    bytes += Int8ModelBytes(quantized);
  }
  EVONAS_RETURN_IF_ERROR(ValidateNetwork(dequantized));
  const std::string model = Export(dequantized);
  v1::QuantizedMetrics int8;
  EVONAS_ASSIGN_OR_RETURN(
      *int8.mutable_validation(),
      Evaluate(model, select, job.within_tolerance, job.class_count));
  EVONAS_RETURN_IF_ERROR(EvaluateHeldOut(model, job, int8));
  int8.set_model_bytes(bytes);
  *output.metrics.mutable_int8() = std::move(int8);
  return absl::OkStatus();
}

// True when every weight and bias of the stage's output layer is zero: the
// stage outputs exactly 0 (y_mean is 0 for stages after the first).
bool OutputsZero(const MlpParameters& stage) {
  const DenseParameters& out = stage.layers.back();
  return std::all_of(out.weight.begin(), out.weight.end(),
                     [](double w) { return w == 0; }) &&
         std::all_of(out.bias.begin(), out.bias.end(),
                     [](double b) { return b == 0; });
}

// The kernels of a stage's dense layers; they also fix its flat parameter
// layout (SetLayers).
template <typename Scalar>
absl::StatusOr<BasicMlpKernels<Scalar>> StageKernels(const TrainJob& job,
                                                     const StageGenes& genes,
                                                     const Architecture& arch) {
  absl::StatusOr<BasicMlpKernels<Scalar>> kernels =
      BasicMlpKernels<Scalar>::Create(
          arch.sizes, arch.activations,
          BasicMlpKernels<Scalar>::kDefaultRowsPerBlock,
          std::max(1, job.threads), arch.residual, arch.layer_norm);
  if (!kernels.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(genes.name, "hidden_layers: ", kernels.status().message()));
  }
  return kernels;
}

// Trains the dense layers of `stage` (standardisation set, layers
// replaced) in Scalar from the flat parameters `params`. With
// `release_inputs` (job.training.x.data, which the caller no longer needs)
// the standardised inputs are made from it and it is freed.
template <typename Scalar>
absl::Status RunTraining(
    const TrainJob& job, const StageGenes& genes, const Architecture& arch,
    const std::vector<double>& params, const std::vector<double>& residual,
    const Samples& select, const std::vector<double>& select_residual,
    std::vector<double>* release_inputs, TimeLimit& limit, at::Generator& gen,
    MlpParameters& stage, StageReport& report) {
  EVONAS_ASSIGN_OR_RETURN(BasicMlpKernels<Scalar> kernels,
                          StageKernels<Scalar>(job, genes, arch));
  const bool classification = job.class_count > 0;
  // Labels are class indices, never standardised.
  Training<Scalar> training(
      job, *genes.training,
      StepsOf(*genes.training, job.step_fraction, classification), limit,
      std::move(kernels), Rounded<Scalar>(params),
      release_inputs != nullptr
          ? StandardisedReleasing<Scalar>(*release_inputs, stage.x_mean,
                                          stage.x_std)
          : Standardised<Scalar>(job.training.x.data, stage.x_mean,
                                 stage.x_std),
      classification
          ? Rounded<Scalar>(residual)
          : Standardised<Scalar>(residual, stage.y_mean, stage.y_std),
      Standardised<Scalar>(select.x.data, stage.x_mean, stage.x_std),
      classification ? select_residual
                     : Standardised(select_residual, stage.y_mean, stage.y_std),
      stage.y_std);
  EVONAS_RETURN_IF_ERROR(training.Run(gen));
  SetLayers(arch, training.kernels(), training.params(), stage);
  report = training.report();
  return absl::OkStatus();
}

// Zeroes the output layer's weights and biases: a stage after the first
// then adds exactly 0 (its y_mean is 0).
void ZeroOutput(MlpParameters& stage) {
  DenseParameters& out = stage.layers.back();
  std::fill(out.weight.begin(), out.weight.end(), 0.0);
  std::fill(out.bias.begin(), out.bias.end(), 0.0);
}

double MaxAbs(const std::vector<double>& values) {
  double largest = 0;
  for (double v : values) largest = std::max(largest, std::fabs(v));
  return largest;
}

// Trains stage `k` of the network on the residual targets `residual`
// (training rows) and `select_residual` (selection rows), raw units. When
// the time limit has been reached it trains nothing: an inherited stage
// keeps its weights, a fresh one gets its initialisation with a zero
// output layer. `release_inputs` as for RunTraining.
absl::StatusOr<MlpParameters> TrainStage(
    const TrainJob& job, const StageGenes& genes, size_t k,
    const std::vector<double>& x_mean, const std::vector<double>& x_std,
    const std::vector<double>& residual, const Samples& select,
    const std::vector<double>& select_residual,
    std::vector<double>* release_inputs, TimeLimit& limit, at::Generator& gen,
    StageReport& report) {
  const int64_t inputs = job.training.x.cols;
  const int64_t outputs = NetworkOutputs(job);
  const bool classification = job.class_count > 0;
  const Architecture arch = ArchitectureOf(*genes.layers, inputs, outputs);

  MlpParameters stage;
  stage.float32 = EffectivePrecision(job.genome) == v1::PRECISION_FLOAT32;
  const bool inherited = job.initial.has_value() &&
                         !(k > 0 && OutputsZero(job.initial->stages[k]));
  if (inherited) {
    stage = job.initial->stages[k];
  } else {
    // A fresh stage: the data's standardisation. Stage 0 standardises the
    // targets; later stages scale their residual by its root mean square
    // and keep y_mean 0.
    stage.x_mean = x_mean;
    stage.x_std = x_std;
    if (classification) {
      // The outputs are the logits themselves.
      stage.y_mean.assign(outputs, 0.0);
      stage.y_std.assign(outputs, 1.0);
    } else if (k == 0) {
      const Matrix targets{job.training.y.rows, outputs, residual};
      EVONAS_RETURN_IF_ERROR(
          ColumnStats(targets, "targets", stage.y_mean, stage.y_std));
    } else {
      stage.y_mean.assign(outputs, 0.0);
      stage.y_std.assign(outputs, 0.0);
      for (size_t i = 0; i < residual.size(); ++i) {
        stage.y_std[i % outputs] += residual[i] * residual[i];
      }
      for (double& s : stage.y_std) {
        s = std::sqrt(s / static_cast<double>(job.training.y.rows));
        if (!(s > 0) || !std::isfinite(s)) s = 1;
      }
    }
  }
  std::vector<double> params;
  if (job.initial.has_value()) {
    params = FlatParameters(job.initial->stages[k]);
  } else {
    params = InitialParameters(
        arch,
        k > 0 ? std::optional<double>(SirenOmega(*genes.training))
              : std::nullopt,
        gen);
  }

  if (limit.reached()) {
    report.time_limited = true;
    if (!inherited) {
      // Only a stage after the first can find the limit reached: float64.
      EVONAS_ASSIGN_OR_RETURN(const BasicMlpKernels<double> kernels,
                              StageKernels<double>(job, genes, arch));
      SetLayers(arch, kernels, params, stage);
      ZeroOutput(stage);
    }
    return stage;
  }
  if (stage.float32) {
    EVONAS_RETURN_IF_ERROR(RunTraining<float>(
        job, genes, arch, params, residual, select, select_residual,
        release_inputs, limit, gen, stage, report));
  } else {
    EVONAS_RETURN_IF_ERROR(RunTraining<double>(
        job, genes, arch, params, residual, select, select_residual,
        release_inputs, limit, gen, stage, report));
  }
  // Adding nothing competes too: a fresh stage that none of its weights let
  // beat the stages before it on the selection rows adds 0 (after_max_error
  // is the best selection error of its training).
  if (k > 0 && !inherited && !classification &&
      !(report.after_max_error < MaxAbs(select_residual))) {
    ZeroOutput(stage);
  }
  return stage;
}

// target -= the stage's output on `x`, element by element.
absl::Status Subtract(const MlpParameters& stage, const Matrix& x,
                      std::vector<double>& target) {
  const std::vector<double> out = Forward(stage, x.data, x.rows);
  if (out.size() != target.size()) {
    return absl::InternalError(
        absl::StrCat("a stage's forward pass returned ", out.size(),
                     " values for ", target.size(), " targets"));
  }
  for (size_t i = 0; i < target.size(); ++i) target[i] -= out[i];
  return absl::OkStatus();
}

// Trains the stages of an MLP genome, one after the other, into `output`
// (parameters and stage reports). The last stage frees `release_inputs`
// (as RunTraining): nothing reads the raw training inputs after it.
absl::Status TrainStages(const TrainJob& job, const Samples& select,
                         std::vector<double>* release_inputs, TimeLimit& limit,
                         at::Generator& gen, TrainOutput& output) {
  std::vector<double> x_mean, x_std;
  EVONAS_RETURN_IF_ERROR(ColumnStats(job.training.x, "inputs", x_mean, x_std));
  // What the stages so far leave unexplained, in raw units.
  std::vector<double> residual = job.training.y.data;
  std::vector<double> select_residual = select.y.data;
  const std::vector<StageGenes> stages = StagesOf(job.genome);
  for (size_t k = 0; k < stages.size(); ++k) {
    StageReport& report = output.stages.emplace_back();
    const auto stage_start = Clock::now();
    if (static_cast<int>(k) < job.first_trainable_stage) {
      output.parameters.stages.push_back(job.initial->stages[k]);
      report.frozen = true;
    } else {
      const bool last = k + 1 == stages.size();
      EVONAS_ASSIGN_OR_RETURN(
          MlpParameters stage,
          TrainStage(job, stages[k], k, x_mean, x_std, residual, select,
                     select_residual, last ? release_inputs : nullptr, limit,
                     gen, report));
      output.parameters.stages.push_back(std::move(stage));
      report.seconds = Seconds(Clock::now() - stage_start);
    }
    // Once the time limit is reached no later stage trains on the residual.
    if (k + 1 < stages.size() && !limit.reached()) {
      EVONAS_RETURN_IF_ERROR(
          Subtract(output.parameters.stages.back(), job.training.x, residual));
      EVONAS_RETURN_IF_ERROR(Subtract(output.parameters.stages.back(),
                                      select.x, select_residual));
    }
  }
  return absl::OkStatus();
}

// Trains a convolutional genome's single float32 stage (conv_trainer.h)
// into `output`, freeing `release_inputs` once they are images.
absl::Status TrainConvolutional(const TrainJob& job, const Samples& select,
                                std::vector<double>* release_inputs,
                                TimeLimit& limit, TrainOutput& output) {
  const auto start = Clock::now();
  // Adam only: `classification` leaves the L-BFGS and max-error phases,
  // which the convolutional trainer does not have, at 0.
  const StageSteps steps = StepsOf(job.genome.training(), job.step_fraction,
                                   /*classification=*/true);
  StageReport& report = output.stages.emplace_back();
  EVONAS_ASSIGN_OR_RETURN(
      MlpParameters stage,
      TrainConvStage(job, {steps.adam, steps.warmup, steps.patience}, select,
                     release_inputs, limit, report));
  report.seconds = Seconds(Clock::now() - start);
  output.parameters.stages.push_back(std::move(stage));
  return absl::OkStatus();
}

absl::StatusOr<TrainOutput> TrainImpl(TrainJob& job) {
  EVONAS_RETURN_IF_ERROR(CheckJob(job));
  // Also over the evaluation of the exported model, which runs image
  // networks on 1024-row chunks.
  std::optional<KeepFreedMemory> keep_freed_memory;
  if (job.genome.conv_layers_size() > 0) keep_freed_memory.emplace();
  const auto start = Clock::now();
  const double cpu_start = ProcessCpuSeconds();
  torch::set_num_threads(std::max(1, job.threads));
  // A generator of our own, rather than the global one, keeps the result a
  // function of the job even when other code uses torch's global RNG.
  at::Generator gen = at::detail::createCPUGenerator(job.seed);
  torch::manual_seed(job.seed);

  const Samples& select = SelectionRows(job);
  // The raw training inputs, once the trainer has its own copy of them,
  // unless they are the selection rows, which the evaluation reads.
  std::vector<double>* release_inputs =
      &select != &job.training ? &job.training.x.data : nullptr;
  TimeLimit limit(job.max_training_seconds, start);
  TrainOutput output;
  if (job.genome.conv_layers_size() > 0) {
    EVONAS_RETURN_IF_ERROR(
        TrainConvolutional(job, select, release_inputs, limit, output));
  } else {
    EVONAS_RETURN_IF_ERROR(
        TrainStages(job, select, release_inputs, limit, gen, output));
  }
  const double training_seconds = Seconds(Clock::now() - start);
  const double training_cpu_seconds = ProcessCpuSeconds() - cpu_start;

  output.model_file = Export(output.parameters);
  v1::Metrics& m = output.metrics;
  EVONAS_ASSIGN_OR_RETURN(
      *m.mutable_validation(),
      Evaluate(output.model_file, select, job.within_tolerance,
               job.class_count));
  EVONAS_RETURN_IF_ERROR(EvaluateHeldOut(output.model_file, job, m));
  int64_t parameters = 0;
  for (const torch::Tensor& p : Load(output.model_file).parameters()) {
    parameters += p.numel();
  }
  // Batch normalisation is folded into the convolutions of the file, but
  // its scales and shifts were trained: evonas::ParameterCount of the genome
  // counts them.
  for (const MlpParameters& stage : output.parameters.stages) {
    for (const ConvParameters& conv : stage.conv_layers) {
      parameters +=
          static_cast<int64_t>(conv.bn_scale.size() + conv.bn_shift.size());
    }
  }
  m.set_parameter_count(parameters);
  m.set_model_bytes(static_cast<int64_t>(output.model_file.size()));
  m.set_training_seconds(training_seconds);
  m.set_training_cpu_seconds(training_cpu_seconds);
  EVONAS_ASSIGN_OR_RETURN(
      double latency,
      MedianLatency(output.model_file, select.x, 1, kLatencyRuns));
  m.set_inference_latency_seconds(latency);
  EVONAS_ASSIGN_OR_RETURN(double batch_latency,
                          MedianLatency(output.model_file, select.x,
                                        kLatencyBatchRows, kLatencyBatchRuns));
  m.set_inference_latency_batch_seconds(batch_latency);
  m.set_training_row_count(job.training.x.rows);
  m.set_stopped_at_time_limit(limit.reached());
  // A network that trained but cannot be quantised is still a result.
  const absl::Status int8 = Guard(
      "int8 evaluation", [&] { return AddInt8Metrics(job, select, output); });
  if (!int8.ok()) {
    output.warnings.push_back(
        absl::StrCat("no int8 metrics: ", int8.message()));
  }
  return output;
}

absl::StatusOr<Matrix> PredictImpl(const std::string& model_file,
                                   const Matrix& x) {
  EVONAS_RETURN_IF_ERROR(CheckMatrix(x, "inputs", /*require_finite=*/false));
  torch::jit::Module module;
  try {
    module = Load(model_file);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a TorchScript model file: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a TorchScript model file: ", e.what()));
  }
  if (module.hasattr("x_mean")) {
    const int64_t inputs = module.attr("x_mean").toTensor().numel();
    if (x.cols != inputs) {
      return absl::InvalidArgumentError(absl::StrCat(
          "inputs have ", x.cols, " columns, the model expects ", inputs));
    }
  }
  torch::NoGradGuard no_grad;
  torch::Tensor in = ToTensor(x);
  torch::Tensor out;
  if (module.hasattr("C0") && x.rows > kImagePredictRows) {
    // An image network holds channels x pixels activations per row.
    std::vector<torch::Tensor> parts;
    for (int64_t start = 0; start < x.rows; start += kImagePredictRows) {
      const int64_t end = std::min(x.rows, start + kImagePredictRows);
      parts.push_back(
          module.forward({in.slice(0, start, end)}).toTensor().contiguous());
    }
    out = torch::cat(parts);
  } else {
    out = module.forward({in}).toTensor();
  }
  if (out.dim() != 2 || out.size(0) != x.rows) {
    return absl::InvalidArgumentError(absl::StrCat("model returned shape ",
                                                   c10::str(out.sizes()),
                                                   " for ", x.rows, " rows"));
  }
  out = out.to(torch::kFloat64).contiguous();
  Matrix result;
  result.rows = out.size(0);
  result.cols = out.size(1);
  result.data.resize(static_cast<size_t>(out.numel()));
  if (out.numel() > 0) {
    std::memcpy(result.data.data(), out.data_ptr<double>(),
                result.data.size() * sizeof(double));
  }
  return result;
}

absl::StatusOr<double> MeasureLatencyImpl(const NetworkParameters& network,
                                          int threads, int runs) {
  EVONAS_RETURN_IF_ERROR(ValidateNetwork(network));
  if (runs < 1) return absl::InvalidArgumentError("runs must be at least 1");
  torch::set_num_threads(std::max(1, threads));
  // The standardisation has one entry per input, also for an image network
  // whose first dense layer takes the convolutional trunk's outputs.
  const auto inputs =
      static_cast<int64_t>(network.stages.front().x_mean.size());
  const Matrix row{1, inputs, std::vector<double>(inputs, 0.5)};
  return MedianLatency(Export(network), row, 1, runs);
}

}  // namespace

absl::StatusOr<TrainOutput> Train(TrainJob job) {
  return Guard("training", [&] { return TrainImpl(job); });
}

absl::StatusOr<Matrix> Predict(const std::string& model_file, const Matrix& x) {
  return Guard("prediction", [&] { return PredictImpl(model_file, x); });
}

absl::StatusOr<Matrix> PredictNetwork(const NetworkParameters& network,
                                      const Matrix& x) {
  return Guard("prediction", [&]() -> absl::StatusOr<Matrix> {
    EVONAS_RETURN_IF_ERROR(ValidateNetwork(network));
    return PredictImpl(Export(network), x);
  });
}

absl::StatusOr<double> MeasureLatency(const NetworkParameters& network,
                                      int threads, int runs) {
  return Guard("latency measurement",
               [&] { return MeasureLatencyImpl(network, threads, runs); });
}

}  // namespace evonas::model
