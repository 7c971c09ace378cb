#include "server/search/successive_halving.h"

#include <algorithm>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/search/pareto.h"

namespace evonas::search {
namespace {

const std::vector<v1::Objective> kObjectives = {
    v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR, v1::OBJECTIVE_PARAMETER_COUNT};

v1::Candidate Short(int64_t sequence, double error, int64_t parameters) {
  v1::Candidate c;
  c.set_id(absl::StrCat("c", sequence));
  c.set_sequence(sequence);
  c.set_state(v1::CANDIDATE_STATE_SUCCEEDED);
  c.set_evaluation_level(v1::EVALUATION_LEVEL_SHORT);
  c.mutable_metrics()->mutable_validation()->set_max_abs_error(error);
  c.mutable_metrics()->set_parameter_count(parameters);
  c.set_feasible(true);
  return c;
}

v1::Candidate Promotion(int64_t sequence, const v1::Candidate& short_run,
                        v1::CandidateState state) {
  v1::Candidate c = short_run;
  c.set_id(absl::StrCat("c", sequence));
  c.set_sequence(sequence);
  c.set_state(state);
  c.set_evaluation_level(v1::EVALUATION_LEVEL_FULL);
  c.set_parent_id(short_run.id());
  c.set_promoted_from(short_run.id());
  c.mutable_morphism()->set_kind(v1::MORPHISM_KIND_CONTINUE);
  return c;
}

TEST(NormalizeMultiFidelitySettingsTest, FillsDefaultsAndNamesBadFields) {
  v1::MultiFidelitySettings settings;
  settings.set_enabled(true);
  const auto normal = NormalizeMultiFidelitySettings(settings);
  ASSERT_TRUE(normal.ok()) << normal.status();
  EXPECT_EQ(normal->short_step_fraction(), 0.25);
  EXPECT_EQ(normal->reduction_factor(), 3);
  EXPECT_EQ(normal->short_row_fraction(), 1);

  for (double f : {-0.1, 1.5, std::nan("")}) {
    v1::MultiFidelitySettings rows = settings;
    rows.set_short_row_fraction(f);
    const auto bad = NormalizeMultiFidelitySettings(rows);
    ASSERT_FALSE(bad.ok()) << f;
    EXPECT_NE(bad.status().message().find("multi_fidelity.short_row_fraction"),
              absl::string_view::npos)
        << bad.status();
  }

  for (double f : {1.0, -0.1, 1.5, std::nan("")}) {
    settings.set_short_step_fraction(f);
    const auto bad = NormalizeMultiFidelitySettings(settings);
    ASSERT_FALSE(bad.ok()) << f;
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(bad.status().message().find("multi_fidelity.short_step_fraction"),
              absl::string_view::npos)
        << bad.status();
  }
  settings.set_short_step_fraction(0.5);
  for (int eta : {1, 101, -3}) {
    settings.set_reduction_factor(eta);
    const auto bad = NormalizeMultiFidelitySettings(settings);
    ASSERT_FALSE(bad.ok()) << eta;
    EXPECT_NE(bad.status().message().find("multi_fidelity.reduction_factor"),
              absl::string_view::npos);
  }
  // Off: nothing to check, nothing filled.
  v1::MultiFidelitySettings off;
  off.set_reduction_factor(1000);
  EXPECT_EQ(NormalizeMultiFidelitySettings(off)->reduction_factor(), 1000);
}

TEST(NextPromotionTest, PromotesOnlyWithinTheBestThirdInSequenceOrder) {
  // Errors 9..1 on equal sizes: one objective decides; quota 9 / 3 = 3.
  std::vector<v1::Candidate> finished;
  for (int i = 0; i < 9; ++i) finished.push_back(Short(i, 9.0 - i, 100));
  std::unordered_set<std::string> promoted;
  std::vector<std::string> order;
  for (;;) {
    std::optional<size_t> next =
        NextPromotion(finished, promoted, kObjectives, {}, 3);
    if (!next) break;
    order.push_back(finished[*next].id());
    promoted.insert(finished[*next].id());
  }
  EXPECT_EQ(order, (std::vector<std::string>{"c6", "c7", "c8"}));
}

TEST(NextPromotionTest, NothingBeforeTheQuotaReachesOne) {
  std::vector<v1::Candidate> finished = {Short(0, 1, 10), Short(1, 2, 10)};
  EXPECT_FALSE(NextPromotion(finished, {}, kObjectives, {}, 3));
  finished.push_back(Short(2, 0.5, 10));
  EXPECT_EQ(NextPromotion(finished, {}, kObjectives, {}, 3), 2u);
}

TEST(NextPromotionTest, IgnoresFailuresCopiesAndFullRuns) {
  std::vector<v1::Candidate> finished;
  for (int i = 0; i < 3; ++i) finished.push_back(Short(i, 5 + i, 10));
  v1::Candidate failed = Short(3, 0.001, 10);
  failed.set_state(v1::CANDIDATE_STATE_FAILED);
  v1::Candidate copy = Short(4, 0.001, 10);
  copy.set_duplicate_of("c0");
  v1::Candidate full =
      Promotion(5, Short(99, 0.001, 10), v1::CANDIDATE_STATE_SUCCEEDED);
  finished.push_back(failed);
  finished.push_back(copy);
  finished.push_back(full);
  // Three eligible level-1 results: quota one, the best of them (c0).
  EXPECT_EQ(NextPromotion(finished, {}, kObjectives, {}, 3), 0u);
  EXPECT_FALSE(NextPromotion(finished, {"c0"}, kObjectives, {}, 3));
}

TEST(NextPromotionTest, FeasibleBeforeInfeasible) {
  std::vector<v1::Candidate> finished;
  for (int i = 0; i < 4; ++i) finished.push_back(Short(i, 1e-3 * (i + 1), 10));
  v1::Requirements requirements;
  requirements.set_max_abs_error(2.5e-3);
  // Only c0 and c1 meet it; quota 4 / 2 = 2: exactly those.
  std::unordered_set<std::string> promoted;
  for (int k = 0; k < 2; ++k) {
    auto next = NextPromotion(finished, promoted, kObjectives, requirements, 2);
    ASSERT_TRUE(next);
    promoted.insert(finished[*next].id());
  }
  EXPECT_EQ(promoted, (std::unordered_set<std::string>{"c0", "c1"}));
}

TEST(NextPromotionTest, TradeOffsArePromotedBeforeDominatedPoints) {
  // A front of three trade-offs and six points each dominated by one of them.
  std::vector<v1::Candidate> finished = {
      Short(0, 1e-1, 100), Short(1, 1e-2, 1000), Short(2, 1e-3, 10000)};
  for (int i = 0; i < 6; ++i) {
    finished.push_back(Short(3 + i, 2e-1 * (1 + i), 20000));
  }
  std::unordered_set<std::string> promoted;
  while (auto next = NextPromotion(finished, promoted, kObjectives, {}, 3)) {
    promoted.insert(finished[*next].id());
  }
  EXPECT_EQ(promoted, (std::unordered_set<std::string>{"c0", "c1", "c2"}));
}

TEST(NextPromotionTest, SameAnswerWhateverTheOrder) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<v1::Candidate> finished;
    const int n = 1 + static_cast<int>(rng() % 30);
    for (int i = 0; i < n; ++i) {
      finished.push_back(Short(i, double(1 + rng() % 5), 10 * (1 + rng() % 5)));
    }
    std::unordered_set<std::string> promoted;
    for (const v1::Candidate& c : finished) {
      if (rng() % 3 == 0) promoted.insert(c.id());
    }
    const auto expected = NextPromotion(finished, promoted, kObjectives, {}, 3);
    std::vector<v1::Candidate> shuffled = finished;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    const auto actual = NextPromotion(shuffled, promoted, kObjectives, {}, 3);
    ASSERT_EQ(expected.has_value(), actual.has_value()) << trial;
    if (expected) {
      EXPECT_EQ(finished[*expected].id(), shuffled[*actual].id()) << trial;
    }
  }
}

