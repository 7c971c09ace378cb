// How well a worker's latency table (worker/latency_calibration.h) predicts
// the measured batch-1 latency of genomes it never timed, next to the cheap
// proxies the search had before (FLOPs, parameters) and next to the
// measurement's own repeatability. BENCHMARKS.md, "Latency tables".
//
//   build/bench/latency_bench --genomes 300
//   build/bench/latency_bench --genomes 200 --conv-layers 4 --image 28
//       (convolutional genomes on 28 x 28 images, 10 outputs)
//   build/bench/latency_bench --genomes 300 --float32
//       (also times each dense genome as a float32 model, between its two
//       float64 timings, and estimates it with the table's float32 models
//       and, for comparison, its float64 ones)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "common/genome.h"
#include "common/latency_table.h"
#include "server/search/strategy.h"
#include "worker/latency_calibration.h"
#include "worker/model/trainer.h"

namespace evonas {
namespace {

// Ranks (0-based, ties averaged) of `v`.
std::vector<double> Ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> ranks(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = 0.5 * (i + j);
    i = j + 1;
  }
  return ranks;
}

double Spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const std::vector<double> ra = Ranks(a), rb = Ranks(b);
  const double n = static_cast<double>(a.size());
  const double mean = (n - 1) / 2;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (ra[i] - mean) * (rb[i] - mean);
    saa += (ra[i] - mean) * (ra[i] - mean);
    sbb += (rb[i] - mean) * (rb[i] - mean);
  }
  return sab / std::sqrt(saa * sbb);
}

double Quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * (v.size() - 1))];
}

