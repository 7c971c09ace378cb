#include "client/report.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/plot.h"
#include "client/png_testing.h"
#include "client/report_sample.h"
#include "gtest/gtest.h"

namespace evonas::client {
namespace {

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t i = text.find(needle); i != std::string::npos;
       i = text.find(needle, i + needle.size())) {
    ++n;
  }
  return n;
}

v1::Candidate Trained(const std::string& id, double error, int64_t params,
                      int64_t finished_seconds, bool feasible) {
  v1::Candidate c;
  c.set_id(id);
  c.set_state(v1::CANDIDATE_STATE_SUCCEEDED);
  c.set_feasible(feasible);
  c.mutable_metrics()->mutable_validation()->set_max_abs_error(error);
  c.mutable_metrics()->set_parameter_count(params);
  c.mutable_metrics()->set_inference_latency_seconds(2e-5);
  c.mutable_finished_at()->set_seconds(1000 + finished_seconds);
  return c;
}

// A trained classifier: max abs error and its kin are 0, as the worker
// reports them.
v1::Candidate Classified(const std::string& id, double accuracy, int64_t params,
                         int64_t finished_seconds, bool feasible) {
  v1::Candidate c = Trained(id, 0, params, finished_seconds, feasible);
  c.mutable_metrics()->mutable_validation()->set_accuracy(accuracy);
  c.mutable_metrics()->mutable_validation()->set_cross_entropy(2.5 *
                                                               (1 - accuracy));
  return c;
}

// A classification experiment requiring accuracy >= 90% and at most 5000
// parameters, whose front the controller sent worst first.
ReportInput ClassificationInput() {
  ReportInput input;
  v1::Experiment& e = input.experiment;
  e.set_id("exp-cls");
  e.set_state(v1::EXPERIMENT_STATE_COMPLETED);
  e.set_class_count(10);
  e.mutable_created_at()->set_seconds(1000);
  e.mutable_finished_at()->set_seconds(1100);
  e.set_feasible_count(2);
  e.mutable_counts()->set_succeeded(4);
  v1::ExperimentSpec& spec = *e.mutable_spec();
  spec.set_task(v1::TASK_CLASSIFICATION);
  spec.mutable_requirements()->set_min_accuracy(0.9);
  spec.mutable_requirements()->set_max_parameters(5000);
  input.candidates = {
      Classified("c-good", 0.95, 1000, 10, true),
      Classified("c-small", 0.93, 500, 20, true),
      Classified("c-poor", 0.80, 2000, 30, false),
      Classified("c-large", 0.97, 8000, 40, false),
  };
  input.candidates[2].add_violations("validation accuracy 80.0% < 90.0%");
  input.candidates[3].add_violations("parameter count 8000 > 5000");
  input.front.set_has_feasible(true);
  *input.front.add_candidates() = input.candidates[1];
  *input.front.add_candidates() = input.candidates[0];
  return input;
}

// In the first chart of `svg`: the y of the horizontal requirement line
// and the y of the y-axis tick labelled `tick` (its text sits 4 px below
// its grid line); -1 when missing.
std::pair<double, double> LimitAndTickY(const std::string& svg,
                                        const std::string& tick) {
  const std::string chart = svg.substr(0, svg.find("</svg>"));
  std::smatch line, label;
  const bool has_line = std::regex_search(
      chart, line,
      std::regex("<line x1=\"70.0\" y1=\"([0-9.]+)\" x2=\"[0-9.]+\" "
                 "y2=\"\\1\" stroke=\"#b42318\""));
  const bool has_label = std::regex_search(
      chart, label,
      std::regex("<text x=\"62.0\" y=\"([0-9.]+)\" text-anchor=\"end\" "
                 "fill=\"#5b6472\">" +
                 tick + "</text>"));
  return {has_line ? std::stod(line[1]) : -1,
          has_label ? std::stod(label[1]) - 4 : -1};
}

