#include "client/output.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/dataset.h"
#include "common/genome.h"
#include "common/requirements.h"
#include "common/timestamps.h"
#include "google/protobuf/util/json_util.h"

namespace evonas::client {
namespace {

constexpr char kNone[] = "-";

// Lower-case enum value name without its prefix ("EXPERIMENT_STATE_").
std::string EnumName(const std::string& full, absl::string_view prefix) {
  if (full.empty()) return "unknown";
  return absl::AsciiStrToLower(absl::StripPrefix(full, prefix));
}

std::string Scientific(double value) {
  if (!std::isfinite(value)) return absl::StrCat(value);
  return absl::StrFormat("%.3e", value);
}

std::string Percent(double fraction) {
  return absl::StrFormat("%.1f%%", 100.0 * fraction);
}

std::string Seconds(double seconds) { return absl::StrFormat("%.1f", seconds); }

// Training seconds, marked when the experiment's time limit stopped the
// training early.
std::string TrainingSeconds(const v1::Metrics& m) {
  const std::string seconds = Seconds(m.training_seconds());
  return m.stopped_at_time_limit() ? seconds + " (stopped)" : seconds;
}

std::string YesNo(bool value) { return value ? "yes" : "no"; }

int64_t TotalCandidates(const v1::CandidateCounts& counts) {
  return counts.queued() + counts.running() + counts.succeeded() +
         counts.failed() + counts.cancelled();
}

std::string DescribeCounts(const v1::CandidateCounts& counts) {
  return absl::StrFormat(
      "%d queued, %d running, %d succeeded, %d failed, %d cancelled",
      counts.queued(), counts.running(), counts.succeeded(), counts.failed(),
      counts.cancelled());
}

std::string DescribeBudget(const v1::Budget& budget) {
  std::vector<std::string> parts;
  if (budget.max_candidates() > 0) {
    parts.push_back(absl::StrCat(budget.max_candidates(), " candidates"));
  }
  if (budget.max_wall_seconds() > 0) {
    parts.push_back(absl::StrCat(
        ShortDuration(absl::Seconds(budget.max_wall_seconds())), " wall time"));
  }
  return parts.empty() ? "none" : absl::StrJoin(parts, ", ");
}

}  // namespace

absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view name) {
  if (name == "table") return OutputFormat::kTable;
  if (name == "json") return OutputFormat::kJson;
  if (name == "csv") return OutputFormat::kCsv;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown output format \"", name, "\" (table, json or csv)"));
}

TextTable::TextTable(std::vector<std::string> header)
    : header_(std::move(header)), right_aligned_(header_.size(), false) {}

void TextTable::AlignRight(size_t column) {
  if (column < right_aligned_.size()) right_aligned_[column] = true;
}

void TextTable::AddRow(std::vector<std::string> cells) {
  cells.resize(header_.size());
  rows_.push_back(std::move(cells));
}

std::string TextTable::Render() const {
  std::vector<size_t> widths(header_.size(), 0);
  for (size_t c = 0; c < header_.size(); ++c) widths[c] = header_[c].size();
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size(); ++c) {
      widths[c] = std::max(widths[c], row[c].size());
    }
  }
  std::string text;
  auto render_line = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t c = 0; c < cells.size(); ++c) {
      if (c > 0) line += "  ";
      const std::string padding(widths[c] - cells[c].size(), ' ');
      if (right_aligned_[c]) {
        absl::StrAppend(&line, padding, cells[c]);
      } else {
        absl::StrAppend(&line, cells[c], padding);
      }
    }
    line.erase(line.find_last_not_of(' ') + 1);
    absl::StrAppend(&text, line, "\n");
  };
  render_line(header_);
  for (const auto& row : rows_) render_line(row);
  return text;
}

std::string RenderFields(
    const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t width = 0;
  for (const auto& [key, value] : fields) width = std::max(width, key.size());
  std::string text;
  for (const auto& [key, value] : fields) {
    std::string line =
        absl::StrCat(key, std::string(width - key.size() + 2, ' '), value);
    line.erase(line.find_last_not_of(' ') + 1);
    absl::StrAppend(&text, line, "\n");
  }
  return text;
}

