#include "client/report.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "client/output.h"
#include "client/plot.h"
#include "client/png.h"
#include "client/raster.h"
#include "common/genome.h"
#include "common/hypervolume.h"
#include "common/requirements.h"
#include "common/timestamps.h"

namespace evonas::client {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool Succeeded(const v1::Candidate& c) {
  return c.state() == v1::CANDIDATE_STATE_SUCCEEDED;
}

// ---------------------------------------------------------------------------
// Number formats.

// "⁻¹²" for -12.
std::string Superscript(int exponent) {
  static const char* const kDigits[] = {"⁰", "¹", "²", "³", "⁴",
                                        "⁵", "⁶", "⁷", "⁸", "⁹"};
  std::string digits = absl::StrCat(std::abs(exponent));
  std::string text = exponent < 0 ? "⁻" : "";
  for (char d : digits) text += kDigits[d - '0'];
  return text;
}

// 3.21e-04 as "3.21e-04"; the table's format of errors.
std::string Sci(double value) {
  if (!std::isfinite(value)) return absl::StrCat(value);
  return absl::StrFormat("%.2e", value);
}

// 12345 as "12,345".
std::string Grouped(int64_t value) {
  std::string digits = absl::StrCat(value < 0 ? -value : value);
  std::string text;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) text += ',';
    text += digits[i];
  }
  return value < 0 ? "-" + text : text;
}

// Value with three significant digits and a unit prefix: "85.2 µs".
std::string WithPrefix(double value, const std::string& unit) {
  if (!std::isfinite(value)) return absl::StrCat(value, " ", unit);
  struct Prefix {
    double scale;
    const char* name;
  };
  static const Prefix kPrefixes[] = {{1e9, "G"}, {1e6, "M"},  {1e3, "k"},
                                     {1, ""},    {1e-3, "m"}, {1e-6, "µ"},
                                     {1e-9, "n"}};
  for (const Prefix& p : kPrefixes) {
    if (std::abs(value) >= p.scale * 0.9995 || p.scale == 1e-9) {
      return absl::StrFormat("%.3g %s%s", value / p.scale, p.name, unit);
    }
  }
  return absl::StrFormat("%.3g %s", value, unit);
}

std::string Bytes(int64_t bytes) {
  if (bytes < 1000) return absl::StrCat(bytes, " B");
  return WithPrefix(static_cast<double>(bytes), "B");
}

std::string Latency(double seconds) {
  if (seconds == 0) return "0 s";
  return WithPrefix(seconds, "s");
}

// Training seconds, marked when the experiment's time limit stopped the
// training early.
std::string TrainingSeconds(const v1::Metrics& m) {
  return absl::StrFormat(
      m.stopped_at_time_limit() ? "%.1f s (stopped)" : "%.1f s",
      m.training_seconds());
}

std::string Percent(double fraction) {
  return absl::StrFormat("%.1f%%", 100 * fraction);
}

// Accuracies and error rates, whose differences matter in the second
// decimal: "91.62%".
std::string PrecisePercent(double fraction) {
  return absl::StrFormat("%.2f%%", 100 * fraction);
}

// A limit on an accuracy as given: "90%", "99.5%".
std::string AccuracyLimit(double fraction) {
  return absl::StrFormat("%g%%", 100 * fraction);
}

// Axis labels. Errors as powers of ten: "10⁻³", "2×10⁻³", "1".
std::string ErrorTick(double value) {
  const int exponent = static_cast<int>(std::floor(std::log10(value) + 1e-9));
  const double mantissa = value / std::pow(10.0, exponent);
  if (exponent == 0) return absl::StrFormat("%g", value);
  const std::string power = absl::StrCat("10", Superscript(exponent));
  if (std::abs(mantissa - 1) < 1e-6) return power;
  return absl::StrFormat("%g×%s", std::round(mantissa * 10) / 10, power);
}

// Error rates in percent: "0.1%", "2%", "50%".
std::string RateTick(double value) {
  return absl::StrFormat("%g%%", 100 * value);
}

// Counts: "500", "2k", "1M".
std::string CountTick(double value) {
  if (value >= 1e9) return absl::StrFormat("%gG", value / 1e9);
  if (value >= 1e6) return absl::StrFormat("%gM", value / 1e6);
  if (value >= 1e3) return absl::StrFormat("%gk", value / 1e3);
  return absl::StrFormat("%g", value);
}

std::string LatencyTick(double seconds) {
  return absl::StrReplaceAll(WithPrefix(seconds, "s"), {{" ", "\u00a0"}});
}

