#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/genome.h"
#include "common/metrics.h"
#include "evonas/v1/types.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "onnx/checker.h"
#include "onnx/onnx_pb.h"
#include "worker/model/checkpoint.h"
#include "worker/model/mlp.h"
#include "worker/model/model_card.h"
#include "worker/model/onnx_export.h"
#include "worker/model/quantize.h"

namespace evonas::model {
namespace {

using ::testing::HasSubstr;

constexpr char kPython[] = "/usr/bin/python3";

// --- Helpers ----------------------------------------------------------------

using Hidden = std::vector<std::pair<int, v1::Activation>>;

// A network with Glorot-uniform weights (times `gain`), small random biases and
// standardisation constants far from 0 and 1, drawn from `seed`.
MlpParameters RandomMlp(int64_t inputs, const Hidden& hidden, int64_t outputs,
                        uint64_t seed, double gain = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  MlpParameters p;
  for (int64_t i = 0; i < inputs; ++i) {
    p.x_mean.push_back(3.0 * u(rng));
    p.x_std.push_back(1.25 + u(rng));
  }
  for (int64_t j = 0; j < outputs; ++j) {
    p.y_mean.push_back(5.0 * u(rng));
    p.y_std.push_back(std::pow(10.0, u(rng)));
  }
  int64_t fan_in = inputs;
  for (size_t i = 0; i <= hidden.size(); ++i) {
    const bool last = i == hidden.size();
    DenseParameters layer;
    layer.inputs = fan_in;
    layer.outputs = last ? outputs : hidden[i].first;
    layer.activation = last ? v1::ACTIVATION_UNSPECIFIED : hidden[i].second;
    const double bound = gain * std::sqrt(6.0 / (layer.inputs + layer.outputs));
    for (int64_t k = 0; k < layer.inputs * layer.outputs; ++k) {
      layer.weight.push_back(bound * u(rng));
    }
    for (int64_t k = 0; k < layer.outputs; ++k) {
      layer.bias.push_back(0.1 * u(rng));
    }
    fan_in = layer.outputs;
    p.layers.push_back(std::move(layer));
  }
  return p;
}

// Every activation, 3 inputs, 2 outputs.
const Hidden& MixedHidden() {
  static const Hidden* hidden =
      new Hidden{{16, v1::ACTIVATION_TANH}, {16, v1::ACTIVATION_SILU},
                 {12, v1::ACTIVATION_GELU}, {8, v1::ACTIVATION_SINE},
                 {8, v1::ACTIVATION_RELU},  {8, v1::ACTIVATION_GAUSSIAN}};
  return *hidden;
}

// `rows` rows of raw inputs around the network's standardisation.
std::vector<double> RandomInputs(const MlpParameters& p, int64_t rows,
                                 uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n(0.0, 1.0);
  std::vector<double> x;
  for (int64_t r = 0; r < rows; ++r) {
    for (size_t j = 0; j < p.x_mean.size(); ++j) {
      x.push_back(p.x_mean[j] + p.x_std[j] * n(rng));
    }
  }
  return x;
}

// One input, one hidden neuron with `activation` and identity weights, one
// linear output: Forward computes activation(x).
MlpParameters SingleNeuron(v1::Activation activation) {
  MlpParameters p;
  p.x_mean = {0.0};
  p.x_std = {1.0};
  p.y_mean = {0.0};
  p.y_std = {1.0};
  p.layers.push_back({1, 1, {1.0}, {0.0}, activation});
  p.layers.push_back({1, 1, {1.0}, {0.0}, v1::ACTIVATION_UNSPECIFIED});
  return p;
}

// `p` as a single-stage network.
NetworkParameters Net(const MlpParameters& p) {
  NetworkParameters n;
  n.stages.push_back(p);
  return n;
}

// `stages` random stages of the same shape; later stages have y_mean 0 and
// output scales a tenth of the previous stage's, as residual stages do, and
// every hidden layer after the first whose width equals its input's is
// residual.
NetworkParameters RandomNetwork(int64_t inputs, const Hidden& hidden,
                                int64_t outputs, int stages, uint64_t seed,
                                double gain = 1.0) {
  NetworkParameters n;
  for (int k = 0; k < stages; ++k) {
    MlpParameters p = RandomMlp(inputs, hidden, outputs, seed + k, gain);
    if (k > 0) {
      p.x_mean = n.stages[0].x_mean;
      p.x_std = n.stages[0].x_std;
      for (size_t j = 0; j < p.y_std.size(); ++j) {
        p.y_mean[j] = 0;
        p.y_std[j] = n.stages[k - 1].y_std[j] / 10;
      }
    }
    if (stages > 1) {
      for (size_t i = 1; i + 1 < p.layers.size(); ++i) {
        p.layers[i].residual = p.layers[i].inputs == p.layers[i].outputs;
      }
    }
    n.stages.push_back(std::move(p));
  }
  return n;
}

// Layer-normalises every hidden layer of `network`, with scales in
// [0.5, 1.5] and shifts in [-0.5, 0.5].
void AddLayerNorms(NetworkParameters& network, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-0.5, 0.5);
  for (MlpParameters& stage : network.stages) {
    for (size_t i = 0; i + 1 < stage.layers.size(); ++i) {
      DenseParameters& layer = stage.layers[i];
      layer.ln_scale.clear();
      layer.ln_shift.clear();
      for (int64_t o = 0; o < layer.outputs; ++o) {
        layer.ln_scale.push_back(1.0 + u(rng));
        layer.ln_shift.push_back(u(rng));
      }
    }
  }
}

v1::Genome GenomeOf(const Hidden& hidden) {
  v1::Genome g;
  for (const auto& [width, activation] : hidden) {
    v1::DenseLayer* layer = g.add_hidden_layers();
    layer->set_width(width);
    layer->set_activation(activation);
  }
  g.mutable_training()->set_learning_rate(3e-3);
  g.mutable_training()->set_adam_steps(1000);
  g.mutable_training()->set_lbfgs_steps(200);
  return g;
}

// A fresh directory under the test's temporary directory; removed by the
// destructor.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = testing::TempDir() + "/export_test_XXXXXX";
    path_ = mkdtemp(pattern.data()) != nullptr ? pattern : "";
  }
  ~ScratchDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string DoublesBytes(const std::vector<double>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()),
                     values.size() * sizeof(double));
}

std::vector<double> ReadDoubles(const std::string& path) {
  const std::string bytes = ReadFile(path);
  std::vector<double> values(bytes.size() / sizeof(double));
  std::copy(bytes.begin(), bytes.begin() + values.size() * sizeof(double),
            reinterpret_cast<char*>(values.data()));
  return values;
}

// Runs `kPython script args...` in `dir`, output to dir/python.log. Returns
// the exit code, or -1 when it could not run.
int RunPython(const ScratchDir& dir, const std::string& script,
              const std::vector<std::string>& args, std::string* log) {
  WriteFile(dir.File("script.py"), script);
  std::string command = absl::StrCat(kPython, " '", dir.File("script.py"), "'");
  for (const std::string& a : args) absl::StrAppend(&command, " '", a, "'");
  absl::StrAppend(&command, " > '", dir.File("python.log"), "' 2>&1");
  const int status = std::system(command.c_str());
  *log = ReadFile(dir.File("python.log"));
  if (status == -1 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// Exit code of the scripts below when a module they need is missing.
constexpr int kMissingModule = 77;

// How closely `a` reproduces the reference `b` (rows x outputs).
struct Agreement {
  // Largest |a - b|, in output units.
  double max_abs = 0;
  // Largest |a - b| / y_std of its output: relative to the output's spread.
  double max_abs_per_std = 0;
  // Largest |a - b| / max(|b|, y_std): the relative error, except that
  // outputs near zero are measured against their spread (a plain relative
  // error is dominated by cancellation there).
  double max_rel = 0;
};

Agreement Compare(const std::vector<double>& a, const std::vector<double>& b,
                  const std::vector<double>& y_std) {
  Agreement g;
  const size_t outputs = y_std.size();
  EXPECT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double d = std::fabs(a[i] - b[i]);
    const double spread = y_std[i % outputs];
    g.max_abs = std::max(g.max_abs, d);
    g.max_abs_per_std = std::max(g.max_abs_per_std, d / spread);
    g.max_rel = std::max(g.max_rel, d / std::max(std::fabs(b[i]), spread));
  }
  return g;
}

// --- Forward ----------------------------------------------------------------

TEST(ForwardTest, MatchesHandComputation) {
  MlpParameters p;
  p.x_mean = {1.0, 2.0};
  p.x_std = {2.0, 4.0};
  p.y_mean = {10.0};
  p.y_std = {3.0};
  p.layers.push_back(
      {2, 2, {0.5, -1.0, 2.0, 0.25}, {0.1, -0.2}, v1::ACTIVATION_TANH});
  p.layers.push_back({2, 1, {1.5, -0.5}, {0.3}, v1::ACTIVATION_UNSPECIFIED});
  // x = (3, 6) standardises to (1, 1); h = tanh(-0.4, 2.05);
  // y = 3 * (1.5 h0 - 0.5 h1 + 0.3) + 10.
  const std::vector<double> y = Forward(p, {3.0, 6.0, 1.0, 2.0}, 2);
  ASSERT_EQ(y.size(), 2u);
  EXPECT_NEAR(y[0], 7.739137167965811, 1e-14);
  EXPECT_NEAR(y[0],
              3 * (1.5 * std::tanh(-0.4) - 0.5 * std::tanh(2.05) + 0.3) + 10,
              1e-14);
  // x = (1, 2) standardises to (0, 0): h = tanh(0.1, -0.2).
  EXPECT_NEAR(y[1],
              3 * (1.5 * std::tanh(0.1) - 0.5 * std::tanh(-0.2) + 0.3) + 10,
              1e-14);
}

// Two normalised neurons: with z = (a, b), mean (a + b) / 2 and variance
// ((a - b) / 2)^2, they become +-d / sqrt(d^2 + 1e-5), d = (a - b) / 2.
TEST(ForwardTest, LayerNormMatchesHandComputation) {
  MlpParameters p;
  p.x_mean = {0.0};
  p.x_std = {1.0};
  p.y_mean = {0.0};
  p.y_std = {1.0};
  DenseParameters hidden{1, 2, {1.0, -2.0}, {0.5, 0.0}, v1::ACTIVATION_TANH};
  hidden.ln_scale = {2.0, 0.5};
  hidden.ln_shift = {0.1, -0.3};
  p.layers.push_back(hidden);
  p.layers.push_back({2, 1, {1.0, 1.0}, {0.0}, v1::ACTIVATION_UNSPECIFIED});
  ASSERT_TRUE(ValidateMlp(p).ok()) << ValidateMlp(p);
  const double x = 0.7, a = x + 0.5, b = -2.0 * x;
  const double d = (a - b) / 2, n = d / std::sqrt(d * d + 1e-5);
  const std::vector<double> y = Forward(p, {x}, 1);
  ASSERT_EQ(y.size(), 1u);
  EXPECT_NEAR(y[0], std::tanh(2.0 * n + 0.1) + std::tanh(-0.5 * n - 0.3),
              1e-15);
  EXPECT_EQ(ParameterCount(p), 2 + 2 + 4 + 3);

  // Its checkpoint, quantised form and validation carry the normalisation.
  absl::StatusOr<NetworkParameters> back =
      ParseCheckpoint(SerializeCheckpoint(Net(p)));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->stages[0].layers[0].ln_scale, hidden.ln_scale);
  EXPECT_EQ(back->stages[0].layers[0].ln_shift, hidden.ln_shift);
  EXPECT_EQ(Forward(*back, {x}, 1), y);
  const QuantizedMlp q = Quantize(p);
  EXPECT_EQ(Dequantize(q).layers[0].ln_scale, hidden.ln_scale);
  EXPECT_EQ(Dequantize(q).layers[0].ln_shift, hidden.ln_shift);
  EXPECT_EQ(Int8ModelBytes(q), 8 * 4 + (2 + 8 * (2 + 2 + 4)) + (2 + 8 * 2));

  MlpParameters bad = p;
  bad.layers[0].ln_shift.pop_back();
  EXPECT_THAT(std::string(ValidateMlp(bad).message()),
              HasSubstr("layers[0].ln_shift has 1 values, expected 2"));
  bad = p;
  bad.layers[1].ln_scale = {1.0};
  bad.layers[1].ln_shift = {0.0};
  EXPECT_THAT(std::string(ValidateMlp(bad).message()),
              HasSubstr("layers[1] has layer normalisation but is the output "
                        "layer"));
}

