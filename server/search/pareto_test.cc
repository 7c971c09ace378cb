#include "server/search/pareto.h"

#include <cmath>
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

std::vector<ObjectivePoint> RandomPoints(std::mt19937& rng, int objectives) {
  std::vector<ObjectivePoint> points(1 + rng() % 40);
  for (ObjectivePoint& p : points) {
    for (int k = 0; k < objectives; ++k) p.objectives.push_back(rng() % 6);
    p.feasible = rng() % 3 != 0;
    p.violation = p.feasible ? 0 : 0.5 * (1 + rng() % 4);
  }
  return points;
}

TEST(NonDominationRanksTest, MatchesPeelingFrontsByBruteForce) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const std::vector<ObjectivePoint> points = RandomPoints(rng, 1 + trial % 3);
    std::vector<int> expected(points.size(), -1);
    std::vector<size_t> left(points.size());
    for (size_t i = 0; i < left.size(); ++i) left[i] = i;
    for (int rank = 0; !left.empty(); ++rank) {
      std::vector<ObjectivePoint> rest;
      for (size_t i : left) rest.push_back(points[i]);
      std::vector<size_t> next;
      std::vector<size_t> front = BruteForceFront(rest);
      for (size_t k = 0, f = 0; k < left.size(); ++k) {
        if (f < front.size() && front[f] == k) {
          expected[left[k]] = rank;
          ++f;
        } else {
          next.push_back(left[k]);
        }
      }
      left = next;
    }
    EXPECT_EQ(NonDominationRanks(points), expected) << trial;
  }
}

TEST(CrowdingDistancesTest, MatchesTheDefinitionOnRandomFronts) {
  std::mt19937 rng(12);
  for (int trial = 0; trial < 200; ++trial) {
    const std::vector<ObjectivePoint> points = RandomPoints(rng, 1 + trial % 3);
    std::vector<size_t> front;
    for (size_t i = 0; i < points.size(); ++i) {
      if (rng() % 2 == 0) front.push_back(i);
    }
    const std::vector<double> got = CrowdingDistances(points, front);
    ASSERT_EQ(got.size(), front.size());
    for (size_t a = 0; a < front.size(); ++a) {
      // Per objective: the neighbours in (value, index) order.
      double expected = 0;
      for (size_t k = 0; k < points[0].objectives.size(); ++k) {
        auto before = [&](size_t x, size_t y) {
          const double vx = points[x].objectives[k];
          const double vy = points[y].objectives[k];
          return vx < vy || (vx == vy && x < y);
        };
        double lo = INFINITY, hi = -INFINITY;
        int below = -1, above = -1;
        for (size_t b = 0; b < front.size(); ++b) {
          const double v = points[front[b]].objectives[k];
          lo = std::min(lo, v);
          hi = std::max(hi, v);
          if (b == a) continue;
          if (before(front[b], front[a]) &&
              (below < 0 || before(front[below], front[b])))
            below = static_cast<int>(b);
          if (before(front[a], front[b]) &&
              (above < 0 || before(front[b], front[above])))
            above = static_cast<int>(b);
        }
        if (below < 0 || above < 0) {
          expected = INFINITY;
        } else if (hi > lo) {
          expected += (points[front[above]].objectives[k] -
                       points[front[below]].objectives[k]) /
                      (hi - lo);
        }
      }
      if (std::isinf(expected)) {
        EXPECT_TRUE(std::isinf(got[a])) << trial;
      } else {
        EXPECT_NEAR(got[a], expected, 1e-12) << trial;
      }
    }
  }
}

v1::Candidate Finished(double error, int64_t parameters, double seconds,
                       v1::CandidateState state = v1::CANDIDATE_STATE_SUCCEEDED) {
  v1::Candidate c;
  c.set_state(state);
  v1::Metrics* m = c.mutable_metrics();
  m->mutable_validation()->set_max_abs_error(error);
  m->set_parameter_count(parameters);
  m->set_training_seconds(seconds);
  return c;
}

