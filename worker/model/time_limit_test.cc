#include "worker/model/time_limit.h"

#include <chrono>

#include "gtest/gtest.h"

namespace evonas::model {
namespace {

using Clock = TimeLimit::Clock;

Clock::time_point At(Clock::time_point start, double seconds) {
  return start + std::chrono::duration_cast<Clock::duration>(
                     std::chrono::duration<double>(seconds));
}

TEST(TimeLimitTest, NoLimitAllowsEveryStep) {
  TimeLimit none;
  const Clock::time_point start = Clock::now();
  EXPECT_TRUE(none.Allows(1e9, At(start, 1e9)));
  EXPECT_FALSE(none.reached());
}

TEST(TimeLimitTest, ReservesTheLongestStepAndSelectionAndAHundredth) {
  const Clock::time_point start = Clock::now();
  TimeLimit limit(10, start);
  // 5 + 4 + 0.1 (a hundredth) = 9.1 s: fits.
  EXPECT_TRUE(limit.Allows(4, At(start, 5)));
  // A selection of 0.8 s joins the reserve: 9.9 s still fits, 10.1 s not.
  limit.RecordSelection(0.8);
  limit.RecordSelection(0.2);  // the longest counts
  EXPECT_TRUE(limit.Allows(4, At(start, 5)));
  EXPECT_FALSE(limit.reached());
  EXPECT_FALSE(limit.Allows(4.2, At(start, 5)));
  EXPECT_TRUE(limit.reached());
  // Once refused, training is over: no later step fits, however short.
  EXPECT_FALSE(limit.Allows(0, At(start, 0)));
  EXPECT_TRUE(limit.reached());
}

}  // namespace
}  // namespace evonas::model
