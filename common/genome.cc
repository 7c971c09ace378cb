#include "common/genome.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/saturating.h"
#include "common/status_macros.h"
#include "evonas/v1/types.pb.h"

namespace evonas {
namespace {

// `x` in scientific notation with up to four significant digits and no
// trailing zeros: 0.003 -> "3e-03", 0.0015 -> "1.5e-03".
std::string ShortScientific(double x) {
  std::string s = absl::StrFormat("%.3e", x);
  const size_t e = s.find('e');
  if (e == std::string::npos) return s;  // nan, inf
  size_t end = e;
  while (end > 0 && s[end - 1] == '0') --end;
  if (end > 0 && s[end - 1] == '.') --end;
  return s.substr(0, end) + s.substr(e);
}

// Checks one stage's hidden layers; `prefix` names the field, e.g.
// "residual_stages[0].".
absl::Status ValidateLayers(
    const google::protobuf::RepeatedPtrField<v1::DenseLayer>& layers,
    const std::string& prefix) {
  const int count = layers.size();
  if (count < 1 || count > kMaxHiddenLayers) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "hidden_layers must hold 1..", kMaxHiddenLayers,
                     " layers, got ", count));
  }
  for (int i = 0; i < count; ++i) {
    const v1::DenseLayer& layer = layers.Get(i);
    const std::string name = absl::StrCat(prefix, "hidden_layers[", i, "]");
    if (layer.width() < 1 || layer.width() > kMaxLayerWidth) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ".width must be in 1..", kMaxLayerWidth,
                       ", got ", layer.width()));
    }
    if (layer.activation() == v1::ACTIVATION_UNSPECIFIED) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ".activation must be specified"));
    }
    if (!v1::Activation_IsValid(layer.activation())) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ".activation ", static_cast<int>(layer.activation()),
          " is not a known activation"));
    }
    if (layer.residual() && i == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ".residual: the first hidden layer of a stage cannot be "
                "residual (its input is the network's input)"));
    }
    if (layer.residual() && layer.width() != layers.Get(i - 1).width()) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ".residual: a residual layer's width must equal the previous "
                "layer's width, ",
          layers.Get(i - 1).width(), ", got ", layer.width()));
    }
    if (layer.layer_norm() && layer.width() < 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(name,
                       ".layer_norm needs a width of at least 2 (one neuron "
                       "normalised by its own mean is always 0), got ",
                       layer.width()));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateConvLayers(const v1::Genome& genome) {
  const int count = genome.conv_layers_size();
  if (count > kMaxConvLayers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "conv_layers must hold 0..", kMaxConvLayers, " layers, got ", count));
  }
  if (count > 0 && genome.residual_stages_size() > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a genome with conv_layers cannot have residual_stages (got ",
        genome.residual_stages_size(),
        "): convolutional networks are single-stage"));
  }
  for (int i = 0; i < count; ++i) {
    const v1::ConvLayer& layer = genome.conv_layers(i);
    const std::string name = absl::StrCat("conv_layers[", i, "]");
    if (layer.channels() < 1 || layer.channels() > kMaxConvChannels) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ".channels must be in 1..", kMaxConvChannels,
                       ", got ", layer.channels()));
    }
    const int k = layer.kernel_size();
    if (k < 1 || k > kMaxConvKernel || k % 2 == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ".kernel_size must be 1, 3, 5 or 7, got ", k));
    }
    if (layer.activation() == v1::ACTIVATION_UNSPECIFIED ||
        !v1::Activation_IsValid(layer.activation())) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ".activation must be a known activation, got ",
                       static_cast<int>(layer.activation())));
    }
    if (!v1::Pooling_IsValid(layer.pooling())) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ".pooling ", static_cast<int>(layer.pooling()),
                       " is not a known pooling"));
    }
    const double dropout = layer.dropout();
    if (!(dropout >= 0 && dropout <= kMaxDropout)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ".dropout must be in [0, ", kMaxDropout,
                       "], got ", absl::StrFormat("%g", dropout)));
    }
    if (layer.residual()) {
      if (i == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, ".residual: the first convolutional layer cannot be "
                  "residual (its input is the one-channel image)"));
      }
      if (layer.channels() != genome.conv_layers(i - 1).channels()) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, ".residual: a residual layer's channels must equal the "
                  "previous layer's, ",
            genome.conv_layers(i - 1).channels(), ", got ",
            layer.channels()));
      }
      if (layer.pooling() != v1::POOLING_NONE) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, ".residual: a residual layer cannot pool (its output must "
                  "have its input's shape)"));
      }
    }
  }
  return absl::OkStatus();
}

