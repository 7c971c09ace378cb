#include "client/output.h"

#include <string>

#include "common/genome.h"
#include "gtest/gtest.h"

namespace evonas::client {
namespace {

google::protobuf::Timestamp At(int64_t seconds) {
  google::protobuf::Timestamp t;
  t.set_seconds(seconds);
  return t;
}

v1::Genome SmallGenome() {
  v1::Genome genome;
  v1::DenseLayer* layer = genome.add_hidden_layers();
  layer->set_width(16);
  layer->set_activation(v1::ACTIVATION_TANH);
  genome.mutable_training()->set_learning_rate(0.01);
  genome.mutable_training()->set_adam_steps(1000);
  return genome;
}

v1::Candidate Succeeded(const std::string& id, double error, bool feasible) {
  v1::Candidate c;
  c.set_id(id);
  c.set_state(v1::CANDIDATE_STATE_SUCCEEDED);
  *c.mutable_genome() = SmallGenome();
  c.mutable_metrics()->mutable_validation()->set_max_abs_error(error);
  c.mutable_metrics()->mutable_validation()->set_fraction_within(0.975);
  c.mutable_metrics()->set_parameter_count(321);
  c.mutable_metrics()->set_model_bytes(4096);
  c.mutable_metrics()->set_training_seconds(12.34);
  c.set_feasible(feasible);
  return c;
}

TEST(ParseOutputFormatTest, TableAndJson) {
  EXPECT_EQ(*ParseOutputFormat("table"), OutputFormat::kTable);
  EXPECT_EQ(*ParseOutputFormat("json"), OutputFormat::kJson);
  EXPECT_FALSE(ParseOutputFormat("yaml").ok());
}

TEST(TextTableTest, AlignsColumnsAndTrimsTrailingBlanks) {
  TextTable table({"ID", "N", "NOTE"});
  table.AlignRight(1);
  table.AddRow({"a", "1", ""});
  table.AddRow({"long-id", "1234", "x"});
  table.AddRow({"short"});
  EXPECT_EQ(table.Render(),
            "ID          N  NOTE\n"
            "a           1\n"
            "long-id  1234  x\n"
            "short\n");
}

TEST(RenderFieldsTest, AlignsValues) {
  EXPECT_EQ(RenderFields({{"id", "d1"}, {"columns", "a, b"}, {"x", ""}}),
            "id       d1\n"
            "columns  a, b\n"
            "x\n");
}

TEST(FormatDurationTest, Units) {
  EXPECT_EQ(ShortDuration(absl::Seconds(45)), "45s");
  EXPECT_EQ(ShortDuration(absl::Seconds(187)), "3m07s");
  EXPECT_EQ(ShortDuration(absl::Seconds(7509)), "2h05m09s");
  EXPECT_EQ(ShortDuration(absl::Hours(76) + absl::Minutes(5)), "3d04h05m");
  EXPECT_EQ(ShortDuration(absl::Seconds(-3)), "0s");
}

TEST(FormatTimestampTest, UnsetIsDash) {
  EXPECT_EQ(FormatTimestamp(google::protobuf::Timestamp(), absl::UTCTimeZone()),
            "-");
  EXPECT_EQ(FormatTimestamp(At(86400), absl::UTCTimeZone()),
            "1970-01-02 00:00:00");
}

TEST(StateNameTest, LowerCaseWithoutPrefix) {
  EXPECT_EQ(ExperimentStateName(v1::EXPERIMENT_STATE_COMPLETED), "completed");
  EXPECT_EQ(CandidateStateName(v1::CANDIDATE_STATE_QUEUED), "queued");
}

TEST(DescribeRequirementsTest, ListsSetFieldsOnly) {
  v1::Requirements r;
  EXPECT_EQ(DescribeRequirements(r), "none");
  r.set_max_abs_error(0.001);
  r.set_within_tolerance(0.01);
  r.set_min_fraction_within(0.95);
  r.set_max_parameters(5000);
  EXPECT_EQ(DescribeRequirements(r),
            "max abs error <= 0.001, >= 95% within 0.01, params <= 5000");
}

v1::Experiment RunningExperiment() {
  v1::Experiment e;
  e.set_id("exp-1");
  e.set_state(v1::EXPERIMENT_STATE_RUNNING);
  e.mutable_spec()->set_dataset_id("d1");
  e.mutable_spec()->add_input_columns("x1");
  e.mutable_spec()->add_input_columns("x2");
  e.mutable_spec()->add_output_columns("y");
  e.mutable_spec()->mutable_budget()->set_max_candidates(20);
  e.mutable_counts()->set_queued(3);
  e.mutable_counts()->set_running(2);
  e.mutable_counts()->set_succeeded(5);
  e.mutable_counts()->set_failed(1);
  e.set_feasible_count(2);
  *e.mutable_created_at() = At(1000);
  return e;
}

TEST(ExperimentTableTest, ShowsStateCountsAndElapsed) {
  TableContext ctx{absl::FromUnixSeconds(1065), absl::UTCTimeZone()};
  const std::string table = ExperimentTable(RunningExperiment(), ctx);
  EXPECT_NE(table.find("id            exp-1\n"), std::string::npos) << table;
  EXPECT_NE(table.find("state         running\n"), std::string::npos);
  EXPECT_NE(table.find("inputs        x1, x2\n"), std::string::npos);
  EXPECT_NE(table.find("requirements  none\n"), std::string::npos);
  EXPECT_NE(table.find("budget        20 candidates\n"), std::string::npos);
  EXPECT_NE(table.find("candidates    11 (3 queued, 2 running, 5 succeeded, "
                       "1 failed, 0 cancelled)\n"),
            std::string::npos);
  EXPECT_NE(table.find("feasible      2\n"), std::string::npos);
  EXPECT_NE(table.find("elapsed       1m05s\n"), std::string::npos);
  EXPECT_EQ(table.find("finished"), std::string::npos);
}

TEST(ExperimentTableTest, ImagesAndClassification) {
  TableContext ctx{absl::FromUnixSeconds(1065), absl::UTCTimeZone()};
  v1::Experiment experiment = RunningExperiment();
  v1::ExperimentSpec& spec = *experiment.mutable_spec();
  spec.clear_input_columns();
  for (int i = 0; i < 784; ++i) {
    spec.add_input_columns(absl::StrCat("pixel_", i));
  }
  spec.set_task(v1::TASK_CLASSIFICATION);
  experiment.set_class_count(10);
  const std::string table = ExperimentTable(experiment, ctx);
  EXPECT_NE(table.find("inputs        pixel_0, pixel_1 .. pixel_783 (784 "
                       "columns)\n"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("task          classification, 10 classes\n"),
            std::string::npos)
      << table;
}

TEST(ExperimentElapsedTest, StopsAtFinish) {
  v1::Experiment e = RunningExperiment();
  *e.mutable_finished_at() = At(1010);
  EXPECT_EQ(ExperimentElapsed(e, absl::FromUnixSeconds(5000)), "10s");
  EXPECT_EQ(ExperimentElapsed(v1::Experiment(), absl::FromUnixSeconds(5000)),
            "-");
}

TEST(ProgressLineTest, Format) {
  EXPECT_EQ(ProgressLine(RunningExperiment(), absl::FromUnixSeconds(1065)),
            "exp-1: running, 3 queued, 2 running, 5 succeeded, 1 failed, 0 "
            "cancelled, 2 feasible, elapsed 1m05s");
}

TEST(CandidateListTableTest, DashesForUnfinishedCandidates) {
  v1::ListCandidatesResponse response;
  *response.add_candidates() = Succeeded("c-1", 0.00123, true);
  v1::Candidate* queued = response.add_candidates();
  queued->set_id("c-2");
  queued->set_state(v1::CANDIDATE_STATE_QUEUED);
  *queued->mutable_genome() = SmallGenome();

  const std::string table = CandidateListTable(response);
  const std::string arch = DescribeGenome(SmallGenome());
  EXPECT_EQ(table.substr(0, table.find('\n')).find("ID"), 0u);
  EXPECT_NE(table.find(arch), std::string::npos);
  EXPECT_NE(table.find("1.230e-03"), std::string::npos) << table;
  EXPECT_NE(table.find("97.5%"), std::string::npos);
  EXPECT_NE(table.find("321"), std::string::npos);
  EXPECT_NE(table.find("12.3"), std::string::npos);
  const std::string last_line = table.substr(table.find("c-2"));
  EXPECT_NE(last_line.find("queued"), std::string::npos);
  EXPECT_EQ(last_line.find("yes"), std::string::npos);
  EXPECT_EQ(last_line.back(), '\n');
  EXPECT_NE(last_line.find("  -"), std::string::npos);
}

TEST(CandidateListTableTest, MarksTrainingStoppedAtTheTimeLimit) {
  v1::ListCandidatesResponse response;
  *response.add_candidates() = Succeeded("c-1", 0.00123, true);
  v1::Candidate stopped = Succeeded("c-2", 0.002, true);
  stopped.mutable_metrics()->set_stopped_at_time_limit(true);
  *response.add_candidates() = stopped;

  const std::string table = CandidateListTable(response);
  const std::string first = table.substr(table.find("c-1"));
  EXPECT_EQ(first.substr(0, first.find('\n')).find("(stopped)"),
            std::string::npos)
      << table;
  const std::string second = table.substr(table.find("c-2"));
  EXPECT_NE(second.find("12.3 (stopped)"), std::string::npos) << table;
}

TEST(CandidateListTableTest, ClassifiersShowAccuracy) {
  v1::ListCandidatesResponse response;
  v1::Candidate c = Succeeded("c-1", 0, true);
  c.mutable_metrics()->mutable_validation()->set_accuracy(0.9125);
  c.mutable_metrics()->mutable_validation()->set_cross_entropy(0.25);
  *response.add_candidates() = c;
  const std::string table = CandidateListTable(response);
  EXPECT_NE(table.find("VAL ACCURACY"), std::string::npos) << table;
  EXPECT_NE(table.find("91.2%"), std::string::npos) << table;
  EXPECT_NE(table.find("0.2500"), std::string::npos) << table;
  EXPECT_EQ(table.find("MAX ABS ERR"), std::string::npos) << table;
}

TEST(CandidateListTableTest, MultiFidelityShowsLevelsOnlyWhenThereAreSome) {
  v1::ListCandidatesResponse response;
  *response.add_candidates() = Succeeded("c-1", 0.00123, true);
  EXPECT_EQ(CandidateListTable(response).find("LEVEL"), std::string::npos);

  response.mutable_candidates(0)->set_evaluation_level(
      v1::EVALUATION_LEVEL_SHORT);
  v1::Candidate promotion = Succeeded("c-2", 0.0001, true);
  promotion.set_evaluation_level(v1::EVALUATION_LEVEL_FULL);
  promotion.set_promoted_from("c-1");
  *response.add_candidates() = promotion;
  const std::string table = CandidateListTable(response);
  const std::string header = table.substr(0, table.find('\n'));
  EXPECT_LT(header.find("STATE"), header.find("LEVEL")) << table;
  EXPECT_LT(header.find("LEVEL"), header.find("ARCHITECTURE")) << table;
  EXPECT_NE(table.find("1 short"), std::string::npos) << table;
  EXPECT_NE(table.find("2 full <- c-1"), std::string::npos) << table;
  // Numbers stay right-aligned under their headers.
  const std::string row = table.substr(table.find("c-2"));
  EXPECT_EQ(row.find("1.000e-04") + std::string("1.000e-04").size(),
            header.find("VAL MAX ABS ERR") +
                std::string("VAL MAX ABS ERR").size())
      << table;
}

TEST(ParetoFrontTableTest, SaysWhetherRequirementsAreMet) {
  v1::ParetoFront front;
  EXPECT_EQ(ParetoFrontTable(front).find("No candidate has succeeded"), 0u);

  *front.add_candidates() = Succeeded("c-1", 0.5, false);
  std::string table = ParetoFrontTable(front);
  EXPECT_EQ(table.find("Requirements met: no"), 0u) << table;
  EXPECT_EQ(table.find("TEST MAX ABS ERR"), std::string::npos);

  front.set_has_feasible(true);
  front.mutable_candidates(0)->set_feasible(true);
  front.mutable_candidates(0)
      ->mutable_metrics()
      ->mutable_test()
      ->set_max_abs_error(0.25);
  *front.add_candidates() = Succeeded("c-2", 0.6, true);
  table = ParetoFrontTable(front);
  EXPECT_EQ(table.find("Requirements met: yes"), 0u) << table;
  EXPECT_NE(table.find("TEST MAX ABS ERR"), std::string::npos);
  EXPECT_NE(table.find("2.500e-01"), std::string::npos);
  EXPECT_NE(table.find("MODEL BYTES"), std::string::npos);
  EXPECT_NE(table.find("4096"), std::string::npos);
}

TEST(ParetoFrontTableTest, JudgingRowsAreShownBesideTheValidationRows) {
  v1::ParetoFront front;
  front.set_has_feasible(true);
  v1::Candidate c = Succeeded("c-1", 2e-4, true);
  c.mutable_metrics()->mutable_judging()->set_max_abs_error(7.5e-4);
  c.mutable_metrics()->mutable_judging()->set_fraction_within(0.125);
  *front.add_candidates() = c;
  const std::string table = ParetoFrontTable(front);
  const size_t val = table.find("VAL MAX ABS ERR");
  const size_t judging = table.find("JUDGING MAX ABS ERR");
  ASSERT_NE(val, std::string::npos) << table;
  ASSERT_NE(judging, std::string::npos) << table;
  EXPECT_LT(val, judging);
  const size_t row = table.find("c-1");
  EXPECT_LT(table.find("2.000e-04", row), table.find("7.500e-04", row))
      << table;
  // The fraction within is the judging rows' too.
  EXPECT_NE(table.find("12.5%", row), std::string::npos) << table;
  EXPECT_EQ(table.find("97.5%", row), std::string::npos) << table;

  v1::ListCandidatesResponse list;
  *list.add_candidates() = c;
  const std::string listed = CandidateListTable(list);
  EXPECT_NE(listed.find("JUDGING MAX ABS ERR"), std::string::npos) << listed;
  EXPECT_NE(listed.find("7.500e-04"), std::string::npos) << listed;
  EXPECT_EQ(listed.find("2.000e-04"), std::string::npos) << listed;
}

TEST(ParetoFrontTableTest, RefitsFollowTheFrontJudgedOnTheTestRows) {
  v1::ParetoFront front;
  front.set_has_feasible(true);
  *front.add_candidates() = Succeeded("c-1", 0.5, true);
  EXPECT_EQ(ParetoFrontTable(front).find("Refits"), std::string::npos);
  v1::Candidate refit = Succeeded("c-3", 1e-5, false);
  refit.set_evaluation_level(v1::EVALUATION_LEVEL_REFIT);
  refit.set_refit_of("c-1");
  refit.mutable_metrics()->mutable_test()->set_max_abs_error(0.125);
  *front.add_refits() = refit;
  v1::Candidate queued;
  queued.set_id("c-4");
  queued.set_refit_of("c-2");
  queued.set_state(v1::CANDIDATE_STATE_QUEUED);
  *front.add_refits() = queued;
  const std::string table = ParetoFrontTable(front);
  const size_t refits = table.find("Refits on all rows");
  ASSERT_NE(refits, std::string::npos) << table;
  EXPECT_NE(table.find("judged on the test data set", refits),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("TEST MAX ABS ERR", refits), std::string::npos);
  // The test error, not the training rows' 1e-5.
  const size_t row = table.find("c-3", refits);
  ASSERT_NE(row, std::string::npos) << table;
  EXPECT_NE(table.find("1.250e-01", row), std::string::npos) << table;
  EXPECT_EQ(table.find("1.000e-05", refits), std::string::npos) << table;
  EXPECT_NE(table.find("queued", refits), std::string::npos) << table;
}

TEST(ParetoFrontTableTest, ClassifiersShowAccuracyAndCrossEntropy) {
  v1::ParetoFront front;
  front.add_objectives(v1::OBJECTIVE_VALIDATION_ERROR_RATE);
  front.add_objectives(v1::OBJECTIVE_PARAMETER_COUNT);
  v1::Candidate c = Succeeded("c-1", 0, true);
  c.mutable_metrics()->mutable_validation()->set_accuracy(0.875);
  c.mutable_metrics()->mutable_validation()->set_cross_entropy(0.34567);
  c.mutable_metrics()->mutable_test()->set_accuracy(0.8521);
  *front.add_candidates() = c;
  const std::string table = ParetoFrontTable(front);
  EXPECT_NE(table.find("VAL ACCURACY"), std::string::npos) << table;
  EXPECT_NE(table.find("87.5%"), std::string::npos) << table;
  EXPECT_NE(table.find("0.3457"), std::string::npos) << table;
  EXPECT_NE(table.find("TEST ACCURACY"), std::string::npos) << table;
  EXPECT_NE(table.find("85.2%"), std::string::npos) << table;
  EXPECT_EQ(table.find("MAX ABS ERR"), std::string::npos) << table;
}

TEST(ToJsonTest, UsesProtoFieldNamesAndPrintsZeros) {
  absl::StatusOr<std::string> json = ToJson(RunningExperiment());
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_NE(json->find("\"feasible_count\": \"2\""), std::string::npos)
      << *json;
  EXPECT_NE(json->find("\"cancelled\": \"0\""), std::string::npos);
  EXPECT_NE(json->find("\"state\": \"EXPERIMENT_STATE_RUNNING\""),
            std::string::npos);
  EXPECT_NE(json->find("\"input_columns\""), std::string::npos);
  // proto3 `optional` fields stay absent when unset.
  EXPECT_EQ(json->find("max_abs_error"), std::string::npos);
  EXPECT_EQ(json->back(), '\n');
}

}  // namespace
}  // namespace evonas::client
