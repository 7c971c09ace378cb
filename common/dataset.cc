#include "common/dataset.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace evonas {
namespace {

absl::Status UnknownFormat(v1::DatasetFormat format) {
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown data set format ", static_cast<int>(format),
      "; expected DATASET_FORMAT_CSV (1) or DATASET_FORMAT_IDX (2)"));
}

}  // namespace

absl::StatusOr<Table> ParseDataset(absl::string_view bytes,
                                   v1::DatasetFormat format,
                                   const DatasetLimits& limits) {
  switch (format) {
    case v1::DATASET_FORMAT_UNSPECIFIED:
    case v1::DATASET_FORMAT_CSV:
      return ParseCsv(bytes, limits.csv);
    case v1::DATASET_FORMAT_IDX:
      return ParseIdx(bytes, limits.idx);
    default:
      return UnknownFormat(format);
  }
}

absl::StatusOr<DatasetShape> InspectDataset(absl::string_view bytes,
                                            v1::DatasetFormat format,
                                            const DatasetLimits& limits) {
  DatasetShape shape;
  switch (format) {
    case v1::DATASET_FORMAT_UNSPECIFIED:
    case v1::DATASET_FORMAT_CSV: {
      EVONAS_ASSIGN_OR_RETURN(Table table, ParseCsv(bytes, limits.csv));
      shape.columns = std::move(table.columns);
      shape.rows = table.rows;
      return shape;
    }
    case v1::DATASET_FORMAT_IDX: {
      EVONAS_ASSIGN_OR_RETURN(const IdxLayout layout,
                              ReadIdxLayout(bytes, limits.idx));
      shape.columns = IdxColumnNames(layout.height * layout.width);
      shape.rows = layout.count;
      shape.image_shape = {static_cast<int32_t>(layout.height),
                           static_cast<int32_t>(layout.width)};
      return shape;
    }
    default:
      return UnknownFormat(format);
  }
}

std::string DatasetFormatName(v1::DatasetFormat format) {
  switch (format) {
    case v1::DATASET_FORMAT_UNSPECIFIED:
    case v1::DATASET_FORMAT_CSV:
      return "CSV";
    case v1::DATASET_FORMAT_IDX:
      return "IDX";
    default:
      return absl::StrCat(static_cast<int>(format));
  }
}

}  // namespace evonas