TEST(HtmlEscapeTest, EscapesMarkupAndQuotes) {
  EXPECT_EQ(HtmlEscape("<a href=\"x\">Tom's & co</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom&#39;s &amp; co&lt;/a&gt;");
  EXPECT_EQ(HtmlEscape("plain µ"), "plain µ");
}

TEST(CheckRequirementsTest, OneCheckPerSetRequirement) {
  v1::Requirements r;
  r.set_max_abs_error(1e-3);
  r.set_within_tolerance(1e-4);
  r.set_min_fraction_within(0.5);
  r.set_max_parameters(1000);
  v1::Metrics m;
  m.mutable_validation()->set_max_abs_error(5e-4);
  m.mutable_validation()->set_fraction_within(0.25);
  m.set_parameter_count(1000);
  const std::vector<RequirementCheck> checks = CheckRequirements(r, m);
  ASSERT_EQ(checks.size(), 3u);
  EXPECT_EQ(checks[0].name, "Validation max abs error");
  EXPECT_EQ(checks[0].actual, "5.00e-04");
  EXPECT_TRUE(checks[0].met);
  EXPECT_EQ(checks[1].limit, "≥ 50.0%");
  EXPECT_EQ(checks[1].actual, "25.0%");
  EXPECT_FALSE(checks[1].met);
  EXPECT_EQ(checks[2].limit, "≤ 1,000");
  EXPECT_TRUE(checks[2].met);  // The limit itself is allowed.

  // within_tolerance alone is no requirement.
  v1::Requirements tolerance_only;
  tolerance_only.set_within_tolerance(1e-4);
  EXPECT_TRUE(CheckRequirements(tolerance_only, m).empty());

  // With judging rows, the judging rows decide, as the controller did.
  m.mutable_judging()->set_max_abs_error(2e-3);
  m.mutable_judging()->set_fraction_within(0.75);
  const std::vector<RequirementCheck> judged = CheckRequirements(r, m);
  ASSERT_EQ(judged.size(), 3u);
  EXPECT_EQ(judged[0].name, "Judging max abs error");
  EXPECT_EQ(judged[0].actual, "2.00e-03");
  EXPECT_FALSE(judged[0].met);
  EXPECT_EQ(judged[1].name, "Fraction of judging points within 0.0001");
  EXPECT_TRUE(judged[1].met);
}

TEST(CheckRequirementsTest, MinAccuracyByTheControllersRule) {
  v1::Requirements r;
  r.set_min_accuracy(0.9);
  r.set_max_parameters(1000);
  v1::Metrics m;
  m.mutable_validation()->set_accuracy(0.8512);
  m.set_parameter_count(900);
  std::vector<RequirementCheck> checks = CheckRequirements(r, m);
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0].name, "Validation accuracy");
  EXPECT_EQ(checks[0].limit, "≥ 90%");
  EXPECT_EQ(checks[0].actual, "85.12%");
  EXPECT_FALSE(checks[0].met);
  EXPECT_TRUE(checks[1].met);
  m.mutable_validation()->set_accuracy(0.9);  // The limit itself is allowed.
  checks = CheckRequirements(r, m);
  EXPECT_TRUE(checks[0].met);
  EXPECT_EQ(checks[0].actual, "90.00%");
}

TEST(SearchProgressTest, ClassifiersByErrorRate) {
  v1::Experiment e;
  e.mutable_created_at()->set_seconds(1000);
  e.mutable_spec()->set_task(v1::TASK_CLASSIFICATION);
  const std::vector<v1::Candidate> candidates = {
      Classified("c-1", 0.9, 100, 10, false),
      Classified("c-2", 0.99, 10000, 20, true),
      Classified("c-3", 1.0, 100000, 30, true),  // perfect: floored
  };
  const std::vector<ProgressPoint> progress = SearchProgress(e, candidates);
  ASSERT_EQ(progress.size(), 3u);
  EXPECT_NEAR(progress[0].best_error, 0.1, 1e-12);
  EXPECT_TRUE(std::isnan(progress[0].best_feasible_error));
  EXPECT_NEAR(progress[1].best_error, 0.01, 1e-12);
  EXPECT_NEAR(progress[1].best_feasible_error, 0.01, 1e-12);
  EXPECT_EQ(progress[2].best_error, 0);
  // Reference (log10 error rate, log10 params) = (-1 + 1, 5 + 1) = (0, 6);
  // the points are (-1, 2), (-2, 4) and (log10 kErrorRateFloor, 5) = (-5, 5).
  EXPECT_NEAR(progress[0].hypervolume, 1 * 4, 1e-9);
  EXPECT_NEAR(progress[1].hypervolume, 4 + 1 * 2, 1e-9);
  EXPECT_NEAR(progress[2].hypervolume, 6 + 3 * 1, 1e-9);
}

