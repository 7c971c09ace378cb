// Benchmarks of the worker's trainer; bench/run_trainer_bench.sh drives them
// and BENCHMARKS.md records the results.
//
//   trainer_bench steps   --data CSV --widths 64,64,64 --steps 300
//       Adam steps per (CPU) second of model::Train (full batch, no L-BFGS)
//       on the whole CSV (inputs x1..x3, output y) as training rows;
//       --dtype float32 trains a FLOAT32 genome.
//   trainer_bench kernels --data CSV --widths 64,64,64 --block 512
//       The same steps on MlpKernels and Adam alone, for tuning the block;
//       --dtype float32 runs MlpKernels32 and Adam32 on the data rounded to
//       float.
//   trainer_bench peak    --size 1024 --seconds 2
//       DGEMM GFLOP/s of OpenBLAS on square matrices: the machine's peak.
//   trainer_bench genomes --data CSV --test CSV --count 10 --seed 1
//       Trains the first `count` genomes that random search proposes over the
//       default search space, as a worker would, and prints the wall time.
//   trainer_bench staged  --data CSV --test CSV --genome TEXTPROTO
//       Trains one (multi-stage) genome, given as a v1.Genome in protobuf
//       text format, split like the controller splits the data, and reports
//       for every stage count k the network of the first k stages: test max
//       abs error, fractions within 1e-6 and 1e-5, parameters and the
//       cumulative training seconds. --predictions FILE also writes the
//       whole network's output for each test row, one per line, for
//       comparing or combining runs (bench/ensemble.py).
//   trainer_bench conv    --train IDX --test IDX --genome TEXTPROTO
//       Trains one convolutional genome on an image data set in evonas's IDX
//       layout (the uncompressed images file followed by the uncompressed
//       labels file, e.g. Fashion-MNIST), split like the controller splits
//       it, and reports Adam steps per second, validation and test accuracy
//       and the peak resident memory of the process.
//
// Every mode prints one line per measurement, "key=value" pairs separated by
// spaces, for the driver script to parse.

#include <cblas.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/genome.h"
#include "common/idx.h"
#include "common/metrics.h"
#include "common/table.h"
#include "common/validation_split.h"
#include "google/protobuf/text_format.h"
#include "server/search/strategy.h"
#include "worker/model/mlp.h"
#include "worker/model/mlp_kernels.h"
#include "worker/model/trainer.h"

namespace evonas::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

absl::StatusOr<Table> ReadCsv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return ParseCsv(text.str());
}

// Rows `rows` of the x1, x2, x3 -> y columns of `table`.
absl::StatusOr<model::Samples> Hartmann3(const Table& table,
                                         const std::vector<int64_t>& rows) {
  auto inputs = ColumnIndices(table, {"x1", "x2", "x3"});
  if (!inputs.ok()) return inputs.status();
  auto outputs = ColumnIndices(table, {"y"});
  if (!outputs.ok()) return outputs.status();
  model::Samples s;
  const int64_t n = static_cast<int64_t>(rows.size());
  s.x = {n, 3, SelectColumns(table, rows, *inputs)};
  s.y = {n, 1, SelectColumns(table, rows, *outputs)};
  return s;
}

std::vector<int64_t> AllRows(const Table& table) {
  std::vector<int64_t> rows(table.rows);
  for (int64_t i = 0; i < table.rows; ++i) rows[i] = i;
  return rows;
}

v1::Activation ParseActivation(const std::string& name) {
  for (v1::Activation a :
       {v1::ACTIVATION_TANH, v1::ACTIVATION_RELU, v1::ACTIVATION_SILU,
        v1::ACTIVATION_GELU, v1::ACTIVATION_SINE}) {
    if (ActivationName(a) == name) return a;
  }
  return v1::ACTIVATION_UNSPECIFIED;
}

struct StepsOptions {
  std::string data;
  std::string widths = "16,16";
  std::string activation = "tanh";
  int steps = 300;
  int threads = 1;
  double learning_rate = 1e-3;
  // Time L-BFGS iterations instead of Adam steps.
  bool lbfgs = false;
  // The genome's precision (steps) or the kernels' scalar (kernels).
  std::string dtype = "float64";
};

