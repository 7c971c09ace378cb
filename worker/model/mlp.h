#ifndef EVONAS_WORKER_MODEL_MLP_H_
#define EVONAS_WORKER_MODEL_MLP_H_

// A trained MLP as plain numbers: what the exporters (TorchScript, ONNX), the
// quantiser and the reference forward pass need. No LibTorch here.

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "evonas/v1/types.pb.h"

namespace evonas::model {

// One affine layer y = activation(W x + b), or y = x + activation(W x + b)
// for a residual layer.
struct DenseParameters {
  int64_t inputs = 0;
  int64_t outputs = 0;
  std::vector<double> weight;  // outputs x inputs, row-major (PyTorch layout)
  std::vector<double> bias;    // outputs
  // ACTIVATION_UNSPECIFIED for the final (linear) layer.
  v1::Activation activation = v1::ACTIVATION_UNSPECIFIED;
  // Adds the layer's input to its output; needs inputs == outputs and is
  // never the first or the output layer.
  bool residual = false;
  // Layer normalisation before the activation (v1::DenseLayer.layer_norm):
  // u = (z - mean(z)) / sqrt(var(z) + kLayerNormEpsilon) * ln_scale +
  // ln_shift per row, z = W x + b. Both empty without it; `outputs` values
  // each with it (hidden layers of 2 or more outputs only).
  std::vector<double> ln_scale, ln_shift;
  bool layer_norm() const { return !ln_scale.empty(); }
};

// PyTorch's default for nn.LayerNorm, and the one evonas's layers use.
inline constexpr double kLayerNormEpsilon = 1e-5;

// One layer of a convolutional trunk (v1::ConvLayer): a stride-1,
// zero-"same"-padded convolution, batch normalisation when batch_norm, the
// activation, then either the residual addition of the layer's input or the
// 2x2 pooling. Dropout only acts in training.
struct ConvParameters {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t kernel_size = 0;     // odd
  std::vector<double> weight;  // out x in x k x k, row-major (PyTorch layout)
  std::vector<double> bias;    // out_channels
  v1::Activation activation = v1::ACTIVATION_RELU;
  v1::Pooling pooling = v1::POOLING_NONE;
  bool residual = false;  // needs in == out channels and no pooling
  double dropout = 0;
  // Batch normalisation (eps 1e-5): (conv - running_mean) /
  // sqrt(running_var + 1e-5) * scale + shift, per output channel; the four
  // vectors are empty without it.
  bool batch_norm = false;
  std::vector<double> bn_scale, bn_shift, bn_running_mean, bn_running_var;
};

// One stage (or a whole single-stage network) in raw units: x_std = (x -
// x_mean) / x_std, then the convolutional layers if any (on x_std viewed as
// one channel of image_height x image_width; their output is flattened
// channel-major into the first dense layer), then the dense layers, then
// y = out * y_std + y_mean.
struct MlpParameters {
  std::vector<double> x_mean, x_std;  // one per input
  std::vector<double> y_mean, y_std;  // one per output
  std::vector<ConvParameters> conv_layers;
  int64_t image_height = 0;  // with conv_layers: inputs = height * width
  int64_t image_width = 0;
  std::vector<DenseParameters> layers;
  // The dense layers compute in float32 (a FLOAT32 genome,
  // Genome.precision): the exported model rounds the standardised inputs and
  // the weights to float32 and the output layer's result back to float64.
  // The numbers here are the float32 weights, exactly.
  bool float32 = false;
};

// Whether the exported model of `stage` computes in float32 between its
// float64 standardisation and output: a float32 stage, or one with
// convolutional layers (which always is).
inline bool ComputesInFloat32(const MlpParameters& stage) {
  return stage.float32 || !stage.conv_layers.empty();
}

// A multi-stage network (Wang & Lai 2023): its output is the sum of its
// stages' outputs, each stage with its own standardisation. Stages after the
// first are trained on the residual of the stages before them.
struct NetworkParameters {
  std::vector<MlpParameters> stages;
};

// OK when `parameters` describes a network Forward and the exporters can
// run: at least one layer, each layer's inputs equal to the previous one's
// outputs, weight and bias sizes matching, one mean and deviation per input
// of the first layer and per output of the last, a known activation on every
// layer but the last and none on the last, residual only on hidden layers
// after the first whose inputs equal their outputs. With conv_layers:
// image_height * image_width inputs, channels chained from 1, odd kernels
// 1..7, weight and bias sizes matching, batch-norm vectors exactly when
// batch_norm, dropout in [0, 0.5], residual only after the first layer with
// equal channels and no pooling, poolings that keep each side at least 1,
// and the first dense layer's inputs equal to channels * height * width of
// the trunk's output (image_height and image_width are ignored without
// conv_layers). Otherwise InvalidArgument naming the field. Does not look
// at the values (NaN weights are "valid"). Layer normalisation: ln_scale and
// ln_shift both of `outputs` values, on hidden layers of 2 or more outputs.
absl::Status ValidateMlp(const MlpParameters& parameters);

// OK when `network` has at least one stage, every stage passes ValidateMlp
// and all stages have the first stage's inputs and outputs. Otherwise
// InvalidArgument naming the field ("stages[1].layers[0].bias ...").
absl::Status ValidateNetwork(const NetworkParameters& network);

// The reference forward pass in plain float64 C++: `x` holds `rows` rows of
// raw inputs (row-major, rows x inputs); returns rows x outputs raw outputs.
// Computes what the trainer's TorchScript model computes, in the same order:
// (x - x_mean) / x_std, per layer activation(W h + b) with tanh, relu,
// silu(h) = h / (1 + exp(-h)), gelu(h) = (h / 2) (1 + erf(h / sqrt(2))) and
// sin (plus h for a residual layer), a linear last layer, then
// out * y_std + y_mean; a convolutional trunk first runs on the standardised
// image: zero-padded convolution, batch normalisation with the running
// statistics, the activation, the residual addition or 2x2 pooling, then
// the channel-major flatten. Results agree with LibTorch to rounding
// (summation order differs; the trainer's convolutional models compute in
// float32). Returns an empty vector
// when ValidateMlp fails or x.size() != rows * inputs. Thread-safe.
std::vector<double> Forward(const MlpParameters& parameters,
                            const std::vector<double>& x, int64_t rows);

// The network's inputs: the pixels of the image for a convolutional
// network, the first dense layer's inputs otherwise. Needs a valid `p`.
int64_t InputCount(const MlpParameters& p);

// The output of the first `layers` convolutional layers of `stage` (all of
// them when `layers` is larger) on `rows` rows of raw inputs `x`: the
// standardised image through those layers as Forward runs them, rows x
// (channels x height' x width'), channel-major per row. Empty when
// ValidateMlp fails or x has the wrong size. Thread-safe.
std::vector<double> ConvTrunkForward(const MlpParameters& stage,
                                     const std::vector<double>& x, int64_t rows,
                                     size_t layers);

// The staged network's output: the stages' outputs (Forward of each) summed
// in stage order, ((f_0 + f_1) + f_2) + ..., as the exported models sum
// them. So a stage that outputs exactly 0 leaves the sum bit-identical.
// Empty when ValidateNetwork fails or x has the wrong size. Thread-safe.
std::vector<double> Forward(const NetworkParameters& network,
                            const std::vector<double>& x, int64_t rows);

// Trainable parameters: every weight and bias (the standardisation constants
// are not counted), as v1::Metrics.parameter_count and evonas::ParameterCount
// of the genome count them.
int64_t ParameterCount(const MlpParameters& parameters);
// The sum over all stages.
int64_t ParameterCount(const NetworkParameters& network);

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_MLP_H_
