#include "worker/model/mlp.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "evonas/v1/types.pb.h"

namespace evonas::model {
namespace {

// torch.nn.BatchNorm2d's default, which the trainer uses (see mlp.h).
constexpr double kBatchNormEps = 1e-5;

bool IsHiddenActivation(v1::Activation a) {
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

absl::Status CheckSize(absl::string_view field, size_t actual,
                       int64_t expected) {
  if (static_cast<int64_t>(actual) == expected) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("MlpParameters.", field, " has ", actual,
                   " values, expected ", expected));
}

// Applies `a` to every element of `h` in place, as torch does it (see
// mlp.h); the last layer passes ACTIVATION_UNSPECIFIED and is left linear.
void Activate(v1::Activation a, std::vector<double>& h) {
  switch (a) {
    case v1::ACTIVATION_TANH:
      for (double& v : h) v = std::tanh(v);
      break;
    case v1::ACTIVATION_RELU:
      // NaN stays NaN, as in torch.relu.
      for (double& v : h) v = v < 0.0 ? 0.0 : v;
      break;
    case v1::ACTIVATION_SILU:
      for (double& v : h) v = v / (1.0 + std::exp(-v));
      break;
    case v1::ACTIVATION_GELU:
      for (double& v : h) v = v * 0.5 * (1.0 + std::erf(v * M_SQRT1_2));
      break;
    case v1::ACTIVATION_SINE:
      for (double& v : h) v = std::sin(v);
      break;
    case v1::ACTIVATION_GAUSSIAN:
      for (double& v : h) v = std::exp(-v * v);
      break;
    default:
      break;
  }
}

bool IsPooling(v1::Pooling pooling) {
  return pooling == v1::POOLING_NONE || pooling == v1::POOLING_MAX ||
         pooling == v1::POOLING_AVERAGE;
}

absl::Status ConvError(size_t i, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("MlpParameters.conv_layers[", i, "]", what));
}

// Checks the convolutional trunk of `p` (which has conv_layers), including
// that the first dense layer takes its output (channels x height x width
// after the last pooling). Every size is
// compared by division, so no shape in a hostile checkpoint can overflow:
// out_channels is bounded by its layer's weight count, and the next
// layer's in_channels must equal it.
absl::Status ValidateConvTrunk(const MlpParameters& p) {
  if (p.image_height <= 0 || p.image_width <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MlpParameters.image_height x image_width is ", p.image_height, " x ",
        p.image_width, "; both must be positive with conv_layers"));
  }
  const int64_t pixels = static_cast<int64_t>(p.x_mean.size());
  if (pixels % p.image_height != 0 ||
      pixels / p.image_height != p.image_width) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MlpParameters.x_mean has ", pixels, " values, expected image_height ",
        p.image_height, " x image_width ", p.image_width));
  }
  int64_t height = p.image_height, width = p.image_width, channels = 1;
  for (size_t i = 0; i < p.conv_layers.size(); ++i) {
    const ConvParameters& c = p.conv_layers[i];
    if (c.in_channels != channels) {
      return ConvError(
          i, absl::StrCat(".in_channels is ", c.in_channels, ", expected ",
                          channels,
                          i == 0 ? " (the image has one channel)"
                                 : " (the previous layer's out_channels)"));
    }
    if (c.out_channels <= 0) {
      return ConvError(i, absl::StrCat(".out_channels is ", c.out_channels,
                                       "; it must be positive"));
    }
    if (c.kernel_size < 1 || c.kernel_size > 7 || c.kernel_size % 2 == 0) {
      return ConvError(i, absl::StrCat(".kernel_size is ", c.kernel_size,
                                       "; it must be 1, 3, 5 or 7"));
    }
    const int64_t fan_in = c.in_channels * c.kernel_size * c.kernel_size;
    const int64_t weights = static_cast<int64_t>(c.weight.size());
    if (weights % fan_in != 0 || weights / fan_in != c.out_channels) {
      return ConvError(
          i, absl::StrCat(".weight has ", weights, " values, expected ",
                          c.out_channels, " x ", c.in_channels, " x ",
                          c.kernel_size, " x ", c.kernel_size));
    }
    const std::string name = absl::StrCat("conv_layers[", i, "]");
    if (auto s = CheckSize(name + ".bias", c.bias.size(), c.out_channels);
        !s.ok()) {
      return s;
    }
    if (!IsHiddenActivation(c.activation)) {
      return ConvError(i, absl::StrCat(" has unsupported activation ",
                                       static_cast<int>(c.activation)));
    }
    // Also refuses NaN.
    if (!(c.dropout >= 0.0 && c.dropout <= 0.5)) {
      return ConvError(i, absl::StrCat(".dropout is ", c.dropout,
                                       "; it must be in [0, 0.5]"));
    }
    if (!IsPooling(c.pooling)) {
      return ConvError(i, absl::StrCat(" has unsupported pooling ",
                                       static_cast<int>(c.pooling)));
    }
    if (c.residual && (i == 0 || c.in_channels != c.out_channels ||
                       c.pooling != v1::POOLING_NONE)) {
      return ConvError(
          i, absl::StrCat(".residual is set on ",
                          i == 0 ? "the first conv layer" : "a conv layer",
                          " with ", c.in_channels, " in and ", c.out_channels,
                          " out channels",
                          c.pooling != v1::POOLING_NONE ? " and pooling" : "",
                          "; a residual conv layer must come after the first, "
                          "keep its channels and not pool"));
    }
    for (const auto& [field, values] :
         {std::pair<const char*, const std::vector<double>*>{"bn_scale",
                                                             &c.bn_scale},
          {"bn_shift", &c.bn_shift},
          {"bn_running_mean", &c.bn_running_mean},
          {"bn_running_var", &c.bn_running_var}}) {
      if (auto s = CheckSize(absl::StrCat(name, ".", field), values->size(),
                             c.batch_norm ? c.out_channels : 0);
          !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            s.message(), c.batch_norm ? " (batch_norm is set)"
                                      : " (batch_norm is not set)"));
      }
    }
    if (c.pooling != v1::POOLING_NONE) {
      if (height < 2 || width < 2) {
        return ConvError(
            i, absl::StrCat(".pooling would halve a ", height, " x ", width,
                            " image below one pixel"));
      }
      height /= 2;
      width /= 2;
    }
    channels = c.out_channels;
  }
  // channels <= the last layer's weight count and height * width <= pixels,
  // but their product could still overflow: compare by division.
  const int64_t dense_inputs = p.layers.front().inputs;
  const int64_t plane = height * width;
  if (dense_inputs % channels != 0 || dense_inputs / channels != plane) {
    return absl::InvalidArgumentError(
        absl::StrCat("MlpParameters.layers[0].inputs is ", dense_inputs,
                     " but the conv layers output ", channels, " channels x ",
                     height, " x ", width));
  }
  return absl::OkStatus();
}

