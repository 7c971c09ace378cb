#ifndef EVONAS_CLIENT_COMMANDS_H_
#define EVONAS_CLIENT_COMMANDS_H_

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "client/controller_client.h"
#include "client/output.h"
#include "evonas/v1/types.pb.h"

namespace evonas::client {

// What every command needs. The pointers are not owned and must outlive the
// call.
struct CommandEnv {
  ControllerClient* client = nullptr;
  OutputFormat format = OutputFormat::kTable;
  // Results go to `out`; progress that is not the result (`experiment wait`
  // in JSON or CSV mode) goes to `err`.
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  // Clock and time zone of "elapsed" and printed timestamps.
  std::function<absl::Time()> now = [] { return absl::Now(); };
  absl::TimeZone time_zone = absl::LocalTimeZone();
  // `out` is a terminal: `experiment watch` redraws one line in place every
  // `redraw_interval` instead of printing lines, in colour if `color`.
  bool tty = false;
  bool color = false;
  // `err` is a terminal: `dataset upload` redraws a progress bar on it (in
  // colour if `color`) and leaves a final line.
  bool err_tty = false;
  absl::Duration redraw_interval = absl::Seconds(1);
};

// Each command performs its RPCs and prints the result in env.format. They
// return the controller's error unchanged, or a local error (NotFound for a
// missing file, DataLoss for a corrupt download, ...).

struct DatasetUploadOptions {
  // The CSV file, or for IDX the images file; raw or gzip-compressed.
  std::string path;
  // Defaults to the basename of `path`.
  std::string name;
  v1::DatasetFormat format = v1::DATASET_FORMAT_CSV;
  // IDX only, and required there: the labels file; raw or gzip-compressed.
  std::string labels_path;
  // Most bytes a gzip file may decompress to (a small hostile file could
  // otherwise fill memory), and an IDX data set may have; the controller's
  // default upload limit. Errors over it name kMaxGunzipBytesFlag.
  int64_t max_decompressed_bytes = int64_t{1} << 30;
};
// The flag of `evonas dataset upload` that sets max_decompressed_bytes.
inline constexpr char kMaxGunzipBytesFlag[] = "--max-gunzip-bytes";
// `evonas dataset upload FILE [--name NAME] [--format csv|idx --labels FILE]`.
// Gzip files (recognised by their content, not their name) are decompressed
// in memory and uploaded decompressed; a raw CSV is streamed from disk. For
// IDX the images and then the labels are sent as one data set, after
// checking their headers locally (InvalidArgument naming the files).
// InvalidArgument for --labels without IDX or IDX without --labels.
absl::Status RunDatasetUpload(const CommandEnv& env,
                              const DatasetUploadOptions& options);
// `evonas dataset list` / `evonas dataset show ID`.
absl::Status RunDatasetList(const CommandEnv& env);
absl::Status RunDatasetShow(const CommandEnv& env,
                            const std::string& dataset_id);

// `evonas experiment create ...` with the spec built from the flags.
absl::Status RunExperimentCreate(const CommandEnv& env,
                                 const v1::ExperimentSpec& spec);
// `evonas experiment status|list|cancel|candidates|front`.
absl::Status RunExperimentStatus(const CommandEnv& env,
                                 const std::string& experiment_id);
absl::Status RunExperimentList(const CommandEnv& env);
absl::Status RunExperimentCancel(const CommandEnv& env,
                                 const std::string& experiment_id);
absl::Status RunExperimentCandidates(const CommandEnv& env,
                                     const std::string& experiment_id);
absl::Status RunExperimentFront(const CommandEnv& env,
                                const std::string& experiment_id);

struct WaitOptions {
  absl::Duration poll_interval = absl::Seconds(2);
  // Zero waits forever.
  absl::Duration timeout = absl::ZeroDuration();
};
// `evonas experiment wait ID`: polls until the experiment is COMPLETED (OK)
// or CANCELLED (Cancelled), printing a progress line whenever its state or
// counts change; DeadlineExceeded after `options.timeout`. Prints the final
// experiment (JSON mode) at the end.
absl::Status RunExperimentWait(const CommandEnv& env,
                               const std::string& experiment_id,
                               const WaitOptions& options);

// `evonas model download CANDIDATE_ID -o FILE`: streams into FILE.tmp,
// checks size and SHA-256 against the first message, then renames to FILE.
// On any error FILE.tmp is removed and FILE left untouched.
absl::Status RunModelDownload(
    const CommandEnv& env, const std::string& candidate_id,
    const std::string& path,
    v1::ModelFormat format = v1::MODEL_FORMAT_TORCHSCRIPT);

struct ReportOptions {
  // Where to write; "-" is standard output.
  std::string path;
  // "html" (the whole report), "svg" (the front plot alone) or "png" (the
  // front plot, 1920x1200, for slides).
  std::string format = "html";
};
// `evonas experiment report ID -o FILE [--format html|svg|png]`: fetches the
// experiment, its data sets, candidates and front, renders them (report.h)
// and writes FILE.tmp, renamed to FILE when complete. Prints what it wrote
// (in env.format) unless the report itself went to standard output.
absl::Status RunExperimentReport(const CommandEnv& env,
                                 const std::string& experiment_id,
                                 const ReportOptions& options);

struct WatchOptions {
  // Zero watches until the experiment finishes.
  absl::Duration timeout = absl::ZeroDuration();
};
// `evonas experiment watch ID`: follows WatchExperiment and shows counts,
// best feasible error, front size, elapsed and estimated remaining time
// (watch.h). On a terminal (env.tty, table format) one line is redrawn in
// place; otherwise a plain line per change, or a JSON object (one line) or
// CSV row per change in those formats. OK when the experiment completed,
// Cancelled when it was cancelled, DeadlineExceeded after the timeout.
absl::Status RunExperimentWatch(const CommandEnv& env,
                                const std::string& experiment_id,
                                const WatchOptions& options);

// Exit status of the CLI for a command's result; documented in `evonas
// --help` and the README.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnavailable = 3;
inline constexpr int kExitNotFound = 4;
inline constexpr int kExitCancelled = 5;
inline constexpr int kExitTimeout = 6;
inline constexpr int kExitUnauthorized = 7;
// 0 for OK; 3 when the controller cannot be reached (UNAVAILABLE); 4 for
// NOT_FOUND (an unknown id or a missing file); 5 when the experiment that
// `wait` or `watch` followed was cancelled (CANCELLED); 6 when a deadline
// passed (DEADLINE_EXCEEDED: `--timeout-seconds` or a slow controller);
// 7 when the controller refused the token (UNAUTHENTICATED,
// PERMISSION_DENIED); 1 for any other error.
int ExitCodeFor(const absl::Status& status);

}  // namespace evonas::client

#endif  // EVONAS_CLIENT_COMMANDS_H_
