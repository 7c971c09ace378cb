#include "worker/model/morphism.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/genome.h"
#include "common/status_macros.h"
#include "worker/model/initialisation.h"

namespace evonas::model {
namespace {

// The architecture of one stage: its hidden layers.
using StageLayers = std::vector<v1::DenseLayer>;

std::vector<StageLayers> Architecture(const v1::Genome& genome) {
  std::vector<StageLayers> stages;
  stages.emplace_back(genome.hidden_layers().begin(),
                      genome.hidden_layers().end());
  for (const v1::Stage& stage : genome.residual_stages()) {
    stages.emplace_back(stage.hidden_layers().begin(),
                        stage.hidden_layers().end());
  }
  return stages;
}

std::string Describe(const v1::DenseLayer& layer) {
  return absl::StrCat(layer.width(), " ", ActivationName(layer.activation()),
                      layer.residual() ? " residual" : "",
                      layer.layer_norm() ? " layer-normalised" : "");
}

bool SameLayer(const v1::DenseLayer& a, const v1::DenseLayer& b) {
  return a.width() == b.width() && a.activation() == b.activation() &&
         a.residual() == b.residual() && a.layer_norm() == b.layer_norm();
}

std::string Site(const v1::Morphism& m) {
  if (m.conv()) {
    return absl::StrCat(v1::MorphismKind_Name(m.kind()),
                        " of convolutional layer ", m.layer());
  }
  return absl::StrCat(v1::MorphismKind_Name(m.kind()), " of stage ", m.stage(), " layer ",
                      m.layer());
}

// DEEPEN inserts a layer with zero weights and biases: x + f(0) is x only
// where f(0) = 0.
constexpr char kGaussianNotIdentity[] =
    "the inserted layer cannot be gaussian: exp(-0^2) = 1, so a "
    "zero-initialised residual layer of it is not the identity";

// InvalidArgument "<site>: <what>".
absl::Status Bad(const v1::Morphism& m, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(Site(m), ": ", what));
}

// A convolutional layer without its dropout, which acts in training only
// and may change freely, like the training genes.
v1::ConvLayer WithoutDropout(v1::ConvLayer layer) {
  layer.clear_dropout();
  return layer;
}

bool SameConvLayer(const v1::ConvLayer& a, const v1::ConvLayer& b) {
  return WithoutDropout(a).SerializeAsString() ==
         WithoutDropout(b).SerializeAsString();
}

// Checks a morphism of the convolutional trunk (Morphism.conv): the child's
// trunk is the parent's with layer `layer` widened or narrowed, a zero
// residual layer inserted there, or its residual layer removed; nothing else
// changes but dropout.
absl::Status CheckConvMorphism(const v1::Genome& parent,
                               const v1::Genome& child,
                               const v1::Morphism& m) {
  const int count = parent.conv_layers_size();
  const int l = m.layer();
  if (m.stage() != 0) return Bad(m, "the trunk belongs to stage 0");
  std::vector<v1::ConvLayer> expected(parent.conv_layers().begin(),
                                      parent.conv_layers().end());
  switch (m.kind()) {
    case v1::MORPHISM_KIND_WIDEN:
    case v1::MORPHISM_KIND_NARROW: {
      if (l < 0 || l >= count || child.conv_layers_size() != count) {
        return Bad(m, absl::StrCat("the parent has convolutional layers 0..",
                                   count - 1, " and the child as many"));
      }
      const int before = parent.conv_layers(l).channels();
      const int after = child.conv_layers(l).channels();
      if (m.kind() == v1::MORPHISM_KIND_WIDEN && after <= before) {
        return Bad(m, absl::StrCat("the child's layer has ", after,
                                   " channels, not more than ", before));
      }
      if (m.kind() == v1::MORPHISM_KIND_NARROW &&
          (after >= before || after < 1)) {
        return Bad(m, absl::StrCat("the child's layer has ", after,
                                   " channels; it must have 1..", before - 1));
      }
      if (parent.conv_layers(l).residual() ||
          (l + 1 < count && parent.conv_layers(l + 1).residual())) {
        return Bad(m, "a layer in a residual chain must keep its channels");
      }
      expected[l].set_channels(after);
      break;
    }
    case v1::MORPHISM_KIND_DEEPEN: {
      if (l < 1 || l > count || child.conv_layers_size() != count + 1) {
        return Bad(m, absl::StrCat("a layer is inserted at 1..", count,
                                   " of the trunk"));
      }
      const v1::ConvLayer& inserted = child.conv_layers(l);
      if (!inserted.residual() || inserted.batch_norm() ||
          inserted.pooling() != v1::POOLING_NONE ||
          inserted.channels() != parent.conv_layers(l - 1).channels()) {
        return Bad(m, "the inserted layer must be residual, with its input's "
                      "channels, no batch normalisation and no pooling");
      }
      if (inserted.activation() == v1::ACTIVATION_GAUSSIAN) {
        return Bad(m, kGaussianNotIdentity);
      }
      expected.insert(expected.begin() + l, inserted);
      break;
    }
    case v1::MORPHISM_KIND_REMOVE_LAYER: {
      if (l < 0 || l >= count || child.conv_layers_size() != count - 1) {
        return Bad(m, absl::StrCat("the parent has convolutional layers 0..",
                                   count - 1, " and the child one fewer"));
      }
      if (!parent.conv_layers(l).residual()) {
        return Bad(m, "only a residual layer can be removed");
      }
      expected.erase(expected.begin() + l);
      break;
    }
    default:
      return Bad(m,
                 "only WIDEN, NARROW, DEEPEN and REMOVE_LAYER apply to "
                 "convolutional layers");
  }
  for (int i = 0; i < child.conv_layers_size(); ++i) {
    if (!SameConvLayer(expected[i], child.conv_layers(i))) {
      return Bad(m, absl::StrCat("the child's convolutional layer ", i,
                                 " differs from what the morphism gives"));
    }
  }
  return absl::OkStatus();
}


// The child architecture `parent` turns into under `m`, taking from `child`
// what the morphism does not fix (the new width, the inserted layer, the new
// stage). InvalidArgument when the morphism cannot apply to `parent`.
absl::StatusOr<std::vector<StageLayers>> Morph(
    const std::vector<StageLayers>& parent,
    const std::vector<StageLayers>& child, const v1::Morphism& m) {
  std::vector<StageLayers> expected = parent;
  const int stages = static_cast<int>(parent.size());
  const int s = m.stage();
  const int l = m.layer();
  auto need_stage = [&]() -> absl::Status {
    if (s < 0 || s >= stages) {
      return Bad(m, absl::StrCat("the parent has stages 0..", stages - 1));
    }
    if (s >= static_cast<int>(child.size())) {
      return Bad(m, absl::StrCat("the child has no stage ", s));
    }
    return absl::OkStatus();
  };
  auto need_layer = [&](int count) -> absl::Status {
    if (l < 0 || l >= count) {
      return Bad(m, absl::StrCat("stage ", s, " of the parent has layers 0..",
                                 count - 1));
    }
    return absl::OkStatus();
  };
  switch (m.kind()) {
    case v1::MORPHISM_KIND_CONTINUE:
      EVONAS_RETURN_IF_ERROR(need_stage());
      break;
    case v1::MORPHISM_KIND_WIDEN:
    case v1::MORPHISM_KIND_NARROW: {
      EVONAS_RETURN_IF_ERROR(need_stage());
      EVONAS_RETURN_IF_ERROR(need_layer(static_cast<int>(parent[s].size())));
      if (l >= static_cast<int>(child[s].size())) {
        return Bad(m, absl::StrCat("the child's stage ", s, " has no layer ",
                                   l));
      }
      const int before = parent[s][l].width();
      const int after = child[s][l].width();
      const bool widen = m.kind() == v1::MORPHISM_KIND_WIDEN;
      const bool normalised = parent[s][l].layer_norm();
      if (widen && normalised) {
        return Bad(m,
                   "the layer is layer-normalised: new neurons would change "
                   "its mean and variance, so widening it cannot preserve "
                   "the function");
      }
      const int least = normalised ? 2 : 1;
      if (widen ? after <= before : (after >= before || after < least)) {
        return Bad(m, absl::StrCat("the layer's width goes from ", before,
                                   " to ", after, "; ",
                                   widen ? "it must grow"
                                         : absl::StrCat("it must shrink and "
                                                        "stay >= ",
                                                        least)));
      }
      expected[s][l].set_width(after);
      break;
    }
    case v1::MORPHISM_KIND_DEEPEN: {
      EVONAS_RETURN_IF_ERROR(need_stage());
      const int count = static_cast<int>(parent[s].size());
      if (l < 1 || l > count) {
        return Bad(m, absl::StrCat("a layer can be inserted at 1..", count,
                                   " (never first in a stage)"));
      }
      if (l >= static_cast<int>(child[s].size())) {
        return Bad(m, absl::StrCat("the child's stage ", s, " has no layer ",
                                   l));
      }
      const v1::DenseLayer& inserted = child[s][l];
      if (!inserted.residual()) {
        return Bad(m, "the inserted layer must be residual");
      }
      if (inserted.activation() == v1::ACTIVATION_GAUSSIAN) {
        return Bad(m, kGaussianNotIdentity);
      }
      if (inserted.width() != parent[s][l - 1].width()) {
        return Bad(m, absl::StrCat("the inserted layer has width ",
                                   inserted.width(),
                                   "; a residual layer needs its input width ",
                                   parent[s][l - 1].width()));
      }
      expected[s].insert(expected[s].begin() + l, inserted);
      break;
    }
    case v1::MORPHISM_KIND_REMOVE_LAYER: {
      EVONAS_RETURN_IF_ERROR(need_stage());
      EVONAS_RETURN_IF_ERROR(need_layer(static_cast<int>(parent[s].size())));
      if (!parent[s][l].residual()) {
        return Bad(m, "only a residual layer can be removed");
      }
      expected[s].erase(expected[s].begin() + l);
      break;
    }
    case v1::MORPHISM_KIND_ADD_STAGE: {
      if (s != stages) {
        return Bad(m, absl::StrCat("the new stage's index must be ", stages,
                                   ", the parent's stage count"));
      }
      if (static_cast<int>(child.size()) != stages + 1) {
        return Bad(m, absl::StrCat("the child has ", child.size(),
                                   " stages; expected ", stages + 1));
      }
      expected.push_back(child[s]);
      break;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown morphism kind ", static_cast<int>(m.kind())));
  }
  return expected;
}

// `n` values uniform in [-bound, bound] from `rng`, appended to `values`;
// zeros, drawing nothing, when `bound` is 0.
void AppendUniform(std::vector<double>& values, int64_t n, double bound,
                   std::mt19937_64& rng) {
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  for (int64_t i = 0; i < n; ++i) {
    values.push_back(bound == 0 ? 0.0 : bound * uniform(rng));
  }
}

// Gives `layer` the layer normalisation the trainer starts from: scale 1,
// shift 0.
void StartLayerNorm(DenseParameters& layer) {
  layer.ln_scale.assign(static_cast<size_t>(layer.outputs), 1.0);
  layer.ln_shift.assign(static_cast<size_t>(layer.outputs), 0.0);
}

// A fresh layer (initialisation.h, no SIREN); `reads_inputs` as for
// FreshLayerRanges.
DenseParameters RandomLayer(int64_t inputs, const v1::DenseLayer& genome,
                            bool reads_inputs, std::mt19937_64& rng) {
  DenseParameters layer;
  layer.inputs = inputs;
  layer.outputs = genome.width();
  layer.activation = genome.activation();
  layer.residual = genome.residual();
  const InitialRanges ranges = FreshLayerRanges(
      layer.activation, inputs, layer.outputs, reads_inputs, std::nullopt);
  AppendUniform(layer.weight, layer.outputs * inputs, ranges.weight, rng);
  AppendUniform(layer.bias, layer.outputs, ranges.bias, rng);
  if (genome.layer_norm()) StartLayerNorm(layer);
  return layer;
}

// OK when `sample` has at least one row of `net`'s inputs (and, with
// `need_targets`, as many rows of its outputs).
absl::Status CheckSample(const Samples& sample, const NetworkParameters& net,
                         bool need_targets) {
  const int64_t inputs = InputCount(net.stages.front());
  const int64_t outputs = net.stages.front().layers.back().outputs;
  const Matrix& x = sample.x;
  if (x.rows < 1 || x.cols != inputs ||
      static_cast<int64_t>(x.data.size()) != x.rows * x.cols) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the sample rows must be at least one row of ", inputs,
        " inputs; got ", x.rows, " x ", x.cols, " with ", x.data.size(),
        " values"));
  }
  const Matrix& y = sample.y;
  if (need_targets &&
      (y.rows != x.rows || y.cols != outputs ||
       static_cast<int64_t>(y.data.size()) != y.rows * y.cols)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the sample needs ", x.rows, " rows of ", outputs, " targets; got ",
        y.rows, " x ", y.cols, " with ", y.data.size(), " values"));
  }
  return absl::OkStatus();
}

