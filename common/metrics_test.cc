#include "common/metrics.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace evonas {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(EvaluatePredictionsTest, Basic) {
  // 2 rows x 2 outputs; errors 0, 1, 2, 0.5.
  const v1::Evaluation e =
      EvaluatePredictions({1, 2, 3, 4.5}, {1, 3, 1, 4}, 2, 0.5);
  EXPECT_EQ(e.row_count(), 2);
  EXPECT_DOUBLE_EQ(e.max_abs_error(), 2);
  EXPECT_DOUBLE_EQ(e.fraction_within(), 0.5);  // 0 and 0.5 (inclusive)
  EXPECT_DOUBLE_EQ(e.mae(), 3.5 / 4);
  EXPECT_DOUBLE_EQ(e.rmse(), std::sqrt((0 + 1 + 4 + 0.25) / 4));
}

TEST(EvaluatePredictionsTest, RSquaredPerOutputAboutItsOwnMean) {
  // Output 0: targets 1, 3 (mean 2, SS_tot 2); output 1: 10, 30 (mean 20,
  // SS_tot 200). Errors 1, 0, 0, 5: SS_res 26.
  const v1::Evaluation e =
      EvaluatePredictions({2, 10, 3, 35}, {1, 10, 3, 30}, 2, 0);
  EXPECT_DOUBLE_EQ(e.r_squared(), 1.0 - 26.0 / 202.0);
  // Predicting each output's mean gives 0; worse gives negative values.
  EXPECT_DOUBLE_EQ(
      EvaluatePredictions({2, 20, 2, 20}, {1, 10, 3, 30}, 2, 0).r_squared(),
      0.0);
  EXPECT_LT(
      EvaluatePredictions({3, 30, 1, 10}, {1, 10, 3, 30}, 2, 0).r_squared(),
      0.0);
  // Constant targets: SS_tot is 0 and R^2 is 0 by definition.
  EXPECT_EQ(EvaluatePredictions({1, 2}, {1, 1}, 1, 0).r_squared(), 0.0);
  EXPECT_EQ(EvaluatePredictions({kNan, 2}, {0, 1}, 1, 0).r_squared(), -kInf);
}

TEST(EvaluatePredictionsTest, Perfect) {
  const v1::Evaluation e = EvaluatePredictions({1, -2, 3}, {1, -2, 3}, 1, 0);
  EXPECT_EQ(e.row_count(), 3);
  EXPECT_EQ(e.max_abs_error(), 0);
  EXPECT_EQ(e.fraction_within(), 1);
  EXPECT_EQ(e.rmse(), 0);
  EXPECT_EQ(e.mae(), 0);
  EXPECT_EQ(e.r_squared(), 1);
}

TEST(EvaluatePredictionsTest, NanPredictionIsInfiniteError) {
  const v1::Evaluation e = EvaluatePredictions({kNan, 1}, {0, 1}, 1, 1e9);
  EXPECT_EQ(e.max_abs_error(), kInf);
  EXPECT_DOUBLE_EQ(e.fraction_within(), 0.5);
  EXPECT_EQ(e.rmse(), kInf);
  EXPECT_EQ(e.mae(), kInf);
}

TEST(EvaluatePredictionsTest, InfinitePrediction) {
  const v1::Evaluation e = EvaluatePredictions({-kInf, 1}, {0, 1}, 2, 1);
  EXPECT_EQ(e.row_count(), 1);
  EXPECT_EQ(e.max_abs_error(), kInf);
  EXPECT_DOUBLE_EQ(e.fraction_within(), 0.5);
}

TEST(EvaluatePredictionsTest, Empty) {
  const v1::Evaluation e = EvaluatePredictions({}, {}, 3, 1);
  EXPECT_EQ(e.row_count(), 0);
  EXPECT_EQ(e.max_abs_error(), 0);
  EXPECT_EQ(e.fraction_within(), 0);
  EXPECT_EQ(e.rmse(), 0);
  EXPECT_EQ(e.mae(), 0);
}

TEST(EvaluatePredictionsTest, ManyElementsAccurateMeans) {
  std::vector<double> predicted(1000000, 0.1), target(1000000, 0.0);
  const v1::Evaluation e = EvaluatePredictions(predicted, target, 4, 0.05);
  EXPECT_EQ(e.row_count(), 250000);
  EXPECT_DOUBLE_EQ(e.mae(), 0.1);
  EXPECT_DOUBLE_EQ(e.rmse(), 0.1);
  EXPECT_EQ(e.fraction_within(), 0);
}

TEST(EvaluateClassificationTest, AccuracyAndCrossEntropy) {
  // Three rows, two classes: right with logits (2, 0), wrong with (0, 1),
  // right with (0, 3).
  const std::vector<double> logits = {2, 0, 0, 1, 0, 3};
  const std::vector<double> labels = {0, 0, 1};
  const v1::Evaluation e = EvaluateClassification(logits, labels, 2);
  EXPECT_EQ(e.row_count(), 3);
  EXPECT_DOUBLE_EQ(e.accuracy(), 2.0 / 3.0);
  const double want = (std::log(1 + std::exp(-2.0)) +
                       std::log(1 + std::exp(1.0)) +
                       std::log(1 + std::exp(-3.0))) / 3;
  EXPECT_NEAR(e.cross_entropy(), want, 1e-15);
  EXPECT_EQ(e.max_abs_error(), 0);
  EXPECT_EQ(e.rmse(), 0);
}

TEST(EvaluateClassificationTest, HugeLogitsStayFinite) {
  const v1::Evaluation e =
      EvaluateClassification({1e300, -1e300, 0, 1e3}, {0, 0}, 2);
  EXPECT_DOUBLE_EQ(e.accuracy(), 0.5);
  EXPECT_DOUBLE_EQ(e.cross_entropy(), 500.0);  // (0 + 1000) / 2
}

TEST(EvaluateClassificationTest, NanLogitIsWrongAndPoisonsEntropy) {
  const v1::Evaluation e = EvaluateClassification(
      {std::nan(""), 0, 5, 0}, {0, 0}, 2);
  EXPECT_DOUBLE_EQ(e.accuracy(), 0.5);
  EXPECT_TRUE(std::isnan(e.cross_entropy()));
}

TEST(EvaluateClassificationTest, Empty) {
  const v1::Evaluation e = EvaluateClassification({}, {}, 3);
  EXPECT_EQ(e.row_count(), 0);
  EXPECT_EQ(e.accuracy(), 0);
  EXPECT_EQ(e.cross_entropy(), 0);
}

}  // namespace
}  // namespace evonas