int64_t ConvParameterCount(const v1::ConvLayer& layer, int64_t in) {
  const int64_t out = std::max(0, layer.channels());
  const int64_t k = std::max(0, layer.kernel_size());
  const int64_t weights = SaturatingMul(SaturatingMul(k, k), SaturatingMul(in, out));
  return SaturatingAdd(weights, layer.batch_norm() ? 3 * out : out);
}

absl::Status ValidateTraining(const v1::TrainingConfig& training,
                              const std::string& prefix) {
  const std::string t = prefix + "training.";
  const double lr = training.learning_rate();
  if (!(std::isfinite(lr) && lr > 0 && lr <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat(t, "learning_rate must be in (0, 1], got ",
                     absl::StrFormat("%g", lr)));
  }
  if (training.adam_steps() < 0 || training.adam_steps() > kMaxAdamSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat(t, "adam_steps must be in 0..", kMaxAdamSteps, ", got ",
                     training.adam_steps()));
  }
  if (training.lbfgs_steps() < 0 || training.lbfgs_steps() > kMaxLbfgsSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat(t, "lbfgs_steps must be in 0..", kMaxLbfgsSteps, ", got ",
                     training.lbfgs_steps()));
  }
  if (training.adam_steps() + training.lbfgs_steps() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        t, "adam_steps + ", t, "lbfgs_steps must be positive, got 0"));
  }
  if (training.batch_size() < 0 || training.batch_size() > kMaxBatchSize) {
    return absl::InvalidArgumentError(
        absl::StrCat(t, "batch_size must be in 0..", kMaxBatchSize,
                     " (0 = full batch), got ", training.batch_size()));
  }
  if (training.warmup_steps() < 0 ||
      training.warmup_steps() > training.adam_steps()) {
    return absl::InvalidArgumentError(
        absl::StrCat(t, "warmup_steps must be in 0..adam_steps (",
                     training.adam_steps(), "), got ",
                     training.warmup_steps()));
  }
  const double decay = training.weight_decay();
  if (!(decay >= 0 && decay <= kMaxWeightDecay)) {
    return absl::InvalidArgumentError(
        absl::StrCat(t, "weight_decay must be in [0, ", kMaxWeightDecay,
                     "], got ", absl::StrFormat("%g", decay)));
  }
  const double penalty = training.weight_penalty();
  if (!(penalty >= 0 && penalty <= kMaxWeightPenalty)) {
    return absl::InvalidArgumentError(
        absl::StrCat(t, "weight_penalty must be in [0, ", kMaxWeightPenalty,
                     "], got ", absl::StrFormat("%g", penalty)));
  }
  if (training.patience_steps() < 0 ||
      training.patience_steps() > kMaxPatienceSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat(t, "patience_steps must be in 0..", kMaxPatienceSteps,
                     ", got ", training.patience_steps()));
  }
  if (training.max_error_steps() < 0 ||
      training.max_error_steps() > kMaxMaxErrorSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat(t, "max_error_steps must be in 0..", kMaxMaxErrorSteps,
                     ", got ", training.max_error_steps()));
  }
  const int power = training.max_error_power();
  if (power != 0 && (power < kMinMaxErrorPower || power > kMaxMaxErrorPower ||
                     power % 2 != 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        t, "max_error_power must be 0 (default ", kDefaultMaxErrorPower,
        ") or an even number in ", kMinMaxErrorPower, "..", kMaxMaxErrorPower,
        ", got ", power));
  }
  if (training.max_error_rounds() < 0 ||
      training.max_error_rounds() > kMaxMaxErrorRounds) {
    return absl::InvalidArgumentError(
        absl::StrCat(t, "max_error_rounds must be in 0..", kMaxMaxErrorRounds,
                     ", got ", training.max_error_rounds()));
  }
  const double omega = training.siren_omega();
  if (!(omega >= 0 && omega <= kMaxSirenOmega)) {
    return absl::InvalidArgumentError(
        absl::StrCat(t, "siren_omega must be in [0, ", kMaxSirenOmega,
                     "] (0 = default 10), got ", absl::StrFormat("%g", omega)));
  }
  return absl::OkStatus();
}