TEST(SearchProgressTest, BestErrorsAndHypervolumeInFinishOrder) {
  v1::Experiment e;
  e.mutable_created_at()->set_seconds(1000);
  v1::Candidate failed;
  failed.set_state(v1::CANDIDATE_STATE_FAILED);
  failed.mutable_finished_at()->set_seconds(1001);
  const std::vector<v1::Candidate> candidates = {
      Trained("c-2", 1e-2, 100, 20, false),
      Trained("c-1", 1e-1, 1000, 10, false),
      failed,
      Trained("c-3", 1e-3, 10000, 30, true),
      Trained("c-4", 1e-2, 10000, 40, true),  // dominated: nothing changes
  };
  const std::vector<ProgressPoint> progress = SearchProgress(e, candidates);
  ASSERT_EQ(progress.size(), 4u);
  EXPECT_EQ(progress[0].seconds, 10);
  EXPECT_EQ(progress[0].best_error, 1e-1);
  EXPECT_TRUE(std::isnan(progress[0].best_feasible_error));
  EXPECT_EQ(progress[1].best_error, 1e-2);
  EXPECT_TRUE(std::isnan(progress[1].best_feasible_error));
  EXPECT_EQ(progress[2].best_error, 1e-3);
  EXPECT_EQ(progress[2].best_feasible_error, 1e-3);
  EXPECT_EQ(progress[3].best_feasible_error, 1e-3);
  // Reference (log10 error, log10 params) = (-1 + 1, 4 + 1) = (0, 5).
  EXPECT_DOUBLE_EQ(progress[0].hypervolume, 1 * 2);
  // Adding (-2, 2) adds the box [-2,0]x[2,5] less its overlap [-1,0]x[3,5].
  EXPECT_DOUBLE_EQ(progress[1].hypervolume, 2 + 6 - 2);
  // (-3, 4) adds [-3,-2]x[4,5].
  EXPECT_DOUBLE_EQ(progress[2].hypervolume, 6 + 1);
  EXPECT_DOUBLE_EQ(progress[3].hypervolume, progress[2].hypervolume);
  for (size_t i = 1; i < progress.size(); ++i) {
    EXPECT_GE(progress[i].hypervolume, progress[i - 1].hypervolume);
  }
}

TEST(RenderReportHtmlTest, SampleHasEverySection) {
  const ReportInput input = SampleReportInput();
  const std::string html = RenderReportHtml(input);
  EXPECT_TRUE(absl::StartsWith(html, "<!DOCTYPE html>"));
  EXPECT_TRUE(absl::EndsWith(html, "</html>\n"));
  for (const char* heading :
       {"Requirements", "Pareto front", "Candidates on the front",
        "Search progress", "Data and search"}) {
    EXPECT_NE(html.find(absl::StrCat("<h2>", heading, "</h2>")),
              std::string::npos)
        << heading;
  }
  EXPECT_EQ(Count(html, "<svg "), 4u);
  EXPECT_EQ(Count(html, "</svg>"), 4u);
  EXPECT_NE(html.find(input.dataset.id()), std::string::npos);
  EXPECT_NE(html.find("2,000"), std::string::npos);  // rows
  // Every front member is in the table, with a mark per requirement (5 set
  // fields give 4 requirements) and one for feasibility.
  ASSERT_GT(input.front.candidates_size(), 2);
  for (const v1::Candidate& c : input.front.candidates()) {
    EXPECT_NE(html.find(c.id()), std::string::npos) << c.id();
  }
  const size_t marks =
      Count(html, "class=\"yes\"") + Count(html, "class=\"no\"");
  // The requirements table adds one mark per requirement.
  EXPECT_EQ(marks, input.front.candidates_size() * 5u + 4u);
  // Self-contained: no script and nothing fetched.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("href="), std::string::npos);
  EXPECT_EQ(html.find("url(http"), std::string::npos);
  EXPECT_NE(html.find("Content-Security-Policy"), std::string::npos);
}