namespace {

// The message as JSON with the proto's field names and every field printed,
// ending in one newline; indented over several lines when `pretty`.
absl::StatusOr<std::string> PrintJson(const google::protobuf::Message& message,
                                      bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto status =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot print ",
                                            message.GetTypeName(),
                                            " as JSON: ", status.ToString()));
  }
  if (json.empty() || json.back() != '\n') json += '\n';
  return json;
}

}  // namespace

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message) {
  return PrintJson(message, /*pretty=*/true);
}

absl::StatusOr<std::string> ToJsonLine(
    const google::protobuf::Message& message) {
  return PrintJson(message, /*pretty=*/false);
}

std::string ExperimentStateName(v1::ExperimentState state) {
  return EnumName(v1::ExperimentState_Name(state), "EXPERIMENT_STATE_");
}

std::string CandidateStateName(v1::CandidateState state) {
  return EnumName(v1::CandidateState_Name(state), "CANDIDATE_STATE_");
}

std::string ShortDuration(absl::Duration duration) {
  int64_t total = absl::ToInt64Seconds(duration);
  if (total < 0) total = 0;
  const int64_t days = total / 86400;
  const int64_t hours = total / 3600 % 24;
  const int64_t minutes = total / 60 % 60;
  const int64_t seconds = total % 60;
  if (days > 0) return absl::StrFormat("%dd%02dh%02dm", days, hours, minutes);
  if (hours > 0)
    return absl::StrFormat("%dh%02dm%02ds", hours, minutes, seconds);
  if (minutes > 0) return absl::StrFormat("%dm%02ds", minutes, seconds);
  return absl::StrFormat("%ds", seconds);
}

std::string FormatTimestamp(const google::protobuf::Timestamp& timestamp,
                            absl::TimeZone zone) {
  if (!IsSet(timestamp)) return kNone;
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", ToTime(timestamp), zone);
}

std::string ExperimentElapsed(const v1::Experiment& experiment,
                              absl::Time now) {
  if (!IsSet(experiment.created_at())) return kNone;
  const absl::Time end =
      IsSet(experiment.finished_at()) ? ToTime(experiment.finished_at()) : now;
  return ShortDuration(end - ToTime(experiment.created_at()));
}

std::string DescribeRequirements(const v1::Requirements& r) {
  std::vector<std::string> parts;
  if (r.has_max_abs_error()) {
    parts.push_back(absl::StrCat("max abs error <= ", r.max_abs_error()));
  }
  if (r.has_min_fraction_within()) {
    parts.push_back(absl::StrCat(">= ", 100.0 * r.min_fraction_within(),
                                 "% within ", r.within_tolerance()));
  } else if (r.has_within_tolerance()) {
    parts.push_back(absl::StrCat("tolerance ", r.within_tolerance()));
  }
  if (r.has_min_accuracy()) {
    parts.push_back(absl::StrCat("accuracy >= ", 100.0 * r.min_accuracy(), "%"));
  }
  if (r.has_max_parameters()) {
    parts.push_back(absl::StrCat("params <= ", r.max_parameters()));
  }
  if (r.has_max_model_bytes()) {
    parts.push_back(absl::StrCat("model bytes <= ", r.max_model_bytes()));
  }
  if (r.has_max_training_seconds()) {
    parts.push_back(
        absl::StrCat("training <= ", r.max_training_seconds(), " s"));
  }
  if (r.has_max_inference_latency_seconds()) {
    parts.push_back(
        absl::StrCat("latency <= ", r.max_inference_latency_seconds(), " s"));
  }
  return parts.empty() ? "none" : absl::StrJoin(parts, ", ");
}

namespace {

// "CSV", or "IDX 28x28" with the image shape.
std::string DescribeFormat(const v1::Dataset& dataset) {
  std::string text = DatasetFormatName(dataset.format());
  if (dataset.image_shape_size() > 0) {
    absl::StrAppend(&text, " ", absl::StrJoin(dataset.image_shape(), "x"));
  }
  return text;
}

// The column names; for images (hundreds of pixel columns) only the first
// and last pixel and the label.
std::string DescribeColumns(const v1::Dataset& dataset) {
  const int n = dataset.columns_size();
  if (dataset.image_shape_size() == 0 || n <= 4) {
    return absl::StrJoin(dataset.columns(), ", ");
  }
  return absl::StrCat(dataset.columns(0), " .. ", dataset.columns(n - 2), ", ",
                      dataset.columns(n - 1), " (", n, " columns)");
}

// The input columns; more than a dozen (the pixels of an image) as the
// first two, the last and the count.
std::string DescribeInputs(const v1::ExperimentSpec& spec) {
  const int n = spec.input_columns_size();
  if (n <= 12) return absl::StrJoin(spec.input_columns(), ", ");
  return absl::StrCat(spec.input_columns(0), ", ", spec.input_columns(1),
                      " .. ", spec.input_columns(n - 1), " (", n, " columns)");
}

}  // namespace