// Net2Wider: layer `l` of `stage` grows to `width` neurons with incoming
// weights and biases drawn as for a fresh layer (no SIREN, as NewStage) and
// zero outgoing weights.
void Widen(MlpParameters& stage, size_t l, int64_t width,
           std::mt19937_64& rng) {
  DenseParameters& layer = stage.layers[l];
  DenseParameters& next = stage.layers[l + 1];
  const int64_t old_width = layer.outputs;
  const InitialRanges ranges = FreshLayerRanges(
      layer.activation, layer.inputs, width,
      /*reads_inputs=*/l == 0 && stage.conv_layers.empty(), std::nullopt);
  // Rows are contiguous: the new neurons' rows append.
  AppendUniform(layer.weight, (width - old_width) * layer.inputs, ranges.weight,
                rng);
  AppendUniform(layer.bias, width - old_width, ranges.bias, rng);
  layer.outputs = width;
  std::vector<double> weight(static_cast<size_t>(next.outputs * width), 0.0);
  for (int64_t o = 0; o < next.outputs; ++o) {
    std::copy_n(&next.weight[o * old_width], old_width, &weight[o * width]);
  }
  next.weight = std::move(weight);
  next.inputs = width;
}

// Net2Wider for convolutional layer `l` of `stage`: it grows to `channels`
// output channels with kernels and biases drawn as for a fresh layer and
// identity batch normalisation; the next convolutional layer (or, after the
// last, the first dense layer, whose inputs are the flattened channels,
// channel-major) gets zero weights from them.
void WidenConv(MlpParameters& stage, size_t l, int64_t channels,
               std::mt19937_64& rng) {
  ConvParameters& layer = stage.conv_layers[l];
  const int64_t old_channels = layer.out_channels;
  const int64_t extra = channels - old_channels;
  const int64_t window = layer.kernel_size * layer.kernel_size;
  const InitialRanges ranges = FreshLayerRanges(
      layer.activation, layer.in_channels * window, channels * window,
      /*reads_inputs=*/l == 0, std::nullopt);
  // Output channels are the outermost index: new kernels append.
  AppendUniform(layer.weight, extra * layer.in_channels * window, ranges.weight,
                rng);
  AppendUniform(layer.bias, extra, ranges.bias, rng);
  if (layer.batch_norm) {
    layer.bn_scale.resize(static_cast<size_t>(channels), 1.0);
    layer.bn_shift.resize(static_cast<size_t>(channels), 0.0);
    layer.bn_running_mean.resize(static_cast<size_t>(channels), 0.0);
    layer.bn_running_var.resize(static_cast<size_t>(channels), 1.0);
  }
  layer.out_channels = channels;
  // The consumer's weights: each output row holds `old_channels` blocks of
  // `block` values, one per input channel; the new blocks are zero.
  auto widen_rows = [&](std::vector<double>& weight, int64_t rows,
                        int64_t block) {
    std::vector<double> wider(static_cast<size_t>(rows * channels * block),
                              0.0);
    for (int64_t r = 0; r < rows; ++r) {
      std::copy_n(&weight[r * old_channels * block], old_channels * block,
                  &wider[r * channels * block]);
    }
    weight = std::move(wider);
  };
  if (l + 1 < stage.conv_layers.size()) {
    ConvParameters& next = stage.conv_layers[l + 1];
    widen_rows(next.weight, next.out_channels,
               next.kernel_size * next.kernel_size);
    next.in_channels = channels;
  } else {
    DenseParameters& dense = stage.layers.front();
    const int64_t pixels = dense.inputs / old_channels;
    widen_rows(dense.weight, dense.outputs, pixels);
    dense.inputs = channels * pixels;
  }
}