TEST(ForwardTest, ActivationsMatchTheirDefinitions) {
  struct Case {
    v1::Activation activation;
    double x, expected;
  };
  for (const Case& c : std::vector<Case>{
           {v1::ACTIVATION_TANH, 0.5, 0.46211715726000974},
           {v1::ACTIVATION_RELU, -2.0, 0.0},
           {v1::ACTIVATION_RELU, 1.5, 1.5},
           {v1::ACTIVATION_SILU, 1.0, 0.7310585786300049},  // 1 / (1 + 1/e)
           {v1::ACTIVATION_SILU, 0.5, 0.3112296656009273},
           {v1::ACTIVATION_GELU, 1.0, 0.8413447460685429},  // Phi(1)
           {v1::ACTIVATION_GELU, -1.0, -0.15865525393145707},
           {v1::ACTIVATION_SINE, 0.5, 0.479425538604203},
           {v1::ACTIVATION_GAUSSIAN, 0.5, 0.7788007830714049},  // e^-0.25
           {v1::ACTIVATION_GAUSSIAN, -1.5, 0.10539922456186433},
       }) {
    const std::vector<double> y = Forward(SingleNeuron(c.activation), {c.x}, 1);
    ASSERT_EQ(y.size(), 1u);
    EXPECT_NEAR(y[0], c.expected, 1e-15)
        << ActivationName(c.activation) << "(" << c.x << ")";
  }
}

TEST(ForwardTest, RowsAreIndependent) {
  const MlpParameters p = RandomMlp(3, MixedHidden(), 2, 1);
  const std::vector<double> x = RandomInputs(p, 5, 2);
  const std::vector<double> all = Forward(p, x, 5);
  ASSERT_EQ(all.size(), 10u);
  for (int r = 0; r < 5; ++r) {
    const std::vector<double> one =
        Forward(p, {x.begin() + 3 * r, x.begin() + 3 * r + 3}, 1);
    ASSERT_EQ(one.size(), 2u);
    EXPECT_EQ(one[0], all[2 * r]);
    EXPECT_EQ(one[1], all[2 * r + 1]);
  }
}

TEST(ForwardTest, BadInputGivesEmptyResult) {
  const MlpParameters p = RandomMlp(3, MixedHidden(), 2, 1);
  EXPECT_TRUE(Forward(p, {}, 0).empty());
  EXPECT_TRUE(Forward(p, {1.0, 2.0}, 1).empty());  // 2 values, 3 inputs
  EXPECT_TRUE(Forward(p, {1.0, 2.0, 3.0}, 2).empty());
  MlpParameters broken = p;
  broken.layers[1].bias.pop_back();
  EXPECT_TRUE(Forward(broken, {1.0, 2.0, 3.0}, 1).empty());
}

TEST(ForwardTest, ParameterCountAgreesWithTheGenome) {
  const MlpParameters p = RandomMlp(3, MixedHidden(), 2, 1);
  EXPECT_EQ(ParameterCount(p), evonas::ParameterCount(GenomeOf(MixedHidden()),
                                                      /*inputs=*/3,
                                                      /*outputs=*/2));
  EXPECT_EQ(ParameterCount(SingleNeuron(v1::ACTIVATION_TANH)), 4);
}

TEST(ValidateMlpTest, NamesWhatIsWrong) {
  const MlpParameters good = RandomMlp(3, MixedHidden(), 2, 1);
  EXPECT_TRUE(ValidateMlp(good).ok());

  EXPECT_THAT(ValidateMlp(MlpParameters{}).message(), HasSubstr("no layers"));
  MlpParameters p = good;
  p.layers[2].inputs = 15;
  EXPECT_THAT(ValidateMlp(p).message(), HasSubstr("layers[2].inputs"));
  p = good;
  p.layers[1].weight.push_back(0.0);
  EXPECT_THAT(ValidateMlp(p).message(), HasSubstr("layers[1].weight"));
  p = good;
  p.layers[0].bias.clear();
  EXPECT_THAT(ValidateMlp(p).message(), HasSubstr("layers[0].bias"));
  p = good;
  p.x_std.pop_back();
  EXPECT_THAT(ValidateMlp(p).message(), HasSubstr("x_std"));
  p = good;
  p.y_mean.push_back(1.0);
  EXPECT_THAT(ValidateMlp(p).message(), HasSubstr("y_mean"));
  p = good;
  p.layers.back().activation = v1::ACTIVATION_TANH;
  EXPECT_THAT(ValidateMlp(p).message(), HasSubstr("must be linear"));
  p = good;
  p.layers[0].activation = v1::ACTIVATION_UNSPECIFIED;
  EXPECT_THAT(ValidateMlp(p).message(), HasSubstr("unsupported activation"));
  for (const MlpParameters& bad : {MlpParameters{}, p}) {
    EXPECT_EQ(ValidateMlp(bad).code(), absl::StatusCode::kInvalidArgument);
  }
}

// --- Convolutional networks -------------------------------------------------

struct ConvSpec {
  int64_t channels;
  int64_t kernel_size;
  v1::Activation activation;
  bool batch_norm;
  v1::Pooling pooling;
  bool residual;
};

// A convolutional network on `height` x `width` images with pixel-like
// standardisation (means around 100, deviations around 60): the trunk
// `convs` with Glorot-uniform kernels, small random biases and batch
// normalisation constants away from the identity, then RandomMlp's dense
// layers `hidden` and `outputs`, all drawn from `seed`.
MlpParameters RandomConvMlp(int64_t height, int64_t width,
                            const std::vector<ConvSpec>& convs,
                            const Hidden& hidden, int64_t outputs,
                            uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<ConvParameters> trunk;
  int64_t channels = 1, h = height, w = width;
  for (const ConvSpec& s : convs) {
    ConvParameters c;
    c.in_channels = channels;
    c.out_channels = s.channels;
    c.kernel_size = s.kernel_size;
    c.activation = s.activation;
    c.batch_norm = s.batch_norm;
    c.pooling = s.pooling;
    c.residual = s.residual;
    c.dropout = 0.25;  // training only: Forward must ignore it
    const int64_t taps = s.kernel_size * s.kernel_size;
    const double bound =
        std::sqrt(6.0 / static_cast<double>((channels + s.channels) * taps));
    for (int64_t k = 0; k < s.channels * channels * taps; ++k) {
      c.weight.push_back(bound * u(rng));
    }
    for (int64_t o = 0; o < s.channels; ++o) c.bias.push_back(0.1 * u(rng));
    if (s.batch_norm) {
      for (int64_t o = 0; o < s.channels; ++o) {
        c.bn_scale.push_back(1.0 + 0.5 * u(rng));
        c.bn_shift.push_back(0.2 * u(rng));
        c.bn_running_mean.push_back(0.3 * u(rng));
        c.bn_running_var.push_back(1.0 + 0.5 * u(rng));
      }
    }
    if (s.pooling != v1::POOLING_NONE) {
      h /= 2;
      w /= 2;
    }
    channels = s.channels;
    trunk.push_back(std::move(c));
  }
  MlpParameters p = RandomMlp(channels * h * w, hidden, outputs, seed + 1);
  p.conv_layers = std::move(trunk);
  p.image_height = height;
  p.image_width = width;
  p.x_mean.clear();
  p.x_std.clear();
  for (int64_t i = 0; i < height * width; ++i) {
    p.x_mean.push_back(100.0 + 20.0 * u(rng));
    p.x_std.push_back(60.0 + 10.0 * u(rng));
  }
  return p;
}

// Odd sides (the pooling drops the last row and column), both poolings,
// batch norm on and off, residual layers with kernels 5 and 1, a kernel of
// 7 on a 2 x 2 image (almost all padding) and every activation.
const std::vector<ConvSpec>& MixedConvs() {
  static const auto* convs = new std::vector<ConvSpec>{
      {4, 3, v1::ACTIVATION_RELU, true, v1::POOLING_MAX, false},
      {4, 5, v1::ACTIVATION_GELU, true, v1::POOLING_NONE, true},
      {6, 3, v1::ACTIVATION_SINE, false, v1::POOLING_AVERAGE, false},
      {6, 1, v1::ACTIVATION_SILU, true, v1::POOLING_NONE, true},
      {5, 7, v1::ACTIVATION_TANH, true, v1::POOLING_NONE, false}};
  return *convs;
}

// 11 x 9 pixels -> 5 x 4 -> 2 x 2 with 5 channels: 20 dense inputs.
MlpParameters MixedConvMlp(uint64_t seed = 21) {
  return RandomConvMlp(11, 9, MixedConvs(), {{8, v1::ACTIVATION_TANH}}, 3,
                       seed);
}

v1::Genome ConvGenomeOf(const std::vector<ConvSpec>& convs,
                        const Hidden& hidden) {
  v1::Genome g = GenomeOf(hidden);
  for (const ConvSpec& s : convs) {
    v1::ConvLayer* c = g.add_conv_layers();
    c->set_channels(static_cast<int32_t>(s.channels));
    c->set_kernel_size(static_cast<int32_t>(s.kernel_size));
    c->set_activation(s.activation);
    c->set_batch_norm(s.batch_norm);
    c->set_pooling(s.pooling);
    c->set_residual(s.residual);
  }
  return g;
}

// A 3 x 3 image, one convolution to two channels and a linear output
// y = c0 + 10 c1, small enough to compute by hand (see the test).
MlpParameters TinyConv(v1::Pooling pooling) {
  MlpParameters p;
  p.image_height = 3;
  p.image_width = 3;
  p.x_mean.assign(9, 0.0);
  p.x_std.assign(9, 1.0);
  p.y_mean = {0.0};
  p.y_std = {1.0};
  ConvParameters c;
  c.in_channels = 1;
  c.out_channels = 2;
  c.kernel_size = 3;
  // Channel 0 sums the 3 x 3 neighbourhood, channel 1 is the centre pixel.
  c.weight = {1, 1, 1, 1, 1, 1, 1, 1, 1,  //
              0, 0, 0, 0, 1, 0, 0, 0, 0};
  c.bias = {0.0, 0.5};
  c.activation = v1::ACTIVATION_RELU;
  c.pooling = pooling;
  // Channel 0 passes unchanged; channel 1: (v - 1) / 2 * 3 - 1.
  c.batch_norm = true;
  c.bn_scale = {1.0, 3.0};
  c.bn_shift = {0.0, -1.0};
  c.bn_running_mean = {0.0, 1.0};
  c.bn_running_var = {1.0 - 1e-5, 4.0 - 1e-5};
  p.conv_layers.push_back(c);
  p.layers.push_back({2, 1, {1.0, 10.0}, {0.0}, v1::ACTIVATION_UNSPECIFIED});
  return p;
}

