#include "worker/model/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/genome.h"
#include "common/metrics.h"
#include "common/status_macros.h"
#include "worker/model/mlp_kernels.h"

namespace evonas::model {
namespace {

using Clock = std::chrono::steady_clock;

// Adam steps between two checks of the cancel flag.
constexpr int kCancelPollSteps = 10;
// Adam steps between two evaluations of the validation error.
constexpr int kSelectEverySteps = 100;
// L-BFGS iterations per optimizer.step() call; the cancel flag is polled and
// the validation error evaluated between calls.
constexpr int kLbfgsChunk = 10;
constexpr int kLbfgsHistory = 50;
// Adam's learning rate decays along a cosine to this fraction of the initial
// rate.
constexpr double kFinalLrFraction = 0.01;
// Single-row forward calls timed for Metrics.inference_latency_seconds.
constexpr int kLatencyWarmup = 5;
constexpr int kLatencyRuns = 50;
constexpr double kPi = 3.14159265358979323846;

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
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

absl::Status CheckSamples(const Samples& s, const std::string& name,
                          int64_t inputs, int64_t outputs) {
  EVONAS_RETURN_IF_ERROR(CheckMatrix(s.x, name + " inputs", true));
  EVONAS_RETURN_IF_ERROR(CheckMatrix(s.y, name + " targets", true));
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

// Checks what the trainer needs to build and run the network safely. The
// learning rate may be any finite positive number here; ValidateGenome's
// upper bound is the search's policy, not a limit of the trainer.
absl::Status CheckGenome(const v1::Genome& genome) {
  const int depth = genome.hidden_layers_size();
  if (depth < 1 || depth > kMaxHiddenLayers) {
    return absl::InvalidArgumentError(
        absl::StrCat("genome.hidden_layers: ", depth, " layers, want 1..",
                     kMaxHiddenLayers));
  }
  for (int i = 0; i < depth; ++i) {
    const v1::DenseLayer& layer = genome.hidden_layers(i);
    if (layer.width() < 1 || layer.width() > kMaxLayerWidth) {
      return absl::InvalidArgumentError(
          absl::StrCat("genome.hidden_layers[", i, "].width: ", layer.width(),
                       ", want 1..", kMaxLayerWidth));
    }
    switch (layer.activation()) {
      case v1::ACTIVATION_TANH:
      case v1::ACTIVATION_RELU:
      case v1::ACTIVATION_SILU:
      case v1::ACTIVATION_GELU:
      case v1::ACTIVATION_SINE:
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(
            "genome.hidden_layers[", i, "].activation: unsupported value ",
            static_cast<int>(layer.activation())));
    }
  }
  const v1::TrainingConfig& t = genome.training();
  if (!std::isfinite(t.learning_rate()) || t.learning_rate() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("genome.training.learning_rate: ", t.learning_rate(),
                     ", want a finite positive number"));
  }
  if (t.adam_steps() < 0 || t.adam_steps() > kMaxAdamSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("genome.training.adam_steps: ", t.adam_steps(),
                     ", want 0..", kMaxAdamSteps));
  }
  if (t.lbfgs_steps() < 0 || t.lbfgs_steps() > kMaxLbfgsSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("genome.training.lbfgs_steps: ", t.lbfgs_steps(),
                     ", want 0..", kMaxLbfgsSteps));
  }
  if (t.batch_size() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "genome.training.batch_size: ", t.batch_size(), ", want >= 0"));
  }
  return absl::OkStatus();
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
  EVONAS_RETURN_IF_ERROR(
      CheckSamples(job.training, "training", inputs, outputs));
  EVONAS_RETURN_IF_ERROR(
      CheckSamples(job.validation, "validation", inputs, outputs));
  if (job.test.has_value()) {
    EVONAS_RETURN_IF_ERROR(CheckSamples(*job.test, "test", inputs, outputs));
  }
  if (!(job.within_tolerance >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("within_tolerance: ", job.within_tolerance));
  }
  return absl::OkStatus();
}

// --- Tensors ------------------------------------------------------------

torch::Tensor ToTensor(const Matrix& m) {
  if (m.data.empty()) return torch::empty({m.rows, m.cols}, torch::kFloat64);
  return torch::from_blob(const_cast<double*>(m.data.data()), {m.rows, m.cols},
                          torch::kFloat64)
      .clone();
}

