#include "common/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace evonas::log {
namespace {

std::atomic<int> min_level{static_cast<int>(Level::kInfo)};

// Guards the sink and serialises writes, so that lines never interleave.
std::mutex& SinkMutex() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}
Sink& CurrentSink() {
  static Sink* sink = new Sink;
  return *sink;
}

bool NeedsQuotes(absl::string_view value) {
  if (value.empty()) return true;
  for (char ch : value) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f) {
      return true;
    }
  }
  return false;
}

void AppendValue(std::string& out, absl::string_view value) {
  if (!NeedsQuotes(value)) {
    out.append(value.data(), value.size());
    return;
  }
  out.push_back('"');
  for (char ch : value) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        if (c < 0x20 || c == 0x7f) {
          absl::StrAppendFormat(&out, "\\x%02x", c);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

}  // namespace

absl::StatusOr<Level> ParseLevel(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "debug") return Level::kDebug;
  if (lower == "info") return Level::kInfo;
  if (lower == "warning" || lower == "warn") return Level::kWarning;
  if (lower == "error") return Level::kError;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown log level \"", absl::CEscape(name),
      "\"; use debug, info, warning or error"));
}

absl::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarning: return "warning";
    case Level::kError: return "error";
  }
  return "info";
}

std::string FormatLine(absl::Time time, Level level, absl::string_view event,
                       std::initializer_list<Field> fields) {
  std::string line = absl::StrCat(
      "ts=",
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone()),
      " level=", LevelName(level), " event=");
  AppendValue(line, event);
  for (const Field& field : fields) {
    absl::StrAppend(&line, " ", field.key, "=");
    AppendValue(line, field.value);
  }
  return line;
}

void SetMinLevel(Level level) {
  min_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

bool Enabled(Level level) {
  return static_cast<int>(level) >=
         min_level.load(std::memory_order_relaxed);
}

void Event(Level level, absl::string_view event,
           std::initializer_list<Field> fields) {
  if (!Enabled(level)) return;
  const std::string line = FormatLine(absl::Now(), level, event, fields);
  std::lock_guard<std::mutex> lock(SinkMutex());
  if (CurrentSink()) {
    CurrentSink()(line);
    return;
  }
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fputc('\n', stderr);
}

void SetSinkForTesting(Sink sink) {
  std::lock_guard<std::mutex> lock(SinkMutex());
  CurrentSink() = std::move(sink);
}

}  // namespace evonas::log
