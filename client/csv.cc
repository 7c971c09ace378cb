#include "client/csv.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/output.h"
#include "common/dataset.h"
#include "common/genome.h"
#include "common/timestamps.h"

namespace evonas::client {
namespace {

std::string Rfc3339(const google::protobuf::Timestamp& t) {
  if (!IsSet(t)) return "";
  return absl::FormatTime(absl::RFC3339_full, ToTime(t), absl::UTCTimeZone());
}

std::string Int(int64_t value) { return absl::StrCat(value); }

// Seconds from creation to finish (or `now`), empty when never created.
std::string ElapsedSeconds(const v1::Experiment& e, absl::Time now) {
  if (!IsSet(e.created_at())) return "";
  const absl::Time end = IsSet(e.finished_at()) ? ToTime(e.finished_at()) : now;
  return CsvNumber(absl::ToDoubleSeconds(end - ToTime(e.created_at())));
}

void AppendEvaluation(const v1::Evaluation& evaluation, bool present,
                      std::vector<std::string>* row) {
  if (!present) {
    row->insert(row->end(), 5, "");
    return;
  }
  row->push_back(Int(evaluation.row_count()));
  row->push_back(CsvNumber(evaluation.max_abs_error()));
  row->push_back(CsvNumber(evaluation.fraction_within()));
  row->push_back(CsvNumber(evaluation.rmse()));
  row->push_back(CsvNumber(evaluation.mae()));
}

}  // namespace

std::string CsvField(absl::string_view value) {
  const bool quote =
      value.find_first_of(",\"\r\n") != absl::string_view::npos ||
      (!value.empty() && (value.front() == ' ' || value.back() == ' '));
  if (!quote) return std::string(value);
  std::string field = "\"";
  for (char c : value) {
    if (c == '"') field += '"';
    field += c;
  }
  field += '"';
  return field;
}

std::string CsvRecord(const std::vector<std::string>& fields) {
  std::string line;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) line += ',';
    line += CsvField(fields[i]);
  }
  line += "\r\n";
  return line;
}

std::string CsvNumber(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  const std::to_chars_result result =
      std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (result.ec != std::errc()) return absl::StrCat(value);
  return std::string(buffer, result.ptr);
}

std::string DatasetsCsv(const std::vector<v1::Dataset>& datasets) {
  std::string text =
      CsvRecord({"id", "name", "row_count", "column_count", "columns",
                 "size_bytes", "created_at", "format", "image_shape"});
  for (const v1::Dataset& d : datasets) {
    absl::StrAppend(
        &text, CsvRecord({d.id(), d.name(), Int(d.row_count()),
                          Int(d.columns_size()), absl::StrJoin(d.columns(), ","),
                          Int(d.size_bytes()), Rfc3339(d.created_at()),
                          DatasetFormatName(d.format()),
                          absl::StrJoin(d.image_shape(), "x")}));
  }
  return text;
}

std::string ExperimentsCsv(const std::vector<v1::Experiment>& experiments,
                           absl::Time now) {
  std::string text = CsvRecord(
      {"id", "name", "state", "dataset_id", "test_dataset_id", "inputs",
       "outputs", "requirements", "budget_candidates", "budget_seconds",
       "seed", "queued", "running", "succeeded", "failed", "cancelled",
       "feasible", "created_at", "finished_at", "elapsed_seconds"});
  for (const v1::Experiment& e : experiments) {
    const v1::ExperimentSpec& spec = e.spec();
    const v1::CandidateCounts& n = e.counts();
    absl::StrAppend(
        &text,
        CsvRecord({e.id(), spec.name(), ExperimentStateName(e.state()),
                   spec.dataset_id(), spec.test_dataset_id(),
                   absl::StrJoin(spec.input_columns(), ","),
                   absl::StrJoin(spec.output_columns(), ","),
                   DescribeRequirements(spec.requirements()),
                   spec.budget().max_candidates() > 0
                       ? Int(spec.budget().max_candidates())
                       : "",
                   spec.budget().max_wall_seconds() > 0
                       ? CsvNumber(spec.budget().max_wall_seconds())
                       : "",
                   absl::StrCat(spec.seed()), Int(n.queued()), Int(n.running()),
                   Int(n.succeeded()), Int(n.failed()), Int(n.cancelled()),
                   Int(e.feasible_count()), Rfc3339(e.created_at()),
                   Rfc3339(e.finished_at()), ElapsedSeconds(e, now)}));
  }
  return text;
}