// CPU seconds this process has used (every thread).
double CpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Times model::Train with `steps` and with 2 * `steps` Adam steps (no
// L-BFGS): the difference is the cost of `steps` steps of the training loop
// without Train's fixed costs (export, metrics, latency). Reports steps per
// CPU second, which time-slicing on a shared machine does not distort, and
// the wall-clock steps per second of the longer run's training loop.
int RunSteps(const StepsOptions& o) {
  absl::StatusOr<Table> table = ReadCsv(o.data);
  if (!table.ok()) {
    std::cerr << table.status() << "\n";
    return 1;
  }
  model::TrainJob job;
  absl::StatusOr<model::Samples> all = Hartmann3(*table, AllRows(*table));
  if (!all.ok()) {
    std::cerr << all.status() << "\n";
    return 1;
  }
  job.training = *std::move(all);
  job.validation = {{0, 3, {}}, {0, 1, {}}};
  job.threads = o.threads;
  job.seed = 1;
  const v1::Activation activation = ParseActivation(o.activation);
  for (absl::string_view w : absl::StrSplit(o.widths, ',')) {
    int width = 0;
    if (!absl::SimpleAtoi(w, &width)) {
      std::cerr << "bad width " << w << "\n";
      return 1;
    }
    v1::DenseLayer* layer = job.genome.add_hidden_layers();
    layer->set_width(width);
    layer->set_activation(activation);
  }
  job.genome.mutable_training()->set_learning_rate(o.learning_rate);
  job.genome.set_precision(o.dtype == "float32" ? v1::PRECISION_FLOAT32
                                                : v1::PRECISION_FLOAT64);
  double cpu[2], wall = 0;
  for (int run = 0; run < 2; ++run) {
    const int steps = o.steps * (run + 1);
    job.genome.mutable_training()->set_adam_steps(o.lbfgs ? 0 : steps);
    job.genome.mutable_training()->set_lbfgs_steps(o.lbfgs ? steps : 0);
    const double start = CpuSeconds();
    absl::StatusOr<model::TrainOutput> out = model::Train(job);
    cpu[run] = CpuSeconds() - start;
    if (!out.ok()) {
      std::cerr << out.status() << "\n";
      return 1;
    }
    wall = out->metrics.training_seconds();
  }
  std::printf(
      "mode=steps impl=evonas phase=%s dtype=%s widths=%s activation=%s "
      "rows=%lld threads=%d steps=%d cpu_seconds=%.6f "
      "steps_per_cpu_second=%.3f steps_per_second=%.3f\n",
      o.lbfgs ? "lbfgs" : "adam", o.dtype.c_str(), o.widths.c_str(),
      o.activation.c_str(),
      static_cast<long long>(job.training.x.rows), o.threads, o.steps,
      cpu[1] - cpu[0], o.steps / (cpu[1] - cpu[0]), 2 * o.steps / wall);
  return 0;
}

// Times MlpKernels::LossAndGradient plus an Adam step alone (no Train
// around it) with `block` rows per block, in Scalar (double or float): for
// tuning the kernels and comparing the precisions.
template <typename Scalar>
int RunKernels(const StepsOptions& o, int64_t block) {
  absl::StatusOr<Table> table = ReadCsv(o.data);
  if (!table.ok()) {
    std::cerr << table.status() << "\n";
    return 1;
  }
  absl::StatusOr<model::Samples> all = Hartmann3(*table, AllRows(*table));
  if (!all.ok()) {
    std::cerr << all.status() << "\n";
    return 1;
  }
  std::vector<int64_t> sizes = {3};
  std::vector<v1::Activation> activations;
  for (absl::string_view w : absl::StrSplit(o.widths, ',')) {
    int width = 0;
    if (!absl::SimpleAtoi(w, &width)) return 1;
    sizes.push_back(width);
    activations.push_back(ParseActivation(o.activation));
  }
  sizes.push_back(1);
  absl::StatusOr<model::BasicMlpKernels<Scalar>> kernels =
      model::BasicMlpKernels<Scalar>::Create(sizes, activations, block,
                                             o.threads);
  if (!kernels.ok()) {
    std::cerr << kernels.status() << "\n";
    return 1;
  }
  std::vector<Scalar> params(kernels->parameter_count());
  for (size_t i = 0; i < params.size(); ++i) {
    params[i] = static_cast<Scalar>(0.1 * std::sin(static_cast<double>(i)));
  }
  std::vector<Scalar> grad(params.size());
  const std::vector<Scalar> x(all->x.data.begin(), all->x.data.end());
  const std::vector<Scalar> y(all->y.data.begin(), all->y.data.end());
  model::BasicAdam<Scalar> adam(kernels->parameter_count());
  const int64_t rows = all->x.rows;
  const auto wall_start = Clock::now();
  const double start = CpuSeconds();
  for (int step = 0; step < o.steps; ++step) {
    kernels->LossAndGradient(params.data(), x.data(), y.data(), rows,
                             grad.data());
    adam.Step(1e-4, grad.data(), params.data());
  }
  const double cpu = CpuSeconds() - start;
  const double wall = Seconds(Clock::now() - wall_start);
  std::printf(
      "mode=kernels impl=evonas dtype=%s widths=%s activation=%s rows=%lld "
      "threads=%d block=%lld steps=%d steps_per_cpu_second=%.3f "
      "steps_per_second=%.3f\n",
      sizeof(Scalar) == 4 ? "float32" : "float64", o.widths.c_str(),
      o.activation.c_str(), static_cast<long long>(rows), o.threads,
      static_cast<long long>(block), o.steps, o.steps / cpu, o.steps / wall);
  return 0;
}

// OpenBLAS DGEMM GFLOP/s on size x size matrices with `threads` threads,
// best of the repeats that fit in `seconds`, per wall and per CPU second.
int RunPeak(int size, double seconds, int threads) {
  openblas_set_num_threads(threads);
  const int64_t n = size;
  std::vector<double> a(n * n), b(n * n), c(n * n);
  for (int64_t i = 0; i < n * n; ++i) {
    a[i] = 1.0 / (1 + i % 7);
    b[i] = 1.0 / (1 + i % 5);
  }
  double best = 0;
  const auto start = Clock::now();
  int runs = 0;
  double best_cpu = 0;
  while (runs < 3 || Seconds(Clock::now() - start) < seconds) {
    const auto t0 = Clock::now();
    const double c0 = CpuSeconds();
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0,
                a.data(), n, b.data(), n, 0.0, c.data(), n);
    const double s = Seconds(Clock::now() - t0);
    best = std::max(best, 2.0 * n * n * n / s / 1e9);
    best_cpu = std::max(best_cpu, 2.0 * n * n * n / (CpuSeconds() - c0) / 1e9);
    ++runs;
  }
  std::printf(
      "mode=peak impl=openblas size=%d threads=%d runs=%d "
      "gflops=%.3f gflops_per_cpu_second=%.3f\n",
      size, openblas_get_num_threads(), runs, best, best_cpu);
  return 0;
}

