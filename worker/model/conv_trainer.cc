#include "worker/model/conv_trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <malloc.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/genome.h"
#include "common/metrics.h"
#include "common/status_macros.h"
#include "worker/model/initialisation.h"
#include "worker/model/mlp_kernels.h"
#include "worker/model/tensors.h"

namespace evonas::model {

bool ClassifierSelection::Offer(const v1::Evaluation& e) {
  if (!std::isfinite(e.cross_entropy())) return false;
  const double error_rate = 1.0 - e.accuracy();
  if (error_rate > error_rate_ ||
      (error_rate == error_rate_ && e.cross_entropy() >= cross_entropy_)) {
    return false;
  }
  error_rate_ = error_rate;
  cross_entropy_ = e.cross_entropy();
  return true;
}

namespace {

// Steps between two checks of the cancel flag and between two evaluations
// of the selection rows: as the MLP trainer (trainer.cc).
constexpr int kCancelPollSteps = 10;
constexpr int kSelectEverySteps = 50;
// Adam's learning rate decays along a cosine to this fraction, as in
// trainer.cc.
constexpr double kFinalLrFraction = 0.01;
// KeepFreedMemory's thresholds: buffers up to 256 MiB come from the heap,
// and up to 1 GiB of free memory stays in it; 128 KiB is glibc's initial
// value of both (after any mallopt glibc no longer adapts them).
constexpr int kMallocMmapThreshold = 256 << 20;
constexpr int kMallocTrimThreshold = 1 << 30;
constexpr int kMallocDefaultThreshold = 128 << 10;

// Mini-batch rows when TrainingConfig.batch_size is 0: a full pass over tens
// of thousands of images per step would make every step slow.
constexpr int64_t kDefaultBatchRows = 256;
// Rows per forward call when evaluating: 12,000 validation images of 28x28
// at once would need gigabytes of activations.
constexpr int64_t kEvalBatchRows = 1024;

bool Cancelled(const TrainJob& job) {
  return job.cancel != nullptr && job.cancel->load(std::memory_order_relaxed);
}

bool KnownActivation(v1::Activation a) {
  switch (a) {
    case v1::ACTIVATION_TANH:
    case v1::ACTIVATION_RELU:
    case v1::ACTIVATION_SILU:
    case v1::ACTIVATION_GELU:
    case v1::ACTIVATION_SINE:
    case v1::ACTIVATION_GAUSSIAN:
      return true;
    default:
      return false;
  }
}

std::string LayerDescription(int64_t channels, int64_t kernel, v1::Activation a,
                             bool batch_norm, v1::Pooling pooling,
                             bool residual) {
  return absl::StrCat(channels, " channels k", kernel, " ", ActivationName(a),
                      batch_norm ? " bn" : "",
                      pooling == v1::POOLING_MAX       ? " max"
                      : pooling == v1::POOLING_AVERAGE ? " avg"
                                                       : "",
                      residual ? " residual" : "");
}

// Checks `job.initial` against the genome and the image: the sizes of every
// vector, so that loading it into the modules cannot fail.
absl::Status CheckConvInitial(const TrainJob& job, int64_t flat_inputs) {
  const NetworkParameters& initial = *job.initial;
  const v1::Genome& genome = job.genome;
  const int64_t pixels = job.image_height * job.image_width;
  const int64_t outputs =
      job.class_count > 0 ? job.class_count : job.training.y.cols;
  if (initial.stages.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("initial weights have ", initial.stages.size(),
                     " stages, a convolutional genome has 1"));
  }
  const MlpParameters& s = initial.stages[0];
  const std::string name = "initial weights: stages[0]";
  if (s.image_height != job.image_height || s.image_width != job.image_width) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " was trained on ", s.image_height, "x", s.image_width,
        " images, the data has ", job.image_height, "x", job.image_width));
  }
  if (static_cast<int64_t>(s.x_mean.size()) != pixels ||
      static_cast<int64_t>(s.x_std.size()) != pixels ||
      static_cast<int64_t>(s.y_mean.size()) != outputs ||
      static_cast<int64_t>(s.y_std.size()) != outputs) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " standardises ", s.x_mean.size(), " inputs and ",
        s.y_mean.size(), " outputs, the data has ", pixels, " and ", outputs));
  }
  for (const auto* scale : {&s.x_std, &s.y_std}) {
    for (double v : *scale) {
      if (!(v > 0) || !std::isfinite(v)) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, " has a standard deviation of ", v,
                         "; x_std and y_std must be finite and positive"));
      }
    }
  }
  if (s.conv_layers.size() != static_cast<size_t>(genome.conv_layers_size())) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " has ", s.conv_layers.size(),
                     " convolutional layers, genome.conv_layers has ",
                     genome.conv_layers_size()));
  }
  int64_t in = 1;
  for (int i = 0; i < genome.conv_layers_size(); ++i) {
    const ConvParameters& have = s.conv_layers[i];
    const v1::ConvLayer& want = genome.conv_layers(i);
    if (have.out_channels != want.channels() ||
        have.kernel_size != want.kernel_size() ||
        have.activation != want.activation() ||
        have.batch_norm != want.batch_norm() ||
        have.pooling != want.pooling() || have.residual != want.residual()) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ".conv_layers[", i, "] (",
          LayerDescription(have.out_channels, have.kernel_size, have.activation,
                           have.batch_norm, have.pooling, have.residual),
          ") differs from genome.conv_layers[", i, "] (",
          LayerDescription(want.channels(), want.kernel_size(),
                           want.activation(), want.batch_norm(), want.pooling(),
                           want.residual()),
          ")"));
    }
    const int64_t out = have.out_channels, k = have.kernel_size;
    const size_t bn = have.batch_norm ? static_cast<size_t>(out) : 0;
    if (have.in_channels != in ||
        have.weight.size() != static_cast<size_t>(out * in * k * k) ||
        have.bias.size() != static_cast<size_t>(out) ||
        have.bn_scale.size() != bn || have.bn_shift.size() != bn ||
        have.bn_running_mean.size() != bn || have.bn_running_var.size() != bn) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ".conv_layers[", i, "]: ", have.in_channels,
          " input channels (want ", in, "), ", have.weight.size(), " weights, ",
          have.bias.size(), " biases, ", have.bn_scale.size(), "/",
          have.bn_shift.size(), "/", have.bn_running_mean.size(), "/",
          have.bn_running_var.size(),
          " batch-norm values: sizes inconsistent with ", out, " channels of k",
          k));
    }
    for (double v : have.bn_running_var) {
      if (!(v >= 0) || !std::isfinite(v)) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ".conv_layers[", i, "]: running variance ", v,
                         ", want finite and >= 0"));
      }
    }
    in = out;
  }
  const int hidden = genome.hidden_layers_size();
  if (s.layers.size() != static_cast<size_t>(hidden) + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " has ", s.layers.size(),
                     " dense layers, genome.hidden_layers "
                     "has ",
                     hidden, " plus the output layer"));
  }
  int64_t inputs = flat_inputs;
  for (int i = 0; i <= hidden; ++i) {
    const DenseParameters& have = s.layers[i];
    const bool output = i == hidden;
    const int64_t width = output ? outputs : genome.hidden_layers(i).width();
    const v1::Activation a = output ? v1::ACTIVATION_UNSPECIFIED
                                    : genome.hidden_layers(i).activation();
    const bool residual = !output && genome.hidden_layers(i).residual();
    if (have.inputs != inputs || have.outputs != width ||
        have.activation != a || have.residual != residual ||
        have.weight.size() != static_cast<size_t>(inputs * width) ||
        have.bias.size() != static_cast<size_t>(width)) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ".layers[", i, "] (", have.inputs, " -> ", have.outputs, " ",
          ActivationName(have.activation), have.residual ? " residual" : "",
          ", ", have.weight.size(), " weights) differs from the genome's (",
          inputs, " -> ", width, " ", ActivationName(a),
          residual ? " residual" : "", ")"));
    }
    inputs = width;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckConvJob(const TrainJob& job) {
  const v1::Genome& genome = job.genome;
  if (genome.residual_stages_size() > 0) {
    return absl::InvalidArgumentError(
        "genome.residual_stages: a genome with conv_layers has one stage; "
        "remove the residual stages or the convolutional layers");
  }
  const int64_t height = job.image_height, width = job.image_width;
  if (height <= 0 || width <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "genome.conv_layers: the genome has convolutional layers but the "
        "data has no image shape (got ",
        height, "x", width,
        "); train it on an image data set, or use a genome without "
        "conv_layers"));
  }
  if (height * width != job.training.x.cols) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image shape ", height, "x", width, " has ", height * width,
        " pixels but the data has ", job.training.x.cols,
        " inputs; a convolutional genome needs every pixel as an input, "
        "in row-major order"));
  }
  if (genome.conv_layers_size() > kMaxConvLayers) {
    return absl::InvalidArgumentError(
        absl::StrCat("genome.conv_layers: ", genome.conv_layers_size(),
                     " layers, want 1..", kMaxConvLayers));
  }
  int64_t channels = 1, h = height, w = width;
  for (int i = 0; i < genome.conv_layers_size(); ++i) {
    const v1::ConvLayer& layer = genome.conv_layers(i);
    const std::string n = absl::StrCat("genome.conv_layers[", i, "].");
    if (layer.channels() < 1 || layer.channels() > kMaxConvChannels) {
      return absl::InvalidArgumentError(absl::StrCat(
          n, "channels: ", layer.channels(), ", want 1..", kMaxConvChannels));
    }
    const int k = layer.kernel_size();
    if (k != 1 && k != 3 && k != 5 && k != 7) {
      return absl::InvalidArgumentError(
          absl::StrCat(n, "kernel_size: ", k, ", want 1, 3, 5 or 7"));
    }
    if (!KnownActivation(layer.activation())) {
      return absl::InvalidArgumentError(
          absl::StrCat(n, "activation: unsupported value ",
                       static_cast<int>(layer.activation())));
    }
    if (!(layer.dropout() >= 0 && layer.dropout() <= kMaxDropout)) {
      return absl::InvalidArgumentError(absl::StrCat(
          n, "dropout: ", layer.dropout(), ", want [0, ", kMaxDropout, "]"));
    }
    if (layer.pooling() != v1::POOLING_NONE &&
        layer.pooling() != v1::POOLING_MAX &&
        layer.pooling() != v1::POOLING_AVERAGE) {
      return absl::InvalidArgumentError(absl::StrCat(
          n, "pooling: unsupported value ", static_cast<int>(layer.pooling())));
    }
    if (layer.residual() && (i == 0 || layer.channels() != channels ||
                             layer.pooling() != v1::POOLING_NONE)) {
      return absl::InvalidArgumentError(absl::StrCat(
          n,
          "residual: a residual convolutional layer must follow a layer "
          "of its channels (",
          channels, " here) and have no pooling"));
    }
    if (layer.pooling() != v1::POOLING_NONE) {
      if (h < 2 || w < 2) {
        return absl::InvalidArgumentError(absl::StrCat(
            n, "pooling: the ", height, "x", width, " image is ", h, "x", w,
            " at this layer and a 2x2 pooling would leave a side of 0; "
            "remove a pooling layer"));
      }
      h /= 2;
      w /= 2;
    }
    channels = layer.channels();
  }
  if (job.initial.has_value()) {
    EVONAS_RETURN_IF_ERROR(CheckConvInitial(job, channels * h * w));
  }
  return absl::OkStatus();
}

