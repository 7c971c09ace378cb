#include "server/search/pareto.h"

#include <random>

#include "gtest/gtest.h"

namespace evonas::search {
namespace {

TEST(DominatesTest, NeedsOneStrictlyBetterAndNoneWorse) {
  EXPECT_TRUE(Dominates({1, 2}, {1, 3}));
  EXPECT_FALSE(Dominates({1, 3}, {1, 3}));
  EXPECT_FALSE(Dominates({0, 4}, {1, 3}));
}

TEST(ConstraintDominatesTest, FeasibleBeatsAnyInfeasible) {
  ObjectivePoint feasible{{100, 100}, true, 0};
  ObjectivePoint infeasible{{0, 0}, false, 0.1};
  EXPECT_TRUE(ConstraintDominates(feasible, infeasible));
  EXPECT_FALSE(ConstraintDominates(infeasible, feasible));
}

TEST(ConstraintDominatesTest, InfeasiblePointsCompareViolationToo) {
  ObjectivePoint small_violation{{2, 2}, false, 0.1};
  ObjectivePoint large_violation{{1, 1}, false, 5};
  EXPECT_FALSE(ConstraintDominates(small_violation, large_violation));
  EXPECT_FALSE(ConstraintDominates(large_violation, small_violation));
  ObjectivePoint worse_everywhere{{3, 3}, false, 6};
  EXPECT_TRUE(ConstraintDominates(large_violation, worse_everywhere));
}

// Brute force from the definition: a point is in the front when no other
// point is at least as good in every extended objective and better in one.
std::vector<size_t> BruteForceFront(const std::vector<ObjectivePoint>& pts) {
  auto key = [](const ObjectivePoint& p) {
    std::vector<double> k = p.objectives;
    k.insert(k.begin(), p.feasible ? 0.0 : 1.0);
    return k;
  };
  std::vector<size_t> front;
  for (size_t i = 0; i < pts.size(); ++i) {
    bool dominated = false;
    for (size_t j = 0; j < pts.size(); ++j) {
      if (i == j) continue;
      if (pts[j].feasible && !pts[i].feasible) { dominated = true; break; }
      if (pts[j].feasible != pts[i].feasible) continue;
      std::vector<double> a = key(pts[j]), b = key(pts[i]);
      if (!pts[i].feasible) {
        a.push_back(pts[j].violation);
        b.push_back(pts[i].violation);
      }
      bool no_worse = true, better = false;
      for (size_t m = 0; m < a.size(); ++m) {
        no_worse = no_worse && a[m] <= b[m];
        better = better || a[m] < b[m];
      }
      if (no_worse && better) { dominated = true; break; }
    }
    if (!dominated) front.push_back(i);
  }
  return front;
}

TEST(NonDominatedTest, MatchesBruteForceOnRandomPointSets) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<ObjectivePoint> points(1 + rng() % 40);
    for (ObjectivePoint& p : points) {
      // Few distinct values so ties occur often.
      p.objectives = {double(rng() % 5), double(rng() % 5), double(rng() % 5)};
      p.feasible = rng() % 3 != 0;
      p.violation = p.feasible ? 0 : 0.5 * (1 + rng() % 4);
    }
    EXPECT_EQ(NonDominated(points), BruteForceFront(points)) << trial;
  }
}

TEST(NonDominatedTest, FrontIsFeasibleWhenAnyPointIs) {
  std::vector<ObjectivePoint> points = {
      {{5, 5}, true, 0}, {{1, 1}, false, 1}, {{0, 9}, false, 0.5}};
  EXPECT_EQ(NonDominated(points), std::vector<size_t>{0});
}

}  // namespace
}  // namespace evonas::search
