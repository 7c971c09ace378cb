#include "client/watch.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/csv.h"
#include "client/output.h"
#include "common/requirements.h"
#include "common/timestamps.h"

namespace evonas::client {
namespace {

bool Finished(const v1::Experiment& e) {
  return e.state() == v1::EXPERIMENT_STATE_COMPLETED ||
         e.state() == v1::EXPERIMENT_STATE_CANCELLED;
}

absl::Duration Elapsed(const v1::Experiment& e, absl::Time now) {
  if (!IsSet(e.created_at())) return absl::ZeroDuration();
  const absl::Time end = IsSet(e.finished_at()) ? ToTime(e.finished_at()) : now;
  return std::max(absl::ZeroDuration(), end - ToTime(e.created_at()));
}

// ANSI SGR sequences, or nothing when not on a terminal.
struct Style {
  bool on;
  std::string operator()(const char* code, const std::string& text) const {
    return on ? absl::StrCat("\033[", code, "m", text, "\033[0m") : text;
  }
};
constexpr char kBold[] = "1";
constexpr char kDim[] = "2";
constexpr char kRed[] = "31";
constexpr char kGreen[] = "32";
constexpr char kYellow[] = "33";
constexpr char kCyan[] = "36";

}  // namespace

void SummarizeFront(const v1::ParetoFront& front, WatchSnapshot* snapshot) {
  snapshot->front_size = front.candidates_size();
  snapshot->best_feasible_error.reset();
  for (const v1::Candidate& c : front.candidates()) {
    if (!c.feasible()) continue;
    const double error = SearchEvaluation(c.metrics()).max_abs_error();
    if (!snapshot->best_feasible_error.has_value() ||
        error < *snapshot->best_feasible_error) {
      snapshot->best_feasible_error = error;
    }
  }
}

std::optional<absl::Duration> EstimateRemaining(const v1::Experiment& e,
                                                absl::Time now) {
  if (Finished(e)) return absl::ZeroDuration();
  if (!IsSet(e.created_at())) return std::nullopt;
  const absl::Duration elapsed = Elapsed(e, now);
  std::optional<absl::Duration> remaining;
  if (e.spec().budget().max_wall_seconds() > 0) {
    remaining = std::max(
        absl::ZeroDuration(),
        absl::Seconds(e.spec().budget().max_wall_seconds()) - elapsed);
  }
  const int64_t finished = e.counts().succeeded() + e.counts().failed();
  const int64_t budget = e.spec().budget().max_candidates();
  if (budget > 0 && finished > 0 && elapsed > absl::ZeroDuration()) {
    const absl::Duration by_rate =
        elapsed * (static_cast<double>(std::max<int64_t>(budget - finished, 0)) /
                   static_cast<double>(finished));
    remaining = remaining.has_value() ? std::min(*remaining, by_rate) : by_rate;
  }
  return remaining;
}

std::optional<double> BudgetFraction(const v1::Experiment& e, absl::Time now) {
  if (e.state() == v1::EXPERIMENT_STATE_COMPLETED) return 1.0;
  std::optional<double> fraction;
  const v1::Budget& budget = e.spec().budget();
  if (budget.max_candidates() > 0) {
    fraction = static_cast<double>(e.counts().succeeded() + e.counts().failed()) /
               static_cast<double>(budget.max_candidates());
  }
  if (budget.max_wall_seconds() > 0 && IsSet(e.created_at())) {
    const double by_time = absl::ToDoubleSeconds(Elapsed(e, now)) /
                           budget.max_wall_seconds();
    fraction = std::max(fraction.value_or(0.0), by_time);
  }
  if (fraction.has_value()) fraction = std::clamp(*fraction, 0.0, 1.0);
  return fraction;
}

std::string WatchLine(const WatchSnapshot& snapshot, absl::Time now, bool tty,
                      bool color) {
  const v1::Experiment& e = snapshot.experiment;
  const Style style{color};
  const v1::CandidateCounts& n = e.counts();
  std::vector<std::string> parts;

  const std::string state = ExperimentStateName(e.state());
  const char* state_colour = e.state() == v1::EXPERIMENT_STATE_COMPLETED
                                 ? kGreen
                                 : e.state() == v1::EXPERIMENT_STATE_RUNNING
                                       ? kCyan
                                       : kYellow;
  std::string head = absl::StrCat(style(kBold, e.id()), " ",
                                  style(state_colour, state));
  if (std::optional<double> f = BudgetFraction(e, now); f.has_value()) {
    if (tty) {
      constexpr int kWidth = 16;
      const int full = static_cast<int>(std::round(*f * kWidth));
      std::string bar;
      for (int i = 0; i < kWidth; ++i) bar += i < full ? "█" : "░";
      absl::StrAppend(&head, " ", style(state_colour, bar));
    }
    absl::StrAppend(&head, " ", static_cast<int>(std::floor(*f * 100)), "%");
  }
  parts.push_back(head);

  parts.push_back(absl::StrCat(
      style(kGreen, absl::StrCat(n.succeeded(), " done")), ", ",
      style(kCyan, absl::StrCat(n.running(), " running")), ", ",
      style(kDim, absl::StrCat(n.queued(), " queued")), ", ",
      n.failed() > 0 ? style(kRed, absl::StrCat(n.failed(), " failed"))
                     : absl::StrCat(n.failed(), " failed")));
  parts.push_back(
      snapshot.best_feasible_error.has_value()
          ? absl::StrCat("best feasible ",
                         style(kBold, absl::StrFormat(
                                          "%.2e", *snapshot.best_feasible_error)))
          : style(kYellow, "no feasible yet"));
  parts.push_back(absl::StrCat("front ", snapshot.front_size));

  std::string time =
      absl::StrCat("elapsed ", ShortDuration(Elapsed(e, now)));
  if (!Finished(e)) {
    const std::optional<absl::Duration> left = EstimateRemaining(e, now);
    absl::StrAppend(&time, ", ",
                    left.has_value()
                        ? absl::StrCat("~", ShortDuration(*left), " left")
                        : "time left unknown");
  }
  parts.push_back(time);
  return absl::StrJoin(parts, tty ? "  " : " | ");
}

std::string WatchCsvHeader() {
  return CsvRecord({"time", "experiment_id", "state", "queued", "running",
                    "succeeded", "failed", "cancelled", "feasible",
                    "best_feasible_error", "front_size", "elapsed_seconds",
                    "remaining_seconds"});
}

std::string WatchCsvRow(const WatchSnapshot& snapshot, absl::Time now) {
  const v1::Experiment& e = snapshot.experiment;
  const v1::CandidateCounts& n = e.counts();
  const std::optional<absl::Duration> left = EstimateRemaining(e, now);
  return CsvRecord(
      {absl::FormatTime(absl::RFC3339_full, now, absl::UTCTimeZone()), e.id(),
       ExperimentStateName(e.state()), absl::StrCat(n.queued()),
       absl::StrCat(n.running()), absl::StrCat(n.succeeded()),
       absl::StrCat(n.failed()), absl::StrCat(n.cancelled()),
       absl::StrCat(e.feasible_count()),
       snapshot.best_feasible_error.has_value()
           ? CsvNumber(*snapshot.best_feasible_error)
           : "",
       absl::StrCat(snapshot.front_size),
       CsvNumber(absl::ToDoubleSeconds(Elapsed(e, now))),
       left.has_value() ? CsvNumber(absl::ToDoubleSeconds(*left)) : ""});
}

std::string HumanBytes(int64_t bytes) {
  constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double value = static_cast<double>(bytes);
  int unit = -1;
  while (value >= 1024 && unit < 3) {
    value /= 1024;
    ++unit;
  }
  return absl::StrFormat(value < 10 && unit >= 2 ? "%.2f %s" : "%.1f %s",
                         value, kUnits[unit]);
}

namespace {

// Bytes per second, or nullopt before any measurable time passed.
std::optional<double> UploadRate(int64_t sent_bytes, absl::Duration elapsed) {
  if (elapsed < absl::Milliseconds(100)) return std::nullopt;
  return static_cast<double>(sent_bytes) / absl::ToDoubleSeconds(elapsed);
}

std::string RateText(double bytes_per_second) {
  return absl::StrCat(
      HumanBytes(static_cast<int64_t>(std::llround(bytes_per_second))), "/s");
}

}  // namespace

std::string UploadProgressLine(int64_t sent_bytes, int64_t total_bytes,
                               absl::Duration elapsed, bool color) {
  const Style style{color};
  std::vector<std::string> parts = {style(kBold, "uploading")};
  const std::optional<double> rate = UploadRate(sent_bytes, elapsed);
  if (total_bytes > 0) {
    const double fraction = std::min(
        1.0, static_cast<double>(sent_bytes) / static_cast<double>(total_bytes));
    constexpr int kWidth = 16;
    const int full = static_cast<int>(std::round(fraction * kWidth));
    std::string bar;
    for (int i = 0; i < kWidth; ++i) bar += i < full ? "█" : "░";
    parts.push_back(absl::StrCat(style(kCyan, bar), " ",
                                 static_cast<int>(std::floor(fraction * 100)),
                                 "%"));
    parts.push_back(absl::StrCat(HumanBytes(sent_bytes), " / ",
                                 HumanBytes(total_bytes)));
  } else {
    parts.push_back(HumanBytes(sent_bytes));
  }
  if (rate.has_value()) {
    parts.push_back(RateText(*rate));
    if (total_bytes > 0 && *rate > 0) {
      const double left_seconds =
          static_cast<double>(std::max<int64_t>(0, total_bytes - sent_bytes)) /
          *rate;
      parts.push_back(absl::StrCat(
          "~", ShortDuration(absl::Seconds(std::ceil(left_seconds))),
          " left"));
    }
  }
  return absl::StrJoin(parts, "  ");
}

std::string UploadDoneLine(int64_t sent_bytes, absl::Duration elapsed) {
  std::string line = absl::StrCat("uploaded ", HumanBytes(sent_bytes), " in ",
                                  ShortDuration(elapsed));
  if (const std::optional<double> rate = UploadRate(sent_bytes, elapsed);
      rate.has_value()) {
    absl::StrAppend(&line, " (", RateText(*rate), ")");
  }
  return line;
}

}  // namespace evonas::client