// Elapsed time: "0", "30s", "5m", "1h30m".
std::string DurationTick(double seconds) {
  const int64_t s = std::llround(seconds);
  if (s == 0) return "0";
  if (s % 3600 == 0) return absl::StrCat(s / 3600, "h");
  if (s >= 3600 && s % 60 == 0) {
    return absl::StrFormat("%dh%02dm", s / 3600, s / 60 % 60);
  }
  if (s % 60 == 0) return absl::StrCat(s / 60, "m");
  if (s > 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrCat(s, "s");
}

std::string PlainTick(double value) { return absl::StrFormat("%g", value); }

// ---------------------------------------------------------------------------
// Requirements, one entry per set field.

struct RequirementDef {
  std::string name;
  // Column header in the front table.
  std::string short_name;
  std::string limit;
  // Requirements with just this field (and its tolerance), for Assess.
  v1::Requirements only;
  std::function<double(const v1::Metrics&)> value;
  std::function<std::string(double)> format;
  bool higher_is_better = false;
};

// The rows the search judges candidates on: "judging" when the experiment
// holds them out, "validation" otherwise.
std::string SearchRowsName(const v1::ExperimentSpec& spec) {
  return JudgedRowsName(spec.judging_fraction() > 0 ? JudgedRows::kJudging
                                                    : JudgedRows::kValidation);
}

std::string Capitalised(std::string text) {
  if (!text.empty()) text[0] = absl::ascii_toupper(text[0]);
  return text;
}

// The accuracy requirements are named after `rows` (SearchRowsName).
std::vector<RequirementDef> SetRequirements(const v1::Requirements& r,
                                            const std::string& rows) {
  std::vector<RequirementDef> defs;
  if (r.has_max_abs_error()) {
    RequirementDef d;
    d.name = absl::StrCat(Capitalised(rows), " max abs error");
    d.short_name = "Error";
    d.limit = absl::StrFormat("≤ %g", r.max_abs_error());
    d.only.set_max_abs_error(r.max_abs_error());
    d.value = [](const v1::Metrics& m) {
      return SearchEvaluation(m).max_abs_error();
    };
    d.format = Sci;
    defs.push_back(std::move(d));
  }
  if (r.has_min_fraction_within()) {
    RequirementDef d;
    d.name = absl::StrFormat("Fraction of %s points within %g", rows,
                             r.within_tolerance());
    d.short_name = "Within";
    d.limit = absl::StrCat("≥ ", Percent(r.min_fraction_within()));
    d.only.set_min_fraction_within(r.min_fraction_within());
    d.only.set_within_tolerance(r.within_tolerance());
    d.value = [](const v1::Metrics& m) {
      return SearchEvaluation(m).fraction_within();
    };
    d.format = Percent;
    d.higher_is_better = true;
    defs.push_back(std::move(d));
  }
  if (r.has_min_accuracy()) {
    RequirementDef d;
    d.name = absl::StrCat(Capitalised(rows), " accuracy");
    d.short_name = "Accuracy";
    d.limit = absl::StrCat("≥ ", AccuracyLimit(r.min_accuracy()));
    d.only.set_min_accuracy(r.min_accuracy());
    d.value = [](const v1::Metrics& m) {
      return SearchEvaluation(m).accuracy();
    };
    d.format = PrecisePercent;
    d.higher_is_better = true;
    defs.push_back(std::move(d));
  }
  if (r.has_max_parameters()) {
    RequirementDef d;
    d.name = "Trainable parameters";
    d.short_name = "Params";
    d.limit = absl::StrCat("≤ ", Grouped(r.max_parameters()));
    d.only.set_max_parameters(r.max_parameters());
    d.value = [](const v1::Metrics& m) {
      return static_cast<double>(m.parameter_count());
    };
    d.format = [](double v) { return Grouped(static_cast<int64_t>(v)); };
    defs.push_back(std::move(d));
  }
  if (r.has_max_model_bytes()) {
    RequirementDef d;
    d.name = "Model file size";
    d.short_name = "Size";
    d.limit = absl::StrCat("≤ ", Bytes(r.max_model_bytes()));
    d.only.set_max_model_bytes(r.max_model_bytes());
    d.value = [](const v1::Metrics& m) {
      return static_cast<double>(m.model_bytes());
    };
    d.format = [](double v) { return Bytes(static_cast<int64_t>(v)); };
    defs.push_back(std::move(d));
  }
  if (r.has_max_training_seconds()) {
    RequirementDef d;
    d.name = "Training time";
    d.short_name = "Train";
    d.limit = absl::StrFormat("≤ %g s", r.max_training_seconds());
    d.only.set_max_training_seconds(r.max_training_seconds());
    d.value = [](const v1::Metrics& m) { return m.training_seconds(); };
    d.format = [](double v) { return absl::StrFormat("%.1f s", v); };
    defs.push_back(std::move(d));
  }
  if (r.has_max_inference_latency_seconds()) {
    RequirementDef d;
    d.name = "Inference latency (one sample)";
    d.short_name = "Latency";
    d.limit = absl::StrCat("≤ ", Latency(r.max_inference_latency_seconds()));
    d.only.set_max_inference_latency_seconds(r.max_inference_latency_seconds());
    d.value = [](const v1::Metrics& m) {
      return m.inference_latency_seconds();
    };
    d.format = Latency;
    defs.push_back(std::move(d));
  }
  return defs;
}

// ---------------------------------------------------------------------------
// The error the report ranks and plots candidates by.

// One metric of an Evaluation as a column of the front table.
struct MetricColumn {
  std::string header;
  // The header's tooltip; empty for none.
  std::string title;
  double (*of)(const v1::Evaluation&);
  std::string (*format)(double);
};

// The error of the experiment's task, chosen once (ErrorMeasureFor) so that
// charts, cards, front table and hypervolume agree: a regression's max abs
// error, or a classifier's error rate 1 - accuracy (what the controller
// ranks classifiers by, OBJECTIVE_VALIDATION_ERROR_RATE), on the rows the
// search judges by (SearchRowsName). Smaller is better for both.
struct ErrorMeasure {
  // "validation" or "judging".
  std::string rows;
  // In prose: "validation max abs error".
  std::string name;
  // After "Validation " in chart titles: "error", "error rate".
  std::string noun;
  std::string axis_title;
  // Under the best feasible error's value.
  std::string card_hint;
  // Smaller errors count as this on logarithmic axes and in the hypervolume.
  double floor = kErrorFloor;
  double (*of)(const v1::Evaluation&) = nullptr;
  std::string (*format)(double) = nullptr;
  std::string (*tick)(double) = nullptr;
  // The requirement on this error as an upper limit on it (floored), and
  // the label of its line in the charts; unset when there is none.
  std::optional<double> limit;
  std::string limit_label;
  // The front table's metric columns, the error's among them.
  std::vector<MetricColumn> columns;

  // The error of `m` on `rows`; not finite when `m` has none.
  double Of(const v1::Metrics& m) const { return of(SearchEvaluation(m)); }
  // `error` as drawn on a logarithmic axis.
  double Floored(double error) const { return std::max(error, floor); }
};

ErrorMeasure ErrorMeasureFor(const v1::ExperimentSpec& spec) {
  const v1::Requirements& req = spec.requirements();
  ErrorMeasure m;
  m.rows = SearchRowsName(spec);
  if (spec.task() == v1::TASK_CLASSIFICATION) {
    m.name = absl::StrCat(m.rows, " error rate");
    m.noun = "error rate";
    m.axis_title =
        absl::StrCat(Capitalised(m.rows), " error rate (1 − accuracy)");
    m.card_hint = absl::StrCat(m.rows, ", 1 − accuracy");
    m.floor = kErrorRateFloor;
    m.of = [](const v1::Evaluation& v) { return 1 - v.accuracy(); };
    m.format = PrecisePercent;
    m.tick = RateTick;
    if (req.has_min_accuracy()) {
      m.limit = m.Floored(1 - req.min_accuracy());
      m.limit_label =
          absl::StrCat("min accuracy ", AccuracyLimit(req.min_accuracy()));
    }
    m.columns = {
        {"Accuracy", absl::StrCat(m.rows, " accuracy"),
         [](const v1::Evaluation& v) { return v.accuracy(); }, PrecisePercent},
        {"Error rate", "1 − accuracy", m.of, PrecisePercent},
        {"Cross-entropy", "mean −log p(label), in nats",
         [](const v1::Evaluation& v) { return v.cross_entropy(); },
         [](double v) { return absl::StrFormat("%.3f", v); }}};
    return m;
  }
  m.name = absl::StrCat(m.rows, " max abs error");
  m.noun = "error";
  m.axis_title = absl::StrCat(Capitalised(m.rows), " max abs error");
  m.card_hint = absl::StrCat(m.rows, " max abs");
  m.of = [](const v1::Evaluation& v) { return v.max_abs_error(); };
  m.format = Sci;
  m.tick = ErrorTick;
  if (req.has_max_abs_error()) {
    m.limit = m.Floored(req.max_abs_error());
    m.limit_label = absl::StrCat("max abs error ", ErrorTick(*m.limit));
  }
  const std::string within_title =
      req.has_within_tolerance()
          ? absl::StrFormat("fraction of points within %g",
                            req.within_tolerance())
          : "fraction of points within the tolerance";
  m.columns = {
      {"Max err", "max abs error", m.of, Sci},
      {"Within", within_title,
       [](const v1::Evaluation& v) { return v.fraction_within(); }, Percent},
      {"RMSE", "", [](const v1::Evaluation& v) { return v.rmse(); }, Sci},
      {"MAE", "", [](const v1::Evaluation& v) { return v.mae(); }, Sci}};
  return m;
}

// `input` with its front sorted by `measure`, best first; stable, so that
// equal errors keep the controller's order. (The controller sorts by max
// abs error, which is 0 for every classifier.)
ReportInput WithSortedFront(const ReportInput& input,
                            const ErrorMeasure& measure) {
  auto key = [&](const v1::Candidate& c) {
    const double error = measure.Of(c.metrics());
    return std::isnan(error) ? HUGE_VAL : error;
  };
  ReportInput sorted = input;
  std::stable_sort(sorted.front.mutable_candidates()->begin(),
                   sorted.front.mutable_candidates()->end(),
                   [&](const v1::Candidate& a, const v1::Candidate& b) {
                     return key(a) < key(b);
                   });
  return sorted;
}

// ---------------------------------------------------------------------------
// Charts.

// Marks of the plots, drawn on any canvas.

void DrawCircle(Canvas* canvas, double x, double y, double r,
                const std::string& fill, const std::string& stroke,
                double stroke_width) {
  canvas->Circle({x, y}, r, {fill}, {stroke, stroke_width});
}

void DrawCross(Canvas* canvas, double x, double y, double r,
               const std::string& colour) {
  Pen pen{colour, 1.6};
  pen.round = true;
  canvas->Path(
      {{{{x - r, y - r}, {x + r, y + r}}}, {{{x - r, y + r}, {x + r, y - r}}}},
      {}, pen);
}

Drawing CircleSwatch(double r, const std::string& fill,
                     const std::string& stroke, double stroke_width) {
  Drawing swatch;
  DrawCircle(&swatch, 0, 0, r, fill, stroke, stroke_width);
  return swatch;
}

Drawing CrossSwatch(double r, const std::string& colour) {
  Drawing swatch;
  DrawCross(&swatch, 0, 0, r, colour);
  return swatch;
}

Drawing LineSwatch(const std::string& colour, std::vector<double> dash,
                   double width) {
  Drawing swatch;
  swatch.Line({-9, 0}, {9, 0}, {colour, width, std::move(dash)});
  return swatch;
}

// The dashes of requirement lines.
const std::vector<double>& RequirementDash() {
  static const auto* const kDash = new std::vector<double>{6, 4};
  return *kDash;
}

// A succeeded candidate as a point of the front plots.
struct Point {
  const v1::Candidate* candidate = nullptr;
  double error = 0;
  // 1-based position on the front (best error first); 0 when not on it.
  int front_rank = 0;
};

// Every succeeded candidate with a finite error, front members included even
// if the candidate list missed them, worst drawn first.
std::vector<Point> PlotPoints(const ReportInput& input,
                              const ErrorMeasure& measure) {
  std::map<std::string, int> rank;
  for (int i = 0; i < input.front.candidates_size(); ++i) {
    rank[input.front.candidates(i).id()] = i + 1;
  }
  std::vector<Point> points;
  std::set<std::string> seen;
  auto add = [&](const v1::Candidate& c) {
    if (!Succeeded(c) || !seen.insert(c.id()).second) return;
    const double error = measure.Of(c.metrics());
    if (!std::isfinite(error)) return;
    const auto it = rank.find(c.id());
    points.push_back(
        {&c, measure.Floored(error), it == rank.end() ? 0 : it->second});
  };
  for (const v1::Candidate& c : input.candidates) add(c);
  for (const v1::Candidate& c : input.front.candidates()) add(c);
  std::stable_sort(points.begin(), points.end(),
                   [](const Point& a, const Point& b) {
                     return a.candidate->feasible() < b.candidate->feasible();
                   });
  return points;
}

std::string PointTooltip(const v1::Candidate& c, const ErrorMeasure& measure) {
  const v1::Metrics& m = c.metrics();
  return absl::StrCat(c.id(), "\n", measure.name, " ",
                      measure.format(measure.Of(m)), "\n",
                      Grouped(m.parameter_count()), " parameters, latency ",
                      Latency(m.inference_latency_seconds()), "\n",
                      c.feasible() ? "feasible" : "infeasible");
}

// Screen rectangles, to keep the front's labels apart.
struct Box {
  double x0, y0, x1, y1;
  bool Overlaps(const Box& o) const {
    return x0 < o.x1 && o.x0 < x1 && y0 < o.y1 && o.y0 < y1;
  }
};

struct LabelSpot {
  double x, y;
  Anchor anchor;
};

// The first spot around the marker at (x, y) where a label of `chars`
// digits overlaps no box in `taken` and stays in the plot area; the first
// spot when none is free. Adds the chosen label's box to `taken`.
LabelSpot PlaceLabel(const Chart& chart, double x, double y, size_t chars,
                     std::vector<Box>* taken) {
  const double w = 7.0 * static_cast<double>(chars);
  const double h = 11;
  struct Candidate {
    double dx, dy;
    Anchor anchor;
  };
  static const Candidate kSpots[] = {
      {9, -7, Anchor::kStart},   {-9, -7, Anchor::kEnd},
      {9, 15, Anchor::kStart},   {-9, 15, Anchor::kEnd},
      {12, 4, Anchor::kStart},   {-12, 4, Anchor::kEnd},
      {0, -12, Anchor::kMiddle}, {0, 20, Anchor::kMiddle},
      {16, -14, Anchor::kStart}, {-16, -14, Anchor::kEnd},
      {16, 22, Anchor::kStart},  {-16, 22, Anchor::kEnd}};
  auto box_of = [&](const Candidate& c) {
    const double left = c.anchor == Anchor::kStart ? x + c.dx
                        : c.anchor == Anchor::kEnd ? x + c.dx - w
                                                   : x + c.dx - w / 2;
    return Box{left, y + c.dy - h + 2, left + w, y + c.dy + 2};
  };
  const Candidate* chosen = &kSpots[0];
  for (const Candidate& c : kSpots) {
    const Box b = box_of(c);
    if (b.x0 < chart.left() || b.x1 > chart.right() || b.y0 < chart.top() ||
        b.y1 > chart.bottom()) {
      continue;
    }
    if (std::none_of(taken->begin(), taken->end(),
                     [&](const Box& t) { return t.Overlaps(b); })) {
      chosen = &c;
      break;
    }
  }
  taken->push_back(box_of(*chosen));
  return {x + chosen->dx, y + chosen->dy, chosen->anchor};
}

// Error (y, log) against parameters or latency (x, log), with requirement
// lines, the feasible region shaded and the front ringed and numbered.
enum class FrontX { kParameters, kLatency };

Chart FrontChart(const ReportInput& input, const ErrorMeasure& measure,
                 FrontX which, double width, double height,
                 const std::string& id, const std::string& title_prefix = "") {
  const v1::Requirements& req = input.experiment.spec().requirements();
  auto x_of = [which](const v1::Candidate& c) {
    return which == FrontX::kParameters
               ? static_cast<double>(c.metrics().parameter_count())
               : c.metrics().inference_latency_seconds();
  };
  std::optional<double> x_limit;
  if (which == FrontX::kParameters && req.has_max_parameters()) {
    x_limit = static_cast<double>(req.max_parameters());
  }
  if (which == FrontX::kLatency && req.has_max_inference_latency_seconds()) {
    x_limit = req.max_inference_latency_seconds();
  }
  const std::optional<double> y_limit = measure.limit;

  std::vector<Point> points;
  for (const Point& p : PlotPoints(input, measure)) {
    const double x = x_of(*p.candidate);
    if (x > 0 && std::isfinite(x)) points.push_back(p);
  }
  double x_min = HUGE_VAL, x_max = -HUGE_VAL, y_min = HUGE_VAL,
         y_max = -HUGE_VAL;
  for (const Point& p : points) {
    x_min = std::min(x_min, x_of(*p.candidate));
    x_max = std::max(x_max, x_of(*p.candidate));
    y_min = std::min(y_min, p.error);
    y_max = std::max(y_max, p.error);
  }
  if (x_limit) {
    x_min = std::min(x_min, *x_limit);
    x_max = std::max(x_max, *x_limit);
  }
  if (y_limit) {
    y_min = std::min(y_min, *y_limit);
    y_max = std::max(y_max, *y_limit);
  }
  if (x_min > x_max) {  // Nothing to show yet.
    x_min = which == FrontX::kParameters ? 100 : 1e-5;
    x_max = x_min * 100;
  }
  if (y_min > y_max) {
    y_min = 1e-4;
    y_max = 1;
  }
  const std::string title =
      absl::StrCat(title_prefix, Capitalised(measure.rows), " ", measure.noun,
                   which == FrontX::kParameters ? " vs. model size"
                                                : " vs. inference latency");
  Chart chart(
      width, height, title,
      which == FrontX::kParameters
          ? LogAxis(x_min, x_max, "Trainable parameters", CountTick)
          : LogAxis(x_min, x_max, "Inference latency per sample", LatencyTick),
      LogAxis(y_min, y_max, measure.axis_title, measure.tick), id);

  Canvas* body = chart.body();
  // The region where both drawn requirements hold.
  if (x_limit || y_limit) {
    const double x1 = x_limit ? chart.X(*x_limit) : chart.right();
    const double y1 = y_limit ? chart.Y(*y_limit) : chart.top();
    body->Rect(chart.left(), y1, std::max(0.0, x1 - chart.left()),
               std::max(0.0, chart.bottom() - y1), {kFeasible, 0.07}, {});
  }
  const Pen limit_pen{kLimit, 1.5, RequirementDash()};
  TextStyle limit_text;
  limit_text.size = 11;
  limit_text.colour = kLimit;
  limit_text.halo = true;
  if (y_limit) {
    const double y = chart.Y(*y_limit);
    body->Line({chart.left(), y}, {chart.right(), y}, limit_pen);
    // Above the line, or below it when the line runs along the top.
    const double label_y = y - 6 < chart.top() + 12 ? y + 15 : y - 6;
    TextStyle style = limit_text;
    style.anchor = Anchor::kEnd;
    body->Text({chart.right() - 6, label_y}, measure.limit_label, style);
  }
  if (x_limit) {
    const double x = chart.X(*x_limit);
    body->Line({x, chart.top()}, {x, chart.bottom()}, limit_pen);
    const std::string label =
        which == FrontX::kParameters
            ? absl::StrCat("max params ", CountTick(*x_limit))
            : absl::StrCat("max latency ", LatencyTick(*x_limit));
    // Right of the line, or left of it when the line runs along the right.
    const bool left_of_line =
        x + 5 + 6.2 * static_cast<double>(label.size()) > chart.right();
    TextStyle style = limit_text;
    style.anchor = left_of_line ? Anchor::kEnd : Anchor::kStart;
    body->Text({left_of_line ? x - 5 : x + 5, chart.top() + 14}, label, style);
  }
  for (const Point& p : points) {
    const double x = chart.X(x_of(*p.candidate));
    const double y = chart.Y(p.error);
    body->BeginGroup(PointTooltip(*p.candidate, measure));
    if (p.candidate->feasible()) {
      DrawCircle(body, x, y, 4, kFeasible, kWhite, 0.8);
    } else {
      DrawCross(body, x, y, 3.2, kInfeasible);
    }
    body->EndGroup();
  }
  std::vector<Box> taken;
  for (const Point& p : points) {
    if (p.front_rank == 0) continue;
    const double x = chart.X(x_of(*p.candidate));
    const double y = chart.Y(p.error);
    taken.push_back({x - 8, y - 8, x + 8, y + 8});
  }
  TextStyle rank_text;
  rank_text.size = 11;
  rank_text.weight = 700;
  rank_text.colour = kFront;
  rank_text.halo = true;
  for (const Point& p : points) {
    if (p.front_rank == 0) continue;
    const double x = chart.X(x_of(*p.candidate));
    const double y = chart.Y(p.error);
    const std::string label = absl::StrCat(p.front_rank);
    const LabelSpot spot = PlaceLabel(chart, x, y, label.size(), &taken);
    body->BeginGroup(PointTooltip(*p.candidate, measure));
    DrawCircle(body, x, y, 7.5, "", kFront, 2.2);
    TextStyle style = rank_text;
    style.anchor = spot.anchor;
    body->Text({spot.x, spot.y}, label, style);
    body->EndGroup();
  }
  if (points.empty()) chart.Note("No candidate has succeeded yet");

  chart.AddLegend(CircleSwatch(4, kFeasible, kWhite, 0.8), "feasible");
  chart.AddLegend(CrossSwatch(3.2, kInfeasible), "infeasible");
  chart.AddLegend(CircleSwatch(6, "", kFront, 2.2), "Pareto front");
  if (x_limit || y_limit) {
    chart.AddLegend(LineSwatch(kLimit, {4, 3}, 1.5), "requirement");
  }
  return chart;
}

// A step line through (x[i], y[i]) held until `x_end`, in pixels; NaN
// values start a new part.
std::vector<Polyline> StepPath(const Chart& chart,
                               const std::vector<double>& xs,
                               const std::vector<double>& ys, double x_end) {
  std::vector<Polyline> parts;
  bool open = false;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (std::isnan(ys[i])) {
      open = false;
      continue;
    }
    const double x = chart.X(xs[i]);
    const double y = chart.Y(ys[i]);
    if (!open) {
      parts.emplace_back();
      parts.back().points.push_back({x, y});
      open = true;
    } else {
      parts.back().points.push_back({x, parts.back().points.back().y});
      parts.back().points.push_back({x, y});
    }
  }
  if (open) {
    parts.back().points.push_back(
        {chart.X(x_end), parts.back().points.back().y});
  }
  return parts;
}
double ElapsedSeconds(const ReportInput& input) {
  const v1::Experiment& e = input.experiment;
  if (!IsSet(e.created_at())) return 0;
  const absl::Time end =
      IsSet(e.finished_at()) ? ToTime(e.finished_at()) : input.generated_at;
  return std::max(0.0, absl::ToDoubleSeconds(end - ToTime(e.created_at())));
}