TEST(RenderReportHtmlTest, EscapesWhatTheControllerSent) {
  ReportInput input = SampleReportInput();
  input.experiment.mutable_spec()->set_name("<script>alert(1)</script>");
  input.dataset.set_name("a&b.csv");
  input.experiment.mutable_spec()->set_output_columns(0, "<y>");
  const std::string html = RenderReportHtml(input);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"),
            std::string::npos);
  EXPECT_NE(html.find("a&amp;b.csv"), std::string::npos);
  EXPECT_EQ(html.find("<y>"), std::string::npos);
}

TEST(RenderReportHtmlTest, EmptyExperimentSaysSo) {
  ReportInput input;
  input.experiment.set_id("exp-empty");
  input.experiment.set_state(v1::EXPERIMENT_STATE_RUNNING);
  input.experiment.mutable_created_at()->set_seconds(1000);
  input.generated_at = absl::FromUnixSeconds(1060);
  const std::string html = RenderReportHtml(input);
  EXPECT_NE(html.find("No candidate has finished training yet"),
            std::string::npos);
  EXPECT_NE(html.find("No requirements were set"), std::string::npos);
  EXPECT_NE(html.find("The front is empty"), std::string::npos);
  EXPECT_EQ(Count(html, "<svg "), 4u);
  // No coordinate or value came out as NaN or infinity.
  EXPECT_FALSE(std::regex_search(html, std::regex("[^a-z](nan|inf)[^a-z]")));
}

TEST(RenderReportHtmlTest, InfeasibleFrontIsMarked) {
  ReportInput input;
  input.experiment.set_id("exp-1");
  input.experiment.mutable_spec()->mutable_requirements()->set_max_abs_error(
      1e-4);
  v1::Candidate c = Trained("c-1", 1e-3, 500, 10, false);
  c.add_violations("validation max abs error 1.0e-03 > 1.0e-04");
  input.candidates = {c};
  *input.front.add_candidates() = c;
  const std::string html = RenderReportHtml(input);
  EXPECT_NE(html.find("No candidate meets every requirement"),
            std::string::npos);
  EXPECT_NE(html.find("validation max abs error 1.0e-03 &gt; 1.0e-04"),
            std::string::npos);
  EXPECT_EQ(Count(html, "class=\"no\""), 3u);  // summary, check, feasible
}

TEST(RenderReportHtmlTest, JudgingRowsNameTheErrorsAndDecide) {
  ReportInput input;
  input.experiment.set_id("exp-1");
  input.experiment.mutable_spec()->set_judging_fraction(0.25);
  input.experiment.mutable_spec()->mutable_requirements()->set_max_abs_error(
      1e-3);
  v1::Candidate c = Trained("c-1", 1e-4, 500, 10, false);
  c.mutable_metrics()->mutable_judging()->set_max_abs_error(4e-3);
  input.candidates = {c};
  *input.front.add_candidates() = c;
  const std::string html = RenderReportHtml(input);
  EXPECT_NE(html.find("Judging max abs error"), std::string::npos);
  EXPECT_NE(html.find("judged on judging rows that no candidate was trained "
                      "on or had its weights chosen on"),
            std::string::npos);
  EXPECT_NE(html.find("25.0% of the rest for judging"), std::string::npos);
  // The judging error is shown, not the validation rows' 1e-4.
  EXPECT_NE(html.find("4.00e-03"), std::string::npos);
  EXPECT_EQ(html.find("1.00e-04"), std::string::npos);
}