TEST(ConvForwardTest, MatchesHandComputation) {
  // Image 1 2 3 / 4 5 6 / 7 8 9. The pooling sees the top-left 2 x 2 only.
  // Channel 0, zero-padded neighbourhood sums: 12 21 / 27 45.
  // Channel 1: relu(1.5 x - 1.75) = 0 1.25 / 4.25 5.75.
  const std::vector<double> x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<double> average =
      Forward(TinyConv(v1::POOLING_AVERAGE), x, 1);
  ASSERT_EQ(average.size(), 1u);
  EXPECT_NEAR(average[0], (12 + 21 + 27 + 45) / 4.0 + 10 * 11.25 / 4, 1e-12);
  const std::vector<double> max = Forward(TinyConv(v1::POOLING_MAX), x, 1);
  ASSERT_EQ(max.size(), 1u);
  EXPECT_NEAR(max[0], 45 + 10 * 5.75, 1e-12);

  // Without pooling the dense layer takes 2 x 3 x 3 values, channel-major:
  // weight 1 on channel 0's pixel (2, 2) (sum 5+6+8+9 = 28) and 10 on
  // channel 1's pixel (0, 1) (1.25).
  MlpParameters flat = TinyConv(v1::POOLING_NONE);
  flat.layers[0].inputs = 18;
  flat.layers[0].weight.assign(18, 0.0);
  flat.layers[0].weight[8] = 1.0;
  flat.layers[0].weight[9 + 1] = 10.0;
  const std::vector<double> y = Forward(flat, x, 1);
  ASSERT_EQ(y.size(), 1u);
  EXPECT_NEAR(y[0], 28 + 12.5, 1e-12);
}

TEST(ConvForwardTest, RowsAreIndependentAndDropoutIsIgnored) {
  const MlpParameters p = MixedConvMlp();
  const std::vector<double> x = RandomInputs(p, 4, 22);
  const std::vector<double> all = Forward(p, x, 4);
  ASSERT_EQ(all.size(), 12u);
  MlpParameters no_dropout = p;
  for (ConvParameters& c : no_dropout.conv_layers) c.dropout = 0;
  EXPECT_EQ(Forward(no_dropout, x, 4), all);
  for (int r = 0; r < 4; ++r) {
    const std::vector<double> one =
        Forward(p, {x.begin() + 99 * r, x.begin() + 99 * (r + 1)}, 1);
    ASSERT_EQ(one.size(), 3u);
    for (int j = 0; j < 3; ++j) EXPECT_EQ(one[j], all[3 * r + j]);
  }
  EXPECT_TRUE(Forward(p, {x.begin(), x.begin() + 98}, 1).empty());
}

TEST(ConvForwardTest, ParameterCountAgreesWithTheGenome) {
  const MlpParameters p = MixedConvMlp();
  const Hidden hidden = {{8, v1::ACTIVATION_TANH}};
  // 1*4*9+4 + 2*4 | 4*4*25+4 + 8 | 4*6*9+6 | 6*6+6 + 12 | 6*5*49+5 + 10,
  // then 20*8+8 and 8*3+3.
  EXPECT_EQ(ParameterCount(p), 48 + 412 + 222 + 54 + 1485 + 168 + 27);
  EXPECT_EQ(ParameterCount(p),
            evonas::ParameterCount(ConvGenomeOf(MixedConvs(), hidden),
                                   /*inputs=*/99, /*outputs=*/3, {11, 9}));
}

// The reference in PyTorch's own operators, in float64: conv2d with
// padding k // 2, batch_norm in eval mode (eps 1e-5), the activations,
// the residual addition, max_pool2d / avg_pool2d with kernel 2, flatten,
// then linear layers.
constexpr char kTorchConvScript[] = R"PY(
import json, sys
try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(f"missing Python module: {e}")
    sys.exit(77)

d = sys.argv[1]
net = json.load(open(f"{d}/net.json"))
T = lambda v: torch.tensor(v, dtype=torch.float64)
acts = {1: torch.tanh, 2: torch.relu, 3: F.silu,
        4: lambda h: F.gelu(h), 5: torch.sin,
        6: lambda h: torch.exp(-h * h), 0: lambda h: h}
H, W = net["image_height"], net["image_width"]
x = torch.from_numpy(np.fromfile(f"{d}/x.bin", dtype="<f8")).reshape(-1, H * W)
h = ((x - T(net["x_mean"])) / T(net["x_std"])).reshape(-1, 1, H, W)
for c in net["conv"]:
    o, i, k = c["out"], c["in"], c["k"]
    z = F.conv2d(h, T(c["weight"]).reshape(o, i, k, k), T(c["bias"]),
                 padding=k // 2)
    if c["bn"]:
        z = F.batch_norm(z, T(c["mean"]), T(c["var"]), T(c["scale"]),
                         T(c["shift"]), training=False, eps=1e-5)
    z = acts[c["act"]](z)
    if c["residual"]:
        z = h + z
    if c["pool"] == 1:
        z = F.max_pool2d(z, 2)
    elif c["pool"] == 2:
        z = F.avg_pool2d(z, 2)
    h = z
h = h.flatten(1)
for l in net["dense"]:
    h = acts[l["act"]](F.linear(h, T(l["weight"]).reshape(l["out"], l["in"]),
                                T(l["bias"])))
y = h * T(net["y_std"]) + T(net["y_mean"])
y.numpy().astype("<f8").tofile(f"{d}/y_torch.bin")
)PY";

std::string JsonDoubles(const std::vector<double>& values) {
  std::vector<std::string> text;
  for (double v : values) text.push_back(absl::StrFormat("%.17g", v));
  return absl::StrCat("[", absl::StrJoin(text, ","), "]");
}

// `p` as the JSON kTorchConvScript reads.
std::string TorchJson(const MlpParameters& p) {
  std::vector<std::string> convs, dense;
  for (const ConvParameters& c : p.conv_layers) {
    convs.push_back(absl::StrFormat(
        R"({"in":%d,"out":%d,"k":%d,"act":%d,"bn":%s,"residual":%s,)"
        R"("pool":%d,"weight":%s,"bias":%s,"scale":%s,"shift":%s,)"
        R"("mean":%s,"var":%s})",
        c.in_channels, c.out_channels, c.kernel_size,
        static_cast<int>(c.activation), c.batch_norm ? "true" : "false",
        c.residual ? "true" : "false", static_cast<int>(c.pooling),
        JsonDoubles(c.weight), JsonDoubles(c.bias), JsonDoubles(c.bn_scale),
        JsonDoubles(c.bn_shift), JsonDoubles(c.bn_running_mean),
        JsonDoubles(c.bn_running_var)));
  }
  for (const DenseParameters& l : p.layers) {
    dense.push_back(
        absl::StrFormat(R"({"in":%d,"out":%d,"act":%d,"weight":%s,"bias":%s})",
                        l.inputs, l.outputs, static_cast<int>(l.activation),
                        JsonDoubles(l.weight), JsonDoubles(l.bias)));
  }
  return absl::StrFormat(
      R"({"image_height":%d,"image_width":%d,"x_mean":%s,"x_std":%s,)"
      R"("y_mean":%s,"y_std":%s,"conv":[%s],"dense":[%s]})",
      p.image_height, p.image_width, JsonDoubles(p.x_mean),
      JsonDoubles(p.x_std), JsonDoubles(p.y_mean), JsonDoubles(p.y_std),
      absl::StrJoin(convs, ","), absl::StrJoin(dense, ","));
}

TEST(ConvForwardTest, MatchesTorchInFloat64) {
  if (access(kPython, X_OK) != 0) GTEST_SKIP() << kPython << " not found";
  constexpr int64_t kRows = 50;
  for (const MlpParameters& p :
       {MixedConvMlp(),
        // Fashion-MNIST's shape, residual layers that do not start at 0.
        RandomConvMlp(
            28, 28,
            {{8, 3, v1::ACTIVATION_RELU, true, v1::POOLING_MAX, false},
             {8, 3, v1::ACTIVATION_SILU, true, v1::POOLING_NONE, true},
             {16, 5, v1::ACTIVATION_GELU, false, v1::POOLING_AVERAGE, false}},
            {{32, v1::ACTIVATION_RELU}}, 10, 23)}) {
    const std::vector<double> x = RandomInputs(p, kRows, 24);
    const std::vector<double> reference = Forward(p, x, kRows);
    ASSERT_EQ(reference.size(), kRows * p.y_mean.size());
    ScratchDir dir;
    ASSERT_FALSE(dir.path().empty());
    WriteFile(dir.File("net.json"), TorchJson(p));
    WriteFile(dir.File("x.bin"), DoublesBytes(x));
    std::string log;
    const int code = RunPython(dir, kTorchConvScript, {dir.path()}, &log);
    if (code == kMissingModule) GTEST_SKIP() << log;
    ASSERT_EQ(code, 0) << log;
    const Agreement torch =
        Compare(ReadDoubles(dir.File("y_torch.bin")), reference, p.y_std);
    std::cout << absl::StrFormat(
        "torch float64 vs Forward, %dx%d image: max abs %.2e  max rel %.2e\n",
        p.image_height, p.image_width, torch.max_abs, torch.max_rel);
    EXPECT_LT(torch.max_rel, 1e-12);
  }
}

