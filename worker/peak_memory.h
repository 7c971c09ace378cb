#ifndef EVONAS_WORKER_PEAK_MEMORY_H_
#define EVONAS_WORKER_PEAK_MEMORY_H_

// The worker's peak resident memory per candidate. Linux keeps a process's
// high-water mark (VmHWM in /proc/self/status) and lets the process reset
// it to the current resident size (writing 5 to /proc/self/clear_refs,
// since Linux 4.0), so resetting before a candidate and reading after it
// measures that candidate: its data selection, the trainer's copies and
// tensors, the exports.

#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"

namespace evonas::worker {

// Resets the process's peak resident size to its current one; false when
// the kernel refused (no /proc, or too old).
bool ResetPeakMemory();

// The process's peak resident size in bytes since start or the last reset;
// nullopt when it cannot be read.
std::optional<int64_t> PeakMemoryBytes();

// VmHWM of a /proc/<pid>/status text, in bytes; nullopt without a valid
// "VmHWM: <n> kB" line.
std::optional<int64_t> ParseVmHwm(absl::string_view status);

}  // namespace evonas::worker

#endif  // EVONAS_WORKER_PEAK_MEMORY_H_
