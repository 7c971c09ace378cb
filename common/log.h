#ifndef EVONAS_COMMON_LOG_H_
#define EVONAS_COMMON_LOG_H_

// Structured logs: one logfmt line per significant event, on stderr,
//   ts=2026-11-22T09:01:45.123Z level=info event=experiment_created experiment=exp-1f2e
// which people read and grep, and log pipelines (Loki, Vector, Fluent Bit)
// parse without configuration.

#include <functional>
#include <initializer_list>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace evonas::log {

enum class Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// "debug", "info", "warning" (or "warn"), "error"; InvalidArgument naming the
// accepted values otherwise.
absl::StatusOr<Level> ParseLevel(absl::string_view name);
absl::string_view LevelName(Level level);

// One key=value pair of a line. Keys are identifiers chosen in code; values
// are anything absl::StrCat accepts (text, integers, floating point).
struct Field {
  Field(absl::string_view key, const absl::AlphaNum& value)
      : key(key), value(value.Piece()) {}
  absl::string_view key;
  std::string value;
};

// The line for an event, without the newline. A value is written bare when
// it is non-empty and has no space, '=', '"', '\\' or control character;
// otherwise in double quotes with '"', '\\', \n, \r, \t escaped as such and
// other control characters as \xHH. UTF-8 passes through unchanged.
std::string FormatLine(absl::Time time, Level level, absl::string_view event,
                       std::initializer_list<Field> fields);

// Lines below the minimum level (default kInfo) are dropped. Thread-safe.
void SetMinLevel(Level level);
bool Enabled(Level level);

// Writes the event's line if its level is enabled. Thread-safe: lines never
// interleave.
void Event(Level level, absl::string_view event,
           std::initializer_list<Field> fields = {});
inline void Debug(absl::string_view event,
                  std::initializer_list<Field> fields = {}) {
  Event(Level::kDebug, event, fields);
}
inline void Info(absl::string_view event,
                 std::initializer_list<Field> fields = {}) {
  Event(Level::kInfo, event, fields);
}
inline void Warning(absl::string_view event,
                    std::initializer_list<Field> fields = {}) {
  Event(Level::kWarning, event, fields);
}
inline void Error(absl::string_view event,
                  std::initializer_list<Field> fields = {}) {
  Event(Level::kError, event, fields);
}

// Where lines go (each without its newline); nullptr restores stderr. For
// tests that check what is logged.
using Sink = std::function<void(absl::string_view line)>;
void SetSinkForTesting(Sink sink);

}  // namespace evonas::log

#endif  // EVONAS_COMMON_LOG_H_
