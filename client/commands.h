#ifndef EVONAS_CLIENT_COMMANDS_H_
#define EVONAS_CLIENT_COMMANDS_H_

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
  // in JSON mode) goes to `err`.
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  // Clock and time zone of "elapsed" and printed timestamps.
  std::function<absl::Time()> now = [] { return absl::Now(); };
  absl::TimeZone time_zone = absl::LocalTimeZone();
};

// Each command performs its RPCs and prints the result in env.format. They
// return the controller's error unchanged, or a local error (NotFound for a
// missing file, DataLoss for a corrupt download, ...).

// `evonas dataset upload FILE [--name NAME]`; `name` defaults to the basename.
absl::Status RunDatasetUpload(const CommandEnv& env, const std::string& path,
                              const std::string& name);
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
absl::Status RunModelDownload(const CommandEnv& env,
                              const std::string& candidate_id,
                              const std::string& path);

}  // namespace evonas::client

#endif  // EVONAS_CLIENT_COMMANDS_H_
