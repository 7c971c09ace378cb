#ifndef EVONAS_CLIENT_WATCH_H_
#define EVONAS_CLIENT_WATCH_H_

// The lines of `evonas experiment watch`, as pure functions of what the
// controller sent and the time.

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "evonas/v1/types.pb.h"

namespace evonas::client {

// What the watch knows: the latest experiment and, fetched when its counts
// changed, a summary of the front.
struct WatchSnapshot {
  v1::Experiment experiment;
  int64_t front_size = 0;
  // Smallest validation max abs error of a feasible candidate, if any.
  std::optional<double> best_feasible_error;
};

// Fills the front summary of `snapshot` from `front`.
void SummarizeFront(const v1::ParetoFront& front, WatchSnapshot* snapshot);

// Time until the budget is spent: the wall-clock limit left, or the
// candidates left at the rate they finished so far, whichever is sooner.
// Zero once the experiment finished; nullopt when nothing tells (no budget
// that can be extrapolated yet).
std::optional<absl::Duration> EstimateRemaining(const v1::Experiment& e,
                                                absl::Time now);

// Fraction (0..1) of the budget spent, the larger of candidates and wall
// time; nullopt without a budget.
std::optional<double> BudgetFraction(const v1::Experiment& e, absl::Time now);

// One status line without '\n', e.g. "exp-1 running 45% | 12 done, 2
// running, 5 queued, 1 failed | best feasible 3.21e-04 | front 4 | elapsed
// 1m05s, ~3m left". For a terminal (`tty`) the parts are spaced rather than
// separated by bars and the percentage gets a bar; `color` adds ANSI
// colours.
std::string WatchLine(const WatchSnapshot& snapshot, absl::Time now, bool tty,
                      bool color);

// "512 B", "1.5 KiB", "12.0 MiB", "1.25 GiB" (binary units).
std::string HumanBytes(int64_t bytes);

// The live line of `evonas dataset upload` on a terminal, without '\n', e.g.
// "uploading ████░░░░░░░░░░░░ 25%  3.0 MiB / 12.0 MiB  1.5 MiB/s  ~6s left".
// Rate and time left need some elapsed time; with an unknown total (0) only
// the bytes sent and the rate are shown. `color` adds ANSI colours.
std::string UploadProgressLine(int64_t sent_bytes, int64_t total_bytes,
                               absl::Duration elapsed, bool color);
// The line left after the upload: "uploaded 12.0 MiB in 8s (1.5 MiB/s)".
std::string UploadDoneLine(int64_t sent_bytes, absl::Duration elapsed);

// `--output csv`: the header and one row per update, each ending in CRLF.
std::string WatchCsvHeader();
std::string WatchCsvRow(const WatchSnapshot& snapshot, absl::Time now);

}  // namespace evonas::client

#endif  // EVONAS_CLIENT_WATCH_H_