// The zero-padded patches of one image for a k x k kernel: col[j * hw + t]
// is the input under tap j = (channel * k + ky) * k + kx when the kernel is
// centred on pixel t (0 outside the image, the "same" padding).
void Im2Col(const double* in, int64_t channels, int64_t height, int64_t width,
            int64_t k, std::vector<double>& col) {
  const int64_t r = k / 2, hw = height * width;
  col.assign(channels * k * k * hw, 0.0);
  for (int64_t ci = 0; ci < channels; ++ci) {
    for (int64_t ky = 0; ky < k; ++ky) {
      const int64_t dy = ky - r;
      const int64_t y0 = std::max<int64_t>(0, -dy);
      const int64_t y1 = std::min<int64_t>(height, height - dy);
      for (int64_t kx = 0; kx < k; ++kx) {
        const int64_t dx = kx - r;
        const int64_t x0 = std::max<int64_t>(0, -dx);
        const int64_t x1 = std::min<int64_t>(width, width - dx);
        double* dst = &col[((ci * k + ky) * k + kx) * hw];
        for (int64_t y = y0; y < y1; ++y) {
          const double* src = in + ci * hw + (y + dy) * width + dx;
          for (int64_t x = x0; x < x1; ++x) dst[y * width + x] = src[x];
        }
      }
    }
  }
}

