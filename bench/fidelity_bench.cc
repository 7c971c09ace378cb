// Multi-fidelity evaluation (successive halving) against training every
// candidate in full, on the simulated evaluator, through the real
// controller: BENCHMARKS.md, "Multi-fidelity evaluation".
//
//   build/bench/fidelity_bench --strategy lemonade --inherit --seeds 5
//
// Each search runs `workers` simulated workers on a simulated clock: a
// worker leases, the simulator says how many seconds the training takes
// (SimulateLease, exactly what evonas-worker --simulate reports, scaled by
// the lease's step fraction), the worker reports when that time has
// passed and leases again. Both configurations get the same number of
// workers and the same simulated wall budget. Hypervolume is over (log10
// validation max abs error, log10 parameters), as in bench/strategy_bench.py.

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <queue>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "common/hypervolume.h"
#include "common/status_macros.h"
#include "server/controller.h"
#include "worker/worker.h"

namespace evonas {
namespace {

struct Options {
  std::string strategy = "lemonade";
  bool inherit = false;
  int seeds = 5;
  int workers = 4;
  double wall_seconds = 600;
  double short_fraction = 0.25;
  int reduction_factor = 3;
  double error_floor = 1e-6;
  double max_parameters = 1e6;
};

struct Curve {
  // (simulated seconds, hypervolume) after each succeeded candidate.
  std::vector<std::pair<double, double>> points;
  int succeeded = 0, short_runs = 0, promotions = 0;
  double best_error = INFINITY;
  double At(double seconds) const {
    double volume = 0;
    for (const auto& [t, v] : points) {
      if (t <= seconds) volume = v;
    }
    return volume;
  }
  // Simulated seconds until the hypervolume reaches `target`, or -1.
  double Reach(double target) const {
    for (const auto& [t, v] : points) {
      if (v >= target - 1e-12) return t;
    }
    return -1;
  }
};

v1::Strategy StrategyOf(const std::string& name) {
  if (name == "random") return v1::STRATEGY_RANDOM;
  if (name == "evolution") return v1::STRATEGY_REGULARIZED_EVOLUTION;
  if (name == "nsga2") return v1::STRATEGY_NSGA2;
  return v1::STRATEGY_LEMONADE;
}

absl::StatusOr<Curve> Search(const Options& o, uint64_t seed,
                             bool multi_fidelity) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      absl::StrCat("fidelity_bench_", getpid(), "_", seed, "_", multi_fidelity);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  ControllerOptions options;
  options.db_path = (dir / "evonas.db").string();
  options.data_dir = (dir / "data").string();
  // Simulated training takes simulated time: no lease may expire.
  options.lease_timeout = absl::Hours(24 * 365);
  EVONAS_ASSIGN_OR_RETURN(auto controller, Controller::Create(options));

  // The simulator only needs the column counts; the rows are never read.
  std::string csv = "x1,x2,x3,y\n";
  for (int i = 0; i < 50; ++i) {
    absl::StrAppend(&csv, i, ",", i % 7, ",", i % 3, ",", i * 0.5, "\n");
  }
  EVONAS_ASSIGN_OR_RETURN(auto upload,
                          controller->BeginUpload("data.csv", csv.size()));
  EVONAS_RETURN_IF_ERROR(upload->Append(csv));
  EVONAS_ASSIGN_OR_RETURN(v1::Dataset dataset, upload->Finish());

  v1::ExperimentSpec spec;
  spec.set_dataset_id(dataset.id());
  for (const char* x : {"x1", "x2", "x3"}) spec.add_input_columns(x);
  spec.add_output_columns("y");
  spec.set_seed(seed);
  spec.set_strategy(StrategyOf(o.strategy));
  spec.mutable_inheritance()->set_enabled(o.inherit);
  spec.mutable_budget()->set_max_candidates(1000000);
  v1::SearchSpace& space = *spec.mutable_search_space();
  space.set_max_width(64);
  space.set_min_adam_steps(500);
  space.set_max_adam_steps(3000);
  space.set_lbfgs_steps(200);
  space.set_allow_residual(true);
  space.set_max_residual_stages(2);
  if (multi_fidelity) {
    v1::MultiFidelitySettings& f = *spec.mutable_multi_fidelity();
    f.set_enabled(true);
    f.set_short_step_fraction(o.short_fraction);
    f.set_reduction_factor(o.reduction_factor);
  }
  EVONAS_ASSIGN_OR_RETURN(v1::Experiment experiment,
                          controller->CreateExperiment(spec));

  struct Running {
    double done_at;
    int worker;
    worker::SimulatedReport report;
    bool operator>(const Running& other) const {
      return done_at > other.done_at;
    }
  };
  std::priority_queue<Running, std::vector<Running>, std::greater<Running>>
      running;
  auto lease = [&](int worker, double now) -> absl::Status {
    const std::string id = absl::StrCat("w", worker);
    EVONAS_ASSIGN_OR_RETURN(auto granted, controller->LeaseWork(id));
    if (!granted) return absl::InternalError("no work for a free worker");
    worker::SimulatedReport report = worker::SimulateLease(*granted, id);
    const double seconds = report.result.metrics().training_seconds();
    running.push({now + seconds, worker, std::move(report)});
    return absl::OkStatus();
  };
  for (int w = 0; w < o.workers; ++w) EVONAS_RETURN_IF_ERROR(lease(w, 0));

