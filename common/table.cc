#include "common/table.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace evonas {
namespace {

constexpr absl::string_view kUtf8Bom = "\xEF\xBB\xBF";
// Longest cell or name quoted verbatim in an error message.
constexpr size_t kMaxQuotedBytes = 40;
// Most values reserved before parsing shows they are needed.
constexpr size_t kMaxReservedValues = size_t{1} << 25;
// Most column names listed in an "unknown column" message.
constexpr size_t kMaxListedColumns = 20;

// "1 column", "2 columns".
std::string Count(int64_t n, absl::string_view noun) {
  return absl::StrCat(n, " ", noun, n == 1 ? "" : "s");
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

absl::string_view Trim(absl::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

// Length of the valid UTF-8 sequence at the start of `s`, or 0 if `s` does
// not start with one (overlong forms, surrogates and > U+10FFFF excluded).
size_t Utf8SequenceLength(absl::string_view s) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  if (s.empty()) return 0;
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() < n || b(1) < lo || b(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if (b(i) < 0x80 || b(i) > 0xBF) return 0;
  }
  return n;
}

bool IsValidUtf8(absl::string_view s) {
  while (!s.empty()) {
    const size_t n = Utf8SequenceLength(s);
    if (n == 0) return false;
    s.remove_prefix(n);
  }
  return true;
}

// `s` in double quotes for an error message: control characters, quotes,
// backslashes and bytes that are not valid UTF-8 are escaped, and long text
// is shortened, so the message is printable and valid UTF-8.
std::string Quote(absl::string_view s) {
  std::string out = "\"";
  size_t shown = 0;
  while (!s.empty()) {
    if (shown >= kMaxQuotedBytes) {
      out += "...";
      break;
    }
    const unsigned char c = static_cast<unsigned char>(s.front());
    const size_t n = Utf8SequenceLength(s);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7F || n == 0) {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    } else {
      out.append(s.data(), n);
      s.remove_prefix(n);
      shown += n;
      continue;
    }
    s.remove_prefix(1);
    ++shown;
  }
  out += '"';
  return out;
}

int64_t LineOfOffset(absl::string_view text, size_t offset) {
  return 1 + std::count(text.begin(), text.begin() + offset, '\n');
}

// Splits CSV text into fields and records. Line numbers are 1-based physical
// lines, so a quoted field spanning lines advances them.
class CsvLexer {
 public:
  enum class Result {
    kOk,
    kUnterminatedQuote,   // EOF inside a quoted field
    kJunkAfterQuote,      // e.g. "ab"c
    kQuoteInUnquoted,     // e.g. ab"c
    kStrayCarriageReturn  // CR not followed by LF
  };

  explicit CsvLexer(absl::string_view text) : text_(text) {}

  bool AtEnd() const { return pos_ >= text_.size(); }
  int64_t line() const { return line_; }
  size_t position() const { return pos_; }

  // True when the rest of the current line holds only spaces and tabs.
  bool AtBlankLine() const {
    size_t p = pos_;
    while (p < text_.size() && IsBlank(text_[p])) ++p;
    return p >= text_.size() || text_[p] == '\n' ||
           (text_[p] == '\r' &&
            (p + 1 >= text_.size() || text_[p + 1] == '\n'));
  }

  // Skips one blank line (see AtBlankLine) including its line end.
  void SkipBlankLine() {
    while (pos_ < text_.size() && IsBlank(text_[pos_])) ++pos_;
    ConsumeLineEnd();
  }

  // Reads the next field into *field with surrounding spaces and tabs removed
  // (inside and outside quotes). *field stays valid until the next call.
  // Sets *end_of_record when the field ended its record (line end or EOF).
  Result NextField(absl::string_view* field, bool* end_of_record) {
    while (pos_ < text_.size() && IsBlank(text_[pos_])) ++pos_;
    if (pos_ < text_.size() && text_[pos_] == '"') {
      return QuotedField(field, end_of_record);
    }
    const size_t start = pos_;
    const char* const data = text_.data();
    const size_t size = text_.size();
    size_t p = pos_;
    // Hot loop: most bytes of a large file pass through here.
    while (p < size) {
      const char c = data[p];
      if (c == ',' || c == '\n' || c == '\r' || c == '"') break;
      ++p;
    }
    pos_ = p;
    if (p < size && data[p] == '"') return Result::kQuoteInUnquoted;
    *field = Trim(text_.substr(start, p - start));
    return EndField(end_of_record);
  }