// out[o * hw + t] = bias[o] + sum_j weight[o * taps + j] * col[j * hw + t],
// the sum in ascending j for every output. Blocks of 4 channels x 4 pixels
// stay in registers, so each value of `col` loaded serves four channels:
// 1.5x faster than one channel at a time on a 28x28 network (measured;
// 4x4 beat 4x8, 8x4, 2x8, 8x2), and the worker's int8 metrics run this on
// every validation and test image.
void ConvGemm(const std::vector<double>& weight,
              const std::vector<double>& bias, const double* col,
              int64_t outputs, int64_t taps, int64_t hw, double* out) {
  constexpr int64_t kO = 4, kT = 4;
  for (int64_t o0 = 0; o0 < outputs; o0 += kO) {
    const int64_t no = std::min(kO, outputs - o0);
    for (int64_t t0 = 0; t0 < hw; t0 += kT) {
      const int64_t nt = std::min(kT, hw - t0);
      double acc[kO][kT] = {};
      if (no == kO && nt == kT) {
        for (int64_t j = 0; j < taps; ++j) {
          const double* r = col + j * hw + t0;
          for (int64_t a = 0; a < kO; ++a) {
            const double w = weight[(o0 + a) * taps + j];
            for (int64_t b = 0; b < kT; ++b) acc[a][b] += w * r[b];
          }
        }
      } else {
        for (int64_t j = 0; j < taps; ++j) {
          const double* r = col + j * hw + t0;
          for (int64_t a = 0; a < no; ++a) {
            const double w = weight[(o0 + a) * taps + j];
            for (int64_t b = 0; b < nt; ++b) acc[a][b] += w * r[b];
          }
        }
      }
      for (int64_t a = 0; a < no; ++a) {
        for (int64_t b = 0; b < nt; ++b) {
          out[(o0 + a) * hw + t0 + b] = bias[o0 + a] + acc[a][b];
        }
      }
    }
  }
}

// One convolutional layer on one image: `in` is in_channels x height x
// width, `out` becomes out_channels x height' x width' (halved by pooling).
// `col` and `activated` are scratch.
void ConvForward(const ConvParameters& c, int64_t height, int64_t width,
                 const double* in, std::vector<double>& col,
                 std::vector<double>& activated, double* out) {
  const int64_t k = c.kernel_size, hw = height * width;
  const int64_t taps = c.in_channels * k * k;
  activated.assign(c.out_channels * hw, 0.0);
  // A 1 x 1 kernel's patches are the image itself.
  const double* patches = in;
  if (k > 1) {
    Im2Col(in, c.in_channels, height, width, k, col);
    patches = col.data();
  }
  ConvGemm(c.weight, c.bias, patches, c.out_channels, taps, hw,
           activated.data());
  if (c.batch_norm) {
    for (int64_t o = 0; o < c.out_channels; ++o) {
      double* a = &activated[o * hw];
      // torch's eval batch_norm: (v - mean) * invstd * weight + bias.
      const double invstd =
          1.0 / std::sqrt(c.bn_running_var[o] + kBatchNormEps);
      for (int64_t j = 0; j < hw; ++j) {
        a[j] = (a[j] - c.bn_running_mean[o]) * invstd * c.bn_scale[o] +
               c.bn_shift[o];
      }
    }
  }
  Activate(c.activation, activated);
  if (c.residual) {
    for (size_t j = 0; j < activated.size(); ++j) {
      activated[j] = in[j] + activated[j];
    }
  }
  if (c.pooling == v1::POOLING_NONE) {
    std::copy(activated.begin(), activated.end(), out);
    return;
  }
  const int64_t ph = height / 2, pw = width / 2;
  for (int64_t o = 0; o < c.out_channels; ++o) {
    const double* a = &activated[o * hw];
    for (int64_t y = 0; y < ph; ++y) {
      for (int64_t x = 0; x < pw; ++x) {
        const double v[4] = {
            a[2 * y * width + 2 * x], a[2 * y * width + 2 * x + 1],
            a[(2 * y + 1) * width + 2 * x], a[(2 * y + 1) * width + 2 * x + 1]};
        double p;
        if (c.pooling == v1::POOLING_MAX) {
          // NaN wins, as in torch.max_pool2d.
          p = v[0];
          for (int j = 1; j < 4; ++j) {
            if (std::isnan(v[j]) || v[j] > p) p = v[j];
          }
        } else {
          p = (v[0] + v[1] + v[2] + v[3]) / 4.0;
        }
        out[(o * ph + y) * pw + x] = p;
      }
    }
  }
}