KeepFreedMemory::KeepFreedMemory() {
  mallopt(M_MMAP_THRESHOLD, kMallocMmapThreshold);
  mallopt(M_TRIM_THRESHOLD, kMallocTrimThreshold);
}

KeepFreedMemory::~KeepFreedMemory() {
  mallopt(M_MMAP_THRESHOLD, kMallocDefaultThreshold);
  mallopt(M_TRIM_THRESHOLD, kMallocDefaultThreshold);
  malloc_trim(0);
}

namespace {

// --- Tensors --------------------------------------------------------------

torch::Tensor FloatTensor(const std::vector<double>& v,
                          std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<double*>(v.data()), shape, torch::kFloat64)
      .to(torch::kFloat32);
}

// Standardised images [rows, 1, height, width] in float32; the subtraction
// and division in float64, as the exported model does them.
torch::Tensor Images(const Matrix& x, const MlpParameters& stage) {
  const int64_t pixels = stage.image_height * stage.image_width;
  torch::Tensor images = torch::empty(
      {x.rows, 1, stage.image_height, stage.image_width}, torch::kFloat32);
  float* v = images.data_ptr<float>();
  for (size_t i = 0; i < x.data.size(); ++i) {
    const size_t j = i % pixels;
    v[i] = static_cast<float>((x.data[i] - stage.x_mean[j]) / stage.x_std[j]);
  }
  return images;
}