 private:
  Result QuotedField(absl::string_view* field, bool* end_of_record) {
    ++pos_;  // opening quote
    scratch_.clear();
    bool escaped = false;
    size_t start = pos_;
    for (;;) {
      const void* q =
          std::memchr(text_.data() + pos_, '"', text_.size() - pos_);
      if (q == nullptr) return Result::kUnterminatedQuote;
      const size_t quote = static_cast<const char*>(q) - text_.data();
      line_ += std::count(text_.begin() + pos_, text_.begin() + quote, '\n');
      if (quote + 1 < text_.size() && text_[quote + 1] == '"') {
        // "" stands for one quote character.
        scratch_.append(text_.data() + start, quote + 1 - start);
        escaped = true;
        pos_ = quote + 2;
        start = pos_;
        continue;
      }
      if (escaped) {
        scratch_.append(text_.data() + start, quote - start);
        *field = Trim(scratch_);
      } else {
        *field = Trim(text_.substr(start, quote - start));
      }
      pos_ = quote + 1;
      break;
    }
    while (pos_ < text_.size() && IsBlank(text_[pos_])) ++pos_;
    if (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\n' &&
        text_[pos_] != '\r') {
      return Result::kJunkAfterQuote;
    }
    return EndField(end_of_record);
  }

  // At a separator, line end or EOF: consumes it.
  Result EndField(bool* end_of_record) {
    if (pos_ >= text_.size()) {
      *end_of_record = true;
      return Result::kOk;
    }
    if (text_[pos_] == ',') {
      ++pos_;
      *end_of_record = false;
      return Result::kOk;
    }
    *end_of_record = true;
    return ConsumeLineEnd() ? Result::kOk : Result::kStrayCarriageReturn;
  }

  // Consumes "\n", "\r\n" or a final "\r"; false for a CR followed by
  // anything else.
  bool ConsumeLineEnd() {
    if (pos_ >= text_.size()) return true;
    if (text_[pos_] == '\r') {
      if (pos_ + 1 < text_.size() && text_[pos_ + 1] != '\n') return false;
      ++pos_;
    }
    if (pos_ < text_.size()) ++pos_;  // '\n'
    ++line_;
    return true;
  }

  absl::string_view text_;
  size_t pos_ = 0;
  int64_t line_ = 1;
  std::string scratch_;  // unescaped content of a quoted field with ""
};

// Decimal exponent of the leading significant digit of a decimal number in
// `s` (already known to be syntactically a number), e.g. 2 for "123.4",
// -3 for "0.00123", -398 for "12e-400". Used only to tell underflow from
// overflow.
int64_t DecimalMagnitude(absl::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  int64_t int_digits = 0;  // significant digits before the point
  int64_t zeros_after_point = 0;
  bool seen_nonzero = false;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    if (s[i] != '0') seen_nonzero = true;
    if (seen_nonzero) ++int_digits;
  }
  if (i < s.size() && s[i] == '.') {
    for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
      if (s[i] != '0') seen_nonzero = true;
      if (!seen_nonzero) ++zeros_after_point;
    }
  }
  int64_t exponent = 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    bool negative = false;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) negative = s[i++] == '-';
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
      exponent = std::min<int64_t>(exponent * 10 + (s[i] - '0'), 1000000);
    }
    if (negative) exponent = -exponent;
  }
  return (int_digits > 0 ? int_digits - 1 : -zeros_after_point - 1) + exponent;
}

// Parses all of `cell` as a finite double. On failure returns false and sets
// *problem to the end of a sentence that starts with the quoted cell.
bool ParseNumber(absl::string_view cell, double* value, std::string* problem) {
  absl::string_view s = cell;
  // from_chars rejects a leading '+'; accept it before a digit or point.
  if (s.size() >= 2 && s[0] == '+' &&
      ((s[1] >= '0' && s[1] <= '9') || s[1] == '.')) {
    s.remove_prefix(1);
  }
  const char* const end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, *value);
  if (ec == std::errc::invalid_argument || ptr != end) {
    *problem = "is not a number";
    if (cell.find_first_of(";\t") != absl::string_view::npos) {
      *problem += " (fields must be separated by commas)";
    }
    return false;
  }
  if (ec == std::errc::result_out_of_range) {
    if (DecimalMagnitude(s) < 0) {
      // Too small for a double: round to zero, as strtod does.
      *value = s[0] == '-' ? -0.0 : 0.0;
      return true;
    }
    *problem = "is outside the range of a double";
    return false;
  }
  if (!std::isfinite(*value)) {
    *problem = "is not a finite number (NaN and infinity are not allowed)";
    return false;
  }
  return true;
}

