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

TEST(EvaluatePredictionsTest, Perfect) {
  const v1::Evaluation e = EvaluatePredictions({1, -2, 3}, {1, -2, 3}, 1, 0);
  EXPECT_EQ(e.row_count(), 3);
  EXPECT_EQ(e.max_abs_error(), 0);
  EXPECT_EQ(e.fraction_within(), 1);
  EXPECT_EQ(e.rmse(), 0);
  EXPECT_EQ(e.mae(), 0);
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

}  // namespace
}  // namespace evonas
