#ifndef EVONAS_CLIENT_OUTPUT_H_
#define EVONAS_CLIENT_OUTPUT_H_

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "evonas/v1/evonas_service.pb.h"
#include "evonas/v1/types.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"

namespace evonas::client {

// How a command prints its result.
enum class OutputFormat {
  // Aligned text for people.
  kTable,
  // The response message in protobuf's JSON mapping, for scripts.
  kJson,
  // RFC 4180 rows with a header row, for spreadsheets (see csv.h).
  kCsv,
};

// Maps "table" / "json" / "csv" to the enum; InvalidArgument otherwise.
absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view name);

// A text table with a header row. Columns are separated by two spaces and
// padded to their widest cell; lines carry no trailing blanks.
class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header);

  // Pads cells of `column` on the left (for numbers).
  void AlignRight(size_t column);
  // Adds a row; missing cells are empty, extra cells are dropped.
  void AddRow(std::vector<std::string> cells);
  // Header and rows, each line ending in '\n'.
  std::string Render() const;

 private:
  std::vector<std::string> header_;
  std::vector<bool> right_aligned_;
  std::vector<std::vector<std::string>> rows_;
};

// "key  value" lines with the values aligned, each ending in '\n'.
std::string RenderFields(
    const std::vector<std::pair<std::string, std::string>>& fields);

// `message` in protobuf's JSON mapping: indented, field names as in the
// .proto files (snake_case), fields without presence printed even when zero
// (so "failed": "0" rather than a missing key), enums by name. Ends in '\n'.
absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message);
// The same on one line (JSON Lines), ending in '\n'.
absl::StatusOr<std::string> ToJsonLine(
    const google::protobuf::Message& message);

// What the table renderers need beyond the message itself.
struct TableContext {
  // Used for "elapsed" of experiments still running.
  absl::Time now = absl::UnixEpoch();
  // Time zone of printed timestamps.
  absl::TimeZone time_zone = absl::UTCTimeZone();
};

// "running", "completed", "cancelled", ...
std::string ExperimentStateName(v1::ExperimentState state);
// "queued", "running", "succeeded", "failed", "cancelled", ...
std::string CandidateStateName(v1::CandidateState state);
// Multi-fidelity: "1 short", "2 full <- PROMOTED_FROM", or "" (one level).
std::string EvaluationLevelName(const v1::Candidate& candidate);
// "45s", "3m07s", "2h05m09s", "3d04h05m"; negative durations print as "0s".
std::string ShortDuration(absl::Duration duration);
// "2024-05-01 12:00:00" in `zone`, or "-" when unset.
std::string FormatTimestamp(const google::protobuf::Timestamp& timestamp,
                            absl::TimeZone zone);
// Wall time from creation to finish (or to `now` while running); "-" when
// the creation time is unset.
std::string ExperimentElapsed(const v1::Experiment& experiment, absl::Time now);
// One line, e.g. "max abs error <= 0.001, >= 95% within 0.01, params <=
// 5000"; "none" when nothing is required.
std::string DescribeRequirements(const v1::Requirements& requirements);

// Tables of the individual commands; each ends in '\n'.
std::string DatasetTable(const v1::Dataset& dataset, const TableContext& ctx);
std::string DatasetListTable(const v1::ListDatasetsResponse& response,
                             const TableContext& ctx);
std::string ExperimentTable(const v1::Experiment& experiment,
                            const TableContext& ctx);
std::string ExperimentListTable(const v1::ListExperimentsResponse& response,
                                const TableContext& ctx);
std::string CandidateListTable(const v1::ListCandidatesResponse& response);
// Starts with a line saying whether any candidate meets all requirements.
std::string ParetoFrontTable(const v1::ParetoFront& front);

// One progress line of `experiment wait`, without '\n', e.g.
// "exp-1: running, 3 queued, 2 running, 5 succeeded, 0 failed, 0 cancelled,
// 2 feasible, elapsed 1m05s".
std::string ProgressLine(const v1::Experiment& experiment, absl::Time now);

}  // namespace evonas::client

#endif  // EVONAS_CLIENT_OUTPUT_H_