// Per-column mean and standard deviation (population) of `t`; a zero
// deviation becomes 1 so that constant columns map to 0.
absl::StatusOr<std::pair<torch::Tensor, torch::Tensor>> ColumnStats(
    const torch::Tensor& t, const char* what) {
  torch::Tensor mean = t.mean(0);
  torch::Tensor std = t.std(0, /*unbiased=*/false);
  if (!torch::isfinite(mean).all().item<bool>() ||
      !torch::isfinite(std).all().item<bool>()) {
    return absl::InvalidArgumentError(
        absl::StrCat("training ", what,
                     " are too large to standardise (mean or standard "
                     "deviation overflows)"));
  }
  std = torch::where(std > 0, std, torch::ones_like(std));
  return std::make_pair(mean, std);
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
    default:
      break;
  }
  TORCH_CHECK(false, "unsupported activation ", static_cast<int>(a));
  return arg;
}

// Layer sizes (inputs, hidden widths, outputs) and hidden activations of the
// network `genome` describes.
struct Architecture {
  std::vector<int64_t> sizes;
  std::vector<v1::Activation> activations;
};

Architecture ArchitectureOf(const v1::Genome& genome, int64_t inputs,
                            int64_t outputs) {
  Architecture arch;
  arch.sizes.push_back(inputs);
  for (const v1::DenseLayer& layer : genome.hidden_layers()) {
    arch.sizes.push_back(layer.width());
    arch.activations.push_back(layer.activation());
  }
  arch.sizes.push_back(outputs);
  return arch;
}

// Copies a float64 tensor's values.
std::vector<double> Values(const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kFloat64).contiguous();
  const double* p = c.data_ptr<double>();
  return std::vector<double>(p, p + c.numel());
}

torch::Tensor ToTensor(const std::vector<double>& v,
                       std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<double*>(v.data()), shape, torch::kFloat64)
      .clone();
}

// Glorot-uniform weights (He-uniform before ReLU) and zero biases, drawn
// from `gen`, in MlpKernels' flat layout [W_0, b_0, W_1, b_1, ...].
std::vector<double> InitialParameters(const Architecture& arch,
                                      at::Generator& gen) {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  std::vector<double> params;
  for (size_t i = 0; i + 1 < arch.sizes.size(); ++i) {
    const int64_t fan_in = arch.sizes[i], fan_out = arch.sizes[i + 1];
    const bool relu = i < arch.activations.size() &&
                      arch.activations[i] == v1::ACTIVATION_RELU;
    const double bound =
        relu ? std::sqrt(6.0 / static_cast<double>(fan_in))
             : std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
    torch::Tensor w =
        (torch::rand({fan_out, fan_in}, gen, opts) * 2 - 1) * bound;
    const std::vector<double> values = Values(w);
    params.insert(params.end(), values.begin(), values.end());
    params.insert(params.end(), fan_out, 0.0);
  }
  return params;
}

// The trained network in raw units as plain numbers: the flat parameters
// `params` of `kernels` and the standardisation.
MlpParameters ToParameters(const Architecture& arch, const MlpKernels& kernels,
                           const std::vector<double>& params,
                           const torch::Tensor& x_mean,
                           const torch::Tensor& x_std,
                           const torch::Tensor& y_mean,
                           const torch::Tensor& y_std) {
  MlpParameters p;
  p.x_mean = Values(x_mean);
  p.x_std = Values(x_std);
  p.y_mean = Values(y_mean);
  p.y_std = Values(y_std);
  for (int i = 0; i < kernels.layer_count(); ++i) {
    DenseParameters layer;
    layer.inputs = arch.sizes[i];
    layer.outputs = arch.sizes[i + 1];
    const double* w = params.data() + kernels.weight_offset(i);
    const double* b = params.data() + kernels.bias_offset(i);
    layer.weight.assign(w, w + layer.inputs * layer.outputs);
    layer.bias.assign(b, b + layer.outputs);
    if (i < static_cast<int>(arch.activations.size())) {
      layer.activation = arch.activations[i];
    }
    p.layers.push_back(std::move(layer));
  }
  return p;
}