struct GenomesOptions {
  std::string data;
  std::string test;
  int count = 10;
  uint64_t seed = 1;
  int threads = 1;
  double validation_fraction = 0.2;
};

// Trains the first `count` random-search genomes of the default search
// space on `data` (split like the controller splits it) and reports the
// wall-clock seconds of each and of all.
int RunGenomes(const GenomesOptions& o) {
  absl::StatusOr<Table> table = ReadCsv(o.data);
  absl::StatusOr<Table> test_table = ReadCsv(o.test);
  if (!table.ok() || !test_table.ok()) {
    std::cerr << table.status() << " " << test_table.status() << "\n";
    return 1;
  }
  v1::ExperimentSpec spec;
  spec.set_seed(o.seed);
  absl::StatusOr<v1::SearchSpace> space =
      search::NormalizeSearchSpace(spec.search_space());
  if (!space.ok()) {
    std::cerr << space.status() << "\n";
    return 1;
  }
  *spec.mutable_search_space() = *space;
  absl::StatusOr<std::unique_ptr<search::Strategy>> strategy =
      search::MakeStrategy(spec);
  if (!strategy.ok()) {
    std::cerr << strategy.status() << "\n";
    return 1;
  }
  v1::ValidationSplit split;
  split.set_seed(o.seed);
  split.set_fraction(o.validation_fraction);
  const RowPartition rows = PartitionRows(split, table->rows);
  absl::StatusOr<model::Samples> training = Hartmann3(*table, rows.training);
  absl::StatusOr<model::Samples> validation =
      Hartmann3(*table, rows.validation);
  absl::StatusOr<model::Samples> test =
      Hartmann3(*test_table, AllRows(*test_table));
  if (!training.ok() || !validation.ok() || !test.ok()) {
    std::cerr << "bad data\n";
    return 1;
  }
  const auto start = Clock::now();
  for (int i = 0; i < o.count; ++i) {
    model::TrainJob job;
    job.genome = (*strategy)->Propose(i, {}).genome;
    job.training = *training;
    job.validation = *validation;
    job.test = *test;
    job.seed = SplitMix64(o.seed ^ SplitMix64(i));
    job.within_tolerance = 1e-5;
    job.threads = o.threads;
    const auto t0 = Clock::now();
    absl::StatusOr<model::TrainOutput> out = model::Train(job);
    const double wall = Seconds(Clock::now() - t0);
    std::printf(
        "mode=genome index=%d genome=\"%s\" parameters=%lld threads=%d "
        "ok=%d wall_seconds=%.3f training_seconds=%.3f "
        "validation_max_abs_error=%.3g\n",
        i, DescribeGenome(job.genome).c_str(),
        static_cast<long long>(ParameterCount(job.genome, 3, 1)), o.threads,
        out.ok() ? 1 : 0, wall, out.ok() ? out->metrics.training_seconds() : 0,
        out.ok() ? out->metrics.validation().max_abs_error() : 0.0);
    std::fflush(stdout);
  }
  std::printf("mode=genomes count=%d threads=%d wall_seconds=%.3f\n", o.count,
              o.threads, Seconds(Clock::now() - start));
  return 0;
}