torch::Tensor Activate(const torch::Tensor& h, v1::Activation a) {
  switch (a) {
    case v1::ACTIVATION_TANH:
      return torch::tanh(h);
    case v1::ACTIVATION_RELU:
      return torch::relu(h);
    case v1::ACTIVATION_SILU:
      return torch::silu(h);
    case v1::ACTIVATION_GELU:
      return torch::gelu(h);
    case v1::ACTIVATION_SINE:
      return torch::sin(h);
    case v1::ACTIVATION_GAUSSIAN:
      return torch::exp(-h * h);
    default:
      break;
  }
  TORCH_CHECK(false, "unsupported activation ", static_cast<int>(a));
  return h;
}

// --- The network ----------------------------------------------------------

// The convolutional network of one MlpParameters stage (without its
// standardisation): LibTorch modules initialised with the stage's values.
class ConvNetImpl : public torch::nn::Module {
 public:
  explicit ConvNetImpl(const MlpParameters& p) : layers_(p.conv_layers) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < p.conv_layers.size(); ++i) {
      const ConvParameters& c = p.conv_layers[i];
      const int64_t k = c.kernel_size;
      auto conv = register_module(
          absl::StrCat("conv", i),
          torch::nn::Conv2d(
              torch::nn::Conv2dOptions(c.in_channels, c.out_channels, k)
                  .stride(1)
                  .padding(k / 2)
                  .bias(true)));
      conv->weight.copy_(
          FloatTensor(c.weight, {c.out_channels, c.in_channels, k, k}));
      conv->bias.copy_(FloatTensor(c.bias, {c.out_channels}));
      convs_.push_back(conv);
      torch::nn::BatchNorm2d bn{nullptr};
      if (c.batch_norm) {
        bn = register_module(
            absl::StrCat("bn", i),
            torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(c.out_channels)
                                       .eps(kBatchNormEps)));
        bn->weight.copy_(FloatTensor(c.bn_scale, {c.out_channels}));
        bn->bias.copy_(FloatTensor(c.bn_shift, {c.out_channels}));
        bn->running_mean.copy_(
            FloatTensor(c.bn_running_mean, {c.out_channels}));
        bn->running_var.copy_(FloatTensor(c.bn_running_var, {c.out_channels}));
      }
      bns_.push_back(bn);
    }
    for (size_t i = 0; i < p.layers.size(); ++i) {
      const DenseParameters& d = p.layers[i];
      auto linear = register_module(
          absl::StrCat("linear", i),
          torch::nn::Linear(torch::nn::LinearOptions(d.inputs, d.outputs)));
      linear->weight.copy_(FloatTensor(d.weight, {d.outputs, d.inputs}));
      linear->bias.copy_(FloatTensor(d.bias, {d.outputs}));
      linears_.push_back(linear);
      dense_.push_back(d);
    }
  }

  // Outputs (before y_std and y_mean) of standardised images [N, 1, H, W].
  torch::Tensor forward(torch::Tensor h) {
    for (size_t i = 0; i < convs_.size(); ++i) {
      const ConvParameters& c = layers_[i];
      torch::Tensor z = convs_[i]->forward(h);
      if (bns_[i]) z = bns_[i]->forward(z);
      z = Activate(z, c.activation);
      if (c.residual) z = h + z;
      if (c.pooling == v1::POOLING_MAX) {
        z = torch::max_pool2d(z, {2, 2}, {2, 2});
      } else if (c.pooling == v1::POOLING_AVERAGE) {
        z = torch::avg_pool2d(z, {2, 2}, {2, 2});
      }
      if (c.dropout > 0) z = torch::dropout(z, c.dropout, is_training());
      h = z;
    }
    h = h.flatten(1);
    const size_t last = linears_.size() - 1;
    for (size_t i = 0; i < last; ++i) {
      torch::Tensor z = Activate(linears_[i]->forward(h), dense_[i].activation);
      h = dense_[i].residual ? h + z : z;
    }
    return linears_[last]->forward(h);
  }

  // Writes the module's current values into `p` (same shapes).
  void CopyTo(MlpParameters& p) const {
    for (size_t i = 0; i < convs_.size(); ++i) {
      ConvParameters& c = p.conv_layers[i];
      c.weight = Values(convs_[i]->weight);
      c.bias = Values(convs_[i]->bias);
      if (bns_[i]) {
        c.bn_scale = Values(bns_[i]->weight);
        c.bn_shift = Values(bns_[i]->bias);
        c.bn_running_mean = Values(bns_[i]->running_mean);
        c.bn_running_var = Values(bns_[i]->running_var);
      }
    }
    for (size_t i = 0; i < linears_.size(); ++i) {
      p.layers[i].weight = Values(linears_[i]->weight);
      p.layers[i].bias = Values(linears_[i]->bias);
    }
  }

 private:
  std::vector<ConvParameters> layers_;  // shapes and flags
  std::vector<DenseParameters> dense_;
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<torch::nn::BatchNorm2d> bns_;  // null without batch norm
  std::vector<torch::nn::Linear> linears_;
};
TORCH_MODULE(ConvNet);

