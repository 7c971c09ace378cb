#ifndef EVONAS_COMMON_GENOME_H_
#define EVONAS_COMMON_GENOME_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "evonas/v1/types.pb.h"

namespace evonas {

// Largest values a genome may hold; ValidateGenome enforces them.
inline constexpr int kMaxHiddenLayers = 32;
inline constexpr int kMaxLayerWidth = 4096;
inline constexpr int kMaxAdamSteps = 1000000;
inline constexpr int kMaxLbfgsSteps = 100000;
inline constexpr int kMaxBatchSize = 1000000;
inline constexpr int kMaxResidualStages = 7;
inline constexpr double kMaxWeightDecay = 0.1;
inline constexpr double kMaxWeightPenalty = 0.01;
inline constexpr int kMaxPatienceSteps = 1000000;
inline constexpr int kMaxMaxErrorSteps = 100000;
inline constexpr int kMinMaxErrorPower = 4;
inline constexpr int kMaxMaxErrorPower = 64;
inline constexpr int kMaxMaxErrorRounds = 20;
// TrainingConfig.siren_omega's bound: keeps the first sine layer from
// aliasing every row.
inline constexpr double kMaxSirenOmega = 100;
// The exponent of the max-error phase when TrainingConfig.max_error_power
// is 0.
inline constexpr int kDefaultMaxErrorPower = 8;
inline constexpr int kMaxConvLayers = 16;
inline constexpr int kMaxConvChannels = 512;
inline constexpr int kMaxConvKernel = 7;
inline constexpr double kMaxDropout = 0.5;

// Height and width of an image input (v1::Dataset.image_shape); 0 x 0 for
// tables.
struct ImageShape {
  int64_t height = 0;
  int64_t width = 0;
  bool empty() const { return height == 0 && width == 0; }
};

// What the convolutional trunk of a genome hands to its first dense layer.
struct ConvOutput {
  int64_t channels = 0;
  int64_t height = 0;
  int64_t width = 0;
  int64_t size() const { return channels * height * width; }
};

// OK when a worker can build and train `genome` (every stage: 1..32 hidden
// layers, residual layers only after a layer of the same width, training
// genes within the ranges of the proto comments; 0..7 residual stages;
// 0..16 convolutional layers as types.proto's ConvLayer describes them, and
// then no residual stages; a precision that fits the network, as
// Genome.precision says); otherwise InvalidArgument naming the offending
// field, e.g. "residual_stages[1].hidden_layers[0].residual ...". Whether
// the convolutional layers fit an image is ValidateGenomeForImage's.
absl::Status ValidateGenome(const v1::Genome& genome);

// ValidateGenome, and for a genome with convolutional layers: the inputs
// are an image (`image` not empty, `inputs` == height * width) whose sides
// stay at least 1 through every pooling. InvalidArgument otherwise, saying
// what to change.
absl::Status ValidateGenomeForImage(const v1::Genome& genome, int64_t inputs,
                                    const ImageShape& image);

// The shape of the convolutional trunk's output on `image`: {1, height,
// width} without convolutional layers; pooling halves each side, rounding
// down. Does not validate; negative channels count as 0.
ConvOutput ConvOutputShape(const v1::Genome& genome, const ImageShape& image);

// Walks the convolutional trunk of `genome` on `image` as the network runs
// it: calls `visit(layer, input)` for every layer in order, `input` the
// shape the layer sees (channels 1 for the first; height and width before
// its own pooling). Returns ConvOutputShape. The one place that knows how
// shapes flow through a trunk, for the counts and estimates built on it.
ConvOutput WalkConvLayers(
    const v1::Genome& genome, const ImageShape& image,
    const std::function<void(const v1::ConvLayer& layer,
                             const ConvOutput& input)>& visit);

// How many pooling layers an image admits: each halves both sides (rounding
// down), which must stay at least 1. 0 for an empty image.
int MaxPoolingLayers(const ImageShape& image);

// Trainable parameters of the network `genome` describes with `inputs`
// inputs and `outputs` outputs: weights and biases of every hidden layer and
// of the implicit linear output layer, summed over all stages; per
// convolutional layer k * k * in * out weights, out biases and, with batch
// normalisation, 2 * out scales and shifts (the running statistics are not
// trained). The first dense layer of a convolutional genome takes
// ConvOutputShape(genome, image).size() inputs. Does not validate
// `genome`; a count beyond int64 saturates at its maximum.
int64_t ParameterCount(const v1::Genome& genome, int64_t inputs,
                       int64_t outputs, const ImageShape& image = {});

// Stages of `genome`: 1 + residual_stages_size().
int StageCount(const v1::Genome& genome);

// The type `genome`'s network is trained and exported in: its precision, or
// for UNSPECIFIED float32 with convolutional layers and float64 without
// (types.proto, Genome.precision). Does not validate `genome`.
v1::Precision EffectivePrecision(const v1::Genome& genome);

// Canonical key of everything that determines how `genome` is built and
// trained: two genomes get the same key exactly when every field is equal
// (floating-point fields compared bit for bit, after mapping -0 to 0).
// Independent of protobuf's wire encoding and of unknown fields. Readable,
// e.g. "L64.1-32.3|lr0x1.89374bc6a7efap-9|a2000|l200|b0". Every field of
// Genome must appear in it; a new field must be added here.
std::string GenomeKey(const v1::Genome& genome);

// The network of `genome` with every weight and bias 0 and identity
// standardisation (means 0, deviations 1), every stage and residual flag
// as the genome says: the shape a trained network of `inputs` inputs and
// `outputs` outputs has. Convolutional layers get identity batch
// normalisation (scale 1, shift 0, running mean 0, variance 1). Does not
// validate `genome`.
v1::NetworkWeights ZeroWeights(const v1::Genome& genome, int64_t inputs,
                               int64_t outputs, const ImageShape& image = {});

// Short human-readable description, e.g. "64tanh-32silu lr=3e-03 adam=2000
// lbfgs=200 batch=full"; a residual layer reads "32tanh+", training genes
// other than their defaults follow ("warmup=100 wd=1e-04 patience=500
// maxerr=300^8"), then each further stage as " | stage2: ...", and " f32"
// for a dense network in float32. Convolutional layers come first, as
// ArchitectureName writes them.
std::string DescribeGenome(const v1::Genome& genome);

// The network part of DescribeGenome's first stage: hidden layers as
// "64tanh-32silu" ("32tanh+" residual), preceded by the convolutional layers
// and " > " when there are any, each "c16k3relu" (16 channels, 3 x 3
// kernel) with "+" when residual, then ".bn", ".max" or ".avg" (pooling)
// and ".d0.25" (dropout) where they apply: "c16k3relu.bn.max-c16k3relu+ >
// 64relu".
std::string ArchitectureName(const v1::Genome& genome);

// Name of an activation as used in descriptions and the CLI: "tanh", "relu",
// "silu", "gelu", "sine"; "unspecified" for 0 and "activationN" for an
// unknown value N.
std::string ActivationName(v1::Activation activation);

}  // namespace evonas

#endif  // EVONAS_COMMON_GENOME_H_
