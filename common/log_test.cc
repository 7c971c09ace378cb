#include "common/log.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace evonas::log {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const absl::Time kTime = absl::FromUnixMillis(1795078905123);  // 2026-11-19

TEST(FormatLineTest, BareValuesAndTimestampInUtcMilliseconds) {
  EXPECT_EQ(FormatLine(kTime, Level::kInfo, "experiment_created",
                       {{"experiment", "exp-1f2e"}, {"candidates", 12},
                        {"fraction", 0.25}}),
            "ts=2026-11-19T09:01:45.123Z level=info event=experiment_created "
            "experiment=exp-1f2e candidates=12 fraction=0.25");
}

TEST(FormatLineTest, QuotesAndEscapesValuesThatWouldBreakTheLine) {
  EXPECT_EQ(FormatLine(kTime, Level::kWarning, "candidate_failed",
                       {{"reason", "loss is NaN\nat step \"7\""},
                        {"path", "C:\\tmp"},
                        {"equation", "a=b"},
                        {"empty", ""},
                        {"bell", std::string("x\x07y")},
                        {"tab", "a\tb\r"}}),
            "ts=2026-11-19T09:01:45.123Z level=warning event=candidate_failed "
            "reason=\"loss is NaN\\nat step \\\"7\\\"\" path=\"C:\\\\tmp\" "
            "equation=\"a=b\" empty=\"\" bell=\"x\\x07y\" tab=\"a\\tb\\r\"");
}

TEST(FormatLineTest, Utf8PassesThroughUnquoted) {
  EXPECT_EQ(FormatLine(kTime, Level::kError, "e", {{"name", "Müller–Σ"}}),
            "ts=2026-11-19T09:01:45.123Z level=error event=e name=Müller–Σ");
}

TEST(ParseLevelTest, AcceptsNamesCaseInsensitively) {
  EXPECT_EQ(*ParseLevel("debug"), Level::kDebug);
  EXPECT_EQ(*ParseLevel("INFO"), Level::kInfo);
  EXPECT_EQ(*ParseLevel("warn"), Level::kWarning);
  EXPECT_EQ(*ParseLevel("Warning"), Level::kWarning);
  EXPECT_EQ(*ParseLevel("error"), Level::kError);
  absl::StatusOr<Level> bad = ParseLevel("verbose");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("debug, info, warning"));
}

TEST(EventTest, DropsLinesBelowTheMinimumLevel) {
  std::vector<std::string> lines;
  SetSinkForTesting([&](absl::string_view line) { lines.emplace_back(line); });
  SetMinLevel(Level::kWarning);
  Info("ignored");
  Warning("kept", {{"k", "v"}});
  Error("also_kept");
  SetMinLevel(Level::kDebug);
  Debug("now_kept");
  SetMinLevel(Level::kInfo);
  SetSinkForTesting(nullptr);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[0], HasSubstr(" level=warning event=kept k=v"));
  EXPECT_THAT(lines[1], HasSubstr(" level=error event=also_kept"));
  EXPECT_THAT(lines[2], HasSubstr(" level=debug event=now_kept"));
}

}  // namespace
}  // namespace evonas::log