std::string CandidatesCsv(const std::vector<v1::Candidate>& candidates) {
  std::string text = CsvRecord({"id",
                                "sequence",
                                "state",
                                "architecture",
                                "feasible",
                                "validation_rows",
                                "validation_max_abs_error",
                                "validation_fraction_within",
                                "validation_rmse",
                                "validation_mae",
                                "test_rows",
                                "test_max_abs_error",
                                "test_fraction_within",
                                "test_rmse",
                                "test_mae",
                                "parameter_count",
                                "model_bytes",
                                "training_seconds",
                                "inference_latency_seconds",
                                "training_rows",
                                "attempts",
                                "worker_id",
                                "created_at",
                                "finished_at",
                                "violations",
                                "failure_reason",
                                "validation_accuracy",
                                "validation_cross_entropy",
                                "test_accuracy",
                                "test_cross_entropy",
                                "evaluation_level",
                                "promoted_from",
                                "refit_of",
                                "stopped_at_time_limit",
                                "judging_rows",
                                "judging_max_abs_error",
                                "judging_fraction_within",
                                "judging_rmse",
                                "judging_mae",
                                "judging_accuracy",
                                "judging_cross_entropy"});
  for (const v1::Candidate& c : candidates) {
    const bool done = c.state() == v1::CANDIDATE_STATE_SUCCEEDED;
    const v1::Metrics& m = c.metrics();
    std::vector<std::string> row = {
        c.id(), Int(c.sequence()), CandidateStateName(c.state()),
        DescribeGenome(c.genome()), done ? (c.feasible() ? "true" : "false")
                                         : ""};
    AppendEvaluation(m.validation(), done, &row);
    AppendEvaluation(m.test(), done && m.has_test(), &row);
    if (done) {
      row.push_back(Int(m.parameter_count()));
      row.push_back(Int(m.model_bytes()));
      row.push_back(CsvNumber(m.training_seconds()));
      row.push_back(CsvNumber(m.inference_latency_seconds()));
      row.push_back(Int(m.training_row_count()));
    } else {
      row.insert(row.end(), 5, "");
    }
    row.push_back(Int(c.attempts()));
    row.push_back(c.worker_id());
    row.push_back(Rfc3339(c.created_at()));
    row.push_back(Rfc3339(c.finished_at()));
    row.push_back(absl::StrJoin(c.violations(), "; "));
    row.push_back(c.failure_reason());
    // Classification columns last, so that scripts reading the regression
    // columns by position keep working.
    for (const auto* e : {&m.validation(), &m.test()}) {
      const bool present = done && (e == &m.validation() || m.has_test());
      row.push_back(present ? CsvNumber(e->accuracy()) : "");
      row.push_back(present ? CsvNumber(e->cross_entropy()) : "");
    }
    switch (c.evaluation_level()) {
      case v1::EVALUATION_LEVEL_SHORT:
        row.push_back("1");
        break;
      case v1::EVALUATION_LEVEL_FULL:
        row.push_back("2");
        break;
      case v1::EVALUATION_LEVEL_REFIT:
        row.push_back("refit");
        break;
      default:
        row.push_back("");
    }
    row.push_back(c.promoted_from());
    row.push_back(c.refit_of());
    row.push_back(done ? (m.stopped_at_time_limit() ? "true" : "false") : "");
    const bool judged = done && m.has_judging();
    AppendEvaluation(m.judging(), judged, &row);
    row.push_back(judged ? CsvNumber(m.judging().accuracy()) : "");
    row.push_back(judged ? CsvNumber(m.judging().cross_entropy()) : "");
    absl::StrAppend(&text, CsvRecord(row));
  }
  return text;
}

}  // namespace evonas::client