// R h_l for the raw inputs `x`, where h_l is the output of layer `l` of
// `stage` (after its activation and skip) and R the k x width matrix
// `readout` (row-major): the stage up to that layer followed by R as its
// linear output layer, so that the reference Forward does the work. Returns
// x.rows x k values.
std::vector<double> ReadOut(const MlpParameters& stage, size_t l,
                            const Matrix& x, std::vector<double> readout) {
  MlpParameters probe;
  probe.x_mean = stage.x_mean;
  probe.x_std = stage.x_std;
  probe.conv_layers = stage.conv_layers;
  probe.image_height = stage.image_height;
  probe.image_width = stage.image_width;
  probe.layers.assign(stage.layers.begin(), stage.layers.begin() + l + 1);
  const int64_t width = stage.layers[l].outputs;
  DenseParameters linear;
  linear.inputs = width;
  linear.outputs = static_cast<int64_t>(readout.size()) / width;
  linear.weight = std::move(readout);
  linear.bias.assign(static_cast<size_t>(linear.outputs), 0.0);
  probe.y_mean.assign(static_cast<size_t>(linear.outputs), 0.0);
  probe.y_std.assign(static_cast<size_t>(linear.outputs), 1.0);
  probe.layers.push_back(std::move(linear));
  return Forward(probe, x.data, x.rows);
}

