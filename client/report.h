#ifndef EVONAS_CLIENT_REPORT_H_
#define EVONAS_CLIENT_REPORT_H_

// `evonas experiment report`: the report a consultant sends to a customer.
// Pure functions from the API's messages to text, so that they are tested
// without a controller. The HTML page is self-contained: inline CSS and
// inline SVG, no script, no font or image to fetch; a Content-Security-Policy
// forbids the page to load anything.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "evonas/v1/types.pb.h"

namespace evonas::client {

// What a report shows, as the controller returned it.
struct ReportInput {
  v1::Experiment experiment;
  // The training data set (GetDataset of spec.dataset_id).
  v1::Dataset dataset;
  // The test data set, when the experiment has one.
  std::optional<v1::Dataset> test_dataset;
  // The front, with its refits (shown in a table of their own).
  v1::ParetoFront front;
  // Every search candidate of the experiment, in any state: no refits.
  std::vector<v1::Candidate> candidates;
  // When the report was made and the zone its timestamps are printed in.
  absl::Time generated_at = absl::UnixEpoch();
  absl::TimeZone time_zone = absl::UTCTimeZone();
};

// `text` with &, <, >, " and ' replaced by entities; safe in HTML and SVG
// text and in double- or single-quoted attributes.
std::string HtmlEscape(absl::string_view text);

// Whether one set requirement is met, e.g. {"Max abs error", "≤ 1.00e-03",
// "3.21e-04", true}.
struct RequirementCheck {
  std::string name;
  std::string limit;
  std::string actual;
  bool met = false;
};
// One check per set requirement of `requirements`, in the order in which
// the controller checks them and by the same rule (Assess in
// common/requirements.h). within_tolerance alone is no requirement.
std::vector<RequirementCheck> CheckRequirements(
    const v1::Requirements& requirements, const v1::Metrics& metrics);

// Errors below this count as this on logarithmic axes and in the
// hypervolume (a perfect fit would otherwise be at minus infinity).
inline constexpr double kErrorFloor = 1e-15;
// The same for a classifier's error rate: below one wrong row in 100,000,
// so that a perfect classifier sits just under the others instead of
// stretching the axis over fifteen decades.
inline constexpr double kErrorRateFloor = 1e-5;

// The state of the search after each succeeded candidate, in the order they
// finished. "Error" is the experiment's task's: the validation max abs error
// of a regression, the validation error rate (1 - accuracy) of a
// classification.
struct ProgressPoint {
  // Since the experiment was created.
  double seconds = 0;
  // Smallest validation error of any succeeded candidate so far.
  double best_error = 0;
  // The same over feasible candidates; NaN until one is feasible.
  double best_feasible_error = 0;
  // Hypervolume (common/hypervolume.h) of (log10 error, log10 parameters)
  // of every succeeded candidate so far, errors floored at kErrorFloor
  // (kErrorRateFloor for a classification), against a reference one decade
  // beyond the worst finite value of each over the whole run; it never
  // decreases.
  double hypervolume = 0;
};
// Uses succeeded candidates with a finish time and a finite error.
std::vector<ProgressPoint> SearchProgress(
    const v1::Experiment& experiment,
    const std::vector<v1::Candidate>& candidates);

// The front plot alone (validation error against parameters, log scales;
// the error as in ProgressPoint) as a standalone SVG document, for slides.
std::string RenderFrontSvg(const ReportInput& input);

// The same front plot as a PNG file, `scale` pixels a pixel of the SVG (2,
// for slides, makes it 1920x1200), drawn from the same layout with a
// built-in bitmap font. Internal when the PNG cannot be encoded.
absl::StatusOr<std::string> RenderFrontPng(const ReportInput& input,
                                           int scale = 2);

// The whole report as one HTML document. Its charts, cards and front table
// use the error of the experiment's task (see ProgressPoint), and the front
// is listed best error first whatever order the controller sent.
std::string RenderReportHtml(const ReportInput& input);

}  // namespace evonas::client

#endif  // EVONAS_CLIENT_REPORT_H_