TEST(RenderReportHtmlTest, TrainingStoppedAtTheTimeLimitIsMarked) {
  ReportInput input;
  input.experiment.set_id("exp-1");
  input.experiment.mutable_spec()
      ->mutable_requirements()
      ->set_max_training_seconds(10);
  v1::Candidate c = Trained("c-1", 1e-3, 500, 10, true);
  c.mutable_metrics()->set_stopped_at_time_limit(true);
  input.candidates = {c};
  *input.front.add_candidates() = c;
  EXPECT_NE(RenderReportHtml(input).find("s (stopped)"), std::string::npos);
  c.mutable_metrics()->set_stopped_at_time_limit(false);
  input.candidates = {c};
  *input.front.mutable_candidates(0) = c;
  EXPECT_EQ(RenderReportHtml(input).find("(stopped)"), std::string::npos);
}

TEST(RenderReportHtmlTest, RefitsHaveATableJudgedOnTheTestRows) {
  ReportInput input;
  input.experiment.set_id("exp-1");
  input.experiment.mutable_spec()->mutable_requirements()->set_max_abs_error(
      1e-3);
  v1::Candidate member = Trained("c-1", 5e-4, 500, 10, true);
  member.mutable_metrics()->mutable_test()->set_max_abs_error(7e-4);
  input.candidates = {member};
  *input.front.add_candidates() = member;
  EXPECT_EQ(RenderReportHtml(input).find("Refits on all rows"),
            std::string::npos);
  v1::Candidate refit = Trained("c-2", 1e-6, 500, 12, false);
  refit.set_evaluation_level(v1::EVALUATION_LEVEL_REFIT);
  refit.set_refit_of("c-1");
  refit.mutable_metrics()->mutable_test()->set_max_abs_error(2.5e-3);
  refit.add_violations("test max abs error 2.5e-03 > 1.0e-03");
  *input.front.add_refits() = refit;
  const std::string html = RenderReportHtml(input);
  const size_t section = html.find("<h2>Refits on all rows</h2>");
  ASSERT_NE(section, std::string::npos);
  EXPECT_NE(html.find("Their errors are on the test data set", section),
            std::string::npos);
  EXPECT_NE(html.find("c-2", section), std::string::npos);
  // The test error, not the training rows' 1e-6.
  EXPECT_NE(html.find("2.50e-03", section), std::string::npos)
      << html.substr(section, 2000);
  EXPECT_EQ(html.find("1.00e-06", section), std::string::npos);
  EXPECT_NE(html.find("test max abs error 2.5e-03 &gt; 1.0e-03", section),
            std::string::npos);
}

TEST(RenderFrontSvgTest, StandaloneDocumentWithRequirementLines) {
  const ReportInput input = SampleReportInput();
  const std::string svg = RenderFrontSvg(input);
  EXPECT_TRUE(absl::StartsWith(svg, "<?xml version=\"1.0\""));
  EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""),
            std::string::npos);
  EXPECT_NE(svg.find("width=\"960.0\" height=\"600.0\""), std::string::npos);
  EXPECT_NE(svg.find("max abs error 2×10⁻³"), std::string::npos);
  EXPECT_NE(svg.find("max params 6k"), std::string::npos);
  EXPECT_NE(svg.find(input.experiment.spec().name()), std::string::npos);
  EXPECT_EQ(Count(svg, "<svg "), 1u);
}