// Generated source of the exported module's forward().
std::string ForwardSource(const MlpParameters& p) {
  std::string src =
      "def forward(self, x):\n"
      "    h = (x - self.x_mean) / self.x_std\n";
  const size_t last = p.layers.size() - 1;
  for (size_t i = 0; i < last; ++i) {
    absl::StrAppend(
        &src, "    h = ",
        ScriptActivation(
            p.layers[i].activation,
            absl::StrFormat("torch.addmm(self.b%d, h, self.W%d.t())", i, i)),
        "\n");
  }
  absl::StrAppend(&src, "    out = torch.addmm(self.b", last, ", h, self.W",
                  last, ".t())\n",
                  "    return out * self.y_std + self.y_mean\n");
  return src;
}

// Builds the TorchScript module (raw inputs -> raw outputs) holding exactly
// the numbers of `p` and serialises it.
std::string Export(const MlpParameters& p) {
  torch::jit::Module module("__torch__.evonas.Mlp");
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const DenseParameters& layer = p.layers[i];
    module.register_parameter(
        absl::StrCat("W", i),
        ToTensor(layer.weight, {layer.outputs, layer.inputs})
            .requires_grad_(true),
        /*is_buffer=*/false);
    module.register_parameter(
        absl::StrCat("b", i),
        ToTensor(layer.bias, {layer.outputs}).requires_grad_(true),
        /*is_buffer=*/false);
  }
  const auto size = [](const std::vector<double>& v) {
    return static_cast<int64_t>(v.size());
  };
  module.register_buffer("x_mean", ToTensor(p.x_mean, {size(p.x_mean)}));
  module.register_buffer("x_std", ToTensor(p.x_std, {size(p.x_std)}));
  module.register_buffer("y_mean", ToTensor(p.y_mean, {size(p.y_mean)}));
  module.register_buffer("y_std", ToTensor(p.y_std, {size(p.y_std)}));
  module.define(ForwardSource(p));
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

// Standardised data, the network's parameters and the best-on-validation
// bookkeeping of one training. The forward and backward passes and Adam run
// on MlpKernels; L-BFGS is LibTorch's, on a tensor that shares the
// parameters' memory.
class Training {
 public:
  // `x`, `y`: standardised training rows; `select_x`, `select_y`:
  // standardised selection rows; `y_std`: one per output.
  Training(const TrainJob& job, MlpKernels kernels, std::vector<double> params,
           std::vector<double> x, std::vector<double> y,
           std::vector<double> select_x, std::vector<double> select_y,
           std::vector<double> y_std)
      : job_(job),
        kernels_(std::move(kernels)),
        params_(std::move(params)),
        grad_(params_.size()),
        x_(std::move(x)),
        y_(std::move(y)),
        rows_(static_cast<int64_t>(y_.size()) / kernels_.outputs()),
        select_x_(std::move(select_x)),
        select_y_(std::move(select_y)),
        select_rows_(static_cast<int64_t>(select_y_.size()) /
                     kernels_.outputs()),
        y_std_(std::move(y_std)) {}

  const MlpKernels& kernels() const { return kernels_; }
  const std::vector<double>& params() const { return params_; }

  absl::Status RunAdam(at::Generator& gen) {
    const v1::TrainingConfig& cfg = job_.genome.training();
    const int steps = cfg.adam_steps();
    if (steps == 0) return absl::OkStatus();
    const double lr0 = cfg.learning_rate();
    Adam adam(kernels_.parameter_count());
    const int64_t n = rows_;
    const int64_t inputs = kernels_.inputs(), outputs = kernels_.outputs();
    const int64_t batch =
        cfg.batch_size() > 0 && cfg.batch_size() < n ? cfg.batch_size() : 0;
    std::vector<double> batch_x(batch * inputs), batch_y(batch * outputs);
    torch::Tensor perm;
    int64_t pos = n;  // forces a shuffle before the first mini-batch
    for (int step = 0; step < steps; ++step) {
      if (step % kCancelPollSteps == 0 && Cancelled(job_)) {
        return absl::CancelledError(
            absl::StrCat("training cancelled at adam step ", step));
      }
      const double progress = static_cast<double>(step) / steps;
      const double lr =
          lr0 * (kFinalLrFraction +
                 (1 - kFinalLrFraction) * 0.5 * (1 + std::cos(kPi * progress)));
      const double* xb = x_.data();
      const double* yb = y_.data();
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
          kernels_.LossAndGradient(params_.data(), xb, yb, rows, grad_.data());
      if (!std::isfinite(loss)) return Diverged(loss, "adam step", step);
      adam.Step(lr, grad_.data(), params_.data());
      if ((step + 1) % kSelectEverySteps == 0 || step + 1 == steps) Select();
    }
    return absl::OkStatus();
  }