// Runs the first `layers` layers of the convolutional trunk on `rows`
// standardised images `h` (rows x height x width) and returns rows x
// (channels x height' x width'), flattened channel-major like
// torch.flatten(start_dim=1).
std::vector<double> ConvTrunk(const MlpParameters& p, std::vector<double> h,
                              int64_t rows, size_t layers) {
  std::vector<double> next, col, activated;
  int64_t height = p.image_height, width = p.image_width, channels = 1;
  for (size_t i = 0; i < std::min(layers, p.conv_layers.size()); ++i) {
    const ConvParameters& c = p.conv_layers[i];
    const bool pool = c.pooling != v1::POOLING_NONE;
    const int64_t oh = pool ? height / 2 : height;
    const int64_t ow = pool ? width / 2 : width;
    const int64_t in_size = channels * height * width;
    const int64_t out_size = c.out_channels * oh * ow;
    next.assign(rows * out_size, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      ConvForward(c, height, width, &h[r * in_size], col, activated,
                  &next[r * out_size]);
    }
    h.swap(next);
    height = oh;
    width = ow;
    channels = c.out_channels;
  }
  return h;
}

// One row's layer normalisation in place, as torch.layer_norm computes it:
// (z - mean) * rstd * scale + shift with rstd = 1 / sqrt(var + eps).
void LayerNormalise(const DenseParameters& layer, double* z) {
  const int64_t n = layer.outputs;
  double mean = 0;
  for (int64_t o = 0; o < n; ++o) mean += z[o];
  mean /= static_cast<double>(n);
  double var = 0;
  for (int64_t o = 0; o < n; ++o) var += (z[o] - mean) * (z[o] - mean);
  var /= static_cast<double>(n);
  const double rstd = 1.0 / std::sqrt(var + kLayerNormEpsilon);
  for (int64_t o = 0; o < n; ++o) {
    z[o] = (z[o] - mean) * rstd * layer.ln_scale[o] + layer.ln_shift[o];
  }
}

// (x - x_mean) / x_std for `rows` rows of raw inputs of `p`.
std::vector<double> Standardise(const MlpParameters& p,
                                const std::vector<double>& x, int64_t rows) {
  const int64_t inputs = InputCount(p);
  std::vector<double> h(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < inputs; ++j) {
      h[r * inputs + j] = (x[r * inputs + j] - p.x_mean[j]) / p.x_std[j];
    }
  }
  return h;
}

}  // namespace

int64_t InputCount(const MlpParameters& p) {
  return p.conv_layers.empty() ? p.layers.front().inputs
                               : p.image_height * p.image_width;
}