int Run(int genomes, int threads, int inputs, int outputs, int seed,
        int conv_layers, int side, bool float32, bool list) {
  const ImageShape image =
      conv_layers > 0 ? ImageShape{side, side} : ImageShape{};
  if (conv_layers > 0) inputs = side * side;
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<v1::LatencyTable> table =
      worker::CalibrateLatency(worker::LocalHardwareClass(threads), threads);
  if (!table.ok()) {
    std::cerr << table.status() << "\n";
    return 1;
  }
  const double calibration_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();

  // Genomes as the default search space's random search draws them.
  v1::ExperimentSpec spec;
  spec.set_seed(seed);
  if (conv_layers > 0) {
    v1::SearchSpace& space = *spec.mutable_search_space();
    space.set_min_conv_layers(1);
    space.set_max_conv_layers(conv_layers);
    space.set_allow_residual(true);
    space.add_activations(v1::ACTIVATION_RELU);
    space.add_activations(v1::ACTIVATION_GELU);
    space.add_activations(v1::ACTIVATION_SILU);
  }
  *spec.mutable_search_space() =
      search::NormalizeSearchSpace(spec.search_space(), image).value();
  std::unique_ptr<search::Strategy> random =
      search::MakeStrategy(spec, {}, outputs, image).value();

  std::vector<double> measured, again, estimated, flops, parameters;
  // With --float32: the float32 model's latency and its estimate from the
  // table's float32 models.
  std::vector<double> measured32, estimated32;
  for (int n = 0; n < genomes; ++n) {
    const v1::Genome genome = random->Propose(n, {}).genome;
    const model::NetworkParameters network =
        worker::PlaceholderNetwork(genome, inputs, outputs, image).value();
    absl::StatusOr<double> first = model::MeasureLatency(network, threads, 50);
    if (float32 && conv_layers == 0) {
      // The same weights, computed in float32 as a FLOAT32 genome exports.
      model::NetworkParameters network32 = network;
      for (model::MlpParameters& stage : network32.stages) {
        stage.float32 = true;
      }
      absl::StatusOr<double> seconds32 =
          model::MeasureLatency(network32, threads, 50);
      if (!seconds32.ok()) {
        std::cerr << seconds32.status() << "\n";
        return 1;
      }
      measured32.push_back(*seconds32);
      v1::Genome genome32 = genome;
      genome32.set_precision(v1::PRECISION_FLOAT32);
      estimated32.push_back(
          EstimateGenomeCost(genome32, inputs, outputs, {*table}, image)
              .estimated_latency_seconds());
    }
    absl::StatusOr<double> second = model::MeasureLatency(network, threads, 50);
    if (!first.ok() || !second.ok()) {
      std::cerr << first.status() << " " << second.status() << "\n";
      return 1;
    }
    const v1::GenomeCost cost =
        EstimateGenomeCost(genome, inputs, outputs, {*table}, image);
    if (list) {
      std::printf(
          "genome %d: measured %.1f us (again %.1f%s), estimated "
          "%.1f us: %s\n",
          n, 1e6 * *first, 1e6 * *second,
          measured32.size() > measured.size()
              ? absl::StrFormat(", float32 %.1f us", 1e6 * measured32.back())
                    .c_str()
              : "",
          1e6 * cost.estimated_latency_seconds(),
          DescribeGenome(genome).c_str());
    }
    measured.push_back(*first);
    again.push_back(*second);
    estimated.push_back(cost.estimated_latency_seconds());
    flops.push_back(static_cast<double>(cost.flops_per_sample()));
    parameters.push_back(static_cast<double>(cost.parameter_count()));
  }

  std::vector<double> estimate_error, repeat_error, ratio;
  for (size_t i = 0; i < measured.size(); ++i) {
    ratio.push_back(estimated[i] / measured[i]);
    estimate_error.push_back(std::abs(estimated[i] / measured[i] - 1));
    repeat_error.push_back(std::abs(again[i] / measured[i] - 1));
  }
  // Level-0 screening at a limit of the median measured latency: how many
  // children that meet it would the 1.5x margin wrongly drop, and how many
  // that break it by 1.5x does it catch.
  const double limit = Quantile(measured, 0.5);
  int meets = 0, wrongly_dropped = 0, far_over = 0, caught = 0;
  for (size_t i = 0; i < measured.size(); ++i) {
    const bool dropped =
        estimated[i] > search::kLatencyScreenMargin * limit;
    if (measured[i] <= limit) {
      ++meets;
      wrongly_dropped += dropped;
    }
    if (measured[i] > search::kLatencyScreenMargin * limit) {
      ++far_over;
      caught += dropped;
    }
  }

  std::printf("hardware class: %s\n", table->hardware_class().c_str());
  std::printf("calibration: %d networks in %.2f s\n",
              table->calibration_points(), calibration_seconds);
  for (bool conv : {false, true}) {
    for (const v1::LayerLatencyModel& m :
         conv ? table->conv_layers() : table->layers()) {
      std::printf("  %-5s %-22s %8.2f us + %7.3f ns per multiply-add\n",
                  conv ? "conv" : "dense",
                  v1::Activation_Name(m.activation()).c_str(),
                  1e6 * m.intercept_seconds(),
                  1e9 * m.seconds_per_multiply_add());
    }
  }
  std::printf("%d random genomes (%d inputs, %d outputs, %d thread(s)); "
              "measured latency %.1f .. %.1f us (median %.1f)\n",
              genomes, inputs, outputs, threads,
              1e6 * Quantile(measured, 0), 1e6 * Quantile(measured, 1),
              1e6 * limit);
  std::printf("|estimate / measured - 1|: median %.3f, p90 %.3f, max %.3f\n",
              Quantile(estimate_error, 0.5), Quantile(estimate_error, 0.9),
              Quantile(estimate_error, 1));
  std::printf("estimate / measured: p10 %.3f, median %.3f, p90 %.3f\n",
              Quantile(ratio, 0.1), Quantile(ratio, 0.5), Quantile(ratio, 0.9));
  std::printf("|measured again / measured - 1|: median %.3f, p90 %.3f, "
              "max %.3f\n",
              Quantile(repeat_error, 0.5), Quantile(repeat_error, 0.9),
              Quantile(repeat_error, 1));
  std::printf("Spearman rank correlation with measured latency: estimate "
              "%.3f, FLOPs %.3f, parameters %.3f, measured again %.3f\n",
              Spearman(estimated, measured), Spearman(flops, measured),
              Spearman(parameters, measured), Spearman(again, measured));
  std::printf("screening at the median latency (margin %.1f): %d of %d "
              "that meet it dropped; %d of %d over %.1fx caught\n",
              search::kLatencyScreenMargin, wrongly_dropped, meets, caught,
              far_over, search::kLatencyScreenMargin);
  if (!measured32.empty()) {
    std::vector<double> ratio32, float64_table_ratio, float32_table_ratio;
    for (size_t i = 0; i < measured32.size(); ++i) {
      ratio32.push_back(measured32[i] / measured[i]);
      float64_table_ratio.push_back(estimated[i] / measured32[i]);
      float32_table_ratio.push_back(estimated32[i] / measured32[i]);
    }
    std::printf(
        "float32 / float64 measured: p10 %.3f, median %.3f, p90 "
        "%.3f\n",
        Quantile(ratio32, 0.1), Quantile(ratio32, 0.5), Quantile(ratio32, 0.9));
    for (bool own : {false, true}) {
      const std::vector<double>& r =
          own ? float32_table_ratio : float64_table_ratio;
      std::printf(
          "float32 measured against the %s models: estimate / "
          "measured p10 %.3f, median %.3f, p90 %.3f; Spearman %.3f\n",
          own ? "float32" : "float64", Quantile(r, 0.1), Quantile(r, 0.5),
          Quantile(r, 0.9),
          Spearman(own ? estimated32 : estimated, measured32));
    }
  }
  return 0;
}

}  // namespace
}  // namespace evonas

int main(int argc, char** argv) {
  int genomes = 300, threads = 1, inputs = 3, outputs = 1, seed = 1;
  int conv_layers = 0, side = 28;
  bool float32 = false, list = false;
  CLI::App app{"Latency tables: estimated against measured batch-1 latency"};
  app.add_option("--genomes", genomes, "Random genomes to time")
      ->capture_default_str()
      ->check(CLI::Range(10, 100000));
  app.add_option("--threads", threads, "Intra-op threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--inputs", inputs, "Network inputs")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  app.add_option("--outputs", outputs, "Network outputs")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  app.add_option("--seed", seed, "Random search seed")->capture_default_str();
  app.add_option("--conv-layers", conv_layers,
                 "Draw convolutional genomes of 1..N layers on square images "
                 "(--inputs is then the pixel count)")
      ->capture_default_str()
      ->check(CLI::Range(0, 16));
  app.add_option("--image", side, "Side of the square images, pixels")
      ->capture_default_str()
      ->check(CLI::Range(2, 256));
  app.add_flag("--float32", float32,
               "Also time each dense genome as a float32 model");
  app.add_flag("--list", list, "Print every genome and its timings");
  CLI11_PARSE(app, argc, argv);
  return evonas::Run(genomes, threads, inputs, outputs, seed, conv_layers, side,
                     float32, list);
}