struct StagedOptions {
  std::string data;
  std::string test;
  std::string genome;  // v1.Genome in text format
  uint64_t seed = 1;
  int threads = 1;
  double validation_fraction = 0.2;
  std::string predictions;  // empty: not written
  double max_training_seconds = 0;  // TrainJob.max_training_seconds
};

// Trains `o.genome` once and evaluates each prefix of its stages on the test
// rows: since stage k trains only on what stages 0..k-1 left, the first k
// stages are exactly the network a k-stage genome with the same stages and
// seed would train.
int RunStaged(const StagedOptions& o) {
  v1::Genome genome;
  if (!google::protobuf::TextFormat::ParseFromString(o.genome, &genome)) {
    std::cerr << "--genome is not a v1.Genome in text format\n";
    return 1;
  }
  if (absl::Status s = ValidateGenome(genome); !s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  absl::StatusOr<Table> table = ReadCsv(o.data);
  absl::StatusOr<Table> test_table = ReadCsv(o.test);
  if (!table.ok() || !test_table.ok()) {
    std::cerr << table.status() << " " << test_table.status() << "\n";
    return 1;
  }
  v1::ValidationSplit split;
  split.set_seed(o.seed);
  split.set_fraction(o.validation_fraction);
  const RowPartition rows = PartitionRows(split, table->rows);
  absl::StatusOr<model::Samples> training = Hartmann3(*table, rows.training);
  absl::StatusOr<model::Samples> validation =
      Hartmann3(*table, rows.validation);
  absl::StatusOr<model::Samples> test =
      Hartmann3(*test_table, AllRows(*test_table));
  if (!training.ok() || !validation.ok() || !test.ok()) {
    std::cerr << "bad data\n";
    return 1;
  }
  model::TrainJob job;
  job.genome = genome;
  job.training = *training;
  job.validation = *validation;
  job.test = *test;
  job.seed = o.seed;
  job.within_tolerance = 1e-6;
  job.threads = o.threads;
  job.max_training_seconds = o.max_training_seconds;
  const double cpu_start = CpuSeconds();
  absl::StatusOr<model::TrainOutput> out = model::Train(job);
  if (!out.ok()) {
    std::cerr << out.status() << "\n";
    return 1;
  }
  std::printf("mode=staged genome=\"%s\" cpu_seconds=%.1f\n",
              DescribeGenome(genome).c_str(), CpuSeconds() - cpu_start);
  model::NetworkParameters prefix;
  double seconds = 0;
  std::vector<double> predicted;  // on the test rows; the whole network's last
  for (size_t k = 0; k < out->parameters.stages.size(); ++k) {
    prefix.stages.push_back(out->parameters.stages[k]);
    const model::StageReport& r = out->stages[k];
    seconds += r.seconds;
    predicted = model::Forward(prefix, test->x.data, test->x.rows);
    const v1::Evaluation e6 =
        EvaluatePredictions(predicted, test->y.data, 1, 1e-6);
    const v1::Evaluation e5 =
        EvaluatePredictions(predicted, test->y.data, 1, 1e-5);
    // Against the training rows: how much of the test error is the gap
    // between the rows rather than the fit at them.
    const v1::Evaluation fit = EvaluatePredictions(
        model::Forward(prefix, training->x.data, training->x.rows),
        training->y.data, 1, 1e-6);
    std::printf(
        "mode=staged stages=%zu parameters=%lld seconds=%.1f "
        "test_max_abs_error=%.3e within_1e-6=%.4f within_1e-5=%.4f "
        "test_rmse=%.3e training_max_abs_error=%.3e "
        "validation_max_abs_error=%.3e adam_steps=%d lbfgs_iterations=%d "
        "max_error_iterations=%d after_adam=%.3e after_lbfgs=%.3e "
        "after_max_error=%.3e time_limited=%d\n",
        k + 1, static_cast<long long>(model::ParameterCount(prefix)), seconds,
        e6.max_abs_error(), e6.fraction_within(), e5.fraction_within(),
        e6.rmse(), fit.max_abs_error(), r.after_max_error, r.adam_steps,
        r.lbfgs_iterations, r.max_error_iterations, r.after_adam, r.after_lbfgs,
        r.after_max_error, r.time_limited ? 1 : 0);
    std::fflush(stdout);
  }
  if (!o.predictions.empty()) {
    std::ofstream file(o.predictions);
    for (double value : predicted) {
      file << absl::StrFormat("%.17g\n", value);
    }
    if (!file.flush()) {
      std::cerr << "cannot write " << o.predictions << "\n";
      return 1;
    }
  }
  // The exported TorchScript model, as the worker reports it.
  std::printf(
      "mode=staged exported=torchscript test_max_abs_error=%.3e "
      "within_1e-6=%.4f parameters=%lld model_bytes=%lld "
      "training_seconds=%.3f training_cpu_seconds=%.1f "
      "stopped_at_time_limit=%d\n",
      out->metrics.test().max_abs_error(),
      out->metrics.test().fraction_within(),
      static_cast<long long>(out->metrics.parameter_count()),
      static_cast<long long>(out->metrics.model_bytes()),
      out->metrics.training_seconds(), out->metrics.training_cpu_seconds(),
      out->metrics.stopped_at_time_limit() ? 1 : 0);
  return 0;
}

struct ConvOptions {
  std::string train;  // IDX: images then labels, uncompressed
  std::string test;
  std::string genome;  // v1.Genome in text format
  uint64_t seed = 1;
  int threads = 1;
  double validation_fraction = 0.2;
};

// The rows `rows` of an IDX table (pixels..., label) as classification
// samples.
model::Samples IdxSamples(const Table& table, const std::vector<int64_t>& rows,
                          int64_t pixels) {
  std::vector<int64_t> inputs(pixels);
  for (int64_t i = 0; i < pixels; ++i) inputs[i] = i;
  const int64_t n = static_cast<int64_t>(rows.size());
  model::Samples s;
  s.x = {n, pixels, SelectColumns(table, rows, inputs)};
  s.y = {n, 1, SelectColumns(table, rows, {pixels})};
  return s;
}

absl::StatusOr<Table> ReadIdx(const std::string& path, IdxLayout* layout) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream bytes;
  bytes << in.rdbuf();
  return ParseIdx(bytes.str(), IdxLimits(), layout);
}