// Outputs (logits, or standardised regression outputs) of `images` in eval
// mode, kEvalBatchRows at a time, as doubles (row-major, rows x outputs).
std::vector<double> EvalLogits(ConvNet& net, const torch::Tensor& images) {
  const bool was_training = net->is_training();
  net->eval();
  torch::NoGradGuard no_grad;
  std::vector<double> out;
  const int64_t rows = images.size(0);
  for (int64_t start = 0; start < rows; start += kEvalBatchRows) {
    const int64_t end = std::min(rows, start + kEvalBatchRows);
    const std::vector<double> v =
        Values(net->forward(images.slice(0, start, end)));
    out.insert(out.end(), v.begin(), v.end());
  }
  net->train(was_training);
  return out;
}

// A fresh network for `job`: weights and biases from `gen` as
// initialisation.h says, identity batch normalisation, one global mean and
// deviation over all training pixels (repeated per input) and logits as
// outputs.
absl::StatusOr<MlpParameters> FreshStage(const TrainJob& job,
                                         at::Generator& gen) {
  MlpParameters p;
  p.image_height = job.image_height;
  p.image_width = job.image_width;
  const std::vector<double>& x = job.training.x.data;
  const double n = static_cast<double>(x.size());
  double mean = 0;
  for (double v : x) mean += v;
  mean /= n;
  double var = 0;
  for (double v : x) var += (v - mean) * (v - mean);
  double sd = std::sqrt(var / n);
  if (!std::isfinite(mean) || !std::isfinite(sd)) {
    return absl::InvalidArgumentError(
        "training inputs are too large to standardise (mean or standard "
        "deviation overflows)");
  }
  if (sd == 0) sd = 1;
  const int64_t pixels = job.image_height * job.image_width;
  p.x_mean.assign(pixels, mean);
  p.x_std.assign(pixels, sd);
  if (job.class_count > 0) {
    p.y_mean.assign(job.class_count, 0.0);
    p.y_std.assign(job.class_count, 1.0);
  } else {
    // Per target column, as the MLP trainer standardises its targets.
    const Matrix& y = job.training.y;
    p.y_mean.assign(y.cols, 0.0);
    p.y_std.assign(y.cols, 0.0);
    for (size_t i = 0; i < y.data.size(); ++i)
      p.y_mean[i % y.cols] += y.data[i];
    for (double& m : p.y_mean) m /= static_cast<double>(y.rows);
    for (size_t i = 0; i < y.data.size(); ++i) {
      const double d = y.data[i] - p.y_mean[i % y.cols];
      p.y_std[i % y.cols] += d * d;
    }
    for (size_t j = 0; j < p.y_std.size(); ++j) {
      p.y_std[j] = std::sqrt(p.y_std[j] / static_cast<double>(y.rows));
      if (!std::isfinite(p.y_mean[j]) || !std::isfinite(p.y_std[j])) {
        return absl::InvalidArgumentError(
            "training targets are too large to standardise (mean or "
            "standard deviation overflows)");
      }
      if (p.y_std[j] == 0) p.y_std[j] = 1;
    }
  }

  int64_t in = 1, h = job.image_height, w = job.image_width;
  for (const v1::ConvLayer& layer : job.genome.conv_layers()) {
    ConvParameters c;
    c.in_channels = in;
    c.out_channels = layer.channels();
    c.kernel_size = layer.kernel_size();
    c.activation = layer.activation();
    c.pooling = layer.pooling();
    c.residual = layer.residual();
    c.dropout = layer.dropout();
    c.batch_norm = layer.batch_norm();
    const int64_t area = c.kernel_size * c.kernel_size;
    const InitialRanges ranges =
        FreshLayerRanges(c.activation, in * area, c.out_channels * area,
                         /*reads_inputs=*/p.conv_layers.empty(), std::nullopt);
    c.weight = Uniform(c.out_channels * in * area, ranges.weight, gen);
    c.bias = Uniform(c.out_channels, ranges.bias, gen);
    if (c.batch_norm) {
      c.bn_scale.assign(c.out_channels, 1.0);
      c.bn_shift.assign(c.out_channels, 0.0);
      c.bn_running_mean.assign(c.out_channels, 0.0);
      c.bn_running_var.assign(c.out_channels, 1.0);
    }
    if (c.pooling != v1::POOLING_NONE) {
      h /= 2;
      w /= 2;
    }
    in = c.out_channels;
    p.conv_layers.push_back(std::move(c));
  }
  int64_t inputs = in * h * w;
  const int hidden = job.genome.hidden_layers_size();
  for (int i = 0; i <= hidden; ++i) {
    DenseParameters d;
    d.inputs = inputs;
    if (i < hidden) {
      const v1::DenseLayer& layer = job.genome.hidden_layers(i);
      d.outputs = layer.width();
      d.activation = layer.activation();
      d.residual = layer.residual();
    } else {
      d.outputs = job.class_count > 0 ? job.class_count : job.training.y.cols;
    }
    const InitialRanges ranges = FreshLayerRanges(
        d.activation, d.inputs, d.outputs,
        /*reads_inputs=*/i == 0 && p.conv_layers.empty(), std::nullopt);
    d.weight = Uniform(d.inputs * d.outputs, ranges.weight, gen);
    d.bias = Uniform(d.outputs, ranges.bias, gen);
    inputs = d.outputs;
    p.layers.push_back(std::move(d));
  }
  return p;
}

