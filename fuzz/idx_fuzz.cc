// The IDX data path on arbitrary bytes: gunzip (what the CLI does with a .gz
// file, bounded) when the input is gzip, then InspectDataset (the
// controller's check) and ParseDataset (the worker's parse). Beyond "no
// crash, no sanitizer report" it checks the contract: bad input is
// InvalidArgument (or ResourceExhausted from the gunzip bound) with a
// message; the two agree on what they accept; an accepted table is count x
// (height * width + 1) whole values in 0..255 named pixel_0.. and label.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/dataset.h"
#include "common/gzip.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

bool IsRefusal(const absl::Status& status) {
  return status.code() == absl::StatusCode::kInvalidArgument &&
         !status.message().empty();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string decompressed;
  if (evonas::IsGzip(bytes)) {
    const absl::Status status =
        evonas::GunzipAppend(bytes, int64_t{1} << 20, &decompressed);
    if (!status.ok()) {
      Check(IsRefusal(status) ||
            status.code() == absl::StatusCode::kResourceExhausted);
      Check(decompressed.size() <= (size_t{1} << 20));
      return 0;
    }
    bytes = decompressed;
  }
  evonas::DatasetLimits limits;
  limits.idx.max_values = int64_t{1} << 20;  // keeps each run fast
  const auto shape =
      evonas::InspectDataset(bytes, evonas::v1::DATASET_FORMAT_IDX, limits);
  const auto table =
      evonas::ParseDataset(bytes, evonas::v1::DATASET_FORMAT_IDX, limits);
  if (!table.ok()) {
    Check(IsRefusal(table.status()));
    Check(shape.status() == table.status());
    return 0;
  }
  Check(shape.ok());
  Check(shape->image_shape.size() == 2);
  const int64_t pixels =
      int64_t{shape->image_shape[0]} * shape->image_shape[1];
  Check(pixels >= 1 && table->cols() == pixels + 1);
  Check(table->rows >= 1 && table->rows == shape->rows);
  Check(table->columns == shape->columns);
  Check(table->columns.back() == "label" && table->columns[0] == "pixel_0");
  Check(static_cast<int64_t>(table->values.size()) ==
        table->rows * table->cols());
  for (const double v : table->values) {
    Check(v >= 0 && v <= 255 && v == static_cast<int>(v));
  }
  // Stored bytes are exactly the two files: headers of 16 and 8 bytes.
  Check(static_cast<int64_t>(bytes.size()) ==
        16 + table->rows * pixels + 8 + table->rows);
  return 0;
}