TEST(RenderReportHtmlTest, ClassificationIsJudgedByErrorRate) {
  const ReportInput input = ClassificationInput();
  const std::string html = RenderReportHtml(input);
  // Nothing of regression is left.
  for (const char* regression :
       {"max abs", "Max err", "RMSE", "MAE", "Within"}) {
    EXPECT_EQ(html.find(regression), std::string::npos) << regression;
  }
  EXPECT_NE(html.find(">Validation error rate vs. model size<"),
            std::string::npos);
  EXPECT_NE(html.find(">Validation error rate vs. inference latency<"),
            std::string::npos);
  EXPECT_NE(html.find(">Best validation error rate over time<"),
            std::string::npos);
  EXPECT_EQ(Count(html, ">Validation error rate (1 − accuracy)</text>"), 3u);
  EXPECT_NE(html.find("→  (10 classes)"), std::string::npos);
  // The card shows the best feasible error rate, not the infeasible 3%.
  EXPECT_NE(html.find("<div class=\"value\">5.00%</div><div class=\"hint\">"
                      "validation, 1 − accuracy</div>"),
            std::string::npos);
  // The requirement, met by every candidate but the poor one.
  EXPECT_NE(html.find("<td>Validation accuracy</td><td class=\"num\">≥ 90%"
                      "</td><td class=\"num\">97.00%</td><td class=\"num\">"
                      "3 of 4</td>"),
            std::string::npos);
  // The line of min_accuracy 0.9 is at the error rate 10%, in both front
  // charts and the progress chart.
  EXPECT_EQ(Count(html, ">min accuracy 90%</text>"), 2u);
  const auto [line_y, tick_y] = LimitAndTickY(html, "10%");
  ASSERT_GT(line_y, 0);
  EXPECT_NEAR(line_y, tick_y, 0.11);
  EXPECT_EQ(Count(html,
                  "stroke=\"#b42318\" stroke-width=\"1.5\" "
                  "stroke-dasharray=\"6 4\""),
            2u + 1u + 1u);  // parameters, latency and progress charts
  // Points say their error rate.
  EXPECT_NE(html.find("c-poor\nvalidation error rate 20.00%\n"),
            std::string::npos);

  // The table: accuracy, error rate and cross-entropy, best error rate
  // first although the controller sent it second.
  const std::string table =
      html.substr(html.find("<h2>Candidates on the front</h2>"));
  EXPECT_NE(table.find("Sorted by validation error rate."), std::string::npos);
  EXPECT_NE(table.find("<th class=\"num\" title=\"validation accuracy\">"
                       "Accuracy</th><th class=\"num\" title=\"1 − accuracy"
                       "\">Error rate</th><th class=\"num\" title=\"mean "
                       "−log p(label), in nats\">Cross-entropy</th>"),
            std::string::npos);
  EXPECT_LT(table.find("c-good"), table.find("c-small"));
  EXPECT_NE(table.find("<td class=\"num two\">95.00%</td><td class=\"num "
                       "two\">5.00%</td><td class=\"num two\">0.125</td>"),
            std::string::npos);
  EXPECT_NE(table.find("title=\"Validation accuracy: 93.00% meets ≥ 90%\""),
            std::string::npos);
  EXPECT_EQ(table.find("class=\"no\""), std::string::npos);
  EXPECT_FALSE(std::regex_search(html, std::regex("[^a-z](nan|inf)[^a-z]")));
}

TEST(RenderReportHtmlTest, InfeasibleClassifierIsMarked) {
  ReportInput input = ClassificationInput();
  input.front.Clear();
  *input.front.add_candidates() = input.candidates[2];  // c-poor
  input.candidates = {input.candidates[2]};
  input.experiment.set_feasible_count(0);
  const std::string html = RenderReportHtml(input);
  EXPECT_NE(html.find("No candidate meets every requirement"),
            std::string::npos);
  EXPECT_NE(html.find("title=\"Validation accuracy: 80.00% misses ≥ 90%\""),
            std::string::npos);
  EXPECT_NE(html.find("title=\"Trainable parameters: 2,000 meets ≤ 5,000\""),
            std::string::npos);
  EXPECT_NE(html.find("validation accuracy 80.0% &lt; 90.0%"),
            std::string::npos);
  // Summary for the accuracy, its check and feasibility.
  EXPECT_EQ(Count(html, "class=\"no\""), 3u);
  EXPECT_NE(html.find("<div class=\"value\">—</div>"), std::string::npos);
}