// The training targets: class indices, or the standardised targets of a
// regression [rows, outputs] in float32.
torch::Tensor Targets(const Matrix& y, const MlpParameters& stage,
                      bool classification) {
  if (classification) {
    std::vector<int64_t> v(y.data.begin(), y.data.end());
    return torch::tensor(v, torch::kLong);
  }
  std::vector<float> v(y.data.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const size_t j = i % y.cols;
    v[i] = static_cast<float>((y.data[i] - stage.y_mean[j]) / stage.y_std[j]);
  }
  return torch::from_blob(v.data(), {y.rows, y.cols}, torch::kFloat32).clone();
}

// The largest absolute error (raw units) of the standardised outputs `out`
// against the raw targets `y`; NaN when an output is NaN.
double MaxAbsError(const std::vector<double>& out, const Matrix& y,
                   const MlpParameters& stage) {
  double error = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const size_t j = i % y.cols;
    const double e =
        std::fabs(out[i] * stage.y_std[j] + stage.y_mean[j] - y.data[i]);
    if (std::isnan(e)) return e;
    error = std::max(error, e);
  }
  return error;
}

template <typename Options>
void SetLearningRate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) {
    static_cast<Options&>(group.options()).lr(lr);
  }
}

}  // namespace

absl::StatusOr<MlpParameters> TrainConvStage(
    const TrainJob& job, const ConvSteps& steps, const Samples& select,
    std::vector<double>* release_inputs, TimeLimit& limit,
    StageReport& report) {
  // A generator of our own: the result is a function of the job alone.
  at::Generator gen = at::detail::createCPUGenerator(job.seed);
  MlpParameters stage;
  if (job.initial.has_value()) {
    stage = job.initial->stages[0];
  } else {
    EVONAS_ASSIGN_OR_RETURN(stage, FreshStage(job, gen));
  }
  const v1::TrainingConfig& config = job.genome.training();
  const torch::Tensor x = Images(job.training.x, stage);
  // The float32 images are all the training needs from here on.
  if (release_inputs != nullptr) std::vector<double>().swap(*release_inputs);
  const bool classification = job.class_count > 0;
  const torch::Tensor y = Targets(job.training.y, stage, classification);
  const torch::Tensor select_x = Images(select.x, stage);
  const int64_t classes = job.class_count;
  const int64_t n = x.size(0);
  const int64_t batch = std::min(
      n, config.batch_size() > 0 ? config.batch_size() : kDefaultBatchRows);

  ConvNet net(stage);
  net->train();
  ClassifierSelection selection;
  // Regression: the smallest maximum absolute error so far.
  double best_error = std::numeric_limits<double>::infinity();
  MlpParameters best = stage;
  bool have_best = false;
  const auto select_now = [&]() {
    const std::vector<double> out =
        limit.TimeSelection([&] { return EvalLogits(net, select_x); });
    if (classification) {
      if (!selection.Offer(
              EvaluateClassification(out, select.y.data, classes))) {
        return false;
      }
    } else {
      const double error = MaxAbsError(out, select.y, stage);
      if (!(error < best_error)) return false;  // also NaN
      best_error = error;
    }
    net->CopyTo(best);
    have_best = true;
    return true;
  };
  // The starting weights compete too: an inherited network is never made
  // worse on the selection rows.
  select_now();

  const bool decoupled = config.weight_decay() > 0;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (decoupled) {
    // Decay shrinks the kernels and weight matrices only, not the biases and
    // batch-normalisation scales and shifts (as the MLP trainer's
    // weight_ranges).
    std::vector<torch::Tensor> decayed, kept;
    for (const torch::Tensor& p : net->parameters()) {
      (p.dim() >= 2 ? decayed : kept).push_back(p);
    }
    const auto options = torch::optim::AdamWOptions(config.learning_rate())
                             .weight_decay(config.weight_decay());
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(std::move(decayed),
                        std::make_unique<torch::optim::AdamWOptions>(options));
    auto undecayed = std::make_unique<torch::optim::AdamWOptions>(options);
    undecayed->weight_decay(0);
    groups.emplace_back(std::move(kept), std::move(undecayed));
    optimizer =
        std::make_unique<torch::optim::AdamW>(std::move(groups), options);
  } else {
    optimizer = std::make_unique<torch::optim::Adam>(
        net->parameters(), torch::optim::AdamOptions(config.learning_rate()));
  }
  torch::Tensor perm;
  int64_t pos = n;  // forces a shuffle before the first mini-batch
  int last_selection = 0;
  TimeLimit::Steps timed(limit);
  const auto adam_start = std::chrono::steady_clock::now();
  for (int step = 0; step < steps.adam; ++step) {
    if (step % kCancelPollSteps == 0 && Cancelled(job)) {
      return absl::CancelledError(
          absl::StrCat("training cancelled at adam step ", step));
    }
    if (!timed.Fits()) {
      report.time_limited = true;
      // The steps since the last evaluation count too.
      if (step > last_selection && select_now()) report.adam_best_step = step;
      break;
    }
    torch::Tensor xb = x, yb = y;
    if (batch < n) {
      if (pos + batch > n) {
        perm = torch::randperm(n, gen, torch::kLong);
        pos = 0;
      }
      const torch::Tensor idx = perm.slice(0, pos, pos + batch);
      pos += batch;
      xb = x.index_select(0, idx);
      yb = y.index_select(0, idx);
    }
    optimizer->zero_grad();
    torch::Tensor loss =
        classification
            ? torch::nn::functional::cross_entropy(net->forward(xb), yb)
            : torch::nn::functional::mse_loss(net->forward(xb), yb);
    const double value = loss.item<double>();
    if (!std::isfinite(value)) {
      return absl::AbortedError(absl::StrCat("training diverged: loss became ",
                                             std::isnan(value) ? "NaN" : "inf",
                                             " at adam step ", step));
    }
    loss.backward();
    const double lr =
        ScheduledLearningRate(config.learning_rate(), step, steps.adam,
                              steps.warmup, kFinalLrFraction);
    if (decoupled) {
      SetLearningRate<torch::optim::AdamWOptions>(*optimizer, lr);
    } else {
      SetLearningRate<torch::optim::AdamOptions>(*optimizer, lr);
    }
    optimizer->step();
    ++report.adam_steps;
    timed.Done();
    if ((step + 1) % kSelectEverySteps == 0 || step + 1 == steps.adam) {
      last_selection = step + 1;
      if (select_now()) report.adam_best_step = step + 1;
      if (steps.patience > 0 &&
          step + 1 - report.adam_best_step >= steps.patience) {
        break;
      }
    }
  }
  report.adam_seconds = std::chrono::duration<double>(
                            std::chrono::steady_clock::now() - adam_start)
                            .count();
  if (!have_best) net->CopyTo(best);
  report.after_adam = classification ? selection.error_rate() : best_error;
  return best;
}