// At most this many rows estimate the means NARROW and REMOVE_LAYER need:
// the reference forward pass is plain C++, and reading every neuron out
// costs width^2 per row; a convolutional trunk costs far more per row (an
// image), and its means are over pixels too.
constexpr int64_t kMaxScoringRows = 1024;
constexpr int64_t kMaxScoringImages = 256;

// Evenly spaced rows of `x`, at most kMaxScoringRows (kMaxScoringImages for
// a stage with a convolutional trunk).
Matrix ScoringRows(const Matrix& x, const MlpParameters& stage) {
  const int64_t most =
      stage.conv_layers.empty() ? kMaxScoringRows : kMaxScoringImages;
  if (x.rows <= most) return x;
  Matrix picked{most, x.cols, {}};
  picked.data.reserve(static_cast<size_t>(most * x.cols));
  for (int64_t i = 0; i < most; ++i) {
    const int64_t r = i * x.rows / most;
    picked.data.insert(picked.data.end(), x.data.begin() + r * x.cols,
                       x.data.begin() + (r + 1) * x.cols);
  }
  return picked;
}

// Which of the scored units NARROW keeps: the `count` highest scores (ties:
// the lower index).
std::vector<bool> KeepHighest(const std::vector<double>& score, int64_t count) {
  std::vector<int64_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return score[a] > score[b]; });
  std::vector<bool> kept(score.size(), false);
  for (int64_t i = 0; i < count; ++i) kept[order[i]] = true;
  return kept;
}

// SNARE-style reduction: layer `l` of `stage` keeps its `width`
// highest-scoring neurons; dropped neurons' mean outputs on `x` (at most
// kMaxScoringRows of them) move into the next layer's biases.
absl::Status Narrow(MlpParameters& stage, size_t l, int64_t width,
                    const Matrix& all_rows) {
  const Matrix x = ScoringRows(all_rows, stage);
  DenseParameters& layer = stage.layers[l];
  DenseParameters& next = stage.layers[l + 1];
  const int64_t old_width = layer.outputs;
  std::vector<double> identity(static_cast<size_t>(old_width * old_width));
  for (int64_t j = 0; j < old_width; ++j) identity[j * old_width + j] = 1.0;
  const std::vector<double> h = ReadOut(stage, l, x, std::move(identity));
  if (static_cast<int64_t>(h.size()) != x.rows * old_width) {
    return absl::InvalidArgumentError(
        "cannot evaluate the parent's layer on the sample rows");
  }
  std::vector<double> mean(old_width, 0.0), mean_abs(old_width, 0.0);
  for (int64_t r = 0; r < x.rows; ++r) {
    for (int64_t j = 0; j < old_width; ++j) {
      mean[j] += h[r * old_width + j];
      mean_abs[j] += std::fabs(h[r * old_width + j]);
    }
  }
  std::vector<double> score(old_width);
  for (int64_t j = 0; j < old_width; ++j) {
    mean[j] /= static_cast<double>(x.rows);
    mean_abs[j] /= static_cast<double>(x.rows);
    double norm2 = 0.0;
    for (int64_t o = 0; o < next.outputs; ++o) {
      const double w = next.weight[o * old_width + j];
      norm2 += w * w;
    }
    score[j] = mean_abs[j] * std::sqrt(norm2);
    if (!std::isfinite(score[j])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "neuron ", j, " of the parent's layer has a non-finite score"));
    }
  }
  const std::vector<bool> kept = KeepHighest(score, width);

  DenseParameters narrowed = layer;
  narrowed.outputs = width;
  narrowed.weight.clear();
  narrowed.bias.clear();
  narrowed.ln_scale.clear();
  narrowed.ln_shift.clear();
  std::vector<double> next_weight;
  next_weight.reserve(static_cast<size_t>(next.outputs * width));
  for (int64_t j = 0; j < old_width; ++j) {
    if (!kept[j]) continue;
    narrowed.weight.insert(narrowed.weight.end(),
                           layer.weight.begin() + j * layer.inputs,
                           layer.weight.begin() + (j + 1) * layer.inputs);
    narrowed.bias.push_back(layer.bias[j]);
    if (layer.layer_norm()) {
      // The kept neurons are normalised by their own mean and variance from
      // now on: approximate, as narrowing is.
      narrowed.ln_scale.push_back(layer.ln_scale[j]);
      narrowed.ln_shift.push_back(layer.ln_shift[j]);
    }
  }
  for (int64_t o = 0; o < next.outputs; ++o) {
    for (int64_t j = 0; j < old_width; ++j) {
      const double w = next.weight[o * old_width + j];
      if (kept[j]) {
        next_weight.push_back(w);
      } else {
        next.bias[o] += w * mean[j];
      }
    }
  }
  layer = std::move(narrowed);
  next.weight = std::move(next_weight);
  next.inputs = width;
  return absl::OkStatus();
}