int64_t StageParameterCount(
    const google::protobuf::RepeatedPtrField<v1::DenseLayer>& layers,
    int64_t inputs, int64_t outputs) {
  int64_t total = 0;
  int64_t in = inputs;
  for (const v1::DenseLayer& layer : layers) {
    const int64_t out = layer.width();
    total = SaturatingAdd(total, SaturatingAdd(SaturatingMul(in, out), out));
    if (layer.layer_norm()) total = SaturatingAdd(total, SaturatingMul(2, out));
    in = out;
  }
  // The implicit linear output layer.
  return SaturatingAdd(total,
                       SaturatingAdd(SaturatingMul(in, outputs), outputs));
}

std::string LayersKey(
    const google::protobuf::RepeatedPtrField<v1::DenseLayer>& layers) {
  std::string key = "L";
  for (int i = 0; i < layers.size(); ++i) {
    const v1::DenseLayer& layer = layers.Get(i);
    absl::StrAppend(&key, i == 0 ? "" : "-", layer.width(), ".",
                    static_cast<int>(layer.activation()),
                    layer.residual() ? "r" : "", layer.layer_norm() ? "n" : "");
  }
  return key;
}

// %a is exact and canonical for finite values; + 0.0 maps -0 to 0.
std::string ExactDouble(double x) { return absl::StrFormat("%a", x + 0.0); }

// The genes added after the first release appear only when set, so that
// older genomes keep their keys.
std::string TrainingKey(const v1::TrainingConfig& training) {
  std::string key = absl::StrCat(
      "|lr", ExactDouble(training.learning_rate()), "|a",
      training.adam_steps(), "|l", training.lbfgs_steps(), "|b",
      training.batch_size());
  if (training.warmup_steps() != 0) {
    absl::StrAppend(&key, "|w", training.warmup_steps());
  }
  if (training.weight_decay() != 0) {
    absl::StrAppend(&key, "|d", ExactDouble(training.weight_decay()));
  }
  if (training.patience_steps() != 0) {
    absl::StrAppend(&key, "|p", training.patience_steps());
  }
  if (training.max_error_steps() != 0) {
    absl::StrAppend(&key, "|m", training.max_error_steps());
  }
  if (training.max_error_power() != 0) {
    absl::StrAppend(&key, "|q", training.max_error_power());
  }
  if (training.siren_omega() != 0) {
    absl::StrAppend(&key, "|o", ExactDouble(training.siren_omega()));
  }
  if (training.weight_penalty() != 0) {
    absl::StrAppend(&key, "|g", ExactDouble(training.weight_penalty()));
  }
  if (training.max_error_rounds() > 1) {  // 0 and 1 both mean one round
    absl::StrAppend(&key, "|r", training.max_error_rounds());
  }
  return key;
}

std::string DenseLayersName(
    const google::protobuf::RepeatedPtrField<v1::DenseLayer>& layers) {
  std::string out;
  for (const v1::DenseLayer& layer : layers) {
    if (!out.empty()) out += '-';
    absl::StrAppend(&out, layer.width(), ActivationName(layer.activation()),
                    layer.residual() ? "+" : "",
                    layer.layer_norm() ? ".ln" : "");
  }
  if (out.empty()) out = "linear";
  return out;
}

std::string DescribeStage(std::string out, const v1::TrainingConfig& training) {
  absl::StrAppend(&out, " lr=", ShortScientific(training.learning_rate()),
                  " adam=", training.adam_steps(),
                  " lbfgs=", training.lbfgs_steps(), " batch=");
  if (training.batch_size() == 0) {
    out += "full";
  } else {
    absl::StrAppend(&out, training.batch_size());
  }
  if (training.warmup_steps() != 0) {
    absl::StrAppend(&out, " warmup=", training.warmup_steps());
  }
  if (training.weight_decay() != 0) {
    absl::StrAppend(&out, " wd=", ShortScientific(training.weight_decay()));
  }
  if (training.patience_steps() != 0) {
    absl::StrAppend(&out, " patience=", training.patience_steps());
  }
  if (training.max_error_steps() != 0) {
    absl::StrAppend(&out, " maxerr=", training.max_error_steps(), "^",
                    training.max_error_power() == 0
                        ? kDefaultMaxErrorPower
                        : training.max_error_power());
    if (training.max_error_rounds() > 1) {
      absl::StrAppend(&out, "x", training.max_error_rounds());
    }
  }
  if (training.siren_omega() != 0) {
    absl::StrAppend(&out, " omega=", ShortScientific(training.siren_omega()));
  }
  if (training.weight_penalty() != 0) {
    absl::StrAppend(&out, " l2=", ShortScientific(training.weight_penalty()));
  }
  return out;
}

