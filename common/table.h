#ifndef EVONAS_COMMON_TABLE_H_
#define EVONAS_COMMON_TABLE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace evonas {

// A dense table of finite doubles, row-major, with named columns.
struct Table {
  std::vector<std::string> columns;
  int64_t rows = 0;
  std::vector<double> values;  // rows * columns.size()

  int64_t cols() const { return static_cast<int64_t>(columns.size()); }
  double at(int64_t row, int64_t col) const {
    return values[row * cols() + col];
  }
};

// Limits that protect the parser from hostile input.
struct CsvLimits {
  int64_t max_columns = 10000;
  int64_t max_bytes = int64_t{1} << 30;
};

// Parses a CSV text with a header row of unique, non-empty, UTF-8 column
// names and at least one numeric data row, each with as many fields as the
// header. Accepts a UTF-8 byte-order mark, CRLF or LF line ends, a missing
// final newline, blank lines at the end, and double-quoted fields ("" is a
// quote inside one). Spaces and tabs around every field and name are
// dropped. Every cell must parse completely as a finite double (decimal or
// exponent notation, optional sign; too small a magnitude rounds to zero);
// NaN, infinity, out-of-range and empty cells are errors. Returns
// InvalidArgument naming the 1-based line (header = line 1) and column of
// the first problem, e.g. `line 17, column "x2": "abc" is not a number`, also
// for NUL bytes, blank lines between rows and text over `limits`;
// ResourceExhausted when memory runs out.
absl::StatusOr<Table> ParseCsv(absl::string_view text,
                               const CsvLimits& limits = CsvLimits());

// Returns the indices of `names` in `table.columns`, in the order given, or
// InvalidArgument naming an unknown column (and listing the known ones).
absl::StatusOr<std::vector<int64_t>> ColumnIndices(
    const Table& table, const std::vector<std::string>& names);

// Copies the given columns (by index) of the given rows into a new row-major
// matrix of rows.size() x column_indices.size(). Every index must be in
// range (checked only by assert).
std::vector<double> SelectColumns(const Table& table,
                                  const std::vector<int64_t>& row_indices,
                                  const std::vector<int64_t>& column_indices);

}  // namespace evonas

#endif  // EVONAS_COMMON_TABLE_H_
