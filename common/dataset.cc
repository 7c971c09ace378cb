#include "common/dataset.h"

#include <cassert>
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

absl::StatusOr<Dataset> Dataset::Load(std::string bytes,
                                       v1::DatasetFormat format,
                                       const DatasetLimits& limits) {
  Dataset dataset;
  if (format != v1::DATASET_FORMAT_IDX) {
    EVONAS_ASSIGN_OR_RETURN(dataset.header_,
                            ParseDataset(bytes, format, limits));
    dataset.rows_ = dataset.header_.rows;
    return dataset;
  }
  EVONAS_ASSIGN_OR_RETURN(dataset.idx_layout_,
                          ReadIdxLayout(bytes, limits.idx));
  const IdxLayout& layout = dataset.idx_layout_;
  dataset.idx_ = true;
  dataset.header_.columns = IdxColumnNames(layout.height * layout.width);
  dataset.rows_ = layout.count;
  dataset.idx_bytes_ = std::move(bytes);
  return dataset;
}

int64_t Dataset::value_bytes() const {
  return idx_ ? static_cast<int64_t>(idx_bytes_.size())
              : static_cast<int64_t>(header_.values.size() * sizeof(double));
}

absl::StatusOr<std::vector<int64_t>> Dataset::ColumnIndices(
    const std::vector<std::string>& names) const {
  return evonas::ColumnIndices(header_, names);
}

std::vector<double> Dataset::SelectColumns(
    const std::vector<int64_t>& row_indices,
    const std::vector<int64_t>& column_indices) const {
  if (!idx_) {
    return evonas::SelectColumns(header_, row_indices, column_indices);
  }
  const int64_t pixels = idx_layout_.height * idx_layout_.width;
  const auto* images = reinterpret_cast<const unsigned char*>(
      idx_bytes_.data() + idx_layout_.pixels_offset);
  const auto* labels = reinterpret_cast<const unsigned char*>(
      idx_bytes_.data() + idx_layout_.labels_offset);
  std::vector<double> out;
  out.reserve(row_indices.size() * column_indices.size());
  for (const int64_t row : row_indices) {
    assert(row >= 0 && row < rows_);
    const unsigned char* image = images + row * pixels;
    for (const int64_t col : column_indices) {
      assert(col >= 0 && col <= pixels);
      // The label is the last column, as in ParseIdx's table.
      out.push_back(col < pixels ? image[col] : labels[row]);
    }
  }
  return out;
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