absl::Status ValidatePrecision(const v1::Genome& genome) {
  switch (genome.precision()) {
    case v1::PRECISION_UNSPECIFIED:
      return absl::OkStatus();
    case v1::PRECISION_FLOAT64:
      if (genome.conv_layers_size() > 0) {
        return absl::InvalidArgumentError(
            "precision FLOAT64 with conv_layers: convolutional networks train "
            "in float32; leave precision unset or FLOAT32");
      }
      return absl::OkStatus();
    case v1::PRECISION_FLOAT32:
      if (genome.residual_stages_size() > 0) {
        return absl::InvalidArgumentError(
            "precision FLOAT32 with residual_stages: later stages fit "
            "residuals that float32 cannot resolve; use FLOAT64 or one stage");
      }
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("precision ", static_cast<int>(genome.precision()),
                       " is unknown; use FLOAT64 or FLOAT32"));
  }
}

}  // namespace

absl::Status ValidateGenome(const v1::Genome& genome) {
  EVONAS_RETURN_IF_ERROR(ValidateConvLayers(genome));
  EVONAS_RETURN_IF_ERROR(ValidateLayers(genome.hidden_layers(), ""));
  EVONAS_RETURN_IF_ERROR(ValidateTraining(genome.training(), ""));
  if (genome.conv_layers_size() > 0) {
    for (int i = 0; i < genome.hidden_layers_size(); ++i) {
      if (genome.hidden_layers(i).layer_norm()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "hidden_layers[", i,
            "].layer_norm: layer normalisation is for dense networks; a "
            "genome with conv_layers cannot have it (use "
            "ConvLayer.batch_norm)"));
      }
    }
  }
  if (genome.residual_stages_size() > kMaxResidualStages) {
    return absl::InvalidArgumentError(
        absl::StrCat("residual_stages must hold 0..", kMaxResidualStages,
                     " stages, got ", genome.residual_stages_size()));
  }
  for (int k = 0; k < genome.residual_stages_size(); ++k) {
    const v1::Stage& stage = genome.residual_stages(k);
    const std::string prefix = absl::StrCat("residual_stages[", k, "].");
    EVONAS_RETURN_IF_ERROR(ValidateLayers(stage.hidden_layers(), prefix));
    EVONAS_RETURN_IF_ERROR(ValidateTraining(stage.training(), prefix));
  }
  return ValidatePrecision(genome);
}

absl::Status ValidateGenomeForImage(const v1::Genome& genome, int64_t inputs,
                                    const ImageShape& image) {
  EVONAS_RETURN_IF_ERROR(ValidateGenome(genome));
  if (genome.conv_layers_size() == 0) return absl::OkStatus();
  if (image.empty()) {
    return absl::InvalidArgumentError(
        "conv_layers need an image data set (IDX); this data set is a table: "
        "search MLPs only (no convolutional layers)");
  }
  if (image.height * image.width != inputs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "conv_layers need every pixel of the ", image.height, " x ",
        image.width, " images as an input, in order; the experiment has ",
        inputs, " inputs"));
  }
  int pooling = 0;
  for (const v1::ConvLayer& layer : genome.conv_layers()) {
    if (layer.pooling() != v1::POOLING_NONE) ++pooling;
  }
  if (pooling > MaxPoolingLayers(image)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "conv_layers pool ", pooling, " times, but ", image.height, " x ",
        image.width, " images admit at most ", MaxPoolingLayers(image),
        " poolings (each halves both sides)"));
  }
  return absl::OkStatus();
}

ConvOutput ConvOutputShape(const v1::Genome& genome, const ImageShape& image) {
  return WalkConvLayers(genome, image, nullptr);
}

ConvOutput WalkConvLayers(
    const v1::Genome& genome, const ImageShape& image,
    const std::function<void(const v1::ConvLayer& layer,
                             const ConvOutput& input)>& visit) {
  ConvOutput shape{1, std::max<int64_t>(0, image.height),
                   std::max<int64_t>(0, image.width)};
  for (const v1::ConvLayer& layer : genome.conv_layers()) {
    if (visit) visit(layer, shape);
    shape.channels = std::max(0, layer.channels());
    if (layer.pooling() != v1::POOLING_NONE) {
      shape.height /= 2;
      shape.width /= 2;
    }
  }
  return shape;
}

