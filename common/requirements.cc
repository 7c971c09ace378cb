#include "common/requirements.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "evonas/v1/types.pb.h"

namespace evonas {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

absl::Status CheckPositive(absl::string_view field, double value) {
  if (std::isfinite(value) && value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "requirements.%s must be a positive finite number, got %g", field,
      value));
}

absl::Status CheckPositive(absl::string_view field, int64_t value) {
  if (value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "requirements.%s must be positive, got %d", field, value));
}

// Formats `actual` and `limit` with printf conversion `conversion` ('e' or
// 'f'), starting at `precision` digits and adding digits until the two texts
// differ (so a violation never reads "1.0e-03 > 1.0e-03").
std::pair<std::string, std::string> FormatPair(double actual, double limit,
                                               char conversion, int precision) {
  std::string a, b;
  for (int p = precision; p <= 17; ++p) {
    if (conversion == 'e') {
      a = absl::StrFormat("%.*e", p, actual);
      b = absl::StrFormat("%.*e", p, limit);
    } else {
      a = absl::StrFormat("%.*f", p, actual);
      b = absl::StrFormat("%.*f", p, limit);
    }
    if (a != b) break;
  }
  return {a, b};
}

// Relative amount by which `actual` exceeds the upper `limit` (> 0); never
// NaN.
double RelativeExcess(double actual, double limit) {
  const double excess = (actual - limit) / limit;
  return std::isnan(excess) ? kInfinity : excess;
}

void AddViolation(Assessment& assessment, double excess, std::string message) {
  assessment.feasible = false;
  assessment.violation += excess;
  assessment.violations.push_back(std::move(message));
}

// A fraction (0..1) that must reach `limit`: the violation is the relative
// shortfall, the message "<what> a% < b%".
void CheckMinimumFraction(double actual, double limit, absl::string_view what,
                          Assessment& assessment) {
  if (actual >= limit) return;
  const auto [a, b] = FormatPair(100 * actual, 100 * limit, 'f', 1);
  const double shortfall = (limit - actual) / limit;
  AddViolation(assessment, std::isnan(shortfall) ? kInfinity : shortfall,
               absl::StrCat(what, " ", a, "% < ", b, "%"));
}

}  // namespace

absl::Status ValidateRequirements(const v1::Requirements& requirements) {
  const v1::Requirements& r = requirements;
  if (r.has_max_abs_error()) {
    EVONAS_RETURN_IF_ERROR(CheckPositive("max_abs_error", r.max_abs_error()));
  }
  if (r.has_within_tolerance()) {
    EVONAS_RETURN_IF_ERROR(
        CheckPositive("within_tolerance", r.within_tolerance()));
  }
  if (r.has_min_fraction_within()) {
    const double f = r.min_fraction_within();
    if (!(f >= 0 && f <= 1)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "requirements.min_fraction_within must be in [0, 1], got %g", f));
    }
    if (!r.has_within_tolerance()) {
      return absl::InvalidArgumentError(
          "requirements.min_fraction_within requires "
          "requirements.within_tolerance (the error that counts as within)");
    }
  }
  if (r.has_min_accuracy()) {
    const double a = r.min_accuracy();
    if (!(a > 0 && a <= 1)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "requirements.min_accuracy must be in (0, 1] (a fraction, not a "
          "percentage), got %g",
          a));
    }
  }
  if (r.has_max_parameters()) {
    EVONAS_RETURN_IF_ERROR(CheckPositive("max_parameters", r.max_parameters()));
  }
  if (r.has_max_model_bytes()) {
    EVONAS_RETURN_IF_ERROR(
        CheckPositive("max_model_bytes", r.max_model_bytes()));
  }
  if (r.has_max_training_seconds()) {
    EVONAS_RETURN_IF_ERROR(
        CheckPositive("max_training_seconds", r.max_training_seconds()));
  }
  if (r.has_max_inference_latency_seconds()) {
    EVONAS_RETURN_IF_ERROR(CheckPositive("max_inference_latency_seconds",
                                         r.max_inference_latency_seconds()));
  }
  return absl::OkStatus();
}

JudgedRows JudgedRowsOf(bool refit, bool has_test, bool has_judging) {
  if (!refit)
    return has_judging ? JudgedRows::kJudging : JudgedRows::kValidation;
  return has_test ? JudgedRows::kTest : JudgedRows::kTraining;
}