// Best error so far (overall and feasible) against time, over the errors of
// the individual candidates.
Chart ErrorProgressChart(const ReportInput& input, const ErrorMeasure& measure,
                         const std::vector<ProgressPoint>& progress,
                         double width, double height) {
  const std::optional<double>& limit = measure.limit;
  const absl::Time created = ToTime(input.experiment.created_at());
  struct Dot {
    double seconds;
    double error;
    bool feasible;
  };
  std::vector<Dot> dots;
  double y_min = HUGE_VAL, y_max = -HUGE_VAL, t_max = ElapsedSeconds(input);
  for (const v1::Candidate& c : input.candidates) {
    if (!Succeeded(c) || !IsSet(c.finished_at())) continue;
    const double error = measure.Of(c.metrics());
    if (!std::isfinite(error)) continue;
    const double t = absl::ToDoubleSeconds(ToTime(c.finished_at()) - created);
    dots.push_back({t, measure.Floored(error), c.feasible()});
    y_min = std::min(y_min, dots.back().error);
    y_max = std::max(y_max, dots.back().error);
    t_max = std::max(t_max, t);
  }
  if (limit) {
    y_min = std::min(y_min, *limit);
    y_max = std::max(y_max, *limit);
  }
  if (y_min > y_max) {
    y_min = 1e-4;
    y_max = 1;
  }
  Chart chart(
      width, height,
      absl::StrCat("Best ", measure.rows, " ", measure.noun, " over time"),
      LinearAxis(t_max, "Time since the experiment was created", DurationTick,
                 true),
      LogAxis(y_min, y_max, measure.axis_title, measure.tick),
      "progress-error");
  if (limit) {
    const double y = chart.Y(*limit);
    chart.body()->Line({chart.left(), y}, {chart.right(), y},
                       {kLimit, 1.5, RequirementDash()});
  }
  for (const Dot& d : dots) {
    if (d.feasible) {
      DrawCircle(chart.body(), chart.X(d.seconds), chart.Y(d.error), 2.6,
                 kFeasible, "", 0);
    } else {
      DrawCross(chart.body(), chart.X(d.seconds), chart.Y(d.error), 2.2,
                kInfeasible);
    }
  }
  std::vector<double> xs, best, feasible;
  for (const ProgressPoint& p : progress) {
    xs.push_back(p.seconds);
    best.push_back(measure.Floored(p.best_error));
    feasible.push_back(std::isnan(p.best_feasible_error)
                           ? kNaN
                           : measure.Floored(p.best_feasible_error));
  }
  chart.body()->Path(StepPath(chart, xs, best, t_max), {},
                     {kBest, 1.8, {2, 3}});
  chart.body()->Path(StepPath(chart, xs, feasible, t_max), {},
                     {kFeasible, 2.6});
  if (dots.empty()) chart.Note("No candidate has succeeded yet");
  chart.AddLegend(LineSwatch(kFeasible, {}, 2.6), "best feasible");
  chart.AddLegend(LineSwatch(kBest, {2, 3}, 1.8), "best overall");
  chart.AddLegend(CircleSwatch(2.6, kFeasible, "", 0), "candidate");
  if (limit) chart.AddLegend(LineSwatch(kLimit, {4, 3}, 1.5), "requirement");
  return chart;
}