TEST(ObjectiveValueTest, EveryObjectiveHasItsSource) {
  v1::Candidate c = Finished(0.01, 500, 3.5);
  v1::Metrics* m = c.mutable_metrics();
  m->set_model_bytes(9000);
  m->set_inference_latency_seconds(2e-5);
  m->set_training_energy_joules(40);
  EXPECT_EQ(ObjectiveValue(c, v1::OBJECTIVE_INT8_MAX_ABS_ERROR), INFINITY);
  EXPECT_EQ(ObjectiveValue(c, v1::OBJECTIVE_FLOPS), INFINITY);
  m->mutable_int8()->mutable_validation()->set_max_abs_error(0.02);
  // No latency table yet: the estimate is 0, unknown, and ranks worst.
  EXPECT_EQ(ObjectiveValue(c, v1::OBJECTIVE_ESTIMATED_LATENCY), INFINITY);
  c.mutable_cost()->set_flops_per_sample(420);
  c.mutable_cost()->set_estimated_latency_seconds(3e-5);
  EXPECT_EQ(ObjectiveValue(c, v1::OBJECTIVE_ESTIMATED_LATENCY), 3e-5);
  EXPECT_EQ(ObjectiveValue(c, v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR), 0.01);
  EXPECT_EQ(ObjectiveValue(c, v1::OBJECTIVE_PARAMETER_COUNT), 500);
  EXPECT_EQ(ObjectiveValue(c, v1::OBJECTIVE_TRAINING_SECONDS), 3.5);
  EXPECT_EQ(ObjectiveValue(c, v1::OBJECTIVE_MODEL_BYTES), 9000);
  EXPECT_EQ(ObjectiveValue(c, v1::OBJECTIVE_FLOPS), 420);
  EXPECT_EQ(ObjectiveValue(c, v1::OBJECTIVE_INFERENCE_LATENCY), 2e-5);
  EXPECT_EQ(ObjectiveValue(c, v1::OBJECTIVE_INT8_MAX_ABS_ERROR), 0.02);
  EXPECT_EQ(ObjectiveValue(c, v1::OBJECTIVE_TRAINING_ENERGY), 40);
  m->mutable_validation()->set_max_abs_error(NAN);
  EXPECT_EQ(ObjectiveValue(c, v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR),
            INFINITY);
  // Every enum value is handled (no value falls through to infinity).
  for (int o = 1; v1::Objective_IsValid(o); ++o) {
    EXPECT_TRUE(std::isfinite(ObjectiveValue(c, static_cast<v1::Objective>(o))) ||
                o == v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR)
        << o;
  }
}

TEST(ExperimentObjectivesTest, DefaultsAndValidation) {
  v1::ExperimentSpec spec;
  EXPECT_EQ(ExperimentObjectives(spec),
            (std::vector<v1::Objective>{v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR,
                                        v1::OBJECTIVE_PARAMETER_COUNT,
                                        v1::OBJECTIVE_TRAINING_SECONDS}));
  EXPECT_TRUE(ValidateObjectives(spec).ok());
  spec.add_objectives(v1::OBJECTIVE_FLOPS);
  spec.add_objectives(v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR);
  EXPECT_EQ(ExperimentObjectives(spec),
            (std::vector<v1::Objective>{v1::OBJECTIVE_FLOPS,
                                        v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR}));
  EXPECT_TRUE(ValidateObjectives(spec).ok());
  spec.add_objectives(v1::OBJECTIVE_FLOPS);
  absl::Status status = ValidateObjectives(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("objectives[2]"), absl::string_view::npos);
  spec.clear_objectives();
  spec.add_objectives(static_cast<v1::Objective>(77));
  EXPECT_FALSE(ValidateObjectives(spec).ok());
  spec.clear_objectives();
  // Estimated from the workers' latency tables: a cheap objective.
  spec.add_objectives(v1::OBJECTIVE_ESTIMATED_LATENCY);
  EXPECT_TRUE(ValidateObjectives(spec).ok());
  spec.clear_objectives();
  v1::ObjectiveWeight* w = spec.add_fitness_weights();
  w->set_objective(v1::OBJECTIVE_PARAMETER_COUNT);
  w->set_weight(-1);
  status = ValidateObjectives(spec);
  EXPECT_NE(status.message().find("fitness_weights[0].weight"),
            absl::string_view::npos);
  w->set_weight(0.5);
  EXPECT_TRUE(ValidateObjectives(spec).ok());
  *spec.add_fitness_weights() = *w;
  EXPECT_FALSE(ValidateObjectives(spec).ok());
}

TEST(ParetoFrontTest, OverTheChosenObjectivesWithConstraintDomination) {
  std::mt19937 rng(13);
  v1::Requirements requirements;
  requirements.set_max_abs_error(0.05);
  const std::vector<v1::Objective> objectives = {
      v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR, v1::OBJECTIVE_FLOPS};
  for (int trial = 0; trial < 100; ++trial) {
    std::vector<v1::Candidate> candidates;
    std::vector<ObjectivePoint> points;
    std::vector<size_t> succeeded;
    const int n = 1 + rng() % 30;
    for (int i = 0; i < n; ++i) {
      v1::Candidate c =
          Finished(0.01 * (1 + rng() % 8), 100, 1,
                   rng() % 5 == 0 ? v1::CANDIDATE_STATE_FAILED
                                  : v1::CANDIDATE_STATE_SUCCEEDED);
      c.mutable_cost()->set_flops_per_sample(100 * (1 + rng() % 5));
      if (c.state() == v1::CANDIDATE_STATE_SUCCEEDED) {
        const double e = c.metrics().validation().max_abs_error();
        points.push_back({{e, double(c.cost().flops_per_sample())},
                          e <= 0.05,
                          e <= 0.05 ? 0 : e / 0.05 - 1});
        succeeded.push_back(candidates.size());
      }
      candidates.push_back(c);
    }
    std::vector<size_t> expected;
    for (size_t k : BruteForceFront(points)) expected.push_back(succeeded[k]);
    EXPECT_EQ(ParetoFront(candidates, objectives, requirements), expected)
        << trial;
  }
}

