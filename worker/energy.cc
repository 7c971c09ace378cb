#include "worker/energy.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace evonas::worker {
namespace fs = std::filesystem;
namespace {

// Reads a small sysfs file whole. PermissionDenied for EACCES/EPERM (RAPL is
// root-only since Linux 5.10), Unavailable otherwise.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    const std::string message =
        absl::StrCat("cannot read ", path, ": ", std::strerror(error));
    if (error == EACCES || error == EPERM) {
      return absl::PermissionDeniedError(message);
    }
    return absl::UnavailableError(message);
  }
  char buffer[256];
  const ssize_t n = ::read(fd, buffer, sizeof(buffer) - 1);
  const int error = errno;
  ::close(fd);
  if (n < 0) {
    const std::string message =
        absl::StrCat("cannot read ", path, ": ", std::strerror(error));
    if (error == EACCES || error == EPERM) {
      return absl::PermissionDeniedError(message);
    }
    return absl::UnavailableError(message);
  }
  return std::string(buffer, static_cast<size_t>(n));
}

absl::StatusOr<int64_t> ReadCounter(const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile(path);
  if (!text.ok()) return text.status();
  int64_t value = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &value) ||
      value < 0) {
    return absl::UnavailableError(
        absl::StrCat(path, " does not hold a non-negative integer"));
  }
  return value;
}

// "intel-rapl:<N>", not a subzone "intel-rapl:N:M" nor "intel-rapl-mmio:N"
// (which repeats a package's counter on some parts).
bool IsTopLevelZone(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, "intel-rapl:") || name.empty()) return false;
  return std::all_of(name.begin(), name.end(), absl::ascii_isdigit);
}

}  // namespace

absl::StatusOr<RaplCounters> RaplCounters::Open(
    const std::string& powercap_dir) {
  std::vector<fs::path> zones;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(powercap_dir, ec)) {
    if (!IsTopLevelZone(entry.path().filename().string())) continue;
    absl::StatusOr<std::string> zone_name =
        ReadSmallFile((entry.path() / "name").string());
    if (!zone_name.ok() || !absl::StartsWith(*zone_name, "package")) continue;
    zones.push_back(entry.path());
  }
  if (zones.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "no RAPL package domain (intel-rapl:N named package-N) under ",
        powercap_dir));
  }
  std::sort(zones.begin(), zones.end());
  RaplCounters counters;
  for (const fs::path& zone : zones) {
    const std::string energy = (zone / "energy_uj").string();
    absl::StatusOr<int64_t> range =
        ReadCounter((zone / "max_energy_range_uj").string());
    if (!range.ok()) return range.status();
    if (*range <= 0) {
      return absl::UnavailableError(
          absl::StrCat(zone.string(), "/max_energy_range_uj is 0"));
    }
    if (absl::StatusOr<int64_t> value = ReadCounter(energy); !value.ok()) {
      return value.status();
    }
    counters.energy_files_.push_back(energy);
    counters.max_range_uj_.push_back(*range);
  }
  return counters;
}

absl::StatusOr<RaplCounters::Reading> RaplCounters::Read() const {
  Reading reading;
  for (const std::string& file : energy_files_) {
    absl::StatusOr<int64_t> value = ReadCounter(file);
    if (!value.ok()) return value.status();
    reading.energy_uj.push_back(*value);
  }
  return reading;
}

double RaplCounters::JoulesBetween(const Reading& before,
                                   const Reading& after) const {
  double microjoules = 0.0;
  for (size_t i = 0; i < max_range_uj_.size() &&
                     i < before.energy_uj.size() && i < after.energy_uj.size();
       ++i) {
    int64_t delta = after.energy_uj[i] - before.energy_uj[i];
    if (delta < 0) delta += max_range_uj_[i];
    microjoules += static_cast<double>(delta);
  }
  return microjoules * 1e-6;
}

EnergyMeter::EnergyMeter(const std::string& powercap_dir,
                         double watts_per_core)
    : watts_per_core_(watts_per_core) {
  absl::StatusOr<RaplCounters> counters = RaplCounters::Open(powercap_dir);
  absl::MutexLock lock(&mu_);
  if (counters.ok()) counters_ = *std::move(counters);
}

void EnergyMeter::Start() {
  absl::MutexLock lock(&mu_);
  joules_ = 0.0;
  if (!counters_.has_value()) return;
  absl::StatusOr<RaplCounters::Reading> first = counters_->Read();
  if (!first.ok()) {
    counters_.reset();
    return;
  }
  last_ = *std::move(first);
}

void EnergyMeter::Sample() {
  absl::MutexLock lock(&mu_);
  if (!counters_.has_value() || !last_.has_value()) return;
  absl::StatusOr<RaplCounters::Reading> now = counters_->Read();
  if (!now.ok()) {
    counters_.reset();
    return;
  }
  joules_ += counters_->JoulesBetween(*last_, *now);
  last_ = *std::move(now);
}

void EnergyMeter::Finish(v1::Metrics& metrics) {
  Sample();
  absl::MutexLock lock(&mu_);
  if (counters_.has_value() && last_.has_value()) {
    metrics.set_training_energy_joules(joules_);
    metrics.set_energy_source(v1::ENERGY_SOURCE_RAPL);
    return;
  }
  metrics.set_training_energy_joules(metrics.training_cpu_seconds() *
                                     watts_per_core_);
  metrics.set_energy_source(v1::ENERGY_SOURCE_ESTIMATED);
}

}  // namespace evonas::worker
