#include "client/watch.h"

#include <string>

#include "gtest/gtest.h"

namespace evonas::client {
namespace {

constexpr int64_t kCreated = 1000;

v1::Experiment Running(int64_t succeeded, int64_t failed) {
  v1::Experiment e;
  e.set_id("exp-1");
  e.set_state(v1::EXPERIMENT_STATE_RUNNING);
  e.mutable_created_at()->set_seconds(kCreated);
  e.mutable_counts()->set_succeeded(succeeded);
  e.mutable_counts()->set_failed(failed);
  return e;
}

absl::Time After(int64_t seconds) {
  return absl::FromUnixSeconds(kCreated + seconds);
}

TEST(EstimateRemainingTest, FromTheCandidateRate) {
  v1::Experiment e = Running(3, 1);
  e.mutable_spec()->mutable_budget()->set_max_candidates(10);
  // 4 finished in 60 s: 6 more take 90 s.
  EXPECT_EQ(EstimateRemaining(e, After(60)), absl::Seconds(90));
  EXPECT_EQ(EstimateRemaining(Running(0, 0), After(60)), std::nullopt);
}

TEST(EstimateRemainingTest, TheSoonerOfWallTimeAndCandidates) {
  v1::Experiment e = Running(1, 0);
  e.mutable_spec()->mutable_budget()->set_max_candidates(10);
  e.mutable_spec()->mutable_budget()->set_max_wall_seconds(120);
  EXPECT_EQ(EstimateRemaining(e, After(60)), absl::Seconds(60));
  e.mutable_counts()->set_succeeded(9);
  EXPECT_EQ(EstimateRemaining(e, After(60)), absl::Seconds(60.0 / 9));
  // Past the wall-clock budget nothing is left.
  EXPECT_EQ(EstimateRemaining(e, After(500)), absl::ZeroDuration());
}

TEST(EstimateRemainingTest, ZeroWhenFinished) {
  v1::Experiment e = Running(1, 0);
  e.set_state(v1::EXPERIMENT_STATE_CANCELLED);
  EXPECT_EQ(EstimateRemaining(e, After(5)), absl::ZeroDuration());
}

TEST(BudgetFractionTest, LargerOfCandidatesAndTime) {
  v1::Experiment e = Running(2, 0);
  EXPECT_EQ(BudgetFraction(e, After(10)), std::nullopt);
  e.mutable_spec()->mutable_budget()->set_max_candidates(8);
  EXPECT_DOUBLE_EQ(*BudgetFraction(e, After(10)), 0.25);
  e.mutable_spec()->mutable_budget()->set_max_wall_seconds(20);
  EXPECT_DOUBLE_EQ(*BudgetFraction(e, After(10)), 0.5);
  EXPECT_DOUBLE_EQ(*BudgetFraction(e, After(100)), 1.0);
}

TEST(SummarizeFrontTest, BestFeasibleError) {
  v1::ParetoFront front;
  for (double error : {3e-3, 1e-3, 2e-3}) {
    v1::Candidate* c = front.add_candidates();
    c->set_feasible(error != 1e-3);
    c->mutable_metrics()->mutable_validation()->set_max_abs_error(error);
  }
  WatchSnapshot snapshot;
  SummarizeFront(front, &snapshot);
  EXPECT_EQ(snapshot.front_size, 3);
  EXPECT_EQ(snapshot.best_feasible_error, 2e-3);
  SummarizeFront(v1::ParetoFront(), &snapshot);
  EXPECT_EQ(snapshot.front_size, 0);
  EXPECT_EQ(snapshot.best_feasible_error, std::nullopt);
}

TEST(WatchLineTest, PlainAndTerminal) {
  WatchSnapshot snapshot;
  snapshot.experiment = Running(3, 1);
  snapshot.experiment.mutable_counts()->set_running(2);
  snapshot.experiment.mutable_counts()->set_queued(5);
  snapshot.experiment.mutable_spec()->mutable_budget()->set_max_wall_seconds(
      600);
  snapshot.front_size = 2;
  snapshot.best_feasible_error = 1.5e-4;
  EXPECT_EQ(WatchLine(snapshot, After(65), false, false),
            "exp-1 running 10% | 3 done, 2 running, 5 queued, 1 failed | best "
            "feasible 1.50e-04 | front 2 | elapsed 1m05s, ~8m55s left");
  const std::string tty = WatchLine(snapshot, After(65), true, true);
  EXPECT_NE(tty.find("\033[31m1 failed\033[0m"), std::string::npos) << tty;
  const std::string plain_tty = WatchLine(snapshot, After(65), true, false);
  EXPECT_EQ(plain_tty.find('\033'), std::string::npos) << plain_tty;
  EXPECT_NE(plain_tty.find("running ██░░░░░░░░░░░░░░ 10%  3 done"),
            std::string::npos)
      << plain_tty;
}

TEST(WatchCsvTest, RowMatchesHeader) {
  WatchSnapshot snapshot;
  snapshot.experiment = Running(1, 0);
  const std::string header = WatchCsvHeader();
  const std::string row = WatchCsvRow(snapshot, After(30));
  EXPECT_EQ(std::count(header.begin(), header.end(), ','),
            std::count(row.begin(), row.end(), ','));
  EXPECT_EQ(row,
            "1970-01-01T00:17:10+00:00,exp-1,running,0,0,1,0,0,0,,0,30,\r\n");
}

}  // namespace
TEST(HumanBytesTest, BinaryUnits) {
  EXPECT_EQ(HumanBytes(512), "512 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(12 * 1024 * 1024), "12.0 MiB");
  EXPECT_EQ(HumanBytes(int64_t{5} << 29), "2.50 GiB");
}

TEST(UploadProgressLineTest, BarBytesRateAndTimeLeft) {
  const int64_t mib = 1024 * 1024;
  EXPECT_EQ(UploadProgressLine(3 * mib, 12 * mib, absl::Seconds(2), false),
            "uploading  ████░░░░░░░░░░░░ 25%  3.0 MiB / 12.0 MiB  1.5 MiB/s  "
            "~6s left");
  // No rate before time has passed; an unknown total shows no bar.
  EXPECT_EQ(UploadProgressLine(mib, 4 * mib, absl::ZeroDuration(), false),
            "uploading  ████░░░░░░░░░░░░ 25%  1.0 MiB / 4.0 MiB");
  EXPECT_EQ(UploadProgressLine(2 * mib, 0, absl::Seconds(1), false),
            "uploading  2.0 MiB  2.0 MiB/s");
  EXPECT_NE(UploadProgressLine(mib, 4 * mib, absl::Seconds(1), true)
                .find("\033["),
            std::string::npos);
}

TEST(UploadDoneLineTest, TotalTimeAndRate) {
  EXPECT_EQ(UploadDoneLine(60 * 1024 * 1024, absl::Seconds(8)),
            "uploaded 60.0 MiB in 8s (7.5 MiB/s)");
}

}  // namespace evonas::client