  absl::Status RunLbfgs() {
    const int iterations = job_.genome.training().lbfgs_steps();
    if (iterations == 0) return absl::OkStatus();
    // Start from the best weights seen so far.
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
        torch::from_blob(params_.data(), {size}, torch::kFloat64)
            .requires_grad_(true);
    param.mutable_grad() =
        torch::from_blob(grad_.data(), {size}, torch::kFloat64);
    torch::optim::LBFGS lbfgs(std::vector<torch::Tensor>{param}, opts);
    auto& options = static_cast<torch::optim::LBFGSOptions&>(
        lbfgs.param_groups()[0].options());
    auto closure = [&]() {
      const double loss = kernels_.LossAndGradient(
          params_.data(), x_.data(), y_.data(), rows_, grad_.data());
      return torch::tensor(loss, torch::kFloat64);
    };
    double previous = std::numeric_limits<double>::quiet_NaN();
    for (int done = 0; done < iterations;) {
      if (Cancelled(job_)) {
        return absl::CancelledError(
            absl::StrCat("training cancelled at lbfgs iteration ", done));
      }
      const int chunk = std::min(kLbfgsChunk, iterations - done);
      options.max_iter(chunk).max_eval(chunk * 25);
      lbfgs.step(closure);
      done += chunk;
      const double loss = Loss();
      if (!std::isfinite(loss)) return Diverged(loss, "lbfgs iteration", done);
      Select();
      if (loss == previous) break;  // converged: L-BFGS made no progress
      previous = loss;
    }
    return absl::OkStatus();
  }

  // Puts the best-on-validation weights (if any) into the network.
  void Restore() {
    if (!best_.empty()) params_ = best_;
  }

 private:
  absl::Status Diverged(double value, const char* phase, int step) const {
    return absl::AbortedError(absl::StrCat("training diverged: loss became ",
                                           std::isnan(value) ? "NaN" : "inf",
                                           " at ", phase, " ", step));
  }

  // Mean squared error on the training rows.
  double Loss() {
    predicted_.resize(y_.size());
    kernels_.Forward(params_.data(), x_.data(), rows_, predicted_.data());
    double sse = 0;
    for (size_t i = 0; i < y_.size(); ++i) {
      const double diff = predicted_[i] - y_[i];
      sse += diff * diff;
    }
    return sse / static_cast<double>(y_.size());
  }

  // Evaluates the largest absolute error in output units on the selection
  // rows and keeps a copy of the weights when it is the best so far.
  void Select() {
    predicted_.resize(select_y_.size());
    kernels_.Forward(params_.data(), select_x_.data(), select_rows_,
                     predicted_.data());
    const size_t outputs = y_std_.size();
    double error = 0;
    for (size_t i = 0; i < select_y_.size(); ++i) {
      const double e =
          std::fabs(predicted_[i] - select_y_[i]) * y_std_[i % outputs];
      if (std::isnan(e)) return;
      error = std::max(error, e);
    }
    if (!std::isfinite(error) || error >= best_error_) return;
    best_error_ = error;
    best_ = params_;
  }

  const TrainJob& job_;
  MlpKernels kernels_;
  std::vector<double> params_, grad_;
  std::vector<double> x_, y_;  // standardised training rows
  int64_t rows_;
  std::vector<double> select_x_, select_y_;  // standardised selection rows
  int64_t select_rows_;
  std::vector<double> y_std_;  // one per output
  std::vector<double> predicted_;
  double best_error_ = std::numeric_limits<double>::infinity();
  std::vector<double> best_;
};

absl::StatusOr<double> MedianLatency(const std::string& model_file,
                                     const Matrix& x) {
  torch::jit::Module module = Load(model_file);
  torch::NoGradGuard no_grad;
  torch::Tensor row = ToTensor(x).slice(0, 0, 1);
  std::vector<torch::jit::IValue> args{row};
  for (int i = 0; i < kLatencyWarmup; ++i) module.forward(args);
  std::vector<double> times;
  for (int i = 0; i < kLatencyRuns; ++i) {
    const auto start = Clock::now();
    module.forward(args);
    times.push_back(Seconds(Clock::now() - start));
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2,
                   times.end());
  return times[times.size() / 2];
}