// Drops residual layer `l` of `stage`; the mean of what it added to its
// input on `x` (at most kMaxScoringRows of them) moves into the next layer's
// biases: the next layer's pre-activations W (h_l - h_{l-1}), averaged, are
// read out directly.
absl::Status RemoveResidual(MlpParameters& stage, size_t l,
                            const Matrix& all_rows) {
  const Matrix x = ScoringRows(all_rows, stage);
  DenseParameters& next = stage.layers[l + 1];
  // A residual layer is never first in its stage, so layer l - 1 exists.
  const std::vector<double> after = ReadOut(stage, l, x, next.weight);
  const std::vector<double> before = ReadOut(stage, l - 1, x, next.weight);
  if (static_cast<int64_t>(after.size()) != x.rows * next.outputs ||
      before.size() != after.size()) {
    return absl::InvalidArgumentError(
        "cannot evaluate the parent's layer on the sample rows");
  }
  for (int64_t o = 0; o < next.outputs; ++o) {
    double shift = 0.0;
    for (int64_t r = 0; r < x.rows; ++r) {
      shift += after[r * next.outputs + o] - before[r * next.outputs + o];
    }
    shift /= static_cast<double>(x.rows);
    if (!std::isfinite(shift)) {
      return absl::InvalidArgumentError(
          "the parent's residual layer has non-finite outputs on the sample");
    }
    next.bias[o] += shift;
  }
  stage.layers.erase(stage.layers.begin() + l);
  return absl::OkStatus();
}

// The layer that reads convolutional layer `l`'s output: the next
// convolutional layer, or the first dense layer (which reads the flattened
// channels). Each of its `rows` output rows of weights holds one block of
// `block` values per input channel: a kernel window, or the channel's pixels.
struct ChannelConsumer {
  std::vector<double>& weight;
  std::vector<double>& bias;
  int64_t& inputs;  // in_channels, or the dense layer's inputs
  int64_t rows, channels, block;
  bool convolutional;
  const double* Block(int64_t row, int64_t channel) const {
    return &weight[(row * channels + channel) * block];
  }
};

ChannelConsumer ConsumerOf(MlpParameters& stage, size_t l, int64_t pixels) {
  const int64_t channels = stage.conv_layers[l].out_channels;
  if (l + 1 < stage.conv_layers.size()) {
    ConvParameters& next = stage.conv_layers[l + 1];
    return {next.weight,
            next.bias,
            next.in_channels,
            next.out_channels,
            channels,
            next.kernel_size * next.kernel_size,
            true};
  }
  DenseParameters& dense = stage.layers.front();
  return {dense.weight, dense.bias, dense.inputs, dense.outputs,
          channels,     pixels,     false};
}

// Adds to the consumer's biases what input channel `c` contributes when it
// holds `mean` (one value per pixel): exact in the mean for the dense layer;
// for a convolutional consumer each kernel's sum times the channel's spatial
// mean, which ignores the zero padding at the border.
void FoldChannelMean(ChannelConsumer& consumer, int64_t c, const double* mean,
                     int64_t pixels) {
  const double spatial =
      std::accumulate(mean, mean + pixels, 0.0) / static_cast<double>(pixels);
  for (int64_t r = 0; r < consumer.rows; ++r) {
    const double* w = consumer.Block(r, c);
    double shift = 0.0;
    for (int64_t b = 0; b < consumer.block; ++b) {
      shift += w[b] * (consumer.convolutional ? spatial : mean[b]);
    }
    consumer.bias[r] += shift;
  }
}

// Means over the rows of `x` of what the first `layers` convolutional layers
// of `stage` output.
struct TrunkMean {
  int64_t channels = 0, pixels = 0;
  std::vector<double> values;    // channels x pixels
  std::vector<double> absolute;  // per channel: mean |value| over pixels too
};
absl::StatusOr<TrunkMean> MeanTrunkOutput(const MlpParameters& stage,
                                          size_t layers, const Matrix& x) {
  const std::vector<double> out =
      ConvTrunkForward(stage, x.data, x.rows, layers);
  TrunkMean mean;
  mean.channels = stage.conv_layers[layers - 1].out_channels;
  if (out.empty() || out.size() % (x.rows * mean.channels) != 0) {
    return absl::InvalidArgumentError(
        "cannot run the parent's convolutional layers on the sample rows");
  }
  mean.pixels = static_cast<int64_t>(out.size()) / (x.rows * mean.channels);
  const int64_t size = mean.channels * mean.pixels;
  mean.values.assign(static_cast<size_t>(size), 0.0);
  mean.absolute.assign(static_cast<size_t>(mean.channels), 0.0);
  for (int64_t r = 0; r < x.rows; ++r) {
    for (int64_t i = 0; i < size; ++i) {
      mean.values[i] += out[r * size + i];
      mean.absolute[i / mean.pixels] += std::fabs(out[r * size + i]);
    }
  }
  for (double& v : mean.values) v /= static_cast<double>(x.rows);
  for (double& v : mean.absolute) {
    v /= static_cast<double>(mean.pixels * x.rows);
  }
  for (double v : mean.values) {
    if (!std::isfinite(v)) {
      return absl::InvalidArgumentError(
          "the parent's convolutional layers have non-finite outputs on the "
          "sample");
    }
  }
  return mean;
}

