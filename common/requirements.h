#ifndef EVONAS_COMMON_REQUIREMENTS_H_
#define EVONAS_COMMON_REQUIREMENTS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "evonas/v1/types.pb.h"

namespace evonas {

// OK when every set requirement is positive and finite, fractions are in
// [0, 1], and min_fraction_within comes with within_tolerance; otherwise
// InvalidArgument naming the field.
absl::Status ValidateRequirements(const v1::Requirements& requirements);

// How far a candidate's metrics are from the requirements.
struct Assessment {
  bool feasible = true;
  // Sum over violated requirements of the relative excess (e.g. an error of
  // 3e-3 against a limit of 1e-3 adds 2); 0 when feasible.
  double violation = 0;
  // One sentence per violated requirement, e.g. "validation max abs error
  // 3.0e-03 > 1.0e-03".
  std::vector<std::string> violations;
};
// Which evaluation the accuracy requirements are judged on.
enum class JudgedRows {
  // Metrics.validation: a candidate of a search without judging rows.
  kValidation,
  // Metrics.judging: a candidate of a search with judging rows
  // (ExperimentSpec.judging_fraction).
  kJudging,
  // Metrics.test: a refit (trained on every row) of an experiment with a
  // test data set.
  kTest,
  // Metrics.validation, which a refit without a test data set measures on
  // its training rows.
  kTraining,
};
JudgedRows JudgedRowsOf(bool refit, bool has_test, bool has_judging);
// The rows a search candidate is judged on: the judging rows when its
// metrics have them, the validation rows otherwise. The test set never
// counts in a search.
JudgedRows SearchRows(const v1::Metrics& metrics);
// "validation", "judging", "test" or "training".
const char* JudgedRowsName(JudgedRows rows);

// Checks every set field of `requirements` against `metrics`, the accuracy
// ones on `rows`. A NaN metric violates its requirement with an infinite
// excess, so `violation` is never NaN.
Assessment Assess(const v1::Requirements& requirements,
                  const v1::Metrics& metrics, JudgedRows rows);
// A search candidate's: on SearchRows(metrics).
Assessment Assess(const v1::Requirements& requirements,
                  const v1::Metrics& metrics);
// The evaluation `rows` names.
const v1::Evaluation& JudgedEvaluation(const v1::Metrics& metrics,
                                       JudgedRows rows);
// The evaluation a search candidate is judged and ranked on:
// JudgedEvaluation(metrics, SearchRows(metrics)); likewise for its int8
// network.
const v1::Evaluation& SearchEvaluation(const v1::Metrics& metrics);
const v1::Evaluation& SearchInt8Evaluation(const v1::Metrics& metrics);

}  // namespace evonas

#endif  // EVONAS_COMMON_REQUIREMENTS_H_