TEST(RenderReportHtmlTest, ClassificationSampleHasEverySection) {
  const ReportInput input = SampleClassificationReportInput();
  const std::string html = RenderReportHtml(input);
  for (const char* heading :
       {"Requirements", "Pareto front", "Candidates on the front",
        "Search progress", "Data and search"}) {
    EXPECT_NE(html.find(absl::StrCat("<h2>", heading, "</h2>")),
              std::string::npos)
        << heading;
  }
  EXPECT_EQ(Count(html, "<svg "), 4u);
  EXPECT_EQ(html.find("max abs"), std::string::npos);
  // 784 pixel columns are summarised, in the header and the data set.
  EXPECT_NE(html.find("pixel_0, pixel_1, …, pixel_783 (784 columns) → label "
                      "(10 classes)"),
            std::string::npos);
  EXPECT_NE(html.find("<span class=\"col\">… 777 more</span>"),
            std::string::npos);
  EXPECT_EQ(html.find(">pixel_400<"), std::string::npos);
  ASSERT_GT(input.front.candidates_size(), 2);
  ASSERT_TRUE(input.front.has_feasible());
  // Three requirements: a mark each per front member, with feasibility,
  // and one each in the requirements table.
  const size_t marks =
      Count(html, "class=\"yes\"") + Count(html, "class=\"no\"");
  EXPECT_EQ(marks, input.front.candidates_size() * 4u + 3u);
  EXPECT_FALSE(std::regex_search(html, std::regex("[^a-z](nan|inf)[^a-z]")));
}

TEST(RenderFrontSvgTest, ClassificationPlotsErrorRate) {
  const std::string svg = RenderFrontSvg(ClassificationInput());
  EXPECT_TRUE(absl::StartsWith(svg, "<?xml version=\"1.0\""));
  EXPECT_EQ(svg.find("max abs"), std::string::npos);
  EXPECT_NE(svg.find(">exp-cls: Validation error rate vs. model size<"),
            std::string::npos);
  EXPECT_NE(svg.find(">Validation error rate (1 − accuracy)</text>"),
            std::string::npos);
  EXPECT_NE(svg.find(">min accuracy 90%</text>"), std::string::npos);
  EXPECT_NE(svg.find(">max params 5k</text>"), std::string::npos);
  const auto [line_y, tick_y] = LimitAndTickY(svg, "10%");
  ASSERT_GT(line_y, 0);
  EXPECT_NEAR(line_y, tick_y, 0.11);
  // Feasible circles and infeasible crosses, as the controller judged.
  EXPECT_EQ(Count(svg, "stroke-linecap=\"round\""), 2u + 1u);  // + legend

  // Error rates from 3% to 20% span less than a decade: three ticks at
  // 1-2-5, not just 10% and 20%.
  for (const char* tick : {"5%", "10%", "20%"}) {
    EXPECT_NE(LimitAndTickY(svg, tick).second, -1) << tick;
  }

  // The sample's error rates lie between about 10% and 20%: round steps.
  const std::string sample = RenderFrontSvg(SampleClassificationReportInput());
  for (const char* tick : {"10%", "15%", "20%", "25%"}) {
    EXPECT_NE(LimitAndTickY(sample, tick).second, -1) << tick;
  }
  EXPECT_NE(sample.find(">min accuracy 85.5%</text>"), std::string::npos);
  EXPECT_NE(sample.find(">max params 60k</text>"), std::string::npos);
}

// The centres of the marks in the standalone front SVG `svg` whose element
// matches `pattern`, its first two groups the coordinates.
std::vector<std::pair<double, double>> Marks(const std::string& svg,
                                             const std::string& pattern) {
  std::vector<std::pair<double, double>> centres;
  const std::regex re(pattern);
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re);
       it != std::sregex_iterator(); ++it) {
    centres.push_back({std::stod((*it)[1]), std::stod((*it)[2])});
  }
  return centres;
}