// A "<key>:  <n> kB" line of /proc/self/status in bytes; -1 if absent.
long long ProcStatusBytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) {
      return std::atoll(line.c_str() + key.size() + 1) * 1024;
    }
  }
  return -1;
}

int RunConv(const ConvOptions& o) {
  v1::Genome genome;
  if (!google::protobuf::TextFormat::ParseFromString(o.genome, &genome)) {
    std::cerr << "--genome is not a v1.Genome in text format\n";
    return 1;
  }
  IdxLayout layout, test_layout;
  absl::StatusOr<Table> table = ReadIdx(o.train, &layout);
  absl::StatusOr<Table> test_table = ReadIdx(o.test, &test_layout);
  if (!table.ok() || !test_table.ok()) {
    std::cerr << table.status() << " " << test_table.status() << "\n";
    return 1;
  }
  const int64_t pixels = layout.height * layout.width;
  v1::ValidationSplit split;
  split.set_seed(o.seed);
  split.set_fraction(o.validation_fraction);
  const RowPartition rows = PartitionRows(split, table->rows);
  model::TrainJob job;
  job.genome = genome;
  job.training = IdxSamples(*table, rows.training, pixels);
  job.validation = IdxSamples(*table, rows.validation, pixels);
  job.test = IdxSamples(*test_table, AllRows(*test_table), pixels);
  table = Table();  // the samples hold copies
  test_table = Table();
  job.class_count = 10;
  job.image_height = layout.height;
  job.image_width = layout.width;
  job.seed = o.seed;
  job.threads = o.threads;
  // The peak while training, as the worker measures it (VmHWM after
  // resetting it), next to what the data alone occupies.
  const long long data_rss = ProcStatusBytes("VmRSS");
  { std::ofstream("/proc/self/clear_refs") << "5"; }
  const double cpu_start = CpuSeconds();
  absl::StatusOr<model::TrainOutput> out = model::Train(job);
  if (!out.ok()) {
    std::cerr << out.status() << "\n";
    return 1;
  }
  const double cpu = CpuSeconds() - cpu_start;
  const long long training_peak = ProcStatusBytes("VmHWM");
  const model::StageReport& r = out->stages.at(0);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const v1::Metrics& m = out->metrics;
  std::printf(
      "mode=conv genome=\"%s\" threads=%d training_rows=%lld "
      "validation_rows=%lld test_rows=%lld adam_steps=%d "
      "stage_seconds=%.1f steps_per_second=%.2f training_seconds=%.1f "
      "training_cpu_seconds=%.1f total_cpu_seconds=%.1f "
      "validation_accuracy=%.4f validation_cross_entropy=%.4f "
      "test_accuracy=%.4f test_cross_entropy=%.4f parameters=%lld "
      "model_bytes=%lld latency_1=%.3e latency_1024=%.3e "
      "rss_before_training_bytes=%lld training_peak_rss_bytes=%lld "
      "process_peak_rss_bytes=%lld\n",
      DescribeGenome(genome).c_str(), o.threads,
      static_cast<long long>(job.training.x.rows),
      static_cast<long long>(job.validation.x.rows),
      static_cast<long long>(job.test->x.rows), r.adam_steps, r.seconds,
      r.adam_steps / r.seconds, m.training_seconds(), m.training_cpu_seconds(),
      cpu, m.validation().accuracy(), m.validation().cross_entropy(),
      m.test().accuracy(), m.test().cross_entropy(),
      static_cast<long long>(m.parameter_count()),
      static_cast<long long>(m.model_bytes()), m.inference_latency_seconds(),
      m.inference_latency_batch_seconds(), data_rss, training_peak,
      static_cast<long long>(usage.ru_maxrss) * 1024);
  return 0;
}

}  // namespace
}  // namespace evonas::bench