absl::StatusOr<v1::Evaluation> Evaluate(const std::string& model_file,
                                        const Samples& s, double tolerance) {
  EVONAS_ASSIGN_OR_RETURN(Matrix predicted, Predict(model_file, s.x));
  return EvaluatePredictions(predicted.data, s.y.data, s.y.cols, tolerance);
}

absl::StatusOr<TrainOutput> TrainImpl(const TrainJob& job) {
  EVONAS_RETURN_IF_ERROR(CheckJob(job));
  const auto start = Clock::now();
  torch::set_num_threads(std::max(1, job.threads));
  // A generator of our own, rather than the global one, keeps the result a
  // function of the job even when other code uses torch's global RNG.
  at::Generator gen = at::detail::createCPUGenerator(job.seed);
  torch::manual_seed(job.seed);

  const int64_t inputs = job.training.x.cols;
  const int64_t outputs = job.training.y.cols;
  torch::Tensor x = ToTensor(job.training.x);
  torch::Tensor y = ToTensor(job.training.y);
  EVONAS_ASSIGN_OR_RETURN(auto x_stats, ColumnStats(x, "inputs"));
  EVONAS_ASSIGN_OR_RETURN(auto y_stats, ColumnStats(y, "targets"));
  const auto& [x_mean, x_std] = x_stats;
  const auto& [y_mean, y_std] = y_stats;
  // The best weights are chosen on the validation rows, or on the training
  // rows when there are none.
  const Samples& select =
      job.validation.x.rows > 0 ? job.validation : job.training;
  const Architecture arch = ArchitectureOf(job.genome, inputs, outputs);
  absl::StatusOr<MlpKernels> kernels = MlpKernels::Create(
      arch.sizes, arch.activations, MlpKernels::kDefaultRowsPerBlock,
      std::max(1, job.threads));
  if (!kernels.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("genome: ", kernels.status().message()));
  }
  std::vector<double> params = InitialParameters(arch, gen);
  Training training(job, *std::move(kernels), std::move(params),
                    Values((x - x_mean) / x_std), Values((y - y_mean) / y_std),
                    Values((ToTensor(select.x) - x_mean) / x_std),
                    Values((ToTensor(select.y) - y_mean) / y_std),
                    Values(y_std));
  EVONAS_RETURN_IF_ERROR(training.RunAdam(gen));
  EVONAS_RETURN_IF_ERROR(training.RunLbfgs());
  training.Restore();
  const double training_seconds = Seconds(Clock::now() - start);

  TrainOutput output;
  output.parameters = ToParameters(arch, training.kernels(), training.params(),
                                   x_mean, x_std, y_mean, y_std);
  output.model_file = Export(output.parameters);
  v1::Metrics& m = output.metrics;
  EVONAS_ASSIGN_OR_RETURN(
      *m.mutable_validation(),
      Evaluate(output.model_file, job.validation, job.within_tolerance));
  if (job.test.has_value()) {
    EVONAS_ASSIGN_OR_RETURN(
        *m.mutable_test(),
        Evaluate(output.model_file, *job.test, job.within_tolerance));
  }
  int64_t parameters = 0;
  for (const torch::Tensor& p : Load(output.model_file).parameters()) {
    parameters += p.numel();
  }
  m.set_parameter_count(parameters);
  m.set_model_bytes(static_cast<int64_t>(output.model_file.size()));
  m.set_training_seconds(training_seconds);
  EVONAS_ASSIGN_OR_RETURN(double latency,
                          MedianLatency(output.model_file, select.x));
  m.set_inference_latency_seconds(latency);
  m.set_training_row_count(job.training.x.rows);
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
  torch::Tensor out = module.forward({ToTensor(x)}).toTensor();
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

}  // namespace

absl::StatusOr<TrainOutput> Train(const TrainJob& job) {
  return Guard("training", [&] { return TrainImpl(job); });
}

absl::StatusOr<Matrix> Predict(const std::string& model_file, const Matrix& x) {
  return Guard("prediction", [&] { return PredictImpl(model_file, x); });
}

}  // namespace evonas::model