TEST(HighestFinishedLevelTest, HidesLevelOneRunsWhosePromotionSucceeded) {
  const v1::Candidate a = Short(0, 1e-2, 10);
  const v1::Candidate b = Short(1, 2e-2, 10);
  const v1::Candidate c = Short(2, 3e-2, 10);
  const v1::Candidate a_full = Promotion(3, a, v1::CANDIDATE_STATE_SUCCEEDED);
  const v1::Candidate b_failed = Promotion(4, b, v1::CANDIDATE_STATE_FAILED);
  const std::vector<v1::Candidate> highest =
      HighestFinishedLevel({a, b, c, a_full, b_failed});
  std::vector<std::string> ids;
  for (const v1::Candidate& x : highest) ids.push_back(x.id());
  // b's promotion failed: b's short result stands (beside the failure).
  EXPECT_EQ(ids, (std::vector<std::string>{"c1", "c2", "c3", "c4"}));
}

TEST(HighestFinishedLevelTest, LeavesSingleLevelExperimentsAlone) {
  v1::Candidate plain = Short(0, 1, 1);
  plain.set_evaluation_level(v1::EVALUATION_LEVEL_UNSPECIFIED);
  v1::Candidate child = Short(1, 1, 1);
  child.set_evaluation_level(v1::EVALUATION_LEVEL_UNSPECIFIED);
  child.set_parent_id("c0");
  EXPECT_EQ(HighestFinishedLevel({plain, child}).size(), 2u);
}

