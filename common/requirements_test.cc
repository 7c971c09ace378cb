#include "common/requirements.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace evonas {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

void ExpectInvalid(const v1::Requirements& r, const std::string& message) {
  const absl::Status status = ValidateRequirements(r);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr(message));
}

v1::Metrics MakeMetrics() {
  v1::Metrics m;
  m.mutable_validation()->set_max_abs_error(1e-3);
  m.mutable_validation()->set_fraction_within(0.97);
  m.set_parameter_count(5000);
  m.set_model_bytes(40000);
  m.set_training_seconds(12.5);
  m.set_inference_latency_seconds(2e-4);
  return m;
}

TEST(ValidateRequirementsTest, EmptyIsValid) {
  EXPECT_TRUE(ValidateRequirements(v1::Requirements()).ok());
}

TEST(ValidateRequirementsTest, AllSetIsValid) {
  v1::Requirements r;
  r.set_max_abs_error(1e-3);
  r.set_within_tolerance(1e-4);
  r.set_min_fraction_within(0.95);
  r.set_max_parameters(10000);
  r.set_max_model_bytes(1 << 20);
  r.set_max_training_seconds(60);
  r.set_max_inference_latency_seconds(1e-3);
  EXPECT_TRUE(ValidateRequirements(r).ok()) << ValidateRequirements(r);
  r.set_min_fraction_within(0);
  EXPECT_TRUE(ValidateRequirements(r).ok());
  r.set_min_fraction_within(1);
  EXPECT_TRUE(ValidateRequirements(r).ok());
}

TEST(ValidateRequirementsTest, DoublesMustBePositiveAndFinite) {
  for (const double bad : {0.0, -1.0, kNan, kInf}) {
    SCOPED_TRACE(bad);
    v1::Requirements r;
    r.set_max_abs_error(bad);
    ExpectInvalid(r, "requirements.max_abs_error must be a positive finite");
    r = v1::Requirements();
    r.set_within_tolerance(bad);
    ExpectInvalid(r, "requirements.within_tolerance");
    r = v1::Requirements();
    r.set_max_training_seconds(bad);
    ExpectInvalid(r, "requirements.max_training_seconds");
    r = v1::Requirements();
    r.set_max_inference_latency_seconds(bad);
    ExpectInvalid(r, "requirements.max_inference_latency_seconds");
  }
}

TEST(ValidateRequirementsTest, IntegersMustBePositive) {
  v1::Requirements r;
  r.set_max_parameters(0);
  ExpectInvalid(r, "requirements.max_parameters must be positive, got 0");
  r = v1::Requirements();
  r.set_max_model_bytes(-10);
  ExpectInvalid(r, "requirements.max_model_bytes must be positive, got -10");
}

TEST(ValidateRequirementsTest, FractionWithin) {
  v1::Requirements r;
  r.set_within_tolerance(1e-3);
  for (const double bad : {-0.1, 1.5, kNan}) {
    r.set_min_fraction_within(bad);
    ExpectInvalid(r, "requirements.min_fraction_within must be in [0, 1]");
  }
  r.clear_within_tolerance();
  r.set_min_fraction_within(0.9);
  ExpectInvalid(r, "requires requirements.within_tolerance");
}

TEST(ValidateRequirementsTest, MinAccuracyIsAFraction) {
  v1::Requirements r;
  for (const double bad : {0.0, -0.5, 1.01, 90.0, kNan}) {
    r.set_min_accuracy(bad);
    ExpectInvalid(r, "requirements.min_accuracy must be in (0, 1]");
  }
  r.set_min_accuracy(1.0);
  EXPECT_TRUE(ValidateRequirements(r).ok());
}

TEST(AssessTest, MinAccuracy) {
  v1::Requirements r;
  r.set_min_accuracy(0.9);
  v1::Metrics m = MakeMetrics();
  m.mutable_validation()->set_accuracy(0.9);
  EXPECT_TRUE(Assess(r, m).feasible);
  m.mutable_validation()->set_accuracy(0.72);
  const Assessment a = Assess(r, m);
  EXPECT_FALSE(a.feasible);
  EXPECT_DOUBLE_EQ(a.violation, 0.2);
  EXPECT_THAT(a.violations,
              ElementsAre("validation accuracy 72.0% < 90.0%"));
}

