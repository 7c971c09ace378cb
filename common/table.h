#ifndef EVONAS_COMMON_TABLE_H_
#define EVONAS_COMMON_TABLE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace evonas {

// A dense table of finite doubles, row-major, with named columns.
struct Table {
  std::vector<std::string> columns;
  int64_t rows = 0;
  std::vector<double> values;  // rows * columns.size()

  int64_t cols() const { return static_cast<int64_t>(columns.size()); }
  double at(int64_t row, int64_t col) const { return values[row * cols() + col]; }
};

// Limits that protect the parser from hostile input.
struct CsvLimits {
  int64_t max_columns = 10000;
  int64_t max_bytes = int64_t{1} << 30;
};

// Parses a CSV text with a header row of unique, non-empty column names and
// numeric data rows. Accepts a UTF-8 byte-order mark, CRLF or LF line ends, a
// missing final newline, and double-quoted fields. Every cell must parse
// completely as a finite double. Returns InvalidArgument naming the line and
// column of the first problem.
absl::StatusOr<Table> ParseCsv(std::string_view text,
                               const CsvLimits& limits = CsvLimits());

// Returns the indices of `names` in `table.columns`, in the order given, or
// InvalidArgument naming an unknown column (and listing the known ones).
absl::StatusOr<std::vector<int64_t>> ColumnIndices(
    const Table& table, const std::vector<std::string>& names);

// Copies the given columns (by index) of the given rows into a new row-major
// matrix of rows.size() x column_indices.size().
std::vector<double> SelectColumns(const Table& table,
                                  const std::vector<int64_t>& row_indices,
                                  const std::vector<int64_t>& column_indices);

}  // namespace evonas

#endif  // EVONAS_COMMON_TABLE_H_
