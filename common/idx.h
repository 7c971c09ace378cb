#ifndef EVONAS_COMMON_IDX_H_
#define EVONAS_COMMON_IDX_H_

// The IDX format of MNIST and Fashion-MNIST as evonas stores it
// (v1::DATASET_FORMAT_IDX): the uncompressed images file (magic 0x00000803:
// unsigned bytes, count x height x width, big-endian sizes) immediately
// followed by the uncompressed labels file (magic 0x00000801: count unsigned
// bytes).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/table.h"

namespace evonas {

// The flag that sets max_values, named by the error that refuses a data set
// over it.
inline constexpr char kMaxDatasetValuesFlag[] = "--max-dataset-values";

// Limits that protect the parser, and the memory of whoever builds the
// table, from hostile input. A table holds 8 bytes per value: Fashion-MNIST's
// 60,000 training images of 28x28 are 47.1 M values, 377 MB.
struct IdxLimits {
  int64_t max_bytes = int64_t{1} << 30;
  // Pixels per image plus the label column, as CsvLimits::max_columns.
  int64_t max_columns = 10000;
  // images x (pixels + 1); a worker's job holds 8 bytes per value: 2^27
  // values are 1 GiB.
  int64_t max_values = int64_t{1} << 27;
};

// Where the parts of a valid IDX data set lie in its bytes.
struct IdxLayout {
  int64_t count = 0;  // images, and labels
  int64_t height = 0;
  int64_t width = 0;
  int64_t pixels_offset = 0;  // count * height * width bytes, row-major
  int64_t labels_offset = 0;  // count bytes
};

// Checks the two headers and sizes of an IDX data set without touching the
// pixels (every byte value is a valid pixel and label), so that it costs
// nothing however large the data. InvalidArgument, naming the file and the
// problem, for: bad magic numbers (also a gzip file or the labels file
// first), a data type other than unsigned bytes, the wrong number of
// dimensions, zero sizes, sizes over `limits`, different image and label
// counts, a truncated file, and bytes after the labels. Over max_values the
// message names kMaxDatasetValuesFlag.
absl::StatusOr<IdxLayout> ReadIdxLayout(absl::string_view bytes,
                                        const IdxLimits& limits = IdxLimits());

// "pixel_0" .. "pixel_{pixels-1}", "label": the columns of an IDX table.
std::vector<std::string> IdxColumnNames(int64_t pixels);

// Parses an IDX data set (checked as ReadIdxLayout does) into a table with
// columns "pixel_0" .. "pixel_{height*width-1}" (row-major, values 0..255)
// and "label", one row per image, in one pass over the pixels. Fills
// *layout (height and width: the image shape) if not null.
// ResourceExhausted when memory runs out.
absl::StatusOr<Table> ParseIdx(absl::string_view bytes,
                               const IdxLimits& limits = IdxLimits(),
                               IdxLayout* layout = nullptr);

}  // namespace evonas

#endif  // EVONAS_COMMON_IDX_H_