  Curve curve;
  std::vector<std::vector<double>> points;
  while (!running.empty() && running.top().done_at <= o.wall_seconds) {
    Running next = running.top();
    running.pop();
    EVONAS_RETURN_IF_ERROR(controller
                               ->Report(next.report.result, next.report.model,
                                        next.report.artifacts)
                               .status());
    EVONAS_RETURN_IF_ERROR(lease(next.worker, next.done_at));
    const v1::Metrics& m = next.report.result.metrics();
    if (next.report.result.failure_reason().empty()) {
      ++curve.succeeded;
      const double error =
          std::max(m.validation().max_abs_error(), o.error_floor);
      curve.best_error = std::min(curve.best_error, error);
      points.push_back({1 - std::log10(error) / std::log10(o.error_floor),
                        std::log10(std::max<double>(m.parameter_count(), 1)) /
                            std::log10(o.max_parameters)});
      EVONAS_ASSIGN_OR_RETURN(double volume, Hypervolume(points, {1, 1}));
      curve.points.push_back({next.done_at, volume});
    }
  }
  EVONAS_ASSIGN_OR_RETURN(auto all,
                          controller->ListCandidates(experiment.id()));
  for (const v1::Candidate& c : all) {
    if (c.state() != v1::CANDIDATE_STATE_SUCCEEDED) continue;
    if (c.evaluation_level() == v1::EVALUATION_LEVEL_SHORT) ++curve.short_runs;
    if (c.evaluation_level() == v1::EVALUATION_LEVEL_FULL) ++curve.promotions;
  }
  controller.reset();
  std::filesystem::remove_all(dir);
  return curve;
}

int Run(const Options& o) {
  std::printf(
      "strategy %s%s, %d simulated workers, %.0f simulated s per search, "
      "short runs %.2f of the steps, eta %d\n\n",
      o.strategy.c_str(), o.inherit ? " + inheritance" : "", o.workers,
      o.wall_seconds, o.short_fraction, o.reduction_factor);
  std::printf(
      "| seed | config | succeeded (short / promoted) | hypervolume at 25%% / "
      "50%% / 100%% | best error | reaches full training's final at |\n"
      "|---|---|---|---|---|---|\n");
  double sum_ratio = 0;
  int reached = 0;
  for (int seed = 1; seed <= o.seeds; ++seed) {
    absl::StatusOr<Curve> full = Search(o, seed, false);
    absl::StatusOr<Curve> halving = Search(o, seed, true);
    if (!full.ok() || !halving.ok()) {
      std::fprintf(stderr, "seed %d: %s %s\n", seed,
                   full.status().ToString().c_str(),
                   halving.status().ToString().c_str());
      return 1;
    }
    const double target = full->At(o.wall_seconds);
    for (const Curve* c : {&*full, &*halving}) {
      const double reach = c->Reach(target);
      if (c == &*halving && reach >= 0) {
        sum_ratio += reach / o.wall_seconds;
        ++reached;
      }
      std::printf(
          "| %d | %s | %d (%d / %d) | %.3f / %.3f / %.3f | %.2e | %s |\n", seed,
          c == &*full ? "full" : "multi-fidelity", c->succeeded, c->short_runs,
          c->promotions, c->At(0.25 * o.wall_seconds),
          c->At(0.5 * o.wall_seconds), c->At(o.wall_seconds), c->best_error,
          reach < 0 ? "never"
                    : absl::StrCat(
                          static_cast<int>(reach), " s (",
                          static_cast<int>(100 * reach / o.wall_seconds), "%)")
                          .c_str());
    }
  }
  std::printf(
      "\nmulti-fidelity reached full training's final hypervolume in %d of "
      "%d seeds, after %.0f%% of the time on average where it did\n",
      reached, o.seeds, reached > 0 ? 100 * sum_ratio / reached : 0.0);
  return 0;
}

}  // namespace
}  // namespace evonas

int main(int argc, char** argv) {
  evonas::Options o;
  CLI::App app{"Multi-fidelity evaluation against full training, simulated"};
  app.add_option("--strategy", o.strategy)
      ->check(CLI::IsMember({"random", "evolution", "lemonade", "nsga2"}));
  app.add_flag("--inherit", o.inherit);
  app.add_option("--seeds", o.seeds);
  app.add_option("--workers", o.workers);
  app.add_option("--wall-seconds", o.wall_seconds);
  app.add_option("--short-step-fraction", o.short_fraction);
  app.add_option("--reduction-factor", o.reduction_factor);
  CLI11_PARSE(app, argc, argv);
  return evonas::Run(o);
}
