#include "client/report.h"

#include <cmath>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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
  const size_t marks = Count(html, "class=\"yes\"") + Count(html, "class=\"no\"");
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

}  // namespace
}  // namespace evonas::client