TEST(ValidateMlpTest, NamesWhatIsWrongInTheConvLayers) {
  const MlpParameters good = MixedConvMlp();
  ASSERT_TRUE(ValidateMlp(good).ok()) << ValidateMlp(good);
  const auto message = [](const MlpParameters& p) {
    const absl::Status s = ValidateMlp(p);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    return std::string(s.message());
  };
  MlpParameters p = good;
  p.image_width = 10;
  EXPECT_THAT(message(p), HasSubstr("x_mean has 99 values, expected "
                                    "image_height 11 x image_width 10"));
  p = good;
  p.image_height = 0;
  EXPECT_THAT(message(p), HasSubstr("image_height"));
  p = good;
  p.conv_layers[0].in_channels = 3;
  p.conv_layers[0].weight.resize(4 * 3 * 9);
  EXPECT_THAT(message(p), HasSubstr("conv_layers[0].in_channels is 3"));
  p = good;
  p.conv_layers[2].in_channels = 5;
  EXPECT_THAT(message(p), HasSubstr("conv_layers[2].in_channels is 5, "
                                    "expected 4"));
  p = good;
  p.conv_layers[1].kernel_size = 4;
  EXPECT_THAT(message(p), HasSubstr("conv_layers[1].kernel_size is 4"));
  p = good;
  p.conv_layers[1].kernel_size = 9;
  EXPECT_THAT(message(p), HasSubstr("conv_layers[1].kernel_size is 9"));
  p = good;
  p.conv_layers[2].weight.pop_back();
  EXPECT_THAT(message(p), HasSubstr("conv_layers[2].weight has 215 values, "
                                    "expected 6 x 4 x 3 x 3"));
  p = good;
  p.conv_layers[3].bias.push_back(0);
  EXPECT_THAT(message(p), HasSubstr("conv_layers[3].bias has 7 values"));
  p = good;
  p.conv_layers[4].activation = v1::ACTIVATION_UNSPECIFIED;
  EXPECT_THAT(message(p),
              HasSubstr("conv_layers[4] has unsupported activation 0"));
  p = good;
  p.conv_layers[0].dropout = 0.6;
  EXPECT_THAT(message(p), HasSubstr("conv_layers[0].dropout"));
  p = good;
  p.conv_layers[0].dropout = std::nan("");
  EXPECT_THAT(message(p), HasSubstr("conv_layers[0].dropout"));
  p = good;
  p.conv_layers[0].pooling = static_cast<v1::Pooling>(7);
  EXPECT_THAT(message(p), HasSubstr("conv_layers[0] has unsupported pooling"));
  p = good;
  p.conv_layers[0].out_channels = 1;
  p.conv_layers[0].weight.resize(9);
  p.conv_layers[0].bias.resize(1);
  p.conv_layers[0].residual = true;
  EXPECT_THAT(message(p), HasSubstr("conv_layers[0].residual"));
  p = good;
  p.conv_layers[2].residual = true;  // 4 -> 6 channels, and it pools
  EXPECT_THAT(message(p), HasSubstr("conv_layers[2].residual"));
  p = good;
  p.conv_layers[1].pooling = v1::POOLING_MAX;  // residual and pooling
  EXPECT_THAT(message(p), HasSubstr("conv_layers[1].residual"));
  p = good;
  p.conv_layers[1].bn_running_var.pop_back();
  EXPECT_THAT(message(p), HasSubstr("conv_layers[1].bn_running_var has 3 "
                                    "values, expected 4"));
  p = good;
  p.conv_layers[2].bn_scale = {1, 1, 1, 1, 1, 1};  // batch_norm is off
  EXPECT_THAT(message(p), HasSubstr("conv_layers[2].bn_scale has 6 values, "
                                    "expected 0 (batch_norm is not set)"));
  p = good;
  // 11 x 9 -> 5 x 4 -> 2 x 2 -> 1 x 1 -> below 1.
  p.conv_layers[3].pooling = v1::POOLING_MAX;
  p.conv_layers[3].residual = false;
  p.conv_layers[4].pooling = v1::POOLING_AVERAGE;
  EXPECT_THAT(message(p), HasSubstr("conv_layers[4].pooling would halve a "
                                    "1 x 1 image"));
  p = good;
  p.layers[0].inputs = 21;
  p.layers[0].weight.resize(21 * 8);
  EXPECT_THAT(message(p), HasSubstr("layers[0].inputs is 21 but the conv "
                                    "layers output 5 channels x 2 x 2"));
  // A huge channel count is refused by the weight count, not overflowed.
  p = good;
  p.conv_layers[4].out_channels = int64_t{1} << 62;
  EXPECT_THAT(message(p), HasSubstr("conv_layers[4].weight"));
}

TEST(ValidateNetworkTest, AConvNetworkHasOneStage) {
  NetworkParameters n = Net(MixedConvMlp());
  EXPECT_TRUE(ValidateNetwork(n).ok());
  n.stages.push_back(n.stages[0]);
  const absl::Status s = ValidateNetwork(n);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("has conv_layers but the network has 2 "
                                     "stages"));
  EXPECT_TRUE(Forward(n, RandomInputs(n.stages[0], 1, 1), 1).empty());
}

// --- ONNX export, checked in C++ -------------------------------------------

onnx::ModelProto ParseModel(const std::string& bytes) {
  onnx::ModelProto model;
  EXPECT_TRUE(model.ParseFromString(bytes));
  return model;
}

std::vector<std::string> OpTypes(const onnx::ModelProto& model) {
  std::vector<std::string> ops;
  for (const onnx::NodeProto& n : model.graph().node()) {
    ops.push_back(n.op_type());
  }
  return ops;
}

TEST(OnnxExportTest, PassesTheCheckerWithTheDocumentedGraph) {
  const MlpParameters p = RandomMlp(3, MixedHidden(), 2, 1);
  for (OnnxDtype dtype : {OnnxDtype::kFloat32, OnnxDtype::kFloat64}) {
    OnnxOptions options;
    options.dtype = dtype;
    options.dataset_id = std::string(64, 'a');
    options.input_columns = {"x1", "x2", "x3"};
    options.output_columns = {"y1", "y2"};
    auto bytes = ExportOnnx(Net(p), options);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    const onnx::ModelProto model = ParseModel(*bytes);
    EXPECT_NO_THROW(onnx::checker::check_model(model));

    ASSERT_EQ(model.opset_import_size(), 1);
    EXPECT_EQ(model.opset_import(0).version(), kOnnxOpset);
    EXPECT_EQ(model.producer_name(), "evonas");
    const int32_t type = dtype == OnnxDtype::kFloat32
                             ? onnx::TensorProto::FLOAT
                             : onnx::TensorProto::DOUBLE;
    const onnx::GraphProto& g = model.graph();
    ASSERT_EQ(g.input_size(), 1);
    ASSERT_EQ(g.output_size(), 1);
    for (const auto& [value, columns] :
         {std::pair{&g.input(0), int64_t{3}}, std::pair{&g.output(0), 2L}}) {
      const onnx::TypeProto_Tensor& t = value->type().tensor_type();
      EXPECT_EQ(t.elem_type(), type);
      ASSERT_EQ(t.shape().dim_size(), 2);
      EXPECT_EQ(t.shape().dim(0).dim_param(), "N");
      EXPECT_EQ(t.shape().dim(1).dim_value(), columns);
    }
    EXPECT_EQ(g.input(0).name(), "x");
    EXPECT_EQ(g.output(0).name(), "y");
    EXPECT_THAT(g.input(0).doc_string(), HasSubstr("x1, x2, x3"));
    EXPECT_THAT(g.output(0).doc_string(), HasSubstr("y1, y2"));
    for (const onnx::TensorProto& t : g.initializer()) {
      EXPECT_EQ(t.data_type(), type) << t.name();
    }
    EXPECT_THAT(
        OpTypes(model),
        ::testing::ElementsAre("Sub", "Div",                               //
                               "Gemm", "Tanh",                             //
                               "Gemm", "Sigmoid", "Mul",                   //
                               "Gemm", "Mul", "Mul", "Erf", "Add", "Mul",  //
                               "Gemm", "Sin",                              //
                               "Gemm", "Relu",                             //
                               "Gemm", "Mul", "Neg", "Exp",                //
                               "Gemm",                                     //
                               "Mul", "Add"));
    for (const onnx::NodeProto& n : g.node()) {
      if (n.op_type() != "Gemm") continue;
      ASSERT_EQ(n.attribute_size(), 1);
      EXPECT_EQ(n.attribute(0).name(), "transB");
      EXPECT_EQ(n.attribute(0).i(), 1);
    }
    std::map<std::string, std::string> metadata;
    for (const auto& e : model.metadata_props()) metadata[e.key()] = e.value();
    EXPECT_EQ(metadata["dataset_id"], options.dataset_id);
    EXPECT_FALSE(metadata["evonas_version"].empty());
  }
}

