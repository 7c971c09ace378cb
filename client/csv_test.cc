#include "client/csv.h"

#include <limits>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace evonas::client {
namespace {

TEST(CsvFieldTest, QuotesOnlyWhenNeeded) {
  EXPECT_EQ(CsvField("plain"), "plain");
  EXPECT_EQ(CsvField(""), "");
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvField("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(CsvField("cr\r"), "\"cr\r\"");
  EXPECT_EQ(CsvField(" padded"), "\" padded\"");
}

TEST(CsvRecordTest, JoinsWithCommasAndEndsInCrlf) {
  EXPECT_EQ(CsvRecord({"a", "b,c", ""}), "a,\"b,c\",\r\n");
  EXPECT_EQ(CsvRecord({}), "\r\n");
}

TEST(CsvNumberTest, ShortestRoundTrip) {
  EXPECT_EQ(CsvNumber(0.001), "0.001");
  EXPECT_EQ(CsvNumber(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(CsvNumber(12345), "12345");
  EXPECT_EQ(CsvNumber(1e-300), "1e-300");
  EXPECT_EQ(CsvNumber(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(CsvNumber(-std::numeric_limits<double>::infinity()), "-inf");
  EXPECT_EQ(CsvNumber(std::numeric_limits<double>::quiet_NaN()), "nan");
}

TEST(CandidatesCsvTest, OneRowPerCandidateWithEmptyFieldsWhenNotTrained) {
  v1::Candidate done;
  done.set_id("c-1");
  done.set_state(v1::CANDIDATE_STATE_SUCCEEDED);
  done.set_feasible(false);
  done.add_violations("parameter count 900 > 500");
  done.add_violations("model size 9 bytes > 8 bytes");
  done.mutable_metrics()->mutable_validation()->set_max_abs_error(2.5e-4);
  done.mutable_metrics()->set_parameter_count(900);
  v1::Candidate failed;
  failed.set_id("c-2");
  failed.set_state(v1::CANDIDATE_STATE_FAILED);
  failed.set_failure_reason("loss is NaN, giving up");

  const std::string csv = CandidatesCsv({done, failed});
  const std::vector<std::string> lines =
      absl::StrSplit(csv, "\r\n", absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << csv;
  const std::vector<std::string> header = absl::StrSplit(lines[0], ',');
  EXPECT_EQ(header.size(), 41u);
  EXPECT_EQ(header[29], "test_cross_entropy");
  EXPECT_EQ(header[32], "refit_of");
  EXPECT_EQ(header[33], "stopped_at_time_limit");
  EXPECT_EQ(header[35], "judging_max_abs_error");
  EXPECT_EQ(header.back(), "judging_cross_entropy");
  EXPECT_NE(lines[1].find(",false,0,0.00025,"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find(",parameter count 900 > 500; model size 9 bytes > "
                          "8 bytes,"),
            std::string::npos)
      << lines[1];
  // A failed candidate has no metrics: empty fields, not zeros.
  EXPECT_NE(lines[2].find("c-2,0,failed,"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find(",,,,,,,,,,,,,,,"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("\"loss is NaN, giving up\""), std::string::npos);
  // The classification columns come after: empty for the failed candidate,
  // and the test ones empty without a test evaluation; the judging ones
  // last, empty without judging rows.
  EXPECT_TRUE(absl::EndsWith(lines[2], "giving up\",,,,,,,,,,,,,,,"))
      << lines[2];
  EXPECT_TRUE(absl::EndsWith(lines[1], ",0,0,,,,,,false,,,,,,,")) << lines[1];

  done.mutable_metrics()->mutable_judging()->set_row_count(1400);
  done.mutable_metrics()->mutable_judging()->set_max_abs_error(1.5e-3);
  const std::vector<std::string> judged =
      absl::StrSplit(CandidatesCsv({done}), "\r\n", absl::SkipEmpty());
  ASSERT_EQ(judged.size(), 2u);
  EXPECT_TRUE(absl::EndsWith(judged[1], ",false,1400,0.0015,0,0,0,0,0"))
      << judged[1];
}

TEST(CandidatesCsvTest, MultiFidelityLevels) {
  v1::Candidate short_run;
  short_run.set_id("c-1");
  short_run.set_evaluation_level(v1::EVALUATION_LEVEL_SHORT);
  v1::Candidate promotion;
  promotion.set_id("c-2");
  promotion.set_evaluation_level(v1::EVALUATION_LEVEL_FULL);
  promotion.set_promoted_from("c-1");
  v1::Candidate refit;
  refit.set_id("c-3");
  refit.set_evaluation_level(v1::EVALUATION_LEVEL_REFIT);
  refit.set_refit_of("c-2");
  const std::vector<std::string> lines =
      absl::StrSplit(CandidatesCsv({short_run, promotion, refit}), "\r\n",
                     absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_TRUE(absl::EndsWith(lines[1], ",1,,,,,,,,,,")) << lines[1];
  EXPECT_TRUE(absl::EndsWith(lines[2], ",2,c-1,,,,,,,,,")) << lines[2];
  EXPECT_TRUE(absl::EndsWith(lines[3], ",refit,,c-2,,,,,,,,")) << lines[3];
}

TEST(ExperimentsCsvTest, ElapsedUntilNowWhileRunning) {
  v1::Experiment e;
  e.set_id("exp-1");
  e.set_state(v1::EXPERIMENT_STATE_RUNNING);
  e.mutable_created_at()->set_seconds(100);
  e.mutable_spec()->mutable_budget()->set_max_candidates(50);
  const std::string csv = ExperimentsCsv({e}, absl::FromUnixSeconds(130));
  const std::vector<std::string> lines =
      absl::StrSplit(csv, "\r\n", absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[1].find(",50,,0,"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find(",1970-01-01T00:01:40+00:00,,30"),
            std::string::npos)
      << lines[1];
}

}  // namespace
}  // namespace evonas::client