TEST(MultiFidelitySearchViewTest, APromotionIsAsOldAsItsShortRun) {
  const v1::Candidate a = Short(0, 1e-2, 10);
  const v1::Candidate b = Short(1, 2e-2, 10);
  const v1::Candidate a_full = Promotion(5, a, v1::CANDIDATE_STATE_SUCCEEDED);
  const v1::Candidate b_failed = Promotion(6, b, v1::CANDIDATE_STATE_FAILED);
  const std::vector<v1::Candidate> view =
      MultiFidelitySearchView({a, b, a_full, b_failed}, {});
  ASSERT_EQ(view.size(), 3u);
  EXPECT_EQ(view[0].id(), "c1");
  EXPECT_EQ(view[0].sequence(), 1);
  // a's genome was proposed as candidate 0: its full run is that old.
  EXPECT_EQ(view[1].id(), "c5");
  EXPECT_EQ(view[1].sequence(), 0);
  EXPECT_EQ(view[1].evaluation_level(), v1::EVALUATION_LEVEL_FULL);
  // A failed promotion hides nothing and keeps its own sequence.
  EXPECT_EQ(view[2].id(), "c6");
  EXPECT_EQ(view[2].sequence(), 6);
}

TEST(MultiFidelitySearchViewTest, ScalesTheCostsOfSucceededShortRunsOnly) {
  v1::Candidate short_run = Short(0, 1e-2, 10);
  short_run.mutable_metrics()->set_training_seconds(3);
  short_run.mutable_metrics()->set_training_cpu_seconds(2);
  short_run.mutable_metrics()->set_training_energy_joules(40);
  v1::Candidate full = Promotion(1, Short(9, 1e-3, 10),
                                 v1::CANDIDATE_STATE_SUCCEEDED);
  full.mutable_metrics()->set_training_seconds(3);
  v1::Candidate failed = Short(2, 1e-2, 10);
  failed.set_state(v1::CANDIDATE_STATE_FAILED);
  failed.mutable_metrics()->set_training_seconds(3);
  v1::Candidate mini_batch = Short(3, 1e-2, 10);
  mini_batch.mutable_metrics()->set_training_seconds(3);
  mini_batch.mutable_genome()->mutable_training()->set_batch_size(256);
  v1::MultiFidelitySettings settings;
  settings.set_short_step_fraction(0.25);
  std::vector<v1::Candidate> view =
      MultiFidelitySearchView({short_run, full, failed, mini_batch}, settings);
  ASSERT_EQ(view.size(), 4u);
  EXPECT_EQ(view[0].metrics().training_seconds(), 12);
  EXPECT_EQ(view[0].metrics().training_cpu_seconds(), 8);
  EXPECT_EQ(view[0].metrics().training_energy_joules(), 160);
  EXPECT_EQ(view[0].metrics().validation().max_abs_error(), 1e-2);
  EXPECT_EQ(view[1].metrics().training_seconds(), 3);
  EXPECT_EQ(view[2].metrics().training_seconds(), 3);
  EXPECT_EQ(view[3].metrics().training_seconds(), 12);

  // On half the rows a full-batch step costs half: the view divides by
  // both fractions. A mini-batch step costs the same on fewer rows.
  settings.set_short_row_fraction(0.5);
  view = MultiFidelitySearchView({short_run, mini_batch}, settings);
  EXPECT_EQ(view[0].metrics().training_seconds(), 24);
  EXPECT_EQ(view[0].metrics().training_energy_joules(), 320);
  EXPECT_EQ(view[1].metrics().training_seconds(), 12);
}

}  // namespace
}  // namespace evonas::search