// NARROW of convolutional layer `l` of `stage` to `channels`: it keeps its
// highest-scoring channels, score = mean |output| over the rows and pixels
// of `x` (at most kMaxScoringImages of them) x the Euclidean norm of the
// consumer's weights on the channel; a dropped channel's mean output moves
// into the consumer's biases (FoldChannelMean).
absl::Status NarrowConv(MlpParameters& stage, size_t l, int64_t channels,
                        const Matrix& all_rows) {
  const Matrix x = ScoringRows(all_rows, stage);
  ConvParameters& layer = stage.conv_layers[l];
  const int64_t old_channels = layer.out_channels;
  EVONAS_ASSIGN_OR_RETURN(const TrunkMean mean,
                          MeanTrunkOutput(stage, l + 1, x));
  const int64_t pixels = mean.pixels;
  ChannelConsumer consumer = ConsumerOf(stage, l, pixels);
  std::vector<double> score(static_cast<size_t>(old_channels));
  for (int64_t c = 0; c < old_channels; ++c) {
    double norm2 = 0.0;
    for (int64_t r = 0; r < consumer.rows; ++r) {
      const double* w = consumer.Block(r, c);
      for (int64_t b = 0; b < consumer.block; ++b) norm2 += w[b] * w[b];
    }
    score[c] = mean.absolute[c] * std::sqrt(norm2);
    if (!std::isfinite(score[c])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "channel ", c, " of the parent's layer has a non-finite score"));
    }
  }
  const std::vector<bool> kept = KeepHighest(score, channels);

  for (int64_t c = 0; c < old_channels; ++c) {
    if (!kept[c])
      FoldChannelMean(consumer, c, &mean.values[c * pixels], pixels);
  }
  std::vector<double> consumer_weight;
  consumer_weight.reserve(
      static_cast<size_t>(consumer.rows * channels * consumer.block));
  for (int64_t r = 0; r < consumer.rows; ++r) {
    for (int64_t c = 0; c < old_channels; ++c) {
      if (!kept[c]) continue;
      const double* w = consumer.Block(r, c);
      consumer_weight.insert(consumer_weight.end(), w, w + consumer.block);
    }
  }
  consumer.weight = std::move(consumer_weight);
  consumer.inputs = consumer.convolutional ? channels : channels * pixels;

  // The layer keeps the kernels, biases and batch-norm state of its kept
  // channels (output channels are the outermost index).
  const int64_t kernel =
      layer.in_channels * layer.kernel_size * layer.kernel_size;
  auto keep = [&](std::vector<double>& values, int64_t block) {
    if (values.empty()) return;
    std::vector<double> kept_values;
    kept_values.reserve(static_cast<size_t>(channels * block));
    for (int64_t c = 0; c < old_channels; ++c) {
      if (kept[c]) {
        kept_values.insert(kept_values.end(), values.begin() + c * block,
                           values.begin() + (c + 1) * block);
      }
    }
    values = std::move(kept_values);
  };
  keep(layer.weight, kernel);
  for (std::vector<double>* v :
       {&layer.bias, &layer.bn_scale, &layer.bn_shift, &layer.bn_running_mean,
        &layer.bn_running_var}) {
    keep(*v, 1);
  }
  layer.out_channels = channels;
  return absl::OkStatus();
}

// REMOVE_LAYER of residual convolutional layer `l` of `stage`: the mean of
// what it added to its input, per channel and pixel over the rows of `x` (at
// most kMaxScoringImages of them), moves into the consumer's biases
// (FoldChannelMean).
absl::Status RemoveConvResidual(MlpParameters& stage, size_t l,
                                const Matrix& all_rows) {
  const Matrix x = ScoringRows(all_rows, stage);
  // A residual layer is never first, so layer l - 1 exists.
  EVONAS_ASSIGN_OR_RETURN(const TrunkMean before, MeanTrunkOutput(stage, l, x));
  EVONAS_ASSIGN_OR_RETURN(const TrunkMean after,
                          MeanTrunkOutput(stage, l + 1, x));
  if (before.values.size() != after.values.size()) {
    return absl::InvalidArgumentError(
        "the parent's residual layer changes the shape of its input");
  }
  ChannelConsumer consumer = ConsumerOf(stage, l, after.pixels);
  std::vector<double> added(static_cast<size_t>(after.pixels));
  for (int64_t c = 0; c < after.channels; ++c) {
    for (int64_t p = 0; p < after.pixels; ++p) {
      added[p] = after.values[c * after.pixels + p] -
                 before.values[c * after.pixels + p];
    }
    FoldChannelMean(consumer, c, added.data(), after.pixels);
  }
  stage.conv_layers.erase(stage.conv_layers.begin() + l);
  return absl::OkStatus();
}

// A new last stage for `genome`'s hidden layers: fresh hidden layers
// (initialisation.h) without SIREN's start — in the grown hartmann3 searches
// SIREN-started stages (omega_0 from the stage's genes) did worse on the
// holdout file in all three seeds (BENCHMARKS.md, "How ADD_STAGE starts its
// stage") — a zero output layer, the first stage's input standardisation,
// y_mean 0 and y_std the root mean square of the residual of `parent` on
// `sample` (1 where it is 0).
absl::StatusOr<MlpParameters> NewStage(const NetworkParameters& parent,
                                       const v1::Stage& genome,
                                       const Samples& sample,
                                       std::mt19937_64& rng) {
  const MlpParameters& first = parent.stages.front();
  const int64_t outputs = first.layers.back().outputs;
  const std::vector<double> predicted =
      Forward(parent, sample.x.data, sample.x.rows);
  if (static_cast<int64_t>(predicted.size()) != sample.y.rows * outputs) {
    return absl::InvalidArgumentError(
        "cannot evaluate the parent network on the sample rows");
  }
  MlpParameters stage;
  stage.x_mean = first.x_mean;
  stage.x_std = first.x_std;
  stage.y_mean.assign(static_cast<size_t>(outputs), 0.0);
  stage.y_std.assign(static_cast<size_t>(outputs), 1.0);
  for (int64_t o = 0; o < outputs; ++o) {
    double squares = 0.0;
    for (int64_t r = 0; r < sample.y.rows; ++r) {
      const double d =
          sample.y.data[r * outputs + o] - predicted[r * outputs + o];
      squares += d * d;
    }
    const double rms = std::sqrt(squares / static_cast<double>(sample.y.rows));
    if (!std::isfinite(rms)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the parent's residual on output ", o,
          " of the sample rows is not finite"));
    }
    if (rms > 0) stage.y_std[o] = rms;
  }
  int64_t inputs = first.layers.front().inputs;
  for (const v1::DenseLayer& layer : genome.hidden_layers()) {
    stage.layers.push_back(
        RandomLayer(inputs, layer, /*reads_inputs=*/stage.layers.empty(), rng));
    inputs = layer.width();
  }
  DenseParameters output;
  output.inputs = inputs;
  output.outputs = outputs;
  output.weight.assign(static_cast<size_t>(inputs * outputs), 0.0);
  output.bias.assign(static_cast<size_t>(outputs), 0.0);
  stage.layers.push_back(std::move(output));
  return stage;
}

}  // namespace