// Max abs error 1e-3 and half the points within 1e-4.
v1::Requirements ErrorAndFractionWithin() {
  v1::Requirements r;
  r.set_max_abs_error(1e-3);
  r.set_within_tolerance(1e-4);
  r.set_min_fraction_within(0.5);
  return r;
}

// Metrics that meet ErrorAndFractionWithin on the validation rows.
v1::Metrics PreciseOnValidation() {
  v1::Metrics m = MakeMetrics();
  m.mutable_validation()->set_max_abs_error(1e-5);
  m.mutable_validation()->set_fraction_within(1);
  return m;
}

TEST(AssessTest, RefitsAreJudgedOnTheTestRowsOrSayTheyAreNot) {
  EXPECT_EQ(JudgedRowsOf(/*refit=*/false, /*has_test=*/true,
                         /*has_judging=*/false),
            JudgedRows::kValidation);
  EXPECT_EQ(JudgedRowsOf(true, true, false), JudgedRows::kTest);
  EXPECT_EQ(JudgedRowsOf(true, false, false), JudgedRows::kTraining);
  const v1::Requirements r = ErrorAndFractionWithin();
  v1::Metrics m = PreciseOnValidation();
  m.mutable_test()->set_max_abs_error(4e-3);
  m.mutable_test()->set_fraction_within(0.25);
  EXPECT_TRUE(Assess(r, m).feasible);
  const Assessment on_test = Assess(r, m, JudgedRows::kTest);
  EXPECT_FALSE(on_test.feasible);
  EXPECT_DOUBLE_EQ(on_test.violation, 3 + 0.5);
  EXPECT_THAT(on_test.violations,
              ElementsAre("test max abs error 4.0e-03 > 1.0e-03",
                          "test fraction within 1.0e-04 is 25.0% < 50.0%"));
  // Without test rows a refit is judged on its training rows, and says so.
  m.mutable_validation()->set_max_abs_error(2e-3);
  EXPECT_THAT(Assess(r, m, JudgedRows::kTraining).violations,
              ElementsAre("training max abs error 2.0e-03 > 1.0e-03"));
}

TEST(AssessTest, ASearchCandidateWithJudgingRowsIsJudgedOnThem) {
  EXPECT_EQ(JudgedRowsOf(/*refit=*/false, /*has_test=*/true,
                         /*has_judging=*/true),
            JudgedRows::kJudging);
  const v1::Requirements r = ErrorAndFractionWithin();
  v1::Metrics m = PreciseOnValidation();
  EXPECT_EQ(SearchRows(m), JudgedRows::kValidation);
  EXPECT_EQ(&SearchEvaluation(m), &m.validation());
  EXPECT_TRUE(Assess(r, m).feasible);

  // The validation rows chose the weights and flatter them; the judging
  // rows decide.
  m.mutable_judging()->set_max_abs_error(3e-3);
  m.mutable_judging()->set_fraction_within(0.75);
  m.mutable_int8()->mutable_validation()->set_max_abs_error(2e-5);
  m.mutable_int8()->mutable_judging()->set_max_abs_error(5e-3);
  EXPECT_EQ(SearchRows(m), JudgedRows::kJudging);
  EXPECT_EQ(&SearchEvaluation(m), &m.judging());
  EXPECT_EQ(SearchInt8Evaluation(m).max_abs_error(), 5e-3);
  const Assessment a = Assess(r, m);
  EXPECT_FALSE(a.feasible);
  EXPECT_DOUBLE_EQ(a.violation, 2);
  EXPECT_THAT(a.violations,
              ElementsAre("judging max abs error 3.0e-03 > 1.0e-03"));
  EXPECT_TRUE(Assess(r, m, JudgedRows::kValidation).feasible);
}

TEST(AssessTest, NoRequirementsIsFeasible) {
  const Assessment a = Assess(v1::Requirements(), MakeMetrics());
  EXPECT_TRUE(a.feasible);
  EXPECT_EQ(a.violation, 0);
  EXPECT_THAT(a.violations, IsEmpty());
}

