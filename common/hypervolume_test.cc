#include "common/hypervolume.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace evonas {
namespace {

using Points = std::vector<std::vector<double>>;

// Counts the unit cells [c, c+1)^d of the grid [0, ref)^d that some point
// dominates (p <= c in every coordinate): the exact volume for integer
// points and an integer reference.
double GridVolume(const Points& points, const std::vector<int>& reference) {
  const size_t d = reference.size();
  std::vector<int> cell(d, 0);
  double count = 0;
  while (true) {
    for (const auto& p : points) {
      bool dominated = true;
      for (size_t k = 0; k < d; ++k) dominated = dominated && p[k] <= cell[k];
      if (dominated) {
        ++count;
        break;
      }
    }
    size_t k = 0;
    while (k < d && ++cell[k] == reference[k]) cell[k++] = 0;
    if (k == d) break;
  }
  return count;
}

TEST(HypervolumeTest, SimpleCases) {
  EXPECT_DOUBLE_EQ(*Hypervolume({{1, 1}}, {3, 3}), 4);
  EXPECT_DOUBLE_EQ(*Hypervolume({{1, 2}, {2, 1}}, {3, 3}), 3);
  EXPECT_DOUBLE_EQ(*Hypervolume({{0, 0, 0}}, {1, 2, 3}), 6);
  EXPECT_DOUBLE_EQ(*Hypervolume({{2}, {0.5}}, {3}), 2.5);
  EXPECT_DOUBLE_EQ(*Hypervolume({}, {1, 1}), 0);
  // Points on or beyond the reference, or with NaN, add nothing.
  EXPECT_DOUBLE_EQ(
      *Hypervolume({{3, 0}, {0, 5}, {NAN, 0}, {INFINITY, 0}}, {3, 3}), 0);
  // Duplicates and dominated points do not count twice.
  EXPECT_DOUBLE_EQ(*Hypervolume({{1, 1}, {1, 1}, {2, 2}, {1, 2}}, {3, 3}), 4);
}

TEST(HypervolumeTest, RejectsBadInput) {
  EXPECT_EQ(Hypervolume({{1, 1}}, {1, 1, 1, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Hypervolume({{1, 1}}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Hypervolume({{1, 1, 1}}, {2, 2}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Hypervolume({{1, 1}}, {2, INFINITY}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Hypervolume({{-INFINITY, 1}}, {2, 2}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HypervolumeTest, MatchesGridCountOnIntegerPoints) {
  std::mt19937 rng(3);
  for (size_t d : {2u, 3u}) {
    for (int trial = 0; trial < 300; ++trial) {
      const std::vector<int> reference(d, 6);
      Points points(rng() % 25);
      for (auto& p : points) {
        // Few values, so ties and duplicates are common; 6 and 7 lie on or
        // beyond the reference.
        for (size_t k = 0; k < d; ++k) p.push_back(double(rng() % 8));
      }
      std::vector<double> ref(reference.begin(), reference.end());
      EXPECT_DOUBLE_EQ(*Hypervolume(points, ref), GridVolume(points, reference))
          << "d=" << d << " trial=" << trial;
    }
  }
}

TEST(HypervolumeTest, MatchesMonteCarloOnRealPoints) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> unit(0, 1);
  for (size_t d : {2u, 3u}) {
    for (int trial = 0; trial < 5; ++trial) {
      // Points near a curved front, as a search produces them.
      Points points(50);
      for (auto& p : points) {
        double norm = 0;
        for (size_t k = 0; k < d; ++k) {
          p.push_back(unit(rng));
          norm += p.back() * p.back();
        }
        for (double& x : p) x = 1.2 * x / std::sqrt(norm) + 0.1 * unit(rng);
      }
      const std::vector<double> reference(d, 1.5);
      constexpr int kSamples = 200000;
      int hits = 0;
      for (int s = 0; s < kSamples; ++s) {
        std::vector<double> z(d);
        for (double& x : z) x = 1.5 * unit(rng);
        for (const auto& p : points) {
          bool dominated = true;
          for (size_t k = 0; k < d; ++k) dominated = dominated && p[k] <= z[k];
          if (dominated) {
            ++hits;
            break;
          }
        }
      }
      const double box = std::pow(1.5, d);
      const double estimate = box * hits / kSamples;
      // Binomial standard error is below 0.0012 * box; allow 5 sigma.
      EXPECT_NEAR(*Hypervolume(points, reference), estimate, 0.006 * box)
          << "d=" << d << " trial=" << trial;
    }
  }
}

TEST(HypervolumeTest, InvariantToOrderAndFastForThousandsOfPoints) {
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> unit(0, 1);
  Points points(5000);
  for (auto& p : points) {
    const double a = unit(rng), b = unit(rng);
    p = {a, b, 2 - a - b + 0.05 * unit(rng)};  // mostly non-dominated
  }
  const double forward = *Hypervolume(points, {1.5, 1.5, 2.5});
  std::shuffle(points.begin(), points.end(), rng);
  EXPECT_NEAR(*Hypervolume(points, {1.5, 1.5, 2.5}), forward, 1e-12);
  EXPECT_GT(forward, 0);
}

}  // namespace
}  // namespace evonas