Chart HypervolumeChart(const ReportInput& input, const ErrorMeasure& measure,
                       const std::vector<ProgressPoint>& progress, double width,
                       double height) {
  double t_max = ElapsedSeconds(input);
  double v_max = 0;
  for (const ProgressPoint& p : progress) {
    t_max = std::max(t_max, p.seconds);
    v_max = std::max(v_max, p.hypervolume);
  }
  Chart chart(width, height, "Hypervolume over time",
              LinearAxis(t_max, "Time since the experiment was created",
                         DurationTick, true),
              LinearAxis(v_max > 0 ? v_max * 1.05 : 1,
                         absl::StrCat("Hypervolume (log₁₀ ", measure.noun,
                                      " × log₁₀ params)"),
                         PlainTick, false),
              "progress-hv");
  std::vector<double> xs, vs;
  for (const ProgressPoint& p : progress) {
    xs.push_back(p.seconds);
    vs.push_back(p.hypervolume);
  }
  const std::vector<Polyline> line = StepPath(chart, xs, vs, t_max);
  if (!line.empty()) {
    // The area under the line, down to zero.
    Polyline area = line.front();
    area.points.push_back({area.points.back().x, chart.Y(0)});
    area.points.push_back({chart.X(xs.front()), chart.Y(0)});
    area.closed = true;
    chart.body()->Path({area}, {kVolume, 0.12}, {});
    chart.body()->Path(line, {}, {kVolume, 2.2});
  } else {
    chart.Note("No candidate has succeeded yet");
  }
  chart.AddLegend(LineSwatch(kVolume, {}, 2.2),
                  "dominated area (higher is better)");
  return chart;
}