absl::StatusOr<Matrix> ConvModuleForward(const MlpParameters& stage,
                                         const Matrix& x) {
  const int64_t pixels = stage.image_height * stage.image_width;
  if (stage.conv_layers.empty() || stage.layers.empty() || pixels <= 0 ||
      x.cols != pixels || static_cast<int64_t>(stage.x_mean.size()) != pixels ||
      static_cast<int64_t>(stage.x_std.size()) != pixels ||
      x.data.size() != static_cast<size_t>(x.rows * x.cols) ||
      stage.y_mean.size() != static_cast<size_t>(stage.layers.back().outputs) ||
      stage.y_std.size() != stage.y_mean.size()) {
    return absl::InvalidArgumentError(
        "ConvModuleForward: not a convolutional stage of these inputs");
  }
  try {
    ConvNet net(stage);
    const std::vector<double> out = EvalLogits(net, Images(x, stage));
    Matrix m;
    m.rows = x.rows;
    m.cols = static_cast<int64_t>(stage.y_mean.size());
    m.data = out;
    for (size_t i = 0; i < m.data.size(); ++i) {
      const size_t j = i % m.cols;
      m.data[i] = m.data[i] * stage.y_std[j] + stage.y_mean[j];
    }
    return m;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("ConvModuleForward: ", e.what()));
  }
}

}  // namespace evonas::model