std::string DatasetTable(const v1::Dataset& dataset, const TableContext& ctx) {
  return RenderFields({
      {"id", dataset.id()},
      {"name", dataset.name()},
      {"format", DescribeFormat(dataset)},
      {"rows", absl::StrCat(dataset.row_count())},
      {"columns", DescribeColumns(dataset)},
      {"size", absl::StrCat(dataset.size_bytes(), " bytes")},
      {"created", FormatTimestamp(dataset.created_at(), ctx.time_zone)},
  });
}

std::string DatasetListTable(const v1::ListDatasetsResponse& response,
                             const TableContext& ctx) {
  TextTable table(
      {"ID", "NAME", "FORMAT", "ROWS", "COLUMNS", "BYTES", "CREATED"});
  table.AlignRight(3);
  table.AlignRight(4);
  table.AlignRight(5);
  for (const v1::Dataset& d : response.datasets()) {
    table.AddRow({d.id(), d.name(), DescribeFormat(d),
                  absl::StrCat(d.row_count()), absl::StrCat(d.columns_size()),
                  absl::StrCat(d.size_bytes()),
                  FormatTimestamp(d.created_at(), ctx.time_zone)});
  }
  return table.Render();
}

std::string ExperimentTable(const v1::Experiment& experiment,
                            const TableContext& ctx) {
  const v1::ExperimentSpec& spec = experiment.spec();
  std::vector<std::pair<std::string, std::string>> fields = {
      {"id", experiment.id()},
      {"name", spec.name().empty() ? kNone : spec.name()},
      {"state", ExperimentStateName(experiment.state())},
      {"dataset", spec.dataset_id()},
  };
  if (!spec.test_dataset_id().empty()) {
    fields.push_back({"test dataset", spec.test_dataset_id()});
  }
  fields.push_back({"inputs", DescribeInputs(spec)});
  fields.push_back({"outputs", absl::StrJoin(spec.output_columns(), ", ")});
  if (spec.task() == v1::TASK_CLASSIFICATION) {
    fields.push_back(
        {"task", absl::StrCat("classification, ", experiment.class_count(),
                              " classes")});
  }
  fields.push_back({"requirements", DescribeRequirements(spec.requirements())});
  fields.push_back({"budget", DescribeBudget(spec.budget())});
  fields.push_back({"seed", absl::StrCat(spec.seed())});
  fields.push_back(
      {"candidates", absl::StrCat(TotalCandidates(experiment.counts()), " (",
                                  DescribeCounts(experiment.counts()), ")")});
  fields.push_back({"feasible", absl::StrCat(experiment.feasible_count())});
  fields.push_back(
      {"created", FormatTimestamp(experiment.created_at(), ctx.time_zone)});
  if (IsSet(experiment.finished_at())) {
    fields.push_back(
        {"finished", FormatTimestamp(experiment.finished_at(), ctx.time_zone)});
  }
  fields.push_back({"elapsed", ExperimentElapsed(experiment, ctx.now)});
  return RenderFields(fields);
}

std::string ExperimentListTable(const v1::ListExperimentsResponse& response,
                                const TableContext& ctx) {
  TextTable table({"ID", "NAME", "STATE", "CANDIDATES", "SUCCEEDED", "FEASIBLE",
                   "CREATED", "ELAPSED"});
  for (size_t c : {3, 4, 5}) table.AlignRight(c);
  for (const v1::Experiment& e : response.experiments()) {
    table.AddRow({e.id(), e.spec().name().empty() ? kNone : e.spec().name(),
                  ExperimentStateName(e.state()),
                  absl::StrCat(TotalCandidates(e.counts())),
                  absl::StrCat(e.counts().succeeded()),
                  absl::StrCat(e.feasible_count()),
                  FormatTimestamp(e.created_at(), ctx.time_zone),
                  ExperimentElapsed(e, ctx.now)});
  }
  return table.Render();
}