// ---------------------------------------------------------------------------
// HTML.

constexpr char kCss[] = R"css(
:root{--ink:#1d2433;--muted:#5b6472;--line:#e3e6eb;--ok:#15803d;--no:#b42318}
*{box-sizing:border-box}
html{background:#f3f4f7}
body{margin:0;color:var(--ink);font:14px/1.5 system-ui,'Segoe UI','Helvetica Neue',Arial,'Liberation Sans','DejaVu Sans',sans-serif;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.page{max-width:1120px;margin:0 auto;padding:28px 28px 40px}
header{display:flex;justify-content:space-between;align-items:flex-end;gap:24px;padding-bottom:18px;border-bottom:1px solid var(--line)}
.eyebrow{font-size:11px;font-weight:700;letter-spacing:.12em;text-transform:uppercase;color:var(--muted)}
h1{font-size:26px;line-height:1.2;margin:6px 0 4px;font-weight:700}
.sub{color:var(--muted);font-size:13px}
.meta{text-align:right;color:var(--muted);font-size:12.5px;white-space:nowrap}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-size:12px;font-weight:700;text-transform:uppercase;letter-spacing:.05em}
.badge.running{background:#e0ecff;color:#1d4ed8}.badge.completed{background:#dcfce7;color:#166534}.badge.cancelled,.badge.unspecified{background:#eef0f3;color:#475569}
.verdict{display:flex;gap:14px;align-items:center;margin:20px 0 16px;padding:14px 18px;border-radius:12px;border:1px solid}
.verdict .icon{flex:none;width:34px;height:34px;border-radius:50%;display:flex;align-items:center;justify-content:center;font-size:19px;font-weight:700;color:#fff}
.verdict.ok{background:#effaf3;border-color:#b7e4c7}.verdict.ok .icon{background:var(--ok)}
.verdict.no{background:#fff6ed;border-color:#fbd3a8}.verdict.no .icon{background:#c2410c}
.verdict b{font-size:15px}.verdict div{color:#3b4352}
.cards{display:grid;grid-template-columns:repeat(5,1fr);gap:12px}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:12px 14px}
.card .label{font-size:11.5px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em;font-weight:600}
.card .value{font-size:21px;font-weight:700;font-variant-numeric:tabular-nums;margin-top:2px;white-space:nowrap}
.card .hint{font-size:12px;color:var(--muted)}
section{background:#fff;border:1px solid var(--line);border-radius:12px;padding:20px 22px;margin-top:18px}
h2{font-size:17px;margin:0 0 4px}
.lead{color:var(--muted);font-size:13px;margin:0 0 14px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th{text-align:left;font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:700;border-bottom:1.5px solid var(--line);padding:7px 7px;white-space:nowrap;vertical-align:bottom}
td{padding:7px 7px;border-bottom:1px solid #eef0f3;vertical-align:top}
tr:last-child td{border-bottom:none}
.num{text-align:right;white-space:nowrap}
.c{text-align:center}
.front td{font-size:12px}.front th{font-size:10.5px;letter-spacing:.02em}.front td.two small{display:block;color:#8a93a0;font-size:11.5px}
.front td .mono{display:block;font-size:11.5px;color:var(--muted)}
.front th.req{background:#f7f8fa}
.rank{display:inline-block;min-width:22px;padding:1px 6px;border-radius:6px;background:#fde8e1;color:#b8401e;font-weight:700;text-align:center}
.yes{color:var(--ok);font-weight:700}.no{color:var(--no);font-weight:700}
.mono{font-family:'DejaVu Sans Mono',ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.arch{min-width:150px;max-width:230px}.arch small{display:block;color:var(--muted);font-size:11.5px;line-height:1.35}
.front th.req,.front th.c{padding-left:4px;padding-right:4px}
.scroll{overflow-x:auto}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:18px}
figure{margin:0}figcaption{font-size:12.5px;color:var(--muted);margin-top:4px}
svg.chart{width:100%;height:auto;display:block;border:1px solid var(--line);border-radius:8px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:6px 18px;margin:0}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
.col{display:inline-block;margin:0 4px 4px 0;padding:0 7px;border-radius:6px;background:#eef0f3;font-size:12px}
.col.in{background:#e0ecff;color:#1d4ed8}.col.out{background:#fde8e1;color:#b8401e}
h3{font-size:13px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);margin:0 0 10px}
footer{color:var(--muted);font-size:12px;margin-top:22px;line-height:1.6}
@media print{html{background:#fff}.page{padding:0}section,.card{break-inside:avoid}}
@media (max-width:860px){.cards{grid-template-columns:repeat(3,1fr)}.grid2{grid-template-columns:1fr}}
)css";

std::string Tag(const std::string& tag, const std::string& attributes,
                const std::string& html) {
  return absl::StrCat("<", tag, attributes.empty() ? "" : " ", attributes, ">",
                      html, "</", tag, ">");
}

std::string Cell(const std::string& html, const std::string& cls = "") {
  return Tag("td", cls.empty() ? "" : absl::StrCat("class=\"", cls, "\""),
             html);
}

std::string Header(const std::string& text, const std::string& cls = "",
                   const std::string& title = "") {
  std::string attributes;
  if (!cls.empty()) absl::StrAppend(&attributes, "class=\"", cls, "\"");
  if (!title.empty()) {
    absl::StrAppend(&attributes, attributes.empty() ? "" : " ", "title=\"",
                    HtmlEscape(title), "\"");
  }
  return Tag("th", attributes, HtmlEscape(text));
}

std::string Mark(bool met, const std::string& title) {
  return absl::StrCat("<span class=\"", met ? "yes" : "no", "\" title=\"",
                      HtmlEscape(title), "\">", met ? "✓" : "✗", "</span>");
}

// "64 tanh → 32 silu" over "lr 3e-03 · 2000 Adam + 200 L-BFGS · full batch".
std::string ArchitectureHtml(const v1::Genome& genome) {
  std::vector<std::string> layers;
  for (const v1::ConvLayer& layer : genome.conv_layers()) {
    std::string name = absl::StrCat("conv ", layer.channels(), "×",
                                    layer.kernel_size(), "² ",
                                    ActivationName(layer.activation()));
    if (layer.residual()) name += " +skip";
    if (layer.batch_norm()) name += " +bn";
    if (layer.pooling() == v1::POOLING_MAX) name += " +maxpool";
    if (layer.pooling() == v1::POOLING_AVERAGE) name += " +avgpool";
    if (layer.dropout() > 0) {
      absl::StrAppend(&name, " +dropout ", absl::StrFormat("%g", layer.dropout()));
    }
    layers.push_back(std::move(name));
  }
  for (const v1::DenseLayer& layer : genome.hidden_layers()) {
    layers.push_back(
        absl::StrCat(layer.width(), " ", ActivationName(layer.activation())));
  }
  const v1::TrainingConfig& t = genome.training();
  // Classifiers train with Adam alone: no "+ 0 L-BFGS".
  const std::string lbfgs =
      t.lbfgs_steps() == 0 ? ""
                           : absl::StrFormat(" + %d L‑BFGS", t.lbfgs_steps());
  const std::string training = absl::StrFormat(
      "lr %.0e · %d Adam%s · %s", t.learning_rate(), t.adam_steps(), lbfgs,
      t.batch_size() == 0 ? std::string("full batch")
                          : absl::StrCat("batch ", t.batch_size()));
  return absl::StrCat(
      "<div class=\"arch\">",
      HtmlEscape(layers.empty() ? "linear" : absl::StrJoin(layers, " → ")),
      "<small>", HtmlEscape(training), "</small></div>");
}

std::string Card(const std::string& label, const std::string& value,
                 const std::string& hint) {
  return absl::StrCat("<div class=\"card\"><div class=\"label\">",
                      HtmlEscape(label), "</div><div class=\"value\">",
                      HtmlEscape(value), "</div><div class=\"hint\">",
                      HtmlEscape(hint), "</div></div>");
}

std::string FormatMinute(absl::Time time, absl::TimeZone zone) {
  return absl::FormatTime("%Y-%m-%d %H:%M %Z", time, zone);
}

std::string Timestamp(const google::protobuf::Timestamp& t,
                      absl::TimeZone zone) {
  return IsSet(t) ? FormatMinute(ToTime(t), zone) : "—";
}

std::string BudgetText(const v1::Budget& budget) {
  std::vector<std::string> parts;
  if (budget.max_candidates() > 0) {
    parts.push_back(absl::StrCat(budget.max_candidates(), " candidates"));
  }
  if (budget.max_wall_seconds() > 0) {
    parts.push_back(ShortDuration(absl::Seconds(budget.max_wall_seconds())));
  }
  return parts.empty() ? "none" : absl::StrJoin(parts, " or ");
}

// Beyond this many columns (an image's pixels) a data set's columns are
// shown with the middle of the list left out.
constexpr int kManyColumns = 40;

// Column names joined with ", ": "pixel_0, pixel_1, …, pixel_783 (784
// columns)" when there are more than kManyColumns.
std::string ColumnList(
    const google::protobuf::RepeatedPtrField<std::string>& columns) {
  if (columns.size() <= kManyColumns) return absl::StrJoin(columns, ", ");
  return absl::StrCat(columns[0], ", ", columns[1], ", …, ",
                      columns[columns.size() - 1], " (",
                      Grouped(columns.size()), " columns)");
}

std::string StrategyName(v1::Strategy strategy) {
  switch (strategy) {
    case v1::STRATEGY_UNSPECIFIED:
    case v1::STRATEGY_RANDOM:
      return "random search";
    case v1::STRATEGY_REGULARIZED_EVOLUTION:
      return "regularized evolution";
    default:
      return absl::StrCat("strategy ", static_cast<int>(strategy));
  }
}

std::string DatasetHtml(const v1::Dataset& dataset,
                        const v1::ExperimentSpec& spec, bool with_columns,
                        absl::TimeZone zone) {
  const std::set<std::string> inputs(spec.input_columns().begin(),
                                     spec.input_columns().end());
  const std::set<std::string> outputs(spec.output_columns().begin(),
                                      spec.output_columns().end());
  // More than kManyColumns: the first few and the last two (where an
  // image's label is), the others counted.
  const int n = dataset.columns_size();
  const int head = n > kManyColumns ? 6 : n;
  const int tail = n > kManyColumns ? 2 : 0;
  std::string columns;
  for (int i = 0; i < n; ++i) {
    if (i == head) {
      absl::StrAppend(&columns, "<span class=\"col\">… ",
                      Grouped(n - head - tail), " more</span>");
      i = n - tail - 1;
      continue;
    }
    const std::string& column = dataset.columns(i);
    const char* cls = inputs.count(column)    ? "col in"
                      : outputs.count(column) ? "col out"
                                              : "col";
    absl::StrAppend(&columns, "<span class=\"", cls, "\">", HtmlEscape(column),
                    "</span>");
  }
  std::string html = absl::StrCat(
      "<dl><dt>Name</dt><dd>", HtmlEscape(dataset.name()),
      "</dd><dt>Id</dt><dd class=\"mono\">", HtmlEscape(dataset.id()),
      "</dd><dt>Rows</dt><dd>", Grouped(dataset.row_count()),
      "</dd><dt>Columns</dt><dd>", dataset.columns_size());
  if (with_columns) absl::StrAppend(&html, "<br>", columns);
  absl::StrAppend(&html, "</dd><dt>Size</dt><dd>", Bytes(dataset.size_bytes()),
                  "</dd><dt>Uploaded</dt><dd>",
                  Timestamp(dataset.created_at(), zone), "</dd></dl>");
  return html;
}

}  // namespace

std::string HtmlEscape(absl::string_view text) {
  std::string escaped;
  escaped.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        escaped += "&amp;";
        break;
      case '<':
        escaped += "&lt;";
        break;
      case '>':
        escaped += "&gt;";
        break;
      case '"':
        escaped += "&quot;";
        break;
      case '\'':
        escaped += "&#39;";
        break;
      default:
        escaped += c;
    }
  }
  return escaped;
}

std::vector<RequirementCheck> CheckRequirements(
    const v1::Requirements& requirements, const v1::Metrics& metrics) {
  std::vector<RequirementCheck> checks;
  for (const RequirementDef& def :
       SetRequirements(requirements, JudgedRowsName(SearchRows(metrics)))) {
    checks.push_back({def.name, def.limit, def.format(def.value(metrics)),
                      Assess(def.only, metrics).feasible});
  }
  return checks;
}

std::vector<ProgressPoint> SearchProgress(
    const v1::Experiment& experiment,
    const std::vector<v1::Candidate>& candidates) {
  struct Done {
    absl::Time finished;
    double error;
    double log_error;
    double log_params;
    bool feasible;
  };
  const ErrorMeasure measure = ErrorMeasureFor(experiment.spec());
  std::vector<Done> done;
  for (const v1::Candidate& c : candidates) {
    if (!Succeeded(c) || !IsSet(c.finished_at())) continue;
    const double error = measure.Of(c.metrics());
    if (!std::isfinite(error)) continue;
    done.push_back(
        {ToTime(c.finished_at()), error, std::log10(measure.Floored(error)),
         std::log10(std::max<double>(c.metrics().parameter_count(), 1)),
         c.feasible()});
  }
  std::stable_sort(done.begin(), done.end(), [](const Done& a, const Done& b) {
    return a.finished < b.finished;
  });
  std::pair<double, double> reference = {-HUGE_VAL, -HUGE_VAL};
  for (const Done& d : done) {
    reference.first = std::max(reference.first, d.log_error + 1);
    reference.second = std::max(reference.second, d.log_params + 1);
  }
  const absl::Time created = ToTime(experiment.created_at());
  std::vector<ProgressPoint> progress;
  // The non-dominated points so far; only they bound the hypervolume.
  std::vector<std::vector<double>> staircase;
  double best = HUGE_VAL;
  double best_feasible = kNaN;
  double volume = 0;
  for (const Done& d : done) {
    best = std::min(best, d.error);
    if (d.feasible && !(best_feasible <= d.error)) best_feasible = d.error;
    const std::vector<double> p = {d.log_error, d.log_params};
    const bool dominated = std::any_of(
        staircase.begin(), staircase.end(),
        [&](const auto& s) { return s[0] <= p[0] && s[1] <= p[1]; });
    if (!dominated) {
      staircase.erase(std::remove_if(staircase.begin(), staircase.end(),
                                     [&](const auto& s) {
                                       return p[0] <= s[0] && p[1] <= s[1];
                                     }),
                      staircase.end());
      staircase.push_back(p);
      volume = Hypervolume(staircase, {reference.first, reference.second})
                   .value_or(0);
    }
    progress.push_back({absl::ToDoubleSeconds(d.finished - created), best,
                        best_feasible, volume});
  }
  return progress;
}

namespace {

// The front plot of RenderFrontSvg and RenderFrontPng.
Chart SlideFrontChart(const ReportInput& unsorted_input) {
  const ErrorMeasure measure =
      ErrorMeasureFor(unsorted_input.experiment.spec());
  const ReportInput input = WithSortedFront(unsorted_input, measure);
  const v1::Experiment& e = input.experiment;
  const std::string name = e.spec().name().empty() ? e.id() : e.spec().name();
  return FrontChart(input, measure, FrontX::kParameters, 960, 600, "front",
                    absl::StrCat(name, ": "));
}

}  // namespace

std::string RenderFrontSvg(const ReportInput& input) {
  const std::string svg = SlideFrontChart(input).Render(/*standalone=*/true);
  return absl::StrCat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- evonas Pareto front of "
      "experiment ",
      HtmlEscape(input.experiment.id()), " -->\n", svg, "\n");
}

absl::StatusOr<std::string> RenderFrontPng(const ReportInput& input,
                                           int scale) {
  const Chart chart = SlideFrontChart(input);
  RasterCanvas canvas(chart.width(), chart.height(), scale);
  chart.Paint(&canvas);
  return EncodePng(canvas.image());
}

std::string RenderReportHtml(const ReportInput& unsorted_input) {
  const ErrorMeasure measure =
      ErrorMeasureFor(unsorted_input.experiment.spec());
  const ReportInput input = WithSortedFront(unsorted_input, measure);
  const v1::Experiment& e = input.experiment;
  const v1::ExperimentSpec& spec = e.spec();
  const v1::Requirements& req = spec.requirements();
  const absl::TimeZone zone = input.time_zone;
  const std::vector<RequirementDef> defs = SetRequirements(req, measure.rows);
  const std::vector<ProgressPoint> progress =
      SearchProgress(e, input.candidates);

  std::vector<const v1::Candidate*> succeeded;
  for (const v1::Candidate& c : input.candidates) {
    if (Succeeded(c)) succeeded.push_back(&c);
  }
  const int64_t total = e.counts().queued() + e.counts().running() +
                        e.counts().succeeded() + e.counts().failed() +
                        e.counts().cancelled();
  const std::string title =
      spec.name().empty() ? absl::StrCat("Experiment ", e.id()) : spec.name();

  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
      "'none'; style-src 'unsafe-inline'; img-src data:\">"
      "<meta name=\"viewport\" content=\"width=device-width, "
      "initial-scale=1\"><meta name=\"generator\" content=\"evonas\">"
      "<title>",
      HtmlEscape(title), " — evonas report</title><style>", kCss,
      "</style></head><body><div class=\"page\">");

  // Header.
  const std::string state = ExperimentStateName(e.state());
  absl::StrAppend(
      &html,
      "<header><div><div class=\"eyebrow\">evonas · architecture "
      "search report</div><h1>",
      HtmlEscape(title),
      "</h1><div class=\"sub\">Experiment <span "
      "class=\"mono\">",
      HtmlEscape(e.id()), "</span> on <b>", HtmlEscape(input.dataset.name()),
      "</b> · ", HtmlEscape(ColumnList(spec.input_columns())), " → ",
      HtmlEscape(ColumnList(spec.output_columns())),
      e.class_count() > 0 ? absl::StrCat(" (", e.class_count(), " classes)")
                          : "",
      "</div></div><div class=\"meta\"><span class=\"badge ", HtmlEscape(state),
      "\">", HtmlEscape(state), "</span><br>Generated ",
      FormatMinute(input.generated_at, zone), "</div></header>");

  // Verdict.
  const int front_size = input.front.candidates_size();
  if (input.front.has_feasible()) {
    absl::StrAppend(
        &html,
        "<div class=\"verdict ok\"><div class=\"icon\">✓</div><div><b>The "
        "requirements are met.</b> ",
        e.feasible_count(), " of ", succeeded.size(),
        " trained candidates meet every requirement; the ", front_size,
        front_size == 1 ? " candidate" : " candidates",
        " on the Pareto front below are the best trade-offs among them.</div>"
        "</div>");
  } else if (front_size > 0) {
    absl::StrAppend(
        &html,
        "<div class=\"verdict no\"><div class=\"icon\">!</div><div><b>No "
        "candidate meets every requirement",
        e.state() == v1::EXPERIMENT_STATE_RUNNING ? " yet" : "",
        ".</b> The front shows the ", front_size,
        " least-violating trade-offs; the table marks which requirement each "
        "one misses.</div></div>");
  } else {
    absl::StrAppend(&html,
                    "<div class=\"verdict no\"><div class=\"icon\">…</div>"
                    "<div><b>No candidate has finished training yet.</b> "
                    "Run the report again later.</div></div>");
  }

  // Key figures.
  double best_feasible = kNaN;
  for (const v1::Candidate& c : input.front.candidates()) {
    const double error = measure.Of(c.metrics());
    if (c.feasible() && !(best_feasible <= error)) best_feasible = error;
  }
  absl::StrAppend(
      &html, "<div class=\"cards\">",
      Card("Candidates", absl::StrCat(total),
           absl::StrCat(e.counts().succeeded(), " trained · ",
                        e.counts().failed(), " failed")),
      Card("Feasible", absl::StrCat(e.feasible_count()),
           succeeded.empty()
               ? "of none trained"
               : absl::StrCat(Percent(static_cast<double>(e.feasible_count()) /
                                      static_cast<double>(succeeded.size())),
                              " of trained")),
      Card("Pareto front", absl::StrCat(front_size),
           front_size == 1 ? "candidate" : "candidates"),
      Card("Best feasible error",
           std::isnan(best_feasible) ? "—" : measure.format(best_feasible),
           measure.card_hint),
      Card("Elapsed", ShortDuration(absl::Seconds(ElapsedSeconds(input))),
           absl::StrCat("budget ", BudgetText(spec.budget()))),
      "</div>");

  // Requirements.
  absl::StrAppend(&html,
                  "<section><h2>Requirements</h2><p class=\"lead\">Hard "
                  "constraints on every delivered network, judged on ",
                  measure.rows,
                  spec.judging_fraction() > 0
                      ? " rows that no candidate was trained on or had its "
                        "weights chosen on.</p>"
                      : " rows that no candidate was trained on.</p>");
  if (defs.empty()) {
    absl::StrAppend(&html,
                    "<p>No requirements were set: every trained candidate "
                    "counts as feasible.</p>");
  } else {
    absl::StrAppend(&html, "<table><thead><tr>", Header("Requirement"),
                    Header("Limit", "num"), Header("Best achieved", "num"),
                    Header("Met by", "num"), Header("On the front", "num"),
                    "</tr></thead><tbody>");
    for (const RequirementDef& def : defs) {
      double best = kNaN;
      int met = 0;
      for (const v1::Candidate* c : succeeded) {
        const double v = def.value(c->metrics());
        if (std::isnan(best) || (def.higher_is_better ? v > best : v < best)) {
          best = v;
        }
        met += Assess(def.only, c->metrics()).feasible;
      }
      int front_met = 0;
      for (const v1::Candidate& c : input.front.candidates()) {
        front_met += Assess(def.only, c.metrics()).feasible;
      }
      absl::StrAppend(
          &html, "<tr>", Cell(HtmlEscape(def.name)),
          Cell(HtmlEscape(def.limit), "num"),
          Cell(std::isnan(best) ? "—" : HtmlEscape(def.format(best)), "num"),
          Cell(absl::StrCat(met, " of ", succeeded.size()), "num"),
          Cell(front_size == 0
                   ? "—"
                   : absl::StrCat(Mark(front_met > 0,
                                       front_met > 0 ? "met on the front"
                                                     : "missed on the front"),
                                  " ", front_met, " of ", front_size),
               "num"),
          "</tr>");
    }
    absl::StrAppend(&html, "</tbody></table>");
  }
  absl::StrAppend(&html, "</section>");

  // Front plots.
  absl::StrAppend(
      &html,
      "<section><h2>Pareto front</h2><p class=\"lead\">Every trained "
      "candidate; the front is ringed and numbered as in the table below. "
      "Dashed lines are the requirements, the shaded area is where they "
      "hold. Hover over a point for its id.</p><div class=\"grid2\"><figure>",
      FrontChart(input, measure, FrontX::kParameters, 540, 400, "front-params")
          .Render(false),
      "</figure><figure>",
      FrontChart(input, measure, FrontX::kLatency, 540, 400, "front-latency")
          .Render(false),
      "</figure></div></section>");

  // Front table: validation metrics with the test set's below them.
  bool has_test = false;
  for (const v1::Candidate& c : input.front.candidates()) {
    has_test = has_test || c.metrics().has_test();
  }
  absl::StrAppend(
      &html,
      "<section><h2>Candidates on the front</h2><p class=\"lead\">Sorted by ",
      measure.name, ". ",
      has_test ? absl::StrCat("Errors are on the ", measure.rows,
                              " rows, with the test data set's (never used "
                              "for selection) in grey below. ")
               : "",
      "Download a model with <span class=\"mono\">evonas model download ID "
      "-o model.pt</span>.</p>");
  if (front_size == 0) {
    absl::StrAppend(&html, "<p>The front is empty.</p>");
  } else {
    absl::StrAppend(&html,
                    "<div class=\"scroll\"><table class=\"front\"><thead><tr>",
                    Header("#"), Header("Candidate"));
    for (const MetricColumn& column : measure.columns) {
      absl::StrAppend(&html, Header(column.header, "num", column.title));
    }
    absl::StrAppend(&html, Header("Params", "num"),
                    Header("Size", "num", "model file size"),
                    Header("Train", "num", "training wall time"),
                    Header("Latency", "num", "inference latency, one sample"));
    for (const RequirementDef& def : defs) {
      absl::StrAppend(&html, Header(def.short_name, "c req",
                                    absl::StrCat(def.name, " ", def.limit)));
    }
    absl::StrAppend(&html, Header("Feasible", "c"), "</tr></thead><tbody>");
    // A judged value with the test value below it.
    auto metric_cell = [&](const v1::Metrics& m, const MetricColumn& column) {
      std::string text = column.format(column.of(SearchEvaluation(m)));
      if (has_test) {
        absl::StrAppend(&text, "<small>",
                        m.has_test() ? column.format(column.of(m.test())) : "—",
                        "</small>");
      }
      return Cell(text, "num two");
    };
    int rank = 0;
    for (const v1::Candidate& c : input.front.candidates()) {
      const v1::Metrics& m = c.metrics();
      absl::StrAppend(
          &html, "<tr>",
          Cell(absl::StrCat("<span class=\"rank\">", ++rank, "</span>")),
          Cell(absl::StrCat("<span class=\"mono\">", HtmlEscape(c.id()),
                            "</span>", ArchitectureHtml(c.genome()))));
      for (const MetricColumn& column : measure.columns) {
        absl::StrAppend(&html, metric_cell(m, column));
      }
      absl::StrAppend(
          &html, Cell(Grouped(m.parameter_count()), "num"),
          Cell(Bytes(m.model_bytes()), "num"), Cell(TrainingSeconds(m), "num"),
          Cell(HtmlEscape(Latency(m.inference_latency_seconds())), "num"));
      for (const RequirementCheck& check : CheckRequirements(req, m)) {
        absl::StrAppend(
            &html, Cell(Mark(check.met,
                             absl::StrCat(check.name, ": ", check.actual,
                                          check.met ? " meets " : " misses ",
                                          check.limit)),
                        "c"));
      }
      absl::StrAppend(
          &html,
          Cell(Mark(c.feasible(), c.feasible()
                                      ? "meets every requirement"
                                      : absl::StrJoin(c.violations(), "; ")),
               "c"),
          "</tr>");
    }
    absl::StrAppend(&html, "</tbody></table></div>");
  }
  absl::StrAppend(&html, "</section>");

  // Refits: trained on every row, so only the test data set judges them.
  if (input.front.refits_size() > 0) {
    const JudgedRows judged_rows = JudgedRowsOf(/*refit=*/true, has_test,
                                                /*has_judging=*/false);
    absl::StrAppend(
        &html,
        "<section><h2>Refits on all rows</h2><p class=\"lead\">After the "
        "search, these front members were trained again on every row of "
        "the training data set, validation rows included. ",
        has_test ? "Their errors are on the test data set, which also judges "
                   "their requirements."
                 : "Without a test data set their errors are on their own "
                   "training rows, which says little about new points.",
        "</p><div class=\"scroll\"><table><thead><tr>", Header("Refit"),
        Header("Of"), Header("State"));
    for (const MetricColumn& column : measure.columns) {
      absl::StrAppend(&html, Header(column.header, "num", column.title));
    }
    absl::StrAppend(&html, Header("Train", "num", "training wall time"),
                    Header("Feasible", "c"), "</tr></thead><tbody>");
    for (const v1::Candidate& c : input.front.refits()) {
      const bool done = c.state() == v1::CANDIDATE_STATE_SUCCEEDED;
      const v1::Evaluation& judged =
          JudgedEvaluation(c.metrics(), judged_rows);
      absl::StrAppend(
          &html, "<tr>",
          Cell(absl::StrCat("<span class=\"mono\">", HtmlEscape(c.id()),
                            "</span>")),
          Cell(absl::StrCat("<span class=\"mono\">", HtmlEscape(c.refit_of()),
                            "</span>")),
          Cell(HtmlEscape(CandidateStateName(c.state()))));
      for (const MetricColumn& column : measure.columns) {
        absl::StrAppend(
            &html, Cell(done ? column.format(column.of(judged)) : "—", "num"));
      }
      absl::StrAppend(
          &html, Cell(done ? TrainingSeconds(c.metrics()) : "—", "num"),
          Cell(done ? Mark(c.feasible(),
                           c.feasible() ? "meets every requirement"
                                        : absl::StrJoin(c.violations(), "; "))
                    : "—",
               "c"),
          "</tr>");
    }
    absl::StrAppend(&html, "</tbody></table></div></section>");
  }

  // Progress.
  absl::StrAppend(
      &html,
      "<section><h2>Search progress</h2><p class=\"lead\">Each point is a "
      "candidate when it finished training. The hypervolume measures the "
      "whole trade-off between ",
      measure.noun,
      " and size: the area that the "
      "trained candidates dominate in (log₁₀ ",
      measure.noun,
      ", log₁₀ parameters), up to one decade beyond the worst of each.</p>"
      "<div class=\"grid2\"><figure>",
      ErrorProgressChart(input, measure, progress, 540, 360).Render(false),
      "</figure><figure>",
      HypervolumeChart(input, measure, progress, 540, 360).Render(false),
      "</figure></div></section>");

  // Data and search settings.
  const double validation_fraction =
      spec.validation_fraction() > 0 ? spec.validation_fraction() : 0.2;
  absl::StrAppend(&html,
                  "<section><h2>Data and search</h2><div class=\"grid2\"><div>"
                  "<h3>Training data</h3>",
                  DatasetHtml(input.dataset, spec, true, zone),
                  "<p class=\"lead\" style=\"margin-top:10px\">Inputs in "
                  "blue, outputs in red. ",
                  Percent(validation_fraction),
                  " of the rows are held out for validation",
                  spec.judging_fraction() > 0
                      ? absl::StrCat(", ", Percent(spec.judging_fraction()),
                                     " of the rest for judging")
                      : "",
                  ".</p>");
  if (input.test_dataset.has_value()) {
    absl::StrAppend(&html, "<h3>Test data</h3>",
                    DatasetHtml(*input.test_dataset, spec, false, zone));
  }
  absl::StrAppend(
      &html, "</div><div><h3>Search</h3><dl><dt>Strategy</dt><dd>",
      HtmlEscape(StrategyName(spec.strategy())), "</dd><dt>Budget</dt><dd>",
      HtmlEscape(BudgetText(spec.budget())), "</dd><dt>Seed</dt><dd>",
      spec.seed(), "</dd><dt>Candidates</dt><dd>", e.counts().succeeded(),
      " trained, ", e.counts().failed(), " failed, ", e.counts().running(),
      " running, ", e.counts().queued(), " queued, ", e.counts().cancelled(),
      " cancelled</dd><dt>Created</dt><dd>", Timestamp(e.created_at(), zone),
      "</dd><dt>Finished</dt><dd>", Timestamp(e.finished_at(), zone),
      "</dd><dt>Elapsed</dt><dd>",
      ShortDuration(absl::Seconds(ElapsedSeconds(input))),
      "</dd></dl></div></div></section>");

  absl::StrAppend(
      &html,
      "<footer>Generated by evonas from the controller's records. A "
      "candidate is on the Pareto front when no other candidate is at least "
      "as good in ",
      measure.name,
      ", parameters and training time and "
      "better in one; a feasible candidate beats every infeasible one. "
      "Validation rows are a seeded hash split of the training data set "
      "that workers never train on.</footer></div></body></html>\n");
  return html;
}

}  // namespace evonas::client
