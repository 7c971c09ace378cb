#include "worker/latency_calibration.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/genome.h"
#include "common/latency_table.h"
#include "common/status_macros.h"
#include "worker/model/checkpoint.h"
#include "worker/model/mlp.h"
#include "worker/model/trainer.h"

namespace evonas::worker {
namespace {

constexpr int kCalibrationInputs = 8;
// Median of this many batch-1 calls per network (as the trainer's latency).
constexpr int kCalibrationRuns = 50;
constexpr int kCalibrationRounds = 3;

v1::Genome Chain(v1::Activation activation, int depth, int width) {
  v1::Genome genome;
  for (int i = 0; i < depth; ++i) {
    v1::DenseLayer* layer = genome.add_hidden_layers();
    layer->set_width(width);
    layer->set_activation(activation);
  }
  return genome;
}

// `depth` convolutional layers of `channels` (kernel 3, the first pooling)
// before one dense relu layer of 8.
v1::Genome ConvChain(v1::Activation activation, int depth, int channels) {
  v1::Genome genome = Chain(v1::ACTIVATION_RELU, 1, 8);
  for (int i = 0; i < depth; ++i) {
    v1::ConvLayer* layer = genome.add_conv_layers();
    layer->set_channels(channels);
    layer->set_kernel_size(3);
    layer->set_activation(activation);
    if (i == 0) layer->set_pooling(v1::POOLING_MAX);
  }
  return genome;
}

}  // namespace

absl::StatusOr<model::NetworkParameters> PlaceholderNetwork(
    const v1::Genome& genome, int64_t inputs, int64_t outputs,
    const ImageShape& image) {
  EVONAS_ASSIGN_OR_RETURN(
      model::NetworkParameters network,
      model::FromNetworkWeights(ZeroWeights(genome, inputs, outputs, image)));
  for (model::ConvParameters& conv : network.stages.front().conv_layers) {
    for (size_t i = 0; i < conv.weight.size(); ++i) {
      conv.weight[i] = 0.01 * static_cast<double>(i % 17) - 0.08;
    }
    conv.bias.assign(conv.bias.size(), 0.01);
  }
  // Computed in float32 when Train would export it so.
  const bool float32 = genome.conv_layers_size() == 0 &&
                       EffectivePrecision(genome) == v1::PRECISION_FLOAT32;
  // A float32 stage's numbers are float32 values.
  const auto value = [float32](double v) {
    return float32 ? static_cast<double>(static_cast<float>(v)) : v;
  };
  for (model::MlpParameters& stage : network.stages) {
    stage.float32 = float32;
    for (model::DenseParameters& layer : stage.layers) {
      for (size_t i = 0; i < layer.weight.size(); ++i) {
        layer.weight[i] = value(0.01 * static_cast<double>(i % 17) - 0.08);
      }
      layer.bias.assign(layer.bias.size(), value(0.01));
    }
  }
  return network;
}

std::string HardwareClass(absl::string_view cpuinfo, int threads) {
  std::string model = "unknown CPU";
  for (absl::string_view line : absl::StrSplit(cpuinfo, '\n')) {
    std::vector<absl::string_view> key_value =
        absl::StrSplit(line, absl::MaxSplits(':', 1));
    if (key_value.size() == 2 &&
        absl::StripAsciiWhitespace(key_value[0]) == "model name") {
      absl::string_view name = absl::StripAsciiWhitespace(key_value[1]);
      if (!name.empty()) model = std::string(name);
      break;
    }
  }
  std::string hardware_class = absl::StrCat(model, " x", threads);
  if (hardware_class.size() > kMaxHardwareClassLength) {
    hardware_class.resize(kMaxHardwareClassLength);
  }
  return hardware_class;
}

std::string LocalHardwareClass(int threads) {
  std::ifstream in("/proc/cpuinfo");
  std::stringstream text;
  text << in.rdbuf();
  return HardwareClass(text.str(), threads);
}

absl::StatusOr<v1::LatencyTable> CalibrateLatency(
    const std::string& hardware_class, int threads) {
  std::vector<NetworkTiming> timings;
  // The dense chains in float64 and again in float32, whose exported
  // models cast their inputs and outputs (LatencyTable.float32_layers).
  for (v1::Precision precision :
       {v1::PRECISION_FLOAT64, v1::PRECISION_FLOAT32}) {
    for (v1::Activation activation :
         {v1::ACTIVATION_TANH, v1::ACTIVATION_RELU, v1::ACTIVATION_SILU,
          v1::ACTIVATION_GELU, v1::ACTIVATION_SINE, v1::ACTIVATION_GAUSSIAN}) {
      for (int depth : {1, 3}) {
        for (int width : {8, 64, 256}) {
          for (int outputs : {1, 8}) {
            NetworkTiming& t = timings.emplace_back();
            t.genome = Chain(activation, depth, width);
            t.genome.set_precision(precision);
            t.inputs = kCalibrationInputs;
            t.outputs = outputs;
            t.seconds = INFINITY;
          }
        }
      }
    }
  }
  // Layer normalisation costs per neuron on top of its layer's model: tanh
  // chains with every layer normalised, at the dense chains' shapes.
  for (int depth : {1, 3}) {
    for (int width : {8, 64, 256}) {
      for (int outputs : {1, 8}) {
        NetworkTiming& t = timings.emplace_back();
        t.genome = Chain(v1::ACTIVATION_TANH, depth, width);
        for (v1::DenseLayer& layer : *t.genome.mutable_hidden_layers()) {
          layer.set_layer_norm(true);
        }
        t.inputs = kCalibrationInputs;
        t.outputs = outputs;
        t.seconds = INFINITY;
      }
    }
  }
  const v1::Activation all[] = {v1::ACTIVATION_TANH, v1::ACTIVATION_RELU,
                                v1::ACTIVATION_SILU, v1::ACTIVATION_GELU,
                                v1::ACTIVATION_SINE, v1::ACTIVATION_GAUSSIAN};
  for (v1::Activation activation : all) {
    for (int depth : {1, 2}) {
      for (int channels : {4, 16}) {
        // Two image sizes: a layer's fixed cost and its cost per pixel
        // (activation, pooling) would otherwise blur into one intercept.
        for (int side : {12, 24}) {
          NetworkTiming& t = timings.emplace_back();
          t.genome = ConvChain(activation, depth, channels);
          t.image = {side, side};
          t.inputs = side * side;
          t.outputs = 8;
          t.seconds = INFINITY;
        }
      }
    }
  }
  // Interference from other processes only ever adds time: the smallest of
  // a few medians, taken in separate rounds, is the hardware's own latency
  // (one burst of noise would otherwise skew a whole table for the
  // worker's lifetime).
  for (int round = 0; round < kCalibrationRounds; ++round) {
    for (NetworkTiming& t : timings) {
      EVONAS_ASSIGN_OR_RETURN(
          const model::NetworkParameters network,
          PlaceholderNetwork(t.genome, t.inputs, t.outputs, t.image));
      EVONAS_ASSIGN_OR_RETURN(
          const double seconds,
          model::MeasureLatency(network, threads, kCalibrationRuns));
      t.seconds = std::min(t.seconds, seconds);
    }
  }
  return FitLatencyTable(hardware_class, timings);
}

}  // namespace evonas::worker