std::string EvaluationLevelName(const v1::Candidate& candidate) {
  switch (candidate.evaluation_level()) {
    case v1::EVALUATION_LEVEL_SHORT:
      return "1 short";
    case v1::EVALUATION_LEVEL_FULL:
      return absl::StrCat("2 full <- ", candidate.promoted_from());
    case v1::EVALUATION_LEVEL_REFIT:
      return absl::StrCat("refit <- ", candidate.refit_of());
    default:
      return "";
  }
}

std::string CandidateListTable(const v1::ListCandidatesResponse& response) {
  // A classifier's candidates have a cross-entropy; a regression's do not.
  const bool classification = std::any_of(
      response.candidates().begin(), response.candidates().end(),
      [](const v1::Candidate& c) {
        return c.metrics().validation().cross_entropy() > 0;
      });
  // Multi-fidelity experiments say which level each result comes from.
  const bool levels = std::any_of(
      response.candidates().begin(), response.candidates().end(),
      [](const v1::Candidate& c) {
        return c.evaluation_level() != v1::EVALUATION_LEVEL_UNSPECIFIED;
      });
  // The rows the search judged them on.
  const std::string rows =
      std::any_of(
          response.candidates().begin(), response.candidates().end(),
          [](const v1::Candidate& c) { return c.metrics().has_judging(); })
          ? "JUDGING"
          : "VAL";
  std::vector<std::string> header = {
      "ID",
      "STATE",
      "ARCHITECTURE",
      absl::StrCat(rows, classification ? " ACCURACY" : " MAX ABS ERR"),
      classification ? "CROSS-ENTROPY" : "WITHIN",
      "PARAMS",
      "TRAIN S",
      "FEASIBLE"};
  if (levels) header.insert(header.begin() + 2, "LEVEL");
  TextTable table(header);
  for (size_t c : {3, 4, 5, 6}) table.AlignRight(levels ? c + 1 : c);
  for (const v1::Candidate& c : response.candidates()) {
    const bool done = c.state() == v1::CANDIDATE_STATE_SUCCEEDED;
    const v1::Metrics& m = c.metrics();
    const v1::Evaluation& e = SearchEvaluation(m);
    std::vector<std::string> row = {
        c.id(),
        CandidateStateName(c.state()),
        DescribeGenome(c.genome()),
        !done            ? kNone
        : classification ? Percent(e.accuracy())
                         : Scientific(e.max_abs_error()),
        !done            ? kNone
        : classification ? absl::StrFormat("%.4f", e.cross_entropy())
                         : Percent(e.fraction_within()),
        done ? absl::StrCat(m.parameter_count()) : kNone,
        done ? TrainingSeconds(m) : kNone,
        done ? YesNo(c.feasible()) : kNone};
    if (levels) row.insert(row.begin() + 2, EvaluationLevelName(c));
    table.AddRow(row);
  }
  return table.Render();
}

namespace {

// The refits of front members: trained on every row, so only the test data
// set (when there is one) says how they do on new points.
std::string RefitTable(const v1::ParetoFront& front, bool classification) {
  bool has_test = false;
  for (const v1::Candidate& c : front.refits()) {
    has_test = has_test || c.metrics().has_test();
  }
  std::string text = absl::StrCat(
      "\nRefits on all rows (validation rows included), judged on the ",
      has_test ? "test data set" : "training rows (no test data set)", ":\n");
  const char* rows = has_test ? "TEST" : "TRAIN";
  const JudgedRows judged_rows = JudgedRowsOf(/*refit=*/true, has_test,
                                              /*has_judging=*/false);
  std::vector<std::string> header = {"REFIT", "OF", "STATE"};
  if (classification) {
    header.push_back(absl::StrCat(rows, " ACCURACY"));
  } else {
    header.push_back(absl::StrCat(rows, " MAX ABS ERR"));
    header.push_back("WITHIN TOL");
  }
  for (const char* h : {"TRAIN S", "FEASIBLE"}) header.push_back(h);
  TextTable table(header);
  for (size_t c = 3; c + 1 < header.size(); ++c) table.AlignRight(c);
  for (const v1::Candidate& c : front.refits()) {
    const bool done = c.state() == v1::CANDIDATE_STATE_SUCCEEDED;
    const v1::Evaluation& e = JudgedEvaluation(c.metrics(), judged_rows);
    std::vector<std::string> row = {c.id(), c.refit_of(),
                                    CandidateStateName(c.state())};
    if (classification) {
      row.push_back(done ? Percent(e.accuracy()) : kNone);
    } else {
      row.push_back(done ? Scientific(e.max_abs_error()) : kNone);
      row.push_back(done ? Percent(e.fraction_within()) : kNone);
    }
    row.push_back(done ? TrainingSeconds(c.metrics()) : kNone);
    row.push_back(done ? YesNo(c.feasible()) : kNone);
    table.AddRow(std::move(row));
  }
  return text + table.Render();
}

bool IsClassification(const v1::ParetoFront& front) {
  for (int o : front.objectives()) {
    if (o == v1::OBJECTIVE_VALIDATION_ERROR_RATE ||
        o == v1::OBJECTIVE_VALIDATION_CROSS_ENTROPY) {
      return true;
    }
  }
  // Objectives without an accuracy measure: the metrics tell.
  for (const v1::Candidate& c : front.candidates()) {
    if (c.metrics().validation().cross_entropy() > 0) return true;
  }
  return false;
}

}  // namespace

