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

// "CSV" or "IDX" (UNSPECIFIED is CSV); the enum number for unknown values.
std::string DatasetFormatName(v1::DatasetFormat format);

}  // namespace evonas

#endif  // EVONAS_COMMON_DATASET_H_