int MaxPoolingLayers(const ImageShape& image) {
  int count = 0;
  for (int64_t side = std::min(image.height, image.width); side >= 2;
       side /= 2) {
    ++count;
  }
  return count;
}

int64_t ParameterCount(const v1::Genome& genome, int64_t inputs,
                       int64_t outputs, const ImageShape& image) {
  int64_t total = 0;
  if (genome.conv_layers_size() > 0) {
    int64_t channels = 1;
    for (const v1::ConvLayer& layer : genome.conv_layers()) {
      total = SaturatingAdd(total, ConvParameterCount(layer, channels));
      channels = std::max(0, layer.channels());
    }
    const ConvOutput shape = ConvOutputShape(genome, image);
    inputs = SaturatingMul(std::max<int64_t>(0, shape.channels),
                           SaturatingMul(std::max<int64_t>(0, shape.height),
                                         std::max<int64_t>(0, shape.width)));
  }
  total = SaturatingAdd(
      total, StageParameterCount(genome.hidden_layers(), inputs, outputs));
  for (const v1::Stage& stage : genome.residual_stages()) {
    total = SaturatingAdd(
        total, StageParameterCount(stage.hidden_layers(), inputs, outputs));
  }
  return total;
}

int StageCount(const v1::Genome& genome) {
  return 1 + genome.residual_stages_size();
}

std::string GenomeKey(const v1::Genome& genome) {
  std::string key = absl::StrCat(LayersKey(genome.hidden_layers()),
                                 TrainingKey(genome.training()));
  // Appended only when present, so that MLP genomes keep their keys.
  for (const v1::ConvLayer& layer : genome.conv_layers()) {
    absl::StrAppend(&key, "|C", layer.channels(), "k", layer.kernel_size(),
                    ".", static_cast<int>(layer.activation()), "p",
                    static_cast<int>(layer.pooling()),
                    layer.batch_norm() ? "n" : "", layer.residual() ? "r" : "",
                    layer.dropout() != 0 ? "d" : "",
                    layer.dropout() != 0 ? ExactDouble(layer.dropout()) : "");
  }
  for (const v1::Stage& stage : genome.residual_stages()) {
    absl::StrAppend(&key, "|S", LayersKey(stage.hidden_layers()),
                    TrainingKey(stage.training()));
  }
  if (genome.precision() != v1::PRECISION_UNSPECIFIED) {
    absl::StrAppend(&key, "|P", static_cast<int>(genome.precision()));
  }
  return key;
}

v1::Precision EffectivePrecision(const v1::Genome& genome) {
  if (genome.precision() != v1::PRECISION_UNSPECIFIED) {
    return genome.precision();
  }
  return genome.conv_layers_size() > 0 ? v1::PRECISION_FLOAT32
                                       : v1::PRECISION_FLOAT64;
}

std::string DescribeGenome(const v1::Genome& genome) {
  std::string out = DescribeStage(ArchitectureName(genome), genome.training());
  for (int k = 0; k < genome.residual_stages_size(); ++k) {
    const v1::Stage& stage = genome.residual_stages(k);
    absl::StrAppend(&out, " | stage", k + 2, ": ",
                    DescribeStage(DenseLayersName(stage.hidden_layers()),
                                  stage.training()));
  }
  // Convolutional networks are always float32: no need to say so.
  if (genome.conv_layers_size() == 0 &&
      EffectivePrecision(genome) == v1::PRECISION_FLOAT32) {
    out += " f32";
  }
  return out;
}

std::string ArchitectureName(const v1::Genome& genome) {
  std::string conv;
  for (const v1::ConvLayer& layer : genome.conv_layers()) {
    if (!conv.empty()) conv += '-';
    absl::StrAppend(&conv, "c", layer.channels(), "k", layer.kernel_size(),
                    ActivationName(layer.activation()),
                    layer.residual() ? "+" : "", layer.batch_norm() ? ".bn" : "");
    if (layer.pooling() == v1::POOLING_MAX) conv += ".max";
    if (layer.pooling() == v1::POOLING_AVERAGE) conv += ".avg";
    if (layer.dropout() != 0) {
      absl::StrAppend(&conv, ".d", absl::StrFormat("%g", layer.dropout()));
    }
  }
  const std::string dense = DenseLayersName(genome.hidden_layers());
  return conv.empty() ? dense : absl::StrCat(conv, " > ", dense);
}