std::string ParetoFrontTable(const v1::ParetoFront& front) {
  std::string text;
  const int n = front.candidates_size();
  if (n == 0) {
    text = "No candidate has succeeded yet; the Pareto front is empty.\n";
  } else if (front.has_feasible()) {
    text = absl::StrCat("Requirements met: yes (all ", n,
                        n == 1 ? " candidate" : " candidates",
                        " on the front meet every requirement).\n");
  } else {
    text =
        "Requirements met: no (no candidate meets every requirement; the "
        "front holds the least-violating ones).\n";
  }
  if (n == 0) return text;

  bool has_test = false;
  bool has_judging = false;
  for (const v1::Candidate& c : front.candidates()) {
    has_test = has_test || c.metrics().has_test();
    has_judging = has_judging || c.metrics().has_judging();
  }
  const bool classification = IsClassification(front);
  // The search's rows; with judging rows, the validation error too: how much
  // choosing weights on the validation rows flattered it.
  const std::string rows = has_judging ? "JUDGING" : "VAL";
  std::vector<std::string> header = {"CANDIDATE", "ARCHITECTURE"};
  if (classification) {
    header.push_back(rows + " ACCURACY");
    header.push_back(rows + " CROSS-ENTROPY");
    if (has_test) header.push_back("TEST ACCURACY");
  } else {
    if (has_judging) header.push_back("VAL MAX ABS ERR");
    header.push_back(rows + " MAX ABS ERR");
    header.push_back("WITHIN TOL");
    if (has_test) header.push_back("TEST MAX ABS ERR");
  }
  for (const char* h : {"PARAMS", "MODEL BYTES", "TRAIN S", "FEASIBLE"}) {
    header.push_back(h);
  }
  TextTable table(header);
  for (size_t c = 2; c + 1 < header.size(); ++c) table.AlignRight(c);
  for (const v1::Candidate& c : front.candidates()) {
    const v1::Metrics& m = c.metrics();
    std::vector<std::string> row = {c.id(), DescribeGenome(c.genome())};
    const v1::Evaluation& judged = SearchEvaluation(m);
    if (classification) {
      row.push_back(Percent(judged.accuracy()));
      row.push_back(absl::StrFormat("%.4f", judged.cross_entropy()));
      if (has_test) {
        row.push_back(m.has_test() ? Percent(m.test().accuracy()) : kNone);
      }
    } else {
      if (has_judging)
        row.push_back(Scientific(m.validation().max_abs_error()));
      row.push_back(Scientific(judged.max_abs_error()));
      row.push_back(Percent(judged.fraction_within()));
      if (has_test) {
        row.push_back(m.has_test() ? Scientific(m.test().max_abs_error())
                                   : kNone);
      }
    }
    row.push_back(absl::StrCat(m.parameter_count()));
    row.push_back(absl::StrCat(m.model_bytes()));
    row.push_back(TrainingSeconds(m));
    row.push_back(YesNo(c.feasible()));
    table.AddRow(std::move(row));
  }
  text += table.Render();
  if (front.refits_size() > 0) text += RefitTable(front, classification);
  return text;
}

std::string ProgressLine(const v1::Experiment& experiment, absl::Time now) {
  return absl::StrCat(
      experiment.id(), ": ", ExperimentStateName(experiment.state()), ", ",
      DescribeCounts(experiment.counts()), ", ", experiment.feasible_count(),
      " feasible, elapsed ", ExperimentElapsed(experiment, now));
}

}  // namespace evonas::client