TEST(WeightedSumFitnessTest, NormalisedLogValuesTimesWeights) {
  const v1::Candidate a = Finished(1e-3, 10000, 1);
  const v1::Candidate b = Finished(1e-2, 1000, 1);
  const v1::Candidate c = Finished(1e-1, 100, 1);
  google::protobuf::RepeatedPtrField<v1::ObjectiveWeight> weights;
  v1::ObjectiveWeight* error = weights.Add();
  error->set_objective(v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR);
  error->set_weight(2);
  v1::ObjectiveWeight* params = weights.Add();
  params->set_objective(v1::OBJECTIVE_PARAMETER_COUNT);
  params->set_weight(1);
  std::vector<double> f = WeightedSumFitness({&a, &b, &c}, weights);
  // a: error 0, params 1; b: 0.5 each; c: error 1, params 0.
  EXPECT_DOUBLE_EQ(f[0], 1);
  EXPECT_DOUBLE_EQ(f[1], 1.5);
  EXPECT_DOUBLE_EQ(f[2], 2);
  // A constant objective adds nothing; no weights give zeros.
  v1::ObjectiveWeight* seconds = weights.Add();
  seconds->set_objective(v1::OBJECTIVE_TRAINING_SECONDS);
  seconds->set_weight(5);
  EXPECT_EQ(WeightedSumFitness({&a, &b, &c}, weights), f);
  EXPECT_EQ(WeightedSumFitness({&a, &b}, {}), (std::vector<double>{0, 0}));
}

TEST(WeightedSumFitnessTest, InvariantToUnitsAndMonotone) {
  std::mt19937 rng(14);
  google::protobuf::RepeatedPtrField<v1::ObjectiveWeight> weights;
  weights.Add()->set_objective(v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR);
  weights.Mutable(0)->set_weight(1);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<v1::Candidate> pop, scaled;
    for (int i = 0; i < 10; ++i) {
      const double e = std::exp(-double(rng() % 1000) / 100);
      pop.push_back(Finished(e, 1, 1));
      scaled.push_back(Finished(e * 1000, 1, 1));
    }
    std::vector<const v1::Candidate*> p, s;
    for (auto& c : pop) p.push_back(&c);
    for (auto& c : scaled) s.push_back(&c);
    const std::vector<double> fp = WeightedSumFitness(p, weights);
    const std::vector<double> fs = WeightedSumFitness(s, weights);
    for (size_t i = 0; i < fp.size(); ++i) {
      EXPECT_NEAR(fp[i], fs[i], 1e-9);
      EXPECT_GE(fp[i], 0);
      EXPECT_LE(fp[i], 1);
      for (size_t j = 0; j < fp.size(); ++j) {
        const double ei = pop[i].metrics().validation().max_abs_error();
        const double ej = pop[j].metrics().validation().max_abs_error();
        if (ei < ej) EXPECT_LT(fp[i], fp[j]);
      }
    }
  }
}

TEST(ObjectivesTest, ClassificationHasItsOwnErrorObjectives) {
  v1::ExperimentSpec spec;
  spec.set_task(v1::TASK_CLASSIFICATION);
  EXPECT_EQ(ExperimentObjectives(spec),
            (std::vector<v1::Objective>{v1::OBJECTIVE_VALIDATION_ERROR_RATE,
                                        v1::OBJECTIVE_PARAMETER_COUNT,
                                        v1::OBJECTIVE_TRAINING_SECONDS}));
  spec.add_objectives(v1::OBJECTIVE_VALIDATION_CROSS_ENTROPY);
  EXPECT_TRUE(ValidateObjectives(spec).ok());
  spec.add_objectives(v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR);
  absl::Status status = ValidateObjectives(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("objectives[1]: "
                                  "OBJECTIVE_VALIDATION_MAX_ABS_ERROR "
                                  "measures regression errors"),
            absl::string_view::npos)
      << status;
  // And the other way round, in the fitness weights too.
  v1::ExperimentSpec regression;
  regression.add_fitness_weights()->set_objective(
      v1::OBJECTIVE_VALIDATION_ERROR_RATE);
  status = ValidateObjectives(regression);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("fitness_weights[0]"),
            absl::string_view::npos);

  v1::Candidate c;
  c.mutable_metrics()->mutable_validation()->set_accuracy(0.875);
  c.mutable_metrics()->mutable_validation()->set_cross_entropy(0.3);
  EXPECT_DOUBLE_EQ(ObjectiveValue(c, v1::OBJECTIVE_VALIDATION_ERROR_RATE),
                   0.125);
  EXPECT_DOUBLE_EQ(ObjectiveValue(c, v1::OBJECTIVE_VALIDATION_CROSS_ENTROPY),
                   0.3);
}

}  // namespace
}  // namespace evonas::search
