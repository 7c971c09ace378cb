#ifndef EVONAS_COMMON_DATASET_H_
#define EVONAS_COMMON_DATASET_H_

// The one place that turns a data set's stored bytes and its
// v1::DatasetFormat into a table: the controller checks uploads with it and
// the worker parses fetched data sets with it, so both accept exactly the
// same data.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/idx.h"
#include "common/table.h"
#include "evonas/v1/types.pb.h"

namespace evonas {

struct DatasetLimits {
  CsvLimits csv;
  IdxLimits idx;
};

// What a data set holds, without its values.
struct DatasetShape {
  std::vector<std::string> columns;
  int64_t rows = 0;
  // IDX: {height, width}. Empty for tables.
  std::vector<int32_t> image_shape;
};

// Parses `bytes` as `format` says (UNSPECIFIED means CSV): ParseCsv or
// ParseIdx. InvalidArgument for bad data and for a format this version does
// not know; ResourceExhausted when memory runs out.
absl::StatusOr<Table> ParseDataset(absl::string_view bytes,
                                   v1::DatasetFormat format,
                                   const DatasetLimits& limits = {});

// Checks `bytes` exactly as ParseDataset does and returns its columns, row
// count and image shape. For IDX only the headers are read (every pixel
// value is valid), so no table of doubles is built; a CSV is parsed whole.
absl::StatusOr<DatasetShape> InspectDataset(absl::string_view bytes,
                                            v1::DatasetFormat format,
                                            const DatasetLimits& limits = {});

// A parsed data set as a worker keeps it between leases. A CSV is its table
// of doubles; an IDX data set keeps its own bytes, one per pixel and label,
// an eighth of a table's memory (Fashion-MNIST's training set: 47 MB instead
// of 377 MB). Every value read from it is exactly the one ParseDataset's
// table holds. Immutable after Load, so thread-safe.
class Dataset {
 public:
  // Checks and parses `bytes` exactly as ParseDataset does, with the same
  // errors; an IDX data set takes over `bytes` without copying them.
  static absl::StatusOr<Dataset> Load(std::string bytes,
                                      v1::DatasetFormat format,
                                      const DatasetLimits& limits = {});

  const std::vector<std::string>& columns() const { return header_.columns; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return header_.cols(); }
  // Bytes of memory the values take (not the column names).
  int64_t value_bytes() const;

  // As ColumnIndices(table, names) on ParseDataset's table.
  absl::StatusOr<std::vector<int64_t>> ColumnIndices(
      const std::vector<std::string>& names) const;
  // As SelectColumns(table, row_indices, column_indices) on ParseDataset's
  // table: rows.size() x columns.size() doubles, row-major, in one
  // allocation. Every index must be in range (checked only by assert).
  std::vector<double> SelectColumns(
      const std::vector<int64_t>& row_indices,
      const std::vector<int64_t>& column_indices) const;

 private:
  Dataset() = default;

  // The columns; for a CSV also its rows and values. An IDX data set's
  // header has no rows (its values are in idx_bytes_).
  Table header_;
  int64_t rows_ = 0;
  bool idx_ = false;
  std::string idx_bytes_;
  IdxLayout idx_layout_;
};

// "CSV" or "IDX" (UNSPECIFIED is CSV); the enum number for unknown values.
std::string DatasetFormatName(v1::DatasetFormat format);

}  // namespace evonas

#endif  // EVONAS_COMMON_DATASET_H_