absl::Status ValidateMlp(const MlpParameters& parameters) {
  const MlpParameters& p = parameters;
  if (p.layers.empty()) {
    return absl::InvalidArgumentError("MlpParameters has no layers");
  }
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const DenseParameters& layer = p.layers[i];
    const std::string name = absl::StrCat("layers[", i, "]");
    if (layer.inputs <= 0 || layer.outputs <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MlpParameters.", name, " has ", layer.inputs, " inputs and ",
          layer.outputs, " outputs; both must be positive"));
    }
    if (i > 0 && layer.inputs != p.layers[i - 1].outputs) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MlpParameters.", name, ".inputs is ", layer.inputs,
          " but the previous layer has ", p.layers[i - 1].outputs, " outputs"));
    }
    // Compared by division so that huge shapes cannot overflow.
    const int64_t weights = static_cast<int64_t>(layer.weight.size());
    if (weights % layer.inputs != 0 ||
        weights / layer.inputs != layer.outputs) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MlpParameters.", name, ".weight has ", weights, " values, expected ",
          layer.outputs, " x ", layer.inputs));
    }
    if (auto s = CheckSize(absl::StrCat(name, ".bias"), layer.bias.size(),
                           layer.outputs);
        !s.ok()) {
      return s;
    }
    const bool last = i + 1 == p.layers.size();
    if (last && layer.activation != v1::ACTIVATION_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MlpParameters.", name,
          " is the output layer and must be linear (ACTIVATION_UNSPECIFIED), "
          "got activation ",
          static_cast<int>(layer.activation)));
    }
    if (!last && !IsHiddenActivation(layer.activation)) {
      return absl::InvalidArgumentError(
          absl::StrCat("MlpParameters.", name, " has unsupported activation ",
                       static_cast<int>(layer.activation)));
    }
    if (layer.residual && (i == 0 || last || layer.inputs != layer.outputs)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MlpParameters.", name, ".residual is set on ",
          i == 0 ? "the first layer" : last ? "the output layer" : "a layer",
          " with ", layer.inputs, " inputs and ", layer.outputs,
          " outputs; a residual layer must be a hidden layer after the first "
          "with as many outputs as inputs"));
    }
    if (layer.layer_norm() || !layer.ln_shift.empty()) {
      if (last || layer.outputs < 2) {
        return absl::InvalidArgumentError(absl::StrCat(
            "MlpParameters.", name, " has layer normalisation but is ",
            last ? "the output layer" : "a layer with one output",
            "; only hidden layers of 2 or more outputs can have it"));
      }
      for (const auto& [field, values] :
           {std::pair<const char*, const std::vector<double>*>{".ln_scale",
                                                               &layer.ln_scale},
            {".ln_shift", &layer.ln_shift}}) {
        if (auto s = CheckSize(absl::StrCat(name, field), values->size(),
                               layer.outputs);
            !s.ok()) {
          return s;
        }
      }
    }
  }
  if (!p.conv_layers.empty()) {
    if (auto s = ValidateConvTrunk(p); !s.ok()) return s;
  }
  const int64_t inputs = InputCount(p);
  const int64_t outputs = p.layers.back().outputs;
  for (const auto& [field, values, expected] :
       {std::tuple<const char*, const std::vector<double>*, int64_t>{
            "x_mean", &p.x_mean, inputs},
        {"x_std", &p.x_std, inputs},
        {"y_mean", &p.y_mean, outputs},
        {"y_std", &p.y_std, outputs}}) {
    if (auto s = CheckSize(field, values->size(), expected); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::vector<double> Forward(const MlpParameters& parameters,
                            const std::vector<double>& x, int64_t rows) {
  if (!ValidateMlp(parameters).ok() || rows < 0) return {};
  const MlpParameters& p = parameters;
  const int64_t inputs = InputCount(p);
  if (rows > 0 && static_cast<int64_t>(x.size()) / rows != inputs) return {};
  if (static_cast<int64_t>(x.size()) != rows * inputs) return {};

  std::vector<double> h = Standardise(p, x, rows);
  if (!p.conv_layers.empty()) {
    h = ConvTrunk(p, std::move(h), rows, p.conv_layers.size());
  }
  std::vector<double> next;
  for (const DenseParameters& layer : p.layers) {
    const int64_t in = layer.inputs, out = layer.outputs;
    next.assign(rows * out, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const double* hr = &h[r * in];
      for (int64_t o = 0; o < out; ++o) {
        const double* w = &layer.weight[o * in];
        double sum = 0.0;
        for (int64_t k = 0; k < in; ++k) sum += w[k] * hr[k];
        next[r * out + o] = layer.bias[o] + sum;
      }
      if (layer.layer_norm()) LayerNormalise(layer, &next[r * out]);
    }
    Activate(layer.activation, next);
    if (layer.residual) {
      for (size_t i = 0; i < next.size(); ++i) next[i] = h[i] + next[i];
    }
    h.swap(next);
  }
  const int64_t outputs = p.layers.back().outputs;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < outputs; ++j) {
      double& v = h[r * outputs + j];
      v = v * p.y_std[j] + p.y_mean[j];
    }
  }
  return h;
}