TEST(OnnxExportTest, Float64KeepsTheWeightsExactly) {
  const MlpParameters p = RandomMlp(3, MixedHidden(), 2, 1);
  OnnxOptions options;
  options.dtype = OnnxDtype::kFloat64;
  auto bytes = ExportOnnx(Net(p), options);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const onnx::ModelProto model = ParseModel(*bytes);
  int checked = 0;
  for (const onnx::TensorProto& t : model.graph().initializer()) {
    if (t.name() == "W2") {
      EXPECT_THAT(t.dims(), ::testing::ElementsAre(12, 16));
      EXPECT_THAT(t.double_data(),
                  ::testing::ElementsAreArray(p.layers[2].weight));
      ++checked;
    }
    if (t.name() == "y_mean") {
      EXPECT_THAT(t.double_data(), ::testing::ElementsAreArray(p.y_mean));
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2);
}

TEST(OnnxExportTest, RejectsWhatItCannotExport) {
  const MlpParameters p = RandomMlp(3, MixedHidden(), 2, 1);
  MlpParameters broken = p;
  broken.layers[0].weight.pop_back();
  EXPECT_EQ(ExportOnnx(Net(broken)).status().code(),
            absl::StatusCode::kInvalidArgument);

  OnnxOptions options;
  options.input_columns = {"only one"};
  EXPECT_THAT(ExportOnnx(Net(p), options).status().message(),
              HasSubstr("input_columns"));

  MlpParameters huge = p;
  huge.layers[1].weight[3] = 1e39;
  auto status = ExportOnnx(Net(huge)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("W1[3]"));
  options = {};
  options.dtype = OnnxDtype::kFloat64;
  EXPECT_TRUE(ExportOnnx(Net(huge), options).ok());
}

// --- ONNX export, checked by independent runtimes ---------------------------

// Checks both files with Python's onnx.checker (full check), runs the float32
// file in OpenCV's dnn and both files in a float64 numpy interpreter of the
// graph that reads the initializers with onnx.numpy_helper.
constexpr char kRunOnnxScript[] = R"PY(
import math, sys
try:
    import numpy as np
    import onnx
    from onnx import numpy_helper
    import cv2
except ImportError as e:
    print(f"missing Python module: {e}")
    sys.exit(77)


def attribute(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


erf = np.vectorize(math.erf, otypes=[np.float64])


def interpret(model, x):
    """Runs the graph node by node in float64 numpy."""
    env = {t.name: numpy_helper.to_array(t).astype(np.float64)
           for t in model.graph.initializer}
    env[model.graph.input[0].name] = x
    for n in model.graph.node:
        a = [env[i] for i in n.input]
        op = n.op_type
        if op == "Sub": r = a[0] - a[1]
        elif op == "Div": r = a[0] / a[1]
        elif op == "Mul": r = a[0] * a[1]
        elif op == "Add": r = a[0] + a[1]
        elif op == "Gemm":
            A = a[0].T if attribute(n, "transA", 0) else a[0]
            B = a[1].T if attribute(n, "transB", 0) else a[1]
            r = attribute(n, "alpha", 1.0) * (A @ B)
            if len(a) > 2:
                r = r + attribute(n, "beta", 1.0) * a[2]
        elif op == "Tanh": r = np.tanh(a[0])
        elif op == "Relu": r = np.maximum(a[0], 0.0)
        elif op == "Sigmoid": r = 1.0 / (1.0 + np.exp(-a[0]))
        elif op == "Erf": r = erf(a[0])
        elif op == "Sin": r = np.sin(a[0])
        elif op == "Neg": r = -a[0]
        elif op == "Exp": r = np.exp(a[0])
        elif op == "ReduceMean":
            r = np.mean(a[0], axis=tuple(attribute(n, "axes", None)),
                        keepdims=bool(attribute(n, "keepdims", 1)))
        elif op == "Sqrt": r = np.sqrt(a[0])
        elif op == "Reciprocal": r = 1.0 / a[0]
        else:
            sys.exit(f"unexpected operator {op}")
        env[n.output[0]] = r
    return env[model.graph.output[0].name]


d, rows, inputs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x = np.fromfile(f"{d}/x.bin", dtype="<f8").reshape(rows, inputs)
m32 = onnx.load(f"{d}/model32.onnx")
m64 = onnx.load(f"{d}/model64.onnx")
for m in (m32, m64):
    onnx.checker.check_model(m, full_check=True)
print("onnx.checker: both files pass (full_check)")

interpret(m64, x).astype("<f8").tofile(f"{d}/y_numpy64.bin")
x32 = x.astype(np.float32)
interpret(m32, x32.astype(np.float64)).astype("<f8").tofile(
    f"{d}/y_numpy_float32_graph.bin")

cv2.setNumThreads(1)
net = cv2.dnn.readNetFromONNX(f"{d}/model32.onnx")
net.setInput(x32)
net.forward().astype("<f8").tofile(f"{d}/y_opencv32.bin")
try:
    net64 = cv2.dnn.readNetFromONNX(f"{d}/model64.onnx")
    net64.setInput(x)
    net64.forward().astype("<f8").tofile(f"{d}/y_opencv64.bin")
    print("opencv float64: runs")
except cv2.error as e:
    print("opencv float64: rejected:", str(e).strip().splitlines()[-1])
)PY";

struct RuntimeCase {
  const char* name;
  int64_t inputs;
  Hidden hidden;
  int64_t outputs;
  // Multiplies the Glorot bound of the weights: trained networks often have
  // larger weights than at initialisation, which amplifies float32 rounding.
  double gain;
  // RandomNetwork's stages (with residual layers when more than one).
  int stages = 1;
  // Every hidden layer layer-normalised, with random scales and shifts.
  bool layer_norm = false;
};

// Names the case in test listings (and in CTest's names) instead of its
// bytes.
void PrintTo(const RuntimeCase& c, std::ostream* os) { *os << c.name; }

class OnnxRuntimeTest : public testing::TestWithParam<RuntimeCase> {};

TEST_P(OnnxRuntimeTest, OpenCvAndNumpyReproduceForward) {
  if (access(kPython, X_OK) != 0) GTEST_SKIP() << kPython << " not found";
  const RuntimeCase& c = GetParam();
  constexpr int64_t kRows = 1000;
  NetworkParameters network =
      RandomNetwork(c.inputs, c.hidden, c.outputs, c.stages, 11, c.gain);
  if (c.layer_norm) AddLayerNorms(network, 13);
  const MlpParameters& p = network.stages[0];
  const std::vector<double> x = RandomInputs(p, kRows, 12);
  const std::vector<double> reference = Forward(network, x, kRows);
  ASSERT_EQ(reference.size(), static_cast<size_t>(kRows * c.outputs));

  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  for (const auto& [name, dtype] :
       {std::pair{"model32.onnx", OnnxDtype::kFloat32},
        std::pair{"model64.onnx", OnnxDtype::kFloat64}}) {
    OnnxOptions options;
    options.dtype = dtype;
    auto bytes = ExportOnnx(network, options);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    WriteFile(dir.File(name), *bytes);
  }
  WriteFile(dir.File("x.bin"), DoublesBytes(x));
  std::string log;
  const int code = RunPython(
      dir, kRunOnnxScript,
      {dir.path(), absl::StrCat(kRows), absl::StrCat(c.inputs)}, &log);
  if (code == kMissingModule) GTEST_SKIP() << log;
  ASSERT_EQ(code, 0) << log;
  std::cout << log;

  // float64: the numpy interpreter of the exported graph agrees with Forward
  // to float64 rounding (the summation order differs).
  const Agreement numpy64 =
      Compare(ReadDoubles(dir.File("y_numpy64.bin")), reference, p.y_std);
  // float32 in OpenCV: mostly the rounding of weights and inputs to float32.
  const Agreement opencv32 =
      Compare(ReadDoubles(dir.File("y_opencv32.bin")), reference, p.y_std);
  // OpenCV against the float32 graph evaluated in float64: OpenCV's own
  // float32 arithmetic.
  const Agreement opencv_arith =
      Compare(ReadDoubles(dir.File("y_opencv32.bin")),
              ReadDoubles(dir.File("y_numpy_float32_graph.bin")), p.y_std);
  std::vector<std::pair<std::string, Agreement>> results = {
      {"numpy float64 graph vs Forward", numpy64},
      {"OpenCV float32 graph vs Forward", opencv32},
      {"OpenCV float32 vs float32 graph in float64", opencv_arith}};
  // OpenCV 4.6 loads the float64 file too (and computes in float32);
  // reported, not required.
  if (std::filesystem::exists(dir.File("y_opencv64.bin"))) {
    results.emplace_back(
        "OpenCV float64 graph vs Forward",
        Compare(ReadDoubles(dir.File("y_opencv64.bin")), reference, p.y_std));
  }
  for (const auto& [name, a] : results) {
    std::cout << absl::StrFormat(
        "%-44s max abs %.2e  max abs/y_std %.2e  max rel %.2e\n", name,
        a.max_abs, a.max_abs_per_std, a.max_rel);
    RecordProperty(name + " max rel", absl::StrFormat("%.3e", a.max_rel));
  }
  EXPECT_LT(numpy64.max_rel, 1e-12);
  // The issue's target is 1e-6 in an independent runtime. OpenCV computes in
  // float32: measured here 9e-8 for every_activation but up to 1e-6 for the
  // wide networks with large weights, mostly from OpenCV's float32
  // arithmetic rather than the rounding of the weights. So the bound is
  // float32's, with margin for other CPUs' kernels.
  EXPECT_LT(opencv32.max_rel, 1e-5);
  EXPECT_LT(opencv_arith.max_rel, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Networks, OnnxRuntimeTest,
    testing::Values(RuntimeCase{"every_activation", 3, MixedHidden(), 2, 1.0},
                    RuntimeCase{"wide_tanh",
                                3,
                                {{64, v1::ACTIVATION_TANH},
                                 {64, v1::ACTIVATION_TANH},
                                 {64, v1::ACTIVATION_TANH}},
                                1,
                                2.0},
                    RuntimeCase{"wide_gelu_silu",
                                3,
                                {{128, v1::ACTIVATION_GELU},
                                 {128, v1::ACTIVATION_SILU}},
                                2,
                                2.0},
                    // Issue 7: a 3-stage network with residual layers.
                    RuntimeCase{"three_stages_residual",
                                3,
                                {{16, v1::ACTIVATION_TANH},
                                 {16, v1::ACTIVATION_SINE},
                                 {16, v1::ACTIVATION_GELU}},
                                1,
                                1.0,
                                3},
                    RuntimeCase{"layer_norm_two_stages",
                                3,
                                {{16, v1::ACTIVATION_SILU},
                                 {16, v1::ACTIVATION_SINE},
                                 {8, v1::ACTIVATION_TANH}},
                                2,
                                1.0,
                                2,
                                true}),
    [](const testing::TestParamInfo<RuntimeCase>& info) {
      return std::string(info.param.name);
    });

// --- ONNX export of convolutional networks ----------------------------------

TEST(OnnxExportTest, ConvNetworkHasTheDocumentedGraph) {
  const MlpParameters p = MixedConvMlp();
  for (OnnxDtype dtype : {OnnxDtype::kFloat32, OnnxDtype::kFloat64}) {
    OnnxOptions options;
    options.dtype = dtype;
    options.input_columns.assign(99, "pixel");
    auto bytes = ExportOnnx(Net(p), options);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    const onnx::ModelProto model = ParseModel(*bytes);
    EXPECT_NO_THROW(onnx::checker::check_model(model));
    const onnx::GraphProto& g = model.graph();
    EXPECT_EQ(g.name(), "evonas_cnn");
    const onnx::TensorShapeProto& x = g.input(0).type().tensor_type().shape();
    ASSERT_EQ(x.dim_size(), 2);
    EXPECT_EQ(x.dim(1).dim_value(), 99);  // the 11 x 9 pixels
    EXPECT_EQ(g.output(0).type().tensor_type().shape().dim(1).dim_value(), 3);
    EXPECT_THAT(OpTypes(model),
                ::testing::ElementsAre(
                    "Sub", "Div", "Reshape",                           //
                    "Conv", "Relu", "MaxPool",                         //
                    "Conv", "Mul", "Mul", "Erf", "Add", "Mul", "Add",  //
                    "Conv", "Sin", "AveragePool",                      //
                    "Conv", "Sigmoid", "Mul", "Add",                   //
                    "Conv", "Tanh",                                    //
                    "Flatten", "Gemm", "Tanh", "Gemm", "Mul", "Add"));
    int convs = 0;
    for (const onnx::NodeProto& n : g.node()) {
      std::map<std::string, std::vector<int64_t>> ints;
      for (const onnx::AttributeProto& a : n.attribute()) {
        ints[a.name()] = {a.ints().begin(), a.ints().end()};
      }
      if (n.op_type() == "Conv") {
        const int64_t k = p.conv_layers[convs++].kernel_size;
        EXPECT_THAT(ints["kernel_shape"], ::testing::ElementsAre(k, k));
        EXPECT_THAT(ints["pads"],
                    ::testing::ElementsAre(k / 2, k / 2, k / 2, k / 2));
        EXPECT_THAT(ints["strides"], ::testing::ElementsAre(1, 1));
      }
      if (n.op_type() == "MaxPool" || n.op_type() == "AveragePool") {
        EXPECT_THAT(ints["kernel_shape"], ::testing::ElementsAre(2, 2));
        EXPECT_THAT(ints["strides"], ::testing::ElementsAre(2, 2));
        EXPECT_EQ(ints.count("pads"), 0u);
      }
    }
    EXPECT_EQ(convs, 5);
  }
}

TEST(OnnxExportTest, ConvFoldsTheBatchNormalisationInFloat64) {
  const MlpParameters p = MixedConvMlp();
  OnnxOptions options;
  options.dtype = OnnxDtype::kFloat64;
  auto bytes = ExportOnnx(Net(p), options);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const ConvParameters& c = p.conv_layers[1];  // 4 -> 4, kernel 5, with BN
  const onnx::ModelProto model = ParseModel(*bytes);
  int checked = 0;
  for (const onnx::TensorProto& t : model.graph().initializer()) {
    if (t.name() == "conv1_W") {
      EXPECT_THAT(t.dims(), ::testing::ElementsAre(4, 4, 5, 5));
      ASSERT_EQ(t.double_data_size(), 400);
      for (int64_t o = 0; o < 4; ++o) {
        const double s = c.bn_scale[o] / std::sqrt(c.bn_running_var[o] + 1e-5);
        for (int64_t j = 0; j < 100; ++j) {
          EXPECT_EQ(t.double_data(o * 100 + j), c.weight[o * 100 + j] * s);
        }
      }
      ++checked;
    }
    if (t.name() == "conv1_b") {
      for (int64_t o = 0; o < 4; ++o) {
        const double s = c.bn_scale[o] / std::sqrt(c.bn_running_var[o] + 1e-5);
        EXPECT_EQ(t.double_data(o),
                  (c.bias[o] - c.bn_running_mean[o]) * s + c.bn_shift[o]);
      }
      ++checked;
    }
    if (t.name() == "conv2_W") {  // no batch norm: the weights as trained
      EXPECT_THAT(t.double_data(),
                  ::testing::ElementsAreArray(p.conv_layers[2].weight));
      ++checked;
    }
    if (t.name() == "image_shape") {
      EXPECT_EQ(t.data_type(), onnx::TensorProto::INT64);
      EXPECT_THAT(t.int64_data(), ::testing::ElementsAre(-1, 1, 11, 9));
      ++checked;
    }
  }
  EXPECT_EQ(checked, 4);
}

TEST(OnnxExportTest, ConvRejectsWhatItCannotExport) {
  MlpParameters p = MixedConvMlp();
  p.conv_layers[2].weight[5] = 1e39;  // no batch norm: exported as it is
  absl::Status status = ExportOnnx(Net(p)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("conv2_W[5]"));
  OnnxOptions options;
  options.input_columns = {"one", "per", "dense", "input", "is", "wrong"};
  EXPECT_THAT(ExportOnnx(Net(MixedConvMlp()), options).status().message(),
              HasSubstr("input_columns has 6 names but the network has 99"));
  NetworkParameters two = Net(MixedConvMlp());
  two.stages.push_back(two.stages[0]);
  EXPECT_EQ(ExportOnnx(two).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Checks both files with onnx.checker (full check), runs the float32 file in
// OpenCV's dnn, and both files in a float64 interpreter of the graph that
// uses torch.nn.functional for Conv and the poolings and reads the
// initializers with onnx.numpy_helper.
constexpr char kRunConvOnnxScript[] = R"PY(
import sys
try:
    import numpy as np
    import onnx
    from onnx import numpy_helper
    import torch
    import torch.nn.functional as F
    import cv2
except ImportError as e:
    print(f"missing Python module: {e}")
    sys.exit(77)


def attribute(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def interpret(model, x):
    env = {}
    for t in model.graph.initializer:
        a = torch.from_numpy(numpy_helper.to_array(t).copy())
        env[t.name] = a if a.dtype == torch.int64 else a.double()
    env[model.graph.input[0].name] = torch.from_numpy(x)
    for n in model.graph.node:
        a = [env[i] for i in n.input]
        op = n.op_type
        if op == "Sub": r = a[0] - a[1]
        elif op == "Div": r = a[0] / a[1]
        elif op == "Mul": r = a[0] * a[1]
        elif op == "Add": r = a[0] + a[1]
        elif op == "Reshape": r = a[0].reshape(tuple(a[1].tolist()))
        elif op == "Flatten": r = a[0].flatten(attribute(n, "axis", 1))
        elif op == "Conv":
            p = list(attribute(n, "pads", [0, 0, 0, 0]))
            assert p[:2] == p[2:], p
            r = F.conv2d(a[0], a[1], a[2] if len(a) > 2 else None,
                         stride=tuple(attribute(n, "strides", [1, 1])),
                         padding=tuple(p[:2]))
        elif op in ("MaxPool", "AveragePool"):
            assert not attribute(n, "pads", None)
            k = tuple(attribute(n, "kernel_shape", None))
            s = tuple(attribute(n, "strides", [1, 1]))
            pool = F.max_pool2d if op == "MaxPool" else F.avg_pool2d
            r = pool(a[0], k, s)
        elif op == "Gemm":
            A = a[0].T if attribute(n, "transA", 0) else a[0]
            B = a[1].T if attribute(n, "transB", 0) else a[1]
            r = attribute(n, "alpha", 1.0) * (A @ B)
            if len(a) > 2:
                r = r + attribute(n, "beta", 1.0) * a[2]
        elif op == "Tanh": r = torch.tanh(a[0])
        elif op == "Relu": r = torch.relu(a[0])
        elif op == "Sigmoid": r = torch.sigmoid(a[0])
        elif op == "Erf": r = torch.erf(a[0])
        elif op == "Sin": r = torch.sin(a[0])
        elif op == "Neg": r = -a[0]
        elif op == "Exp": r = torch.exp(a[0])
        else:
            sys.exit(f"unexpected operator {op}")
        env[n.output[0]] = r
    return env[model.graph.output[0].name].numpy()


d, rows, inputs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x = np.fromfile(f"{d}/x.bin", dtype="<f8").reshape(rows, inputs)
m32 = onnx.load(f"{d}/model32.onnx")
m64 = onnx.load(f"{d}/model64.onnx")
for m in (m32, m64):
    onnx.checker.check_model(m, full_check=True)
print("onnx.checker: both files pass (full_check)")

interpret(m64, x).astype("<f8").tofile(f"{d}/y_torch64.bin")
x32 = x.astype(np.float32)
interpret(m32, x32.astype(np.float64)).astype("<f8").tofile(
    f"{d}/y_torch_float32_graph.bin")

cv2.setNumThreads(1)
net = cv2.dnn.readNetFromONNX(f"{d}/model32.onnx")
net.setInput(x32)
net.forward().astype("<f8").tofile(f"{d}/y_opencv32.bin")
)PY";

struct ConvRuntimeCase {
  const char* name;
  int64_t height, width;
  std::vector<ConvSpec> convs;
  Hidden hidden;
  int64_t outputs;
};

void PrintTo(const ConvRuntimeCase& c, std::ostream* os) { *os << c.name; }

class OnnxConvRuntimeTest : public testing::TestWithParam<ConvRuntimeCase> {};

TEST_P(OnnxConvRuntimeTest, OpenCvAndTorchReproduceForward) {
  if (access(kPython, X_OK) != 0) GTEST_SKIP() << kPython << " not found";
  const ConvRuntimeCase& c = GetParam();
  constexpr int64_t kRows = 200;
  const MlpParameters p =
      RandomConvMlp(c.height, c.width, c.convs, c.hidden, c.outputs, 31);
  const int64_t inputs = c.height * c.width;
  const std::vector<double> x = RandomInputs(p, kRows, 32);
  const std::vector<double> reference = Forward(p, x, kRows);
  ASSERT_EQ(reference.size(), static_cast<size_t>(kRows * c.outputs));

  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  for (const auto& [name, dtype] :
       {std::pair{"model32.onnx", OnnxDtype::kFloat32},
        std::pair{"model64.onnx", OnnxDtype::kFloat64}}) {
    OnnxOptions options;
    options.dtype = dtype;
    auto bytes = ExportOnnx(Net(p), options);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    WriteFile(dir.File(name), *bytes);
  }
  WriteFile(dir.File("x.bin"), DoublesBytes(x));
  std::string log;
  const int code =
      RunPython(dir, kRunConvOnnxScript,
                {dir.path(), absl::StrCat(kRows), absl::StrCat(inputs)}, &log);
  if (code == kMissingModule) GTEST_SKIP() << log;
  ASSERT_EQ(code, 0) << log;
  std::cout << log;

  // float64: the graph (batch norm folded) agrees with Forward to float64
  // rounding.
  const Agreement torch64 =
      Compare(ReadDoubles(dir.File("y_torch64.bin")), reference, p.y_std);
  const Agreement opencv32 =
      Compare(ReadDoubles(dir.File("y_opencv32.bin")), reference, p.y_std);
  const Agreement opencv_arith =
      Compare(ReadDoubles(dir.File("y_opencv32.bin")),
              ReadDoubles(dir.File("y_torch_float32_graph.bin")), p.y_std);
  for (const auto& [name, a] : std::vector<std::pair<std::string, Agreement>>{
           {"torch float64 graph vs Forward", torch64},
           {"OpenCV float32 graph vs Forward", opencv32},
           {"OpenCV float32 vs float32 graph in float64", opencv_arith}}) {
    std::cout << absl::StrFormat(
        "%-44s max abs %.2e  max abs/y_std %.2e  max rel %.2e\n", name,
        a.max_abs, a.max_abs_per_std, a.max_rel);
    RecordProperty(name + " max rel", absl::StrFormat("%.3e", a.max_rel));
  }
  EXPECT_LT(torch64.max_rel, 1e-12);
  // As for the MLPs: float32's bound with margin, relative to
  // max(|y|, y_std) of each output.
  EXPECT_LT(opencv32.max_rel, 1e-5);
  EXPECT_LT(opencv_arith.max_rel, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Networks, OnnxConvRuntimeTest,
    testing::Values(
        ConvRuntimeCase{
            "mixed_11x9", 11, 9, MixedConvs(), {{8, v1::ACTIVATION_TANH}}, 3},
        // Fashion-MNIST's shape and classes.
        ConvRuntimeCase{
            "fashion_28x28",
            28,
            28,
            {{16, 3, v1::ACTIVATION_RELU, true, v1::POOLING_MAX, false},
             {16, 3, v1::ACTIVATION_RELU, true, v1::POOLING_NONE, true},
             {32, 5, v1::ACTIVATION_SILU, true, v1::POOLING_AVERAGE, false},
             {32, 3, v1::ACTIVATION_GELU, false, v1::POOLING_MAX, false}},
            {{64, v1::ACTIVATION_RELU}},
            10}),
    [](const testing::TestParamInfo<ConvRuntimeCase>& info) {
      return std::string(info.param.name);
    });

// --- Quantisation -----------------------------------------------------------

TEST(QuantizeTest, EveryWeightIsWithinHalfAStep) {
  const MlpParameters p = RandomMlp(3, MixedHidden(), 2, 3);
  const QuantizedMlp q = Quantize(p);
  const MlpParameters d = Dequantize(q);
  ASSERT_EQ(q.layers.size(), p.layers.size());
  ASSERT_TRUE(ValidateMlp(d).ok());
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const DenseParameters& w = p.layers[i];
    const QuantizedDense& ql = q.layers[i];
    EXPECT_EQ(d.layers[i].bias, w.bias);
    EXPECT_EQ(d.layers[i].activation, w.activation);
    for (int64_t o = 0; o < w.outputs; ++o) {
      const double scale = ql.scale[o];
      int max_q = 0;
      for (int64_t k = 0; k < w.inputs; ++k) {
        const int64_t at = o * w.inputs + k;
        max_q = std::max(max_q, std::abs(static_cast<int>(ql.weight[at])));
        EXPECT_LE(std::fabs(w.weight[at] - d.layers[i].weight[at]),
                  scale * (0.5 + 1e-12))
            << "layer " << i << " row " << o;
      }
      EXPECT_EQ(max_q, 127) << "the largest weight of a row maps to +-127";
    }
  }
  EXPECT_EQ(d.x_mean, p.x_mean);
  EXPECT_EQ(d.y_std, p.y_std);
}

TEST(QuantizeTest, LinearLayerErrorIsWithinTheTheoreticalBound) {
  // One linear layer: |dy_o| <= y_std * (scale_o / 2) * sum_k |x_std_k|.
  MlpParameters p = RandomMlp(4, {}, 3, 5);
  const QuantizedMlp q = Quantize(p);
  const MlpParameters d = Dequantize(q);
  const std::vector<double> x = RandomInputs(p, 200, 6);
  const std::vector<double> y = Forward(p, x, 200);
  const std::vector<double> yq = Forward(d, x, 200);
  ASSERT_EQ(y.size(), yq.size());
  for (size_t r = 0; r < 200; ++r) {
    double l1 = 0;
    for (size_t k = 0; k < 4; ++k) {
      l1 += std::fabs((x[r * 4 + k] - p.x_mean[k]) / p.x_std[k]);
    }
    for (size_t o = 0; o < 3; ++o) {
      const double bound = p.y_std[o] * q.layers[0].scale[o] / 2 * l1;
      EXPECT_LE(std::fabs(y[r * 3 + o] - yq[r * 3 + o]), bound * (1 + 1e-9))
          << r << "," << o;
    }
  }
}

TEST(QuantizeTest, DeepNetworkStaysClose) {
  const MlpParameters p = RandomMlp(3, MixedHidden(), 2, 7);
  const std::vector<double> x = RandomInputs(p, 500, 8);
  const std::vector<double> y = Forward(p, x, 500);
  const std::vector<double> yq = Forward(Dequantize(Quantize(p)), x, 500);
  const Agreement a = Compare(yq, y, p.y_std);
  std::cout << absl::StrFormat(
      "int8 weights vs float64: max abs/y_std %.2e  max rel %.2e\n",
      a.max_abs_per_std, a.max_rel);
  EXPECT_GT(a.max_abs_per_std, 0.0);
  EXPECT_LT(a.max_abs_per_std, 2e-2);
  // The worker's path: metrics of the quantised network.
  const v1::Evaluation e = EvaluatePredictions(yq, y, 2, 1e-12);
  EXPECT_EQ(e.row_count(), 500);
  EXPECT_GT(e.max_abs_error(), 0.0);
  EXPECT_TRUE(std::isfinite(e.rmse()));
}

TEST(QuantizeTest, ZeroAndNonFiniteRows) {
  MlpParameters p = SingleNeuron(v1::ACTIVATION_TANH);
  p.layers[0].weight = {0.0};
  QuantizedMlp q = Quantize(p);
  EXPECT_EQ(q.layers[0].scale[0], 0.0);
  EXPECT_EQ(Dequantize(q).layers[0].weight[0], 0.0);

  p.layers[0].weight = {std::numeric_limits<double>::quiet_NaN()};
  q = Quantize(p);
  EXPECT_TRUE(std::isnan(q.layers[0].scale[0]));
  const std::vector<double> y = Forward(Dequantize(q), {0.5}, 1);
  ASSERT_EQ(y.size(), 1u);
  EXPECT_TRUE(std::isnan(y[0]));
}

TEST(QuantizeTest, Int8BytesAreAboutAnEighth) {
  const MlpParameters p = RandomMlp(
      3, {{64, v1::ACTIVATION_TANH}, {64, v1::ACTIVATION_TANH}}, 1, 9);
  const QuantizedMlp q = Quantize(p);
  const int64_t weights = 3 * 64 + 64 * 64 + 64 * 1;
  const int64_t rows = 64 + 64 + 1;  // one scale and one bias each
  const int64_t standardisation = 3 + 3 + 1 + 1;
  EXPECT_EQ(Int8ModelBytes(q), weights + 8 * (2 * rows + standardisation));
  EXPECT_EQ(Float64ModelBytes(p), 8 * (weights + rows + standardisation));
  const double ratio = static_cast<double>(Int8ModelBytes(q)) /
                       static_cast<double>(Float64ModelBytes(p));
  std::cout << "int8 / float64 bytes: " << ratio << "\n";
  EXPECT_GT(ratio, 0.125);
  EXPECT_LT(ratio, 0.2);
}

TEST(QuantizeTest, FoldBatchNormComputesTheSame) {
  const MlpParameters p = MixedConvMlp();
  MlpParameters folded = p;
  for (ConvParameters& c : folded.conv_layers) {
    c = FoldBatchNorm(c);
    EXPECT_FALSE(c.batch_norm);
    EXPECT_TRUE(c.bn_scale.empty() && c.bn_running_var.empty());
  }
  ASSERT_TRUE(ValidateMlp(folded).ok()) << ValidateMlp(folded);
  // Without batch norm the layer is unchanged.
  EXPECT_EQ(folded.conv_layers[2].weight, p.conv_layers[2].weight);
  EXPECT_NE(folded.conv_layers[0].weight, p.conv_layers[0].weight);
  const std::vector<double> x = RandomInputs(p, 100, 41);
  const Agreement a =
      Compare(Forward(folded, x, 100), Forward(p, x, 100), p.y_std);
  EXPECT_LT(a.max_rel, 1e-12);
}

TEST(QuantizeTest, ConvWeightsAreFoldedAndWithinHalfAStep) {
  const MlpParameters p = MixedConvMlp();
  const QuantizedMlp q = Quantize(p);
  const MlpParameters d = Dequantize(q);
  ASSERT_TRUE(ValidateMlp(d).ok()) << ValidateMlp(d);
  EXPECT_EQ(d.image_height, 11);
  EXPECT_EQ(d.image_width, 9);
  ASSERT_EQ(d.conv_layers.size(), p.conv_layers.size());
  for (size_t i = 0; i < p.conv_layers.size(); ++i) {
    const ConvParameters folded = FoldBatchNorm(p.conv_layers[i]);
    const ConvParameters& dc = d.conv_layers[i];
    const QuantizedConv& qc = q.conv_layers[i];
    EXPECT_FALSE(dc.batch_norm);
    EXPECT_EQ(dc.bias, folded.bias);
    EXPECT_EQ(dc.activation, folded.activation);
    EXPECT_EQ(dc.pooling, folded.pooling);
    EXPECT_EQ(dc.residual, folded.residual);
    ASSERT_EQ(qc.scale.size(), static_cast<size_t>(folded.out_channels));
    const int64_t row =
        folded.in_channels * folded.kernel_size * folded.kernel_size;
    for (int64_t o = 0; o < folded.out_channels; ++o) {
      int max_q = 0;
      for (int64_t k = 0; k < row; ++k) {
        const int64_t at = o * row + k;
        max_q = std::max(max_q, std::abs(static_cast<int>(qc.weight[at])));
        EXPECT_LE(std::fabs(folded.weight[at] - dc.weight[at]),
                  qc.scale[o] * (0.5 + 1e-12))
            << "conv " << i << " channel " << o;
      }
      EXPECT_EQ(max_q, 127) << "one scale per output channel";
    }
  }
}

TEST(QuantizeTest, ConvNetworkStaysClose) {
  // Fashion-MNIST's shape: 10 logits.
  const MlpParameters p = RandomConvMlp(
      28, 28,
      {{16, 3, v1::ACTIVATION_RELU, true, v1::POOLING_MAX, false},
       {16, 3, v1::ACTIVATION_SILU, true, v1::POOLING_NONE, true},
       {32, 5, v1::ACTIVATION_GELU, false, v1::POOLING_AVERAGE, false}},
      {{64, v1::ACTIVATION_RELU}}, 10, 42);
  const std::vector<double> x = RandomInputs(p, 200, 43);
  const std::vector<double> y = Forward(p, x, 200);
  const std::vector<double> yq = Forward(Dequantize(Quantize(p)), x, 200);
  ASSERT_EQ(yq.size(), y.size());
  const Agreement a = Compare(yq, y, p.y_std);
  std::cout << absl::StrFormat(
      "conv int8 weights vs float64: max abs/y_std %.2e  max rel %.2e\n",
      a.max_abs_per_std, a.max_rel);
  EXPECT_GT(a.max_abs_per_std, 0.0);
  EXPECT_LT(a.max_abs_per_std, 2e-2);
}

TEST(QuantizeTest, KeepsResidualLayers) {
  const NetworkParameters n = RandomNetwork(3,
                                            {{16, v1::ACTIVATION_TANH},
                                             {16, v1::ACTIVATION_SINE},
                                             {16, v1::ACTIVATION_GELU}},
                                            1, 2, 44);
  ASSERT_TRUE(n.stages[1].layers[1].residual);
  NetworkParameters d;
  for (const MlpParameters& stage : n.stages) {
    d.stages.push_back(Dequantize(Quantize(stage)));
  }
  for (size_t k = 0; k < n.stages.size(); ++k) {
    for (size_t i = 0; i < n.stages[k].layers.size(); ++i) {
      EXPECT_EQ(d.stages[k].layers[i].residual, n.stages[k].layers[i].residual)
          << "stage " << k << " layer " << i;
    }
  }
  const std::vector<double> x = RandomInputs(n.stages[0], 100, 45);
  const Agreement a =
      Compare(Forward(d, x, 100), Forward(n, x, 100), n.stages[0].y_std);
  EXPECT_LT(a.max_abs_per_std, 2e-2);
}

TEST(QuantizeTest, ConvBytes) {
  const MlpParameters p = MixedConvMlp();
  const QuantizedMlp q = Quantize(p);
  const int64_t conv_weights = 36 + 400 + 216 + 36 + 1470;
  const int64_t channels = 4 + 4 + 6 + 6 + 5;  // a scale and a bias each
  const int64_t dense_weights = 20 * 8 + 8 * 3;
  const int64_t rows = 8 + 3;
  const int64_t standardisation = 99 + 99 + 3 + 3;
  EXPECT_EQ(Int8ModelBytes(q),
            conv_weights + dense_weights +
                8 * (2 * channels + 2 * rows + standardisation));
  // Four batch-norm values per channel of the four layers that have it.
  const int64_t batch_norm = 4 * (4 + 4 + 6 + 5);
  EXPECT_EQ(Float64ModelBytes(p), 8 * (conv_weights + channels + batch_norm +
                                       dense_weights + rows + standardisation));
}

// --- Model card -------------------------------------------------------------

TEST(JsonQuoteTest, EscapesAndRepairs) {
  EXPECT_EQ(JsonQuote("plain"), "\"plain\"");
  EXPECT_EQ(JsonQuote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonQuote("l1\nl2\t\x01"), "\"l1\\nl2\\t\\u0001\"");
  EXPECT_EQ(JsonQuote("caf\xC3\xA9 \xF0\x9F\x99\x82"),
            "\"caf\xC3\xA9 \xF0\x9F\x99\x82\"");  // é and an emoji stay
  EXPECT_EQ(JsonQuote("bad\xFF"), "\"bad\\ufffd\"");
  EXPECT_EQ(JsonQuote("\xC0\xAF"), "\"\\ufffd\\ufffd\"");  // overlong '/'
  EXPECT_EQ(JsonQuote("\xED\xA0\x80"),                     // a surrogate
            "\"\\ufffd\\ufffd\\ufffd\"");
  EXPECT_EQ(JsonQuote("\xE2\x82"), "\"\\ufffd\\ufffd\"");  // truncated
  EXPECT_EQ(JsonQuote(absl::string_view("nul\0", 4)), "\"nul\\u0000\"");
}

struct CardFixture {
  NetworkParameters parameters = Net(RandomMlp(3, MixedHidden(), 2, 1));
  v1::Genome genome = GenomeOf(MixedHidden());
  v1::Metrics metrics;
  v1::Requirements requirements;
  CardFixture() {
    metrics.mutable_validation()->set_row_count(1400);
    metrics.mutable_validation()->set_max_abs_error(2.5e-4);
    metrics.mutable_validation()->set_fraction_within(0.05);
    metrics.mutable_validation()->set_rmse(3e-5);
    metrics.mutable_validation()->set_mae(1e-5);
    metrics.set_parameter_count(ParameterCount(parameters));
    metrics.set_model_bytes(40000);
    metrics.set_training_seconds(12.5);
    metrics.set_inference_latency_seconds(std::nan(""));
    requirements.set_max_abs_error(1e-3);  // met
    requirements.set_within_tolerance(1e-5);
    requirements.set_min_fraction_within(0.1);             // not met: 5% < 10%
    requirements.set_max_parameters(1000);                 // met
    requirements.set_max_model_bytes(30000);               // not met
    requirements.set_max_inference_latency_seconds(1e-3);  // NaN: not met
  }
};

TEST(ModelCardTest, StatesEachRequirementInCpp) {
  CardFixture f;
  auto card =
      ModelCardJson(f.parameters, f.genome, f.metrics, f.requirements,
                    std::string(64, 'c'), {"x1", "x2", "x3"}, {"y1", "y2"});
  ASSERT_TRUE(card.ok()) << card.status();
  EXPECT_THAT(*card, HasSubstr(R"("name": "max_abs_error", "limit": 0.001, )"
                               R"("achieved": 0.00025, "met": true)"));
  EXPECT_THAT(*card,
              HasSubstr(R"("name": "min_fraction_within", "limit": 0.1, )"
                        R"("within_tolerance": 1e-05, "achieved": 0.05, )"
                        R"("met": false)"));
  EXPECT_THAT(*card, HasSubstr(R"("achieved": "NaN", "met": false)"));
  EXPECT_THAT(*card, HasSubstr(R"("feasible": false)"));
  EXPECT_THAT(*card, HasSubstr("\"dataset_id\": \"" + std::string(64, 'c')));
  EXPECT_TRUE(absl::EndsWith(*card, "}\n"));

  EXPECT_THAT(ModelCardJson(f.parameters, f.genome, f.metrics, f.requirements,
                            "id", {"x1"}, {})
                  .status()
                  .message(),
              HasSubstr("1 input column names"));
}

TEST(ModelCardTest, SaysWhenTrainingStoppedAtTheTimeLimit) {
  CardFixture f;
  f.requirements.set_max_training_seconds(12.5);
  auto card = ModelCardJson(f.parameters, f.genome, f.metrics, f.requirements,
                            "id", {}, {});
  ASSERT_TRUE(card.ok()) << card.status();
  EXPECT_THAT(*card, HasSubstr(R"("name": "max_training_seconds", )"
                               R"("limit": 12.5, "achieved": 12.5, )"
                               R"("met": true)"));

  f.metrics.set_stopped_at_time_limit(true);
  card = ModelCardJson(f.parameters, f.genome, f.metrics, f.requirements, "id",
                       {}, {});
  ASSERT_TRUE(card.ok()) << card.status();
  EXPECT_THAT(*card, HasSubstr(R"("name": "max_training_seconds", )"
                               R"("limit": 12.5, "stopped_at_limit": true, )"
                               R"("achieved": 12.5, "met": true)"));
  EXPECT_THAT(*card, HasSubstr(R"("stopped_at_time_limit":true)"));
}

TEST(ModelCardTest, ARefitIsJudgedOnItsTestRows) {
  CardFixture f;
  f.requirements.Clear();
  f.requirements.set_max_abs_error(1e-3);
  f.metrics.mutable_test()->set_row_count(10);
  f.metrics.mutable_test()->set_max_abs_error(4e-3);
  auto card = ModelCardJson(f.parameters, f.genome, f.metrics, f.requirements,
                            "id", {"x1", "x2", "x3"}, {"y1", "y2"},
                            JudgedRows::kTest);
  ASSERT_TRUE(card.ok()) << card.status();
  EXPECT_THAT(*card, HasSubstr(R"("judged_on": "test")"));
  EXPECT_THAT(*card, HasSubstr(R"("name": "max_abs_error", "limit": 0.001, )"
                               R"("achieved": 0.004, "met": false)"));
  EXPECT_THAT(*card, HasSubstr("test max abs error 4.0e-03 > 1.0e-03"));
  // A search candidate's card: the validation rows, where 2.5e-4 is met.
  card = ModelCardJson(f.parameters, f.genome, f.metrics, f.requirements, "id",
                       {"x1", "x2", "x3"}, {"y1", "y2"});
  ASSERT_TRUE(card.ok()) << card.status();
  EXPECT_THAT(*card, HasSubstr(R"("judged_on": "validation")"));
  EXPECT_THAT(*card, HasSubstr(R"("feasible": true)"));
}

TEST(ModelCardTest, StatesTheAccuracyRequirementOfAClassifier) {
  CardFixture f;
  f.requirements.Clear();
  f.requirements.set_min_accuracy(0.9);
  f.metrics.mutable_validation()->set_accuracy(0.9375);
  f.metrics.mutable_validation()->set_cross_entropy(0.21);
  auto card =
      ModelCardJson(f.parameters, f.genome, f.metrics, f.requirements,
                    "id", {"x1", "x2", "x3"}, {"label=0", "label=1"});
  ASSERT_TRUE(card.ok()) << card.status();
  EXPECT_THAT(*card, HasSubstr(R"("name": "min_accuracy", "limit": 0.9, )"
                               R"("achieved": 0.9375, "met": true)"));
  EXPECT_THAT(*card, HasSubstr(R"("output_columns": ["label=0", "label=1"])"));
  f.metrics.mutable_validation()->set_accuracy(0.5);
  card = ModelCardJson(f.parameters, f.genome, f.metrics, f.requirements, "id",
                       {"x1", "x2", "x3"}, {"label=0", "label=1"});
  ASSERT_TRUE(card.ok()) << card.status();
  EXPECT_THAT(*card, HasSubstr(R"("achieved": 0.5, "met": false)"));
  EXPECT_THAT(*card, HasSubstr("validation accuracy 50.0% < 90.0%"));
}

// Parses the card with Python's json module and prints what the test checks.
constexpr char kReadCardScript[] = R"PY(
import json, sys
card = json.loads(open(sys.argv[1], encoding="utf-8").read())
with open(sys.argv[2], "w", encoding="utf-8") as out:
    out.write("\n".join(card["input_columns"] + card["output_columns"]) + "\n")
print("dataset", card["dataset_id"])
print("feasible", card["feasible"])
print("parameters", card["architecture"]["parameter_count"],
      card["metrics"]["parameter_count"])
print("layers", " ".join(l["activation"] for l in card["architecture"]["layers"]))
print("genome", card["genome"]["hidden_layers"][2]["activation"])
for r in card["requirements"]:
    print("requirement", r["name"], r["limit"], r["achieved"], r["met"])
print("violations", len(card["violations"]))
)PY";

TEST(ModelCardTest, ListsEveryStage) {
  CardFixture f;
  f.parameters = RandomNetwork(3, MixedHidden(), 2, 3, 1);
  auto card = ModelCardJson(f.parameters, f.genome, f.metrics, f.requirements,
                            "id", {}, {});
  ASSERT_TRUE(card.ok()) << card.status();
  const std::string total = absl::StrCat(
      "\"parameter_count\": ", ParameterCount(f.parameters), ",");
  EXPECT_THAT(*card, HasSubstr(total));
  const std::string stage = absl::StrCat(
      "{\"parameter_count\": ", ParameterCount(f.parameters.stages[1]), ", ");
  size_t count = 0;
  for (size_t at = card->find(stage); at != std::string::npos;
       at = card->find(stage, at + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 3u);
  EXPECT_THAT(*card, HasSubstr("\"residual\": true"));
  EXPECT_THAT(*card, HasSubstr("sum of the stages' outputs"));
}

TEST(ModelCardTest, PythonParsesItAndReadsTheOutcomes) {
  if (access(kPython, X_OK) != 0) GTEST_SKIP() << kPython << " not found";
  CardFixture f;
  // Column names that need escaping, and one that is not valid UTF-8.
  const std::vector<std::string> inputs = {"x \"one\"", "back\\slash\n",
                                           "caf\xC3\xA9"};
  const std::vector<std::string> outputs = {"tab\there", "bad\xFF"};
  auto card = ModelCardJson(f.parameters, f.genome, f.metrics, f.requirements,
                            std::string(64, 'c'), inputs, outputs);
  ASSERT_TRUE(card.ok()) << card.status();
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  WriteFile(dir.File("card.json"), *card);
  std::string log;
  const int code =
      RunPython(dir, kReadCardScript,
                {dir.File("card.json"), dir.File("columns.txt")}, &log);
  ASSERT_EQ(code, 0) << log << "\n" << *card;

  const std::string n = absl::StrCat(ParameterCount(f.parameters));
  EXPECT_THAT(log, HasSubstr("dataset " + std::string(64, 'c') + "\n"));
  EXPECT_THAT(log, HasSubstr("feasible False\n"));
  EXPECT_THAT(log, HasSubstr(absl::StrCat("parameters ", n, " ", n, "\n")));
  EXPECT_THAT(log,
              HasSubstr("layers tanh silu gelu sine relu gaussian linear\n"));
  EXPECT_THAT(log, HasSubstr("genome ACTIVATION_GELU\n"));
  EXPECT_THAT(log, HasSubstr("requirement max_abs_error 0.001 0.00025 True\n"
                             "requirement min_fraction_within 0.1 0.05 False\n"
                             "requirement max_parameters 1000 " +
                             n +
                             " True\n"
                             "requirement max_model_bytes 30000 40000 False\n"
                             "requirement max_inference_latency_seconds "
                             "0.001 NaN False\n"));
  EXPECT_THAT(log, HasSubstr("violations 3\n"));
  EXPECT_EQ(
      ReadFile(dir.File("columns.txt")),
      "x \"one\"\nback\\slash\n\ncaf\xC3\xA9\ntab\there\nbad\xEF\xBF\xBD\n");
}

constexpr char kReadConvCardScript[] = R"PY(
import json, sys
a = json.load(open(sys.argv[1]))["architecture"]
print("kind", a["kind"], "precision", a["precision"], "inputs", a["inputs"],
      "outputs", a["outputs"])
print("image", a["image"]["height"], a["image"]["width"], a["image"]["channels"])
for c in a["conv_layers"]:
    print("conv", c["in_channels"], c["out_channels"], c["kernel_size"],
          c["activation"], c["batch_norm"], c["pooling"], c["dropout"],
          c["residual"])
print("layers", " ".join(str(l["inputs"]) + l["activation"] for l in a["layers"]))
print("parameters", a["parameter_count"], a["stages"][0]["parameter_count"])
)PY";

TEST(ModelCardTest, DescribesTheConvLayersAndTheImage) {
  if (access(kPython, X_OK) != 0) GTEST_SKIP() << kPython << " not found";
  CardFixture f;
  f.parameters = Net(MixedConvMlp());
  f.genome = ConvGenomeOf(MixedConvs(), {{8, v1::ACTIVATION_TANH}});
  f.metrics.set_parameter_count(ParameterCount(f.parameters));
  auto card =
      ModelCardJson(f.parameters, f.genome, f.metrics, f.requirements, "id",
                    std::vector<std::string>(99, "pixel"), {"a", "b", "c"});
  ASSERT_TRUE(card.ok()) << card.status();
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  WriteFile(dir.File("card.json"), *card);
  std::string log;
  ASSERT_EQ(RunPython(dir, kReadConvCardScript, {dir.File("card.json")}, &log),
            0)
      << log << "\n"
      << *card;
  EXPECT_EQ(log,
            "kind cnn precision float32 inputs 99 outputs 3\n"
            "image 11 9 1\n"
            "conv 1 4 3 relu True max 0.25 False\n"
            "conv 4 4 5 gelu True none 0.25 True\n"
            "conv 4 6 3 sine False average 0.25 False\n"
            "conv 6 6 1 silu True none 0.25 True\n"
            "conv 6 5 7 tanh True none 0.25 False\n"
            "layers 20tanh 8linear\n"
            "parameters 2416 2416\n");
  // One input column per pixel, not per input of the first dense layer.
  EXPECT_THAT(ModelCardJson(f.parameters, f.genome, f.metrics, f.requirements,
                            "id", std::vector<std::string>(20, "x"), {})
                  .status()
                  .message(),
              HasSubstr("20 input column names for a network with 99"));
}

TEST(ModelCardTest, FeasibleCardWithoutRequirements) {
  CardFixture f;
  f.requirements.Clear();
  auto card = ModelCardJson(f.parameters, f.genome, f.metrics, f.requirements,
                            "", {}, {});
  ASSERT_TRUE(card.ok()) << card.status();
  EXPECT_THAT(*card, HasSubstr(R"("requirements": [])"));
  EXPECT_THAT(*card, HasSubstr(R"("feasible": true)"));
  EXPECT_THAT(*card, HasSubstr(R"("violations": [])"));
}

}  // namespace
}  // namespace evonas::model