std::string LexerProblem(CsvLexer::Result result) {
  switch (result) {
    case CsvLexer::Result::kOk:
      return "";
    case CsvLexer::Result::kUnterminatedQuote:
      return "quoted field is never closed (missing \")";
    case CsvLexer::Result::kJunkAfterQuote:
      return "unexpected text after the closing quote of a quoted field "
             "(write a quote inside a quoted field as \"\")";
    case CsvLexer::Result::kQuoteInUnquoted:
      return "a quote may only start a field (put the whole field in quotes "
             "and write the quote as \"\")";
    case CsvLexer::Result::kStrayCarriageReturn:
      return "carriage return not followed by a line feed (old Mac line "
             "ends?); use LF or CRLF line ends";
  }
  return "malformed CSV";
}

absl::Status ParseError(int64_t line, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", message));
}

absl::Status CellError(int64_t line, absl::string_view column,
                       absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(
      "line ", line, ", column ",
      Quote(absl::string_view(column.data(), column.size())), ": ", message));
}

// Counts the remaining fields of the current record (for a message about a
// ragged row); the lexer is left at the start of the next record.
int64_t CountRemainingFields(CsvLexer& lexer, bool* all_empty) {
  int64_t n = 0;
  *all_empty = true;
  bool end = false;
  while (!end) {
    absl::string_view field;
    if (lexer.NextField(&field, &end) != CsvLexer::Result::kOk) break;
    ++n;
    if (!field.empty()) *all_empty = false;
  }
  return n;
}

absl::StatusOr<std::vector<std::string>> ParseHeader(CsvLexer& lexer,
                                                     const CsvLimits& limits) {
  if (lexer.AtEnd()) {
    return absl::InvalidArgumentError(
        "CSV is empty; expected a header line of column names followed by "
        "rows of numbers");
  }
  if (lexer.AtBlankLine()) {
    return ParseError(1,
                      "the header line is blank; the first line must hold the "
                      "column names");
  }
  std::vector<std::string> columns;
  std::unordered_map<std::string, int64_t> seen;  // name -> 1-based index
  bool end = false;
  while (!end) {
    absl::string_view name;
    const CsvLexer::Result result = lexer.NextField(&name, &end);
    const int64_t index = static_cast<int64_t>(columns.size()) + 1;
    if (result != CsvLexer::Result::kOk) {
      return ParseError(lexer.line(), absl::StrCat("header column ", index,
                                                   ": ", LexerProblem(result)));
    }
    if (index > limits.max_columns) {
      return ParseError(
          1, absl::StrCat("more than ", limits.max_columns,
                          " columns; the limit is ", limits.max_columns));
    }
    if (name.empty()) {
      return ParseError(
          1, absl::StrCat("header column ", index,
                          " has an empty name; every column needs a name",
                          end && index > 1 ? " (trailing comma?)" : ""));
    }
    if (!IsValidUtf8(name)) {
      return ParseError(1, absl::StrCat("header column ", index, " name ",
                                        Quote(name), " is not valid UTF-8"));
    }
    if (std::any_of(name.begin(), name.end(), [](char c) {
          return static_cast<unsigned char>(c) < 0x20 || c == 0x7F;
        })) {
      return ParseError(
          1, absl::StrCat("header column ", index, " name ", Quote(name),
                          " contains a control character"));
    }
    columns.emplace_back(name);
    const auto [it, inserted] = seen.emplace(columns.back(), index);
    if (!inserted) {
      return ParseError(
          1, absl::StrCat("column name ", Quote(name),
                          " appears twice (columns ", it->second, " and ",
                          index, "); column names must be unique"));
    }
  }
  return columns;
}

