#ifndef EVONAS_CLIENT_CSV_H_
#define EVONAS_CLIENT_CSV_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "evonas/v1/evonas_service.pb.h"
#include "evonas/v1/types.pb.h"

// `--output csv`: RFC 4180 text for spreadsheets and scripts. Every renderer
// returns a header row and one row per item, each line ending in CRLF as
// the RFC says. Numbers are printed in full (the shortest text that reads
// back as the same double), timestamps as RFC 3339 in UTC, and a field that
// does not apply (a failed candidate's error) is empty.

namespace evonas::client {

// One field: quoted (with inner quotes doubled) when it holds a comma, a
// quote, CR or LF, or starts or ends with a space; otherwise unchanged.
std::string CsvField(absl::string_view value);
// Fields joined by commas, ending in CRLF.
std::string CsvRecord(const std::vector<std::string>& fields);
// Shortest decimal text that parses back to exactly `value`; "inf", "-inf"
// and "nan" for the non-finite.
std::string CsvNumber(double value);

std::string DatasetsCsv(const std::vector<v1::Dataset>& datasets);
// `now` gives the elapsed time of experiments that are still running.
std::string ExperimentsCsv(const std::vector<v1::Experiment>& experiments,
                           absl::Time now);
// Every candidate field and metric; used for `candidates` and `front` (the
// members, then their refits: evaluation_level "refit").
std::string CandidatesCsv(const std::vector<v1::Candidate>& candidates);

}  // namespace evonas::client

#endif  // EVONAS_CLIENT_CSV_H_