TEST(RenderFrontPngTest, SameLayoutAsTheSvg) {
  const ReportInput input = ClassificationInput();
  const std::string svg = RenderFrontSvg(input);
  const absl::StatusOr<std::string> png = RenderFrontPng(input);
  ASSERT_TRUE(png.ok()) << png.status();
  const auto decoded = testing::DecodePng(*png);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const RgbImage& image = decoded->image;
  EXPECT_EQ(image.width, 2 * 960);
  EXPECT_EQ(image.height, 2 * 600);
  auto colour = [&](double x, double y) {
    return testing::PixelColour(image, static_cast<int>(2 * x),
                                static_cast<int>(2 * y));
  };

  // Feasible points (and the legend's swatch) are teal discs where the SVG
  // has them; infeasible ones grey crosses.
  const auto feasible =
      Marks(svg,
            "<circle cx=\"([0-9.]+)\" cy=\"([0-9.]+)\" r=\"4.0\" "
            "fill=\"#2a9d8f\"");
  ASSERT_EQ(feasible.size(), 2u + 1u);
  for (const auto& [x, y] : feasible) {
    EXPECT_EQ(colour(x, y), kFeasible) << x << " " << y;
  }
  const auto crosses =
      Marks(svg,
            "<path d=\"M([0-9.]+) ([0-9.]+)L[^\"]*\" fill=\"none\" "
            "stroke=\"#9aa3af\"");
  ASSERT_EQ(crosses.size(), 2u + 1u);
  for (const auto& [x, y] : crosses) {
    // From the cross's top left corner to its centre.
    EXPECT_EQ(colour(x + 3.2, y + 3.2), kInfeasible) << x << " " << y;
  }
  // Teal nowhere else: within 4 px (8 pixels) of a feasible point.
  int teal = 0;
  for (int py = 0; py < image.height; ++py) {
    for (int px = 0; px < image.width; ++px) {
      if (testing::PixelColour(image, px, py) != kFeasible) continue;
      ++teal;
      const bool near = std::any_of(
          feasible.begin(), feasible.end(), [&](const auto& centre) {
            return std::hypot(px + 0.5 - 2 * centre.first,
                              py + 0.5 - 2 * centre.second) < 8.5;
          });
      EXPECT_TRUE(near) << "teal at " << px << "," << py;
    }
  }
  EXPECT_GT(teal, 3 * 100);  // Three discs of radius 7 or so.

  // The requirement lines, dashed, where the SVG draws them.
  const auto [line_y, tick_y] = LimitAndTickY(svg, "10%");
  ASSERT_GT(line_y, 0);
  int dashes = 0;
  for (int px = 2 * 70; px < 2 * (960 - 18); ++px) {
    dashes +=
        testing::PixelColour(image, px, static_cast<int>(2 * line_y)) == kLimit;
  }
  EXPECT_GT(dashes, 2 * (960 - 88) / 2);
  EXPECT_LT(dashes, 2 * (960 - 88) * 7 / 10);

  // White margins around the plot area, which is off-white.
  for (const auto& [x, y] : std::vector<std::pair<double, double>>{
           {1, 1}, {959, 1}, {959, 599}, {1, 599}, {40, 300}, {950, 300}}) {
    EXPECT_EQ(colour(x, y), "#ffffff") << x << " " << y;
  }
  EXPECT_EQ(colour(940, 540), "#fbfcfd");
}

TEST(RenderFrontPngTest, ScaleOneAndAnEmptyExperiment) {
  ReportInput input;
  input.experiment.set_id("exp-empty");
  const absl::StatusOr<std::string> png = RenderFrontPng(input, 1);
  ASSERT_TRUE(png.ok()) << png.status();
  const auto decoded = testing::DecodePng(*png);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->image.width, 960);
  EXPECT_EQ(decoded->image.height, 600);
}

}  // namespace
}  // namespace evonas::client