JudgedRows SearchRows(const v1::Metrics& metrics) {
  return JudgedRowsOf(/*refit=*/false, /*has_test=*/false,
                      metrics.has_judging());
}

const char* JudgedRowsName(JudgedRows rows) {
  switch (rows) {
    case JudgedRows::kJudging:
      return "judging";
    case JudgedRows::kTest:
      return "test";
    case JudgedRows::kTraining:
      return "training";
    default:
      return "validation";
  }
}

const v1::Evaluation& JudgedEvaluation(const v1::Metrics& metrics,
                                       JudgedRows rows) {
  switch (rows) {
    case JudgedRows::kJudging:
      return metrics.judging();
    case JudgedRows::kTest:
      return metrics.test();
    default:
      return metrics.validation();
  }
}

const v1::Evaluation& SearchEvaluation(const v1::Metrics& metrics) {
  return JudgedEvaluation(metrics, SearchRows(metrics));
}

const v1::Evaluation& SearchInt8Evaluation(const v1::Metrics& metrics) {
  return metrics.has_judging() ? metrics.int8().judging()
                               : metrics.int8().validation();
}

Assessment Assess(const v1::Requirements& requirements,
                  const v1::Metrics& metrics) {
  return Assess(requirements, metrics, SearchRows(metrics));
}

Assessment Assess(const v1::Requirements& requirements,
                  const v1::Metrics& metrics, JudgedRows rows) {
  const v1::Requirements& r = requirements;
  const v1::Evaluation& judged = JudgedEvaluation(metrics, rows);
  const std::string name = JudgedRowsName(rows);
  Assessment assessment;
  if (r.has_max_abs_error()) {
    const double actual = judged.max_abs_error();
    const double limit = r.max_abs_error();
    if (!(actual <= limit)) {
      const auto [a, b] = FormatPair(actual, limit, 'e', 1);
      AddViolation(assessment, RelativeExcess(actual, limit),
                   absl::StrCat(name, " max abs error ", a, " > ", b));
    }
  }
  if (r.has_min_fraction_within()) {
    CheckMinimumFraction(
        judged.fraction_within(), r.min_fraction_within(),
        absl::StrCat(name, " fraction within ",
                     absl::StrFormat("%.1e", r.within_tolerance()), " is"),
        assessment);
  }
  if (r.has_min_accuracy()) {
    CheckMinimumFraction(judged.accuracy(), r.min_accuracy(),
                         absl::StrCat(name, " accuracy"), assessment);
  }
  if (r.has_max_parameters()) {
    const int64_t actual = metrics.parameter_count();
    const int64_t limit = r.max_parameters();
    if (actual > limit) {
      AddViolation(assessment,
                   RelativeExcess(static_cast<double>(actual),
                                  static_cast<double>(limit)),
                   absl::StrCat("parameter count ", actual, " > ", limit));
    }
  }
  if (r.has_max_model_bytes()) {
    const int64_t actual = metrics.model_bytes();
    const int64_t limit = r.max_model_bytes();
    if (actual > limit) {
      AddViolation(
          assessment,
          RelativeExcess(static_cast<double>(actual),
                         static_cast<double>(limit)),
          absl::StrCat("model size ", actual, " bytes > ", limit, " bytes"));
    }
  }
  if (r.has_max_training_seconds()) {
    const double actual = metrics.training_seconds();
    const double limit = r.max_training_seconds();
    if (!(actual <= limit)) {
      const auto [a, b] = FormatPair(actual, limit, 'f', 1);
      AddViolation(assessment, RelativeExcess(actual, limit),
                   absl::StrCat("training time ", a, " s > ", b, " s"));
    }
  }
  if (r.has_max_inference_latency_seconds()) {
    const double actual = metrics.inference_latency_seconds();
    const double limit = r.max_inference_latency_seconds();
    if (!(actual <= limit)) {
      const auto [a, b] = FormatPair(actual, limit, 'e', 1);
      AddViolation(assessment, RelativeExcess(actual, limit),
                   absl::StrCat("inference latency ", a, " s > ", b, " s"));
    }
  }
  return assessment;
}

}  // namespace evonas