TEST(AssessTest, AllMetIsFeasible) {
  v1::Requirements r;
  r.set_max_abs_error(1e-3);  // equal is allowed
  r.set_within_tolerance(1e-4);
  r.set_min_fraction_within(0.97);
  r.set_max_parameters(5000);
  r.set_max_model_bytes(40000);
  r.set_max_training_seconds(12.5);
  r.set_max_inference_latency_seconds(2e-4);
  const Assessment a = Assess(r, MakeMetrics());
  EXPECT_TRUE(a.feasible);
  EXPECT_EQ(a.violation, 0);
  EXPECT_THAT(a.violations, IsEmpty());
}

TEST(AssessTest, MaxAbsError) {
  v1::Requirements r;
  r.set_max_abs_error(1e-3);
  v1::Metrics m = MakeMetrics();
  m.mutable_validation()->set_max_abs_error(3e-3);
  m.mutable_test()->set_max_abs_error(0);  // the test set never counts
  const Assessment a = Assess(r, m);
  EXPECT_FALSE(a.feasible);
  EXPECT_DOUBLE_EQ(a.violation, 2);
  EXPECT_THAT(a.violations,
              ElementsAre("validation max abs error 3.0e-03 > 1.0e-03"));
}

TEST(AssessTest, CloseValuesGetMoreDigits) {
  v1::Requirements r;
  r.set_max_abs_error(1e-3);
  v1::Metrics m = MakeMetrics();
  m.mutable_validation()->set_max_abs_error(1.04e-3);
  const Assessment a = Assess(r, m);
  EXPECT_THAT(a.violations,
              ElementsAre("validation max abs error 1.04e-03 > 1.00e-03"));
}

TEST(AssessTest, TestMetricsAreIgnored) {
  v1::Requirements r;
  r.set_max_abs_error(1e-3);
  v1::Metrics m = MakeMetrics();
  m.mutable_test()->set_max_abs_error(1);
  EXPECT_TRUE(Assess(r, m).feasible);
}

TEST(AssessTest, FractionWithin) {
  v1::Requirements r;
  r.set_within_tolerance(1e-2);
  r.set_min_fraction_within(0.98);
  v1::Metrics m = MakeMetrics();
  m.mutable_validation()->set_fraction_within(0.49);
  const Assessment a = Assess(r, m);
  EXPECT_FALSE(a.feasible);
  EXPECT_DOUBLE_EQ(a.violation, 0.5);
  EXPECT_THAT(
      a.violations,
      ElementsAre("validation fraction within 1.0e-02 is 49.0% < 98.0%"));
}

TEST(AssessTest, SizeAndTimeRequirements) {
  v1::Requirements r;
  r.set_max_parameters(1000);
  r.set_max_model_bytes(10000);
  r.set_max_training_seconds(10);
  r.set_max_inference_latency_seconds(1e-4);
  const Assessment a = Assess(r, MakeMetrics());
  EXPECT_FALSE(a.feasible);
  EXPECT_DOUBLE_EQ(a.violation, 4 + 3 + 0.25 + 1);
  EXPECT_THAT(a.violations,
              ElementsAre("parameter count 5000 > 1000",
                          "model size 40000 bytes > 10000 bytes",
                          "training time 12.5 s > 10.0 s",
                          "inference latency 2.0e-04 s > 1.0e-04 s"));
}

TEST(AssessTest, NonFiniteMetricsAreInfeasibleAndViolationIsNeverNan) {
  v1::Requirements r;
  r.set_max_abs_error(1e-3);
  r.set_within_tolerance(1e-3);
  r.set_min_fraction_within(0.5);
  v1::Metrics m = MakeMetrics();
  m.mutable_validation()->set_max_abs_error(kNan);
  m.mutable_validation()->set_fraction_within(kNan);
  Assessment a = Assess(r, m);
  EXPECT_FALSE(a.feasible);
  EXPECT_EQ(a.violations.size(), 2u);
  EXPECT_FALSE(std::isnan(a.violation));
  m.mutable_validation()->set_max_abs_error(kInf);
  m.mutable_validation()->set_fraction_within(0.5);
  a = Assess(r, m);
  EXPECT_FALSE(a.feasible);
  EXPECT_EQ(a.violation, kInf);
}

}  // namespace
}  // namespace evonas
