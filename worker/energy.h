#ifndef EVONAS_WORKER_ENERGY_H_
#define EVONAS_WORKER_ENERGY_H_

// Energy spent training a candidate (the green-AutoML objective): measured
// from the CPU's RAPL counters where the kernel lets us read them, otherwise
// estimated from CPU-seconds and a configured wattage.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "evonas/v1/types.pb.h"

namespace evonas::worker {

// Where Linux exposes RAPL (intel_rapl driver, also used for AMD CPUs).
inline constexpr char kPowercapDir[] = "/sys/class/powercap";
// Default of --watts-per-core: a typical server core under full load (TDP
// divided by cores, 10-20 W on current x86 parts).
inline constexpr double kDefaultWattsPerCore = 15.0;

// The package domains of RAPL: directories `intel-rapl:<N>` under the
// powercap directory whose `name` starts with "package". Subzones
// (`intel-rapl:N:M`: core, uncore, dram) and `psys` are skipped because the
// package already includes them or they include the package. Immutable after
// Open; thread-safe.
class RaplCounters {
 public:
  // One reading of every package counter, in microjoules.
  struct Reading {
    std::vector<int64_t> energy_uj;
  };

  // Finds the package domains under `powercap_dir` and checks that each
  // counter and its range can be read. NotFound when there is none,
  // PermissionDenied or Unavailable when one cannot be read (since Linux
  // 5.10 energy_uj is readable by root only).
  static absl::StatusOr<RaplCounters> Open(const std::string& powercap_dir);

  // Reads every counter; Unavailable when one cannot be read or parsed.
  absl::StatusOr<Reading> Read() const;

  // Joules between two readings of these counters. A counter that went
  // down wrapped around at its max_energy_range_uj; it is assumed to have
  // wrapped once at most, so readings must be closer in time than a wrap
  // (typically 2^32 or 2.6e11 uJ: minutes to hours at full power).
  double JoulesBetween(const Reading& before, const Reading& after) const;

  // The energy_uj files read, for messages.
  const std::vector<std::string>& files() const { return energy_files_; }

 private:
  RaplCounters() = default;
  std::vector<std::string> energy_files_;
  std::vector<int64_t> max_range_uj_;
};

// Measures one training run's energy: Start() right before training,
// Sample() now and then while it runs (so that a RAPL counter cannot wrap
// twice unseen), Finish() right after. Thread-safe.
class EnergyMeter {
 public:
  // Finds the RAPL counters under `powercap_dir` (kPowercapDir outside
  // tests); `watts_per_core` is the estimate's wattage, used when RAPL is
  // not readable.
  EnergyMeter(const std::string& powercap_dir, double watts_per_core);

  // Takes the first reading; the energy counts from here.
  void Start();

  // Adds the RAPL energy since the previous reading; nothing before Start().
  // A failed read makes the meter fall back to the estimate for good.
  void Sample();

  // Samples once more, then sets metrics.training_energy_joules and
  // metrics.energy_source: RAPL's package energy since construction when
  // Start() was called and every reading succeeded, otherwise metrics.training_cpu_seconds times the
  // watts per core.
  void Finish(v1::Metrics& metrics);

 private:
  const double watts_per_core_;
  absl::Mutex mu_;
  // Unset once RAPL failed (or was never readable).
  std::optional<RaplCounters> counters_ ABSL_GUARDED_BY(mu_);
  // Unset before Start().
  std::optional<RaplCounters::Reading> last_ ABSL_GUARDED_BY(mu_);
  double joules_ ABSL_GUARDED_BY(mu_) = 0.0;
};

}  // namespace evonas::worker

#endif  // EVONAS_WORKER_ENERGY_H_