std::vector<double> ConvTrunkForward(const MlpParameters& stage,
                                     const std::vector<double>& x, int64_t rows,
                                     size_t layers) {
  if (!ValidateMlp(stage).ok() || rows < 0 ||
      static_cast<int64_t>(x.size()) != rows * InputCount(stage)) {
    return {};
  }
  return ConvTrunk(stage, Standardise(stage, x, rows), rows, layers);
}

absl::Status ValidateNetwork(const NetworkParameters& network) {
  if (network.stages.empty()) {
    return absl::InvalidArgumentError("NetworkParameters has no stages");
  }
  for (size_t k = 0; k < network.stages.size(); ++k) {
    const MlpParameters& stage = network.stages[k];
    if (absl::Status s = ValidateMlp(stage); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("NetworkParameters.stages[", k, "]: ", s.message()));
    }
    // A convolutional network is trained in float32 as one stage (see
    // v1::Genome.conv_layers); the exporters rely on that.
    if (!stage.conv_layers.empty() && network.stages.size() > 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "NetworkParameters.stages[", k, "] has conv_layers but the network ",
          "has ", network.stages.size(),
          " stages; a convolutional network has exactly one"));
    }
    const MlpParameters& first = network.stages.front();
    if (InputCount(stage) != InputCount(first) ||
        stage.layers.back().outputs != first.layers.back().outputs) {
      return absl::InvalidArgumentError(absl::StrCat(
          "NetworkParameters.stages[", k, "] has ", InputCount(stage),
          " inputs and ", stage.layers.back().outputs,
          " outputs, stages[0] has ", InputCount(first), " and ",
          first.layers.back().outputs));
    }
  }
  return absl::OkStatus();
}

std::vector<double> Forward(const NetworkParameters& network,
                            const std::vector<double>& x, int64_t rows) {
  if (!ValidateNetwork(network).ok()) return {};
  std::vector<double> sum;
  for (const MlpParameters& stage : network.stages) {
    std::vector<double> out = Forward(stage, x, rows);
    if (out.empty() && rows > 0) return {};
    if (sum.empty()) {
      sum = std::move(out);
      continue;
    }
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += out[i];
  }
  return sum;
}

int64_t ParameterCount(const NetworkParameters& network) {
  int64_t count = 0;
  for (const MlpParameters& stage : network.stages) {
    count += ParameterCount(stage);
  }
  return count;
}

int64_t ParameterCount(const MlpParameters& parameters) {
  int64_t count = 0;
  // The running mean and variance are buffers, not trained: not counted,
  // as evonas::ParameterCount of the genome does not count them.
  for (const ConvParameters& c : parameters.conv_layers) {
    count += static_cast<int64_t>(c.weight.size() + c.bias.size() +
                                  c.bn_scale.size() + c.bn_shift.size());
  }
  for (const DenseParameters& layer : parameters.layers) {
    count +=
        static_cast<int64_t>(layer.weight.size() + layer.bias.size() +
                             layer.ln_scale.size() + layer.ln_shift.size());
  }
  return count;
}

}  // namespace evonas::model