bool IsFunctionPreserving(v1::MorphismKind kind) {
  return kind == v1::MORPHISM_KIND_CONTINUE ||
         kind == v1::MORPHISM_KIND_WIDEN || kind == v1::MORPHISM_KIND_DEEPEN ||
         kind == v1::MORPHISM_KIND_ADD_STAGE;
}

absl::Status CheckMorphism(const v1::Genome& parent, const v1::Genome& child,
                           const v1::Morphism& morphism) {
  if (morphism.conv()) {
    EVONAS_RETURN_IF_ERROR(CheckConvMorphism(parent, child, morphism));
    // The dense part stays as it is.
    v1::Morphism same = morphism;
    same.set_kind(v1::MORPHISM_KIND_CONTINUE);
    same.set_conv(false);
    same.set_layer(0);
    v1::Genome parent_dense = parent, child_dense = child;
    parent_dense.clear_conv_layers();
    child_dense.clear_conv_layers();
    return CheckMorphism(parent_dense, child_dense, same);
  }
  if (parent.conv_layers_size() > 0 || child.conv_layers_size() > 0) {
    bool same_trunk = parent.conv_layers_size() == child.conv_layers_size();
    for (int i = 0; same_trunk && i < parent.conv_layers_size(); ++i) {
      same_trunk = SameConvLayer(parent.conv_layers(i), child.conv_layers(i));
    }
    if (!same_trunk) {
      return absl::InvalidArgumentError(absl::StrCat(
          Site(morphism),
          ": a morphism of the dense layers (Morphism.conv false) leaves the "
          "convolutional layers unchanged but for dropout"));
    }
  }
  const std::vector<StageLayers> child_arch = Architecture(child);
  EVONAS_ASSIGN_OR_RETURN(
      const std::vector<StageLayers> expected,
      Morph(Architecture(parent), child_arch, morphism));
  const std::string context =
      absl::StrCat("the child genome is not the parent's with ",
                   Site(morphism), " applied: ");
  if (expected.size() != child_arch.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, "it has ", child_arch.size(),
                     " stages, expected ", expected.size()));
  }
  for (size_t s = 0; s < expected.size(); ++s) {
    if (expected[s].size() != child_arch[s].size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          context, "its stage ", s, " has ", child_arch[s].size(),
          " hidden layers, expected ", expected[s].size()));
    }
    for (size_t l = 0; l < expected[s].size(); ++l) {
      if (!SameLayer(expected[s][l], child_arch[s][l])) {
        return absl::InvalidArgumentError(absl::StrCat(
            context, "its stage ", s, " layer ", l, " is ",
            Describe(child_arch[s][l]), ", expected ",
            Describe(expected[s][l])));
      }
      if (expected[s][l].residual() &&
          (l == 0 || expected[s][l].width() != expected[s][l - 1].width())) {
        return absl::InvalidArgumentError(absl::StrCat(
            Site(morphism), " leaves residual layer ", l, " of stage ", s,
            l == 0 ? " first in its stage"
                   : " narrower or wider than its input"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckNetworkMatchesGenome(const NetworkParameters& network,
                                       const v1::Genome& genome) {
  EVONAS_RETURN_IF_ERROR(ValidateNetwork(network));
  const std::vector<ConvParameters>& trunk = network.stages[0].conv_layers;
  if (static_cast<int>(trunk.size()) != genome.conv_layers_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the network has ", trunk.size(),
                     " convolutional layers, the genome ",
                     genome.conv_layers_size()));
  }
  for (int i = 0; i < genome.conv_layers_size(); ++i) {
    const v1::ConvLayer& g = genome.conv_layers(i);
    const ConvParameters& c = trunk[i];
    if (c.out_channels != g.channels() || c.kernel_size != g.kernel_size() ||
        c.activation != g.activation() || c.pooling != g.pooling() ||
        c.residual != g.residual() || c.batch_norm != g.batch_norm()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "convolutional layer ", i,
          " of the network differs from the genome's (channels ",
          c.out_channels, " vs ", g.channels(), ", kernel ", c.kernel_size,
          " vs ", g.kernel_size(), ", or activation, pooling, residual or "
          "batch norm)"));
    }
  }
  const std::vector<StageLayers> arch = Architecture(genome);
  if (network.stages.size() != arch.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the network has ", network.stages.size(),
                     " stages, the genome ", arch.size()));
  }
  for (size_t s = 0; s < arch.size(); ++s) {
    const std::vector<DenseParameters>& layers = network.stages[s].layers;
    if (layers.size() != arch[s].size() + 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stage ", s, " of the network has ", layers.size() - 1,
          " hidden layers, the genome ", arch[s].size()));
    }
    for (size_t l = 0; l < arch[s].size(); ++l) {
      const DenseParameters& layer = layers[l];
      v1::DenseLayer actual;
      actual.set_width(static_cast<int32_t>(layer.outputs));
      actual.set_activation(layer.activation);
      actual.set_residual(layer.residual);
      actual.set_layer_norm(layer.layer_norm());
      if (layer.outputs != arch[s][l].width() ||
          !SameLayer(actual, arch[s][l])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "stage ", s, " layer ", l, " of the network is ",
            Describe(actual), ", the genome says ", Describe(arch[s][l])));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<NetworkParameters> ApplyMorphism(
    const v1::Genome& parent_genome, const NetworkParameters& parent,
    const v1::Morphism& morphism, const v1::Genome& child_genome,
    uint64_t seed, const Samples& sample) {
  EVONAS_RETURN_IF_ERROR(CheckMorphism(parent_genome, child_genome, morphism));
  if (absl::Status match = CheckNetworkMatchesGenome(parent, parent_genome);
      !match.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the parent's weights do not fit its genome: ", match.message()));
  }
  NetworkParameters child = parent;
  std::mt19937_64 rng(seed);
  const int s = morphism.stage();
  const size_t l = static_cast<size_t>(morphism.layer());
  const std::vector<StageLayers> child_arch = Architecture(child_genome);
  if (morphism.conv()) {
    std::vector<ConvParameters>& trunk = child.stages[0].conv_layers;
    if (morphism.kind() == v1::MORPHISM_KIND_WIDEN) {
      WidenConv(child.stages[0], l, child_genome.conv_layers(l).channels(),
                rng);
    } else if (morphism.kind() == v1::MORPHISM_KIND_NARROW) {
      EVONAS_RETURN_IF_ERROR(CheckSample(sample, parent, false));
      EVONAS_RETURN_IF_ERROR(NarrowConv(child.stages[0], l,
                                        child_genome.conv_layers(l).channels(),
                                        sample.x));
    } else if (morphism.kind() == v1::MORPHISM_KIND_REMOVE_LAYER) {
      EVONAS_RETURN_IF_ERROR(CheckSample(sample, parent, false));
      EVONAS_RETURN_IF_ERROR(RemoveConvResidual(child.stages[0], l, sample.x));
    } else {  // DEEPEN
      const v1::ConvLayer& g = child_genome.conv_layers(l);
      ConvParameters identity;
      identity.in_channels = identity.out_channels = g.channels();
      identity.kernel_size = g.kernel_size();
      identity.weight.assign(static_cast<size_t>(g.channels() * g.channels() *
                                                 g.kernel_size() *
                                                 g.kernel_size()),
                             0.0);
      identity.bias.assign(static_cast<size_t>(g.channels()), 0.0);
      identity.activation = g.activation();
      identity.residual = true;
      trunk.insert(trunk.begin() + l, std::move(identity));
    }
  }
  // Dropout is a training gene: the child's, whatever the parent used.
  for (size_t i = 0; i < child.stages[0].conv_layers.size(); ++i) {
    child.stages[0].conv_layers[i].dropout =
        child_genome.conv_layers(static_cast<int>(i)).dropout();
  }
  switch (morphism.conv() ? v1::MORPHISM_KIND_CONTINUE : morphism.kind()) {
    case v1::MORPHISM_KIND_CONTINUE:
      break;
    case v1::MORPHISM_KIND_WIDEN:
      Widen(child.stages[s], l, child_arch[s][l].width(), rng);
      break;
    case v1::MORPHISM_KIND_NARROW:
      EVONAS_RETURN_IF_ERROR(CheckSample(sample, parent, false));
      EVONAS_RETURN_IF_ERROR(
          Narrow(child.stages[s], l, child_arch[s][l].width(), sample.x));
      break;
    case v1::MORPHISM_KIND_DEEPEN: {
      DenseParameters identity;
      identity.inputs = identity.outputs = child_arch[s][l].width();
      identity.weight.assign(
          static_cast<size_t>(identity.inputs * identity.outputs), 0.0);
      identity.bias.assign(static_cast<size_t>(identity.outputs), 0.0);
      identity.activation = child_arch[s][l].activation();
      identity.residual = true;
      if (child_arch[s][l].layer_norm()) {
        // W and b are 0, so every row normalises to 0 and the shift, 0,
        // comes out: still the identity.
        StartLayerNorm(identity);
      }
      child.stages[s].layers.insert(child.stages[s].layers.begin() + l,
                                    std::move(identity));
      break;
    }
    case v1::MORPHISM_KIND_REMOVE_LAYER:
      EVONAS_RETURN_IF_ERROR(CheckSample(sample, parent, false));
      EVONAS_RETURN_IF_ERROR(RemoveResidual(child.stages[s], l, sample.x));
      break;
    case v1::MORPHISM_KIND_ADD_STAGE: {
      EVONAS_RETURN_IF_ERROR(CheckSample(sample, parent, true));
      EVONAS_ASSIGN_OR_RETURN(
          MlpParameters stage,
          NewStage(parent, child_genome.residual_stages(s - 1), sample, rng));
      child.stages.push_back(std::move(stage));
      break;
    }
    default:  // CheckMorphism refused it
      break;
  }
  if (absl::Status fits = CheckNetworkMatchesGenome(child, child_genome);
      !fits.ok()) {
    return absl::InternalError(absl::StrCat(
        Site(morphism), " gave weights that do not fit the child genome: ",
        fits.message()));
  }
  return child;
}

absl::StatusOr<double> MaxRelativeOutputDifference(const NetworkParameters& a,
                                                   const NetworkParameters& b,
                                                   const Matrix& x) {
  if (x.rows < 1) return 0.0;
  const std::vector<double> fa = Forward(a, x.data, x.rows);
  const std::vector<double> fb = Forward(b, x.data, x.rows);
  if (fa.empty() || fa.size() != fb.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot compare the networks on ", x.rows, " rows of ", x.cols,
        " inputs: they give ", fa.size(), " and ", fb.size(), " outputs"));
  }
  const int64_t outputs = static_cast<int64_t>(fa.size()) / x.rows;
  double largest = 0.0, difference = 0.0;
  for (size_t i = 0; i < fa.size(); ++i) {
    if (!std::isfinite(fa[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the reference network's output ", i % outputs, " on row ",
          i / outputs, " is ", fa[i]));
    }
    const double d = std::fabs(fb[i] - fa[i]);
    if (!std::isfinite(d)) return std::numeric_limits<double>::infinity();
    difference = std::max(difference, d);
    largest = std::max(largest, std::fabs(fa[i]));
  }
  return difference / (largest > 0 ? largest : 1.0);
}

}  // namespace evonas::model