std::string ActivationName(v1::Activation activation) {
  switch (activation) {
    case v1::ACTIVATION_TANH:
      return "tanh";
    case v1::ACTIVATION_RELU:
      return "relu";
    case v1::ACTIVATION_SILU:
      return "silu";
    case v1::ACTIVATION_GELU:
      return "gelu";
    case v1::ACTIVATION_SINE:
      return "sine";
    case v1::ACTIVATION_GAUSSIAN:
      return "gaussian";
    case v1::ACTIVATION_UNSPECIFIED:
      return "unspecified";
    default:
      return absl::StrCat("activation", static_cast<int>(activation));
  }
}

v1::NetworkWeights ZeroWeights(const v1::Genome& genome, int64_t inputs,
                               int64_t outputs, const ImageShape& image) {
  v1::NetworkWeights weights;
  // The dense part's inputs: the flattened trunk output of a convolutional
  // genome, else the network's inputs.
  const int64_t dense_inputs =
      genome.conv_layers_size() > 0 ? ConvOutputShape(genome, image).size()
                                    : inputs;
  auto add_stage = [&](const auto& hidden_layers) {
    v1::StageWeights* stage = weights.add_stages();
    for (int64_t i = 0; i < inputs; ++i) {
      stage->add_x_mean(0);
      stage->add_x_std(1);
    }
    for (int64_t o = 0; o < outputs; ++o) {
      stage->add_y_mean(0);
      stage->add_y_std(1);
    }
    int64_t width = dense_inputs;
    auto add_layer = [&](int64_t out, v1::Activation activation, bool residual,
                         bool layer_norm) {
      v1::LayerWeights* layer = stage->add_layers();
      layer->set_inputs(width);
      layer->set_outputs(out);
      layer->mutable_weight()->Resize(static_cast<int>(width * out), 0.0);
      layer->mutable_bias()->Resize(static_cast<int>(out), 0.0);
      layer->set_activation(activation);
      layer->set_residual(residual);
      if (layer_norm) {
        layer->mutable_ln_scale()->Resize(static_cast<int>(out), 1.0);
        layer->mutable_ln_shift()->Resize(static_cast<int>(out), 0.0);
      }
      width = out;
    };
    for (const v1::DenseLayer& layer : hidden_layers) {
      add_layer(layer.width(), layer.activation(), layer.residual(),
                layer.layer_norm());
    }
    add_layer(outputs, v1::ACTIVATION_UNSPECIFIED, false, false);
  };
  add_stage(genome.hidden_layers());
  if (genome.conv_layers_size() > 0) {
    v1::StageWeights* stage = weights.mutable_stages(0);
    stage->set_image_height(image.height);
    stage->set_image_width(image.width);
    int64_t channels = 1;
    for (const v1::ConvLayer& layer : genome.conv_layers()) {
      v1::ConvLayerWeights* conv = stage->add_conv_layers();
      const int64_t out = layer.channels();
      const int64_t k = layer.kernel_size();
      conv->set_in_channels(channels);
      conv->set_out_channels(out);
      conv->set_kernel_size(k);
      conv->mutable_weight()->Resize(static_cast<int>(out * channels * k * k),
                                     0.0);
      conv->mutable_bias()->Resize(static_cast<int>(out), 0.0);
      conv->set_activation(layer.activation());
      conv->set_pooling(layer.pooling());
      conv->set_residual(layer.residual());
      conv->set_dropout(layer.dropout());
      conv->set_batch_norm(layer.batch_norm());
      if (layer.batch_norm()) {
        conv->mutable_bn_scale()->Resize(static_cast<int>(out), 1.0);
        conv->mutable_bn_shift()->Resize(static_cast<int>(out), 0.0);
        conv->mutable_bn_running_mean()->Resize(static_cast<int>(out), 0.0);
        conv->mutable_bn_running_var()->Resize(static_cast<int>(out), 1.0);
      }
      channels = out;
    }
  }
  for (const v1::Stage& stage : genome.residual_stages()) {
    add_stage(stage.hidden_layers());
  }
  return weights;
}

}  // namespace evonas
