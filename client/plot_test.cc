#include "client/plot.h"

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace evonas::client {
namespace {

using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::Pointwise;

std::string G(double value) { return absl::StrFormat("%g", value); }

// The values of the labelled ticks, ascending.
std::vector<double> Labelled(const Axis& axis) {
  std::vector<double> values;
  for (const Tick& t : axis.ticks) {
    if (!t.label.empty()) values.push_back(t.value);
  }
  std::sort(values.begin(), values.end());
  return values;
}

// Relative closeness, for values over many decades.
MATCHER(RelativelyNear, "") {
  const double a = std::get<0>(arg), b = std::get<1>(arg);
  return std::abs(a - b) <= 1e-9 * std::abs(b);
}

TEST(LogAxisTest, WideSpanLabelsEveryOtherDecade) {
  const Axis axis = LogAxis(1e-6, 1e2, "error", G);
  EXPECT_TRUE(axis.log);
  EXPECT_EQ(axis.title, "error");
  // Nine decades: every one a grid line, every second one labelled.
  std::vector<double> all;
  for (const Tick& t : axis.ticks) all.push_back(t.value);
  EXPECT_THAT(all, Pointwise(RelativelyNear(),
                             std::vector<double>{1e-6, 1e-5, 1e-4, 1e-3, 1e-2,
                                                 1e-1, 1, 10, 100}));
  EXPECT_THAT(Labelled(axis),
              Pointwise(RelativelyNear(),
                        std::vector<double>{1e-6, 1e-4, 1e-2, 1, 100}));
  EXPECT_EQ(axis.ticks[0].label, "1e-06");
}

TEST(LogAxisTest, ThreeDecadesWithMinorGridLines) {
  const Axis axis = LogAxis(1e-4, 1e-2, "error", G);
  EXPECT_THAT(Labelled(axis), Pointwise(RelativelyNear(),
                                        std::vector<double>{1e-4, 1e-3, 1e-2}));
  // 2..9 × 10^e as unlabelled grid lines.
  size_t minor = 0;
  for (const Tick& t : axis.ticks) minor += t.label.empty();
  EXPECT_GE(minor, 16u);
}

TEST(LogAxisTest, OneDecadeAtOneTwoFive) {
  const Axis axis = LogAxis(0.01, 0.1, "error", G);
  EXPECT_THAT(
      Labelled(axis),
      Pointwise(RelativelyNear(), std::vector<double>{0.01, 0.02, 0.05, 0.1}));
}

TEST(LogAxisTest, LessThanADecadeAtRoundSteps) {
  // An error rate between 8% and 20%: one decade tick (10%) would be all.
  const Axis axis = LogAxis(0.08, 0.2, "error rate", G);
  EXPECT_THAT(
      Labelled(axis),
      Pointwise(RelativelyNear(), std::vector<double>{0.1, 0.15, 0.2, 0.25}));
  EXPECT_EQ(axis.ticks[1].label, "0.15");  // Not 0.15000000000000002.
  EXPECT_LT(axis.lo, 0.08);
  EXPECT_GT(axis.hi, 0.2);
}

TEST(LogAxisTest, SpanAcrossADecadeBoundary) {
  // Neither 10^0 alone nor 1-2-5 (just 1) gives three ticks.
  EXPECT_THAT(Labelled(LogAxis(0.7, 1.5, "x", G)),
              Pointwise(RelativelyNear(),
                        std::vector<double>{0.75, 1, 1.25, 1.5, 1.75}));
  // Here 1-2-5 does.
  EXPECT_THAT(
      Labelled(LogAxis(5e-4, 3e-3, "x", G)),
      Pointwise(RelativelyNear(), std::vector<double>{5e-4, 1e-3, 2e-3}));
}

TEST(LogAxisTest, DegenerateSpanIsADecadeAroundTheValue) {
  const Axis axis = LogAxis(0.1, 0.1, "x", G);
  EXPECT_NEAR(std::log10(axis.lo), -1.5, 1e-9);
  EXPECT_NEAR(std::log10(axis.hi), -0.5, 1e-9);
  EXPECT_THAT(Labelled(axis),
              Pointwise(RelativelyNear(), std::vector<double>{0.05, 0.1, 0.2}));
  // A value that no 1-2-5 multiple is near.
  EXPECT_THAT(
      Labelled(LogAxis(3.3e-4, 3.3e-4, "x", G)),
      Pointwise(RelativelyNear(), std::vector<double>{2e-4, 5e-4, 1e-3}));
}

TEST(LogAxisTest, NonPositiveOrNonFiniteLimitsGetDefaults) {
  for (const auto& [min, max] : std::vector<std::pair<double, double>>{
           {0, 0}, {-1, 5}, {NAN, NAN}, {1e-3, INFINITY}, {2, 1}}) {
    const Axis axis = LogAxis(min, max, "x", G);
    EXPECT_TRUE(std::isfinite(axis.lo) && axis.lo > 0) << min << " " << max;
    EXPECT_TRUE(std::isfinite(axis.hi) && axis.hi > axis.lo);
    EXPECT_GE(Labelled(axis).size(), 3u) << min << " " << max;
  }
}

TEST(LogAxisTest, AnySpanHasThreeDistinctLabelsInRange) {
  for (double min = 1.7e-7; min < 1e4; min *= 3.1) {
    for (double ratio = 1; ratio < 1e7; ratio *= 1.37) {
      const Axis axis = LogAxis(min, min * ratio, "x", G);
      const std::vector<double> labelled = Labelled(axis);
      ASSERT_GE(labelled.size(), 3u) << min << " " << ratio;
      EXPECT_LE(labelled.size(), 9u) << min << " " << ratio;
      std::set<std::string> labels;
      for (const Tick& t : axis.ticks) {
        EXPECT_GE(t.value, axis.lo * (1 - 1e-9)) << min << " " << ratio;
        EXPECT_LE(t.value, axis.hi * (1 + 1e-9)) << min << " " << ratio;
        if (!t.label.empty()) {
          EXPECT_TRUE(labels.insert(t.label).second)
              << t.label << " twice for " << min << " " << ratio;
        }
      }
    }
  }
}

TEST(ThinLabelsTest, DropsLabelsThatWouldOverlap) {
  Axis axis;
  axis.log = true;
  axis.lo = 1;
  axis.hi = 10;
  for (int m = 1; m <= 10; ++m) axis.ticks.push_back({double(m), G(m)});
  axis.ticks.push_back({1.5, ""});  // A grid line stays one.
  // 100 px long, labels 10 px wide, 2 px apart at least: decades first,
  // then 2 and 5, then what room is left.
  ThinLabels(&axis, 100, 2, [](const std::string&) { return 10.0; });
  EXPECT_THAT(Labelled(axis), ElementsAre(1, 2, 3, 5, 7, 10));
  EXPECT_EQ(axis.ticks.size(), 11u);
  std::vector<double> centres;
  for (double v : Labelled(axis)) centres.push_back(axis.Fraction(v) * 100);
  for (size_t i = 1; i < centres.size(); ++i) {
    EXPECT_GE(centres[i] - centres[i - 1], 12 - 1e-9);
  }
}

TEST(ThinLabelsTest, KeepsLabelsWithRoom) {
  Axis axis = LogAxis(1e-4, 1e-2, "x", G);
  const std::vector<double> before = Labelled(axis);
  ThinLabels(&axis, 300, 3, [](const std::string&) { return 12.0; });
  EXPECT_EQ(Labelled(axis), before);
}

}  // namespace
}  // namespace evonas::client