int main(int argc, char** argv) {
  using namespace evonas::bench;  // NOLINT
  CLI::App app{"evonas trainer benchmarks (see BENCHMARKS.md)"};
  app.require_subcommand(1);

  StepsOptions steps;
  CLI::App* steps_cmd = app.add_subcommand("steps", "Adam steps per second");
  steps_cmd->add_option("--data", steps.data, "hartmann3 CSV")->required();
  steps_cmd->add_option("--widths", steps.widths,
                        "hidden widths, comma-separated");
  steps_cmd->add_option("--activation", steps.activation);
  steps_cmd->add_option("--steps", steps.steps);
  steps_cmd->add_option("--threads", steps.threads);
  steps_cmd->add_option("--learning-rate", steps.learning_rate);
  steps_cmd->add_flag("--lbfgs", steps.lbfgs,
                      "time L-BFGS iterations instead of Adam steps");
  steps_cmd->add_option("--dtype", steps.dtype, "float64 or float32")
      ->check(CLI::IsMember({"float64", "float32"}));

  StepsOptions kernel_opts;
  int64_t block = evonas::model::MlpKernels::kDefaultRowsPerBlock;
  CLI::App* kernels_cmd =
      app.add_subcommand("kernels", "MlpKernels steps per CPU second");
  kernels_cmd->add_option("--data", kernel_opts.data, "hartmann3 CSV")
      ->required();
  kernels_cmd->add_option("--widths", kernel_opts.widths);
  kernels_cmd->add_option("--activation", kernel_opts.activation);
  kernels_cmd->add_option("--steps", kernel_opts.steps);
  kernels_cmd->add_option("--block", block);
  kernels_cmd->add_option("--threads", kernel_opts.threads);
  kernels_cmd->add_option("--dtype", kernel_opts.dtype, "float64 or float32")
      ->check(CLI::IsMember({"float64", "float32"}));

  int peak_size = 1024;
  double peak_seconds = 2;
  int peak_threads = 1;
  CLI::App* peak_cmd = app.add_subcommand("peak", "DGEMM GFLOP/s");
  peak_cmd->add_option("--size", peak_size);
  peak_cmd->add_option("--seconds", peak_seconds);
  peak_cmd->add_option("--threads", peak_threads);

  GenomesOptions genomes;
  CLI::App* genomes_cmd =
      app.add_subcommand("genomes", "train random genomes like a worker");
  genomes_cmd->add_option("--data", genomes.data, "training CSV")->required();
  genomes_cmd->add_option("--test", genomes.test, "test CSV")->required();
  genomes_cmd->add_option("--count", genomes.count);
  genomes_cmd->add_option("--seed", genomes.seed);
  genomes_cmd->add_option("--threads", genomes.threads);

  StagedOptions staged;
  CLI::App* staged_cmd = app.add_subcommand(
      "staged", "train one multi-stage genome, evaluate each stage count");
  staged_cmd->add_option("--data", staged.data, "training CSV")->required();
  staged_cmd->add_option("--test", staged.test, "test CSV")->required();
  staged_cmd->add_option("--genome", staged.genome, "v1.Genome, text format")
      ->required();
  staged_cmd->add_option("--seed", staged.seed);
  staged_cmd->add_option("--threads", staged.threads);
  // 0 trains on every row of --data; the trainer then keeps the weights
  // with the smallest training max error.
  staged_cmd->add_option("--validation-fraction", staged.validation_fraction,
                         "fraction of --data held out for selection");
  staged_cmd->add_option("--max-training-seconds", staged.max_training_seconds,
                         "stop training at this many seconds (0: no limit)");
  staged_cmd->add_option("--predictions", staged.predictions,
                         "write the network's test outputs to this file");

  ConvOptions conv;
  CLI::App* conv_cmd = app.add_subcommand(
      "conv", "train one convolutional genome on an IDX image data set");
  conv_cmd->add_option("--train", conv.train, "training IDX (uncompressed)")
      ->required();
  conv_cmd->add_option("--test", conv.test, "test IDX (uncompressed)")
      ->required();
  conv_cmd->add_option("--genome", conv.genome, "v1.Genome, text format")
      ->required();
  conv_cmd->add_option("--seed", conv.seed);
  conv_cmd->add_option("--threads", conv.threads);
  conv_cmd->add_option("--validation-fraction", conv.validation_fraction);

  CLI11_PARSE(app, argc, argv);
  if (*conv_cmd) return RunConv(conv);
  if (*staged_cmd) return RunStaged(staged);
  if (*steps_cmd) return RunSteps(steps);
  if (*kernels_cmd) {
    return kernel_opts.dtype == "float32"
               ? RunKernels<float>(kernel_opts, block)
               : RunKernels<double>(kernel_opts, block);
  }
  if (*peak_cmd) return RunPeak(peak_size, peak_seconds, peak_threads);
  return RunGenomes(genomes);
}