absl::StatusOr<Table> ParseCsvOrThrow(absl::string_view text,
                                      const CsvLimits& limits) {
  if (static_cast<uint64_t>(text.size()) >
      static_cast<uint64_t>(std::max<int64_t>(limits.max_bytes, 0))) {
    return absl::InvalidArgumentError(absl::StrCat("CSV is ", text.size(),
                                                   " bytes; the limit is ",
                                                   limits.max_bytes, " bytes"));
  }
  if (text.substr(0, 2) == "\xFF\xFE" || text.substr(0, 2) == "\xFE\xFF") {
    return absl::InvalidArgumentError(
        "CSV looks UTF-16 encoded (byte-order mark FF FE or FE FF); save it as "
        "UTF-8");
  }
  if (text.substr(0, kUtf8Bom.size()) == kUtf8Bom) {
    text.remove_prefix(kUtf8Bom.size());
  }
  if (const void* nul = std::memchr(text.data(), '\0', text.size())) {
    const size_t offset = static_cast<const char*>(nul) - text.data();
    return ParseError(LineOfOffset(text, offset),
                      "contains a NUL byte; the file is binary or not UTF-8 "
                      "text, not a CSV");
  }

  CsvLexer lexer(text);
  Table table;
  {
    auto columns = ParseHeader(lexer, limits);
    if (!columns.ok()) return std::move(columns).status();
    table.columns = *std::move(columns);
  }
  const int64_t cols = table.cols();
  const size_t data_start = lexer.position();

  while (!lexer.AtEnd()) {
    const int64_t line = lexer.line();
    if (lexer.AtBlankLine()) {
      while (!lexer.AtEnd() && lexer.AtBlankLine()) lexer.SkipBlankLine();
      if (lexer.AtEnd()) break;  // trailing blank lines are fine
      return ParseError(line,
                        "blank line; blank lines are only allowed at the end "
                        "of the file");
    }
    int64_t col = 0;
    bool end = false;
    while (!end) {
      absl::string_view cell;
      const CsvLexer::Result result = lexer.NextField(&cell, &end);
      if (result != CsvLexer::Result::kOk) {
        if (col < cols) {
          return CellError(result == CsvLexer::Result::kUnterminatedQuote
                               ? line
                               : lexer.line(),
                           table.columns[col], LexerProblem(result));
        }
        return ParseError(lexer.line(), LexerProblem(result));
      }
      if (col >= cols) {
        bool rest_empty = true;
        const int64_t found =
            col + 1 + (end ? 0 : CountRemainingFields(lexer, &rest_empty));
        rest_empty = rest_empty && cell.empty();
        return ParseError(
            line, absl::StrCat(Count(found, "field"), ", but the header has ",
                               Count(cols, "column"),
                               rest_empty ? " (trailing comma?)" : ""));
      }
      if (cell.empty()) {
        return CellError(line, table.columns[col],
                         "empty cell; every cell must hold a number");
      }
      double value;
      std::string problem;
      if (!ParseNumber(cell, &value, &problem)) {
        return CellError(line, table.columns[col],
                         absl::StrCat(Quote(cell), " ", problem));
      }
      table.values.push_back(value);
      ++col;
    }
    if (col < cols) {
      return ParseError(
          line, absl::StrCat("only ", Count(col, "field"),
                             ", but the header has ", Count(cols, "column"),
                             " (missing ", Quote(table.columns[col]), ")"));
    }
    ++table.rows;
    if (table.rows == 1) {
      // Reserve for the whole table, guessing from the first row's length.
      const size_t row_bytes =
          std::max<size_t>(lexer.position() - data_start, 1);
      const size_t rows_guess = (text.size() - data_start) / row_bytes + 1;
      // Capped so that a short first row cannot reserve gigabytes up front.
      table.values.reserve(std::min<size_t>(
          rows_guess * cols + rows_guess * cols / 8, kMaxReservedValues));
    }
  }
  if (table.rows == 0) {
    return absl::InvalidArgumentError(
        "CSV has a header but no data rows; at least one row is required");
  }
  if (table.values.capacity() > table.values.size() + table.values.size() / 4) {
    table.values.shrink_to_fit();
  }
  return table;
}

}  // namespace

absl::StatusOr<Table> ParseCsv(absl::string_view text, const CsvLimits& limits) {
  try {
    return ParseCsvOrThrow(text, limits);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "not enough memory to parse a CSV of ", text.size(), " bytes"));
  }
}

absl::StatusOr<std::vector<int64_t>> ColumnIndices(
    const Table& table, const std::vector<std::string>& names) {
  std::vector<int64_t> indices;
  indices.reserve(names.size());
  for (const std::string& name : names) {
    const auto it = std::find(table.columns.begin(), table.columns.end(), name);
    if (it == table.columns.end()) {
      std::vector<std::string> known;
      for (size_t i = 0; i < table.columns.size() && i < kMaxListedColumns;
           ++i) {
        known.push_back(Quote(table.columns[i]));
      }
      std::string list = absl::StrJoin(known, ", ");
      if (table.columns.size() > kMaxListedColumns) {
        absl::StrAppend(&list, " and ",
                        table.columns.size() - kMaxListedColumns, " more");
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown column ", Quote(name), "; the data set has columns ", list));
    }
    indices.push_back(it - table.columns.begin());
  }
  return indices;
}

std::vector<double> SelectColumns(const Table& table,
                                  const std::vector<int64_t>& row_indices,
                                  const std::vector<int64_t>& column_indices) {
  std::vector<double> out;
  out.reserve(row_indices.size() * column_indices.size());
  const int64_t cols = table.cols();
  for (const int64_t row : row_indices) {
    assert(row >= 0 && row < table.rows);
    const double* const values = table.values.data() + row * cols;
    for (const int64_t col : column_indices) {
      assert(col >= 0 && col < cols);
      out.push_back(values[col]);
    }
  }
  return out;
}

}  // namespace evonas
