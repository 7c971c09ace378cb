#include "common/idx.h"

#include <algorithm>
#include <cstdint>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace evonas {
namespace {

constexpr uint8_t kUnsignedByte = 0x08;
constexpr int kImageDimensions = 3;  // count x height x width
constexpr int kLabelDimensions = 1;  // count
constexpr absl::string_view kContract =
    "an IDX data set is the uncompressed images file (magic 0x00000803) "
    "immediately followed by the uncompressed labels file (magic 0x00000801)";

// The IDX name of a data type code, for error messages.
absl::string_view TypeName(uint8_t code) {
  switch (code) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "16-bit integer";
    case 0x0C:
      return "32-bit integer";
    case 0x0D:
      return "float";
    case 0x0E:
      return "double";
  }
  return "unknown";
}

uint32_t ReadBigEndian32(absl::string_view bytes, size_t offset) {
  const auto b = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<unsigned char>(bytes[offset + i]));
  };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

absl::Status Invalid(absl::string_view file, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(file, " ", problem));
}

// Reads the header of the IDX file that starts at `offset`: the magic number
// (type unsigned byte, `dimensions` dimensions) and the sizes. `file` names
// it in messages ("images file", "labels file"). Advances *offset past it.
absl::StatusOr<std::vector<uint32_t>> ReadHeader(absl::string_view bytes,
                                                 size_t* offset,
                                                 absl::string_view file,
                                                 int dimensions) {
  const uint32_t expected_magic = uint32_t{kUnsignedByte} << 8 | dimensions;
  const absl::string_view rest = bytes.substr(*offset);
  if (rest.size() < 4) {
    return Invalid(file, absl::StrFormat(
                             "is missing or cut off: %d bytes at offset %d, "
                             "but its magic number alone is 4 bytes; %s",
                             rest.size(), *offset, kContract));
  }
  const uint32_t magic = ReadBigEndian32(rest, 0);
  if (rest[0] == '\x1f' && rest[1] == '\x8b') {
    return Invalid(file,
                   "is gzip-compressed (starts with 1f 8b); upload it "
                   "decompressed (the evonas CLI decompresses .gz files)");
  }
  if (rest[0] != 0 || rest[1] != 0) {
    return Invalid(file, absl::StrFormat(
                             "does not start with an IDX magic number (got "
                             "0x%08x, expected 0x%08x); %s",
                             magic, expected_magic, kContract));
  }
  const uint8_t type = static_cast<uint8_t>(rest[2]);
  const int found_dimensions = static_cast<uint8_t>(rest[3]);
  if (type != kUnsignedByte) {
    return Invalid(file, absl::StrFormat(
                             "holds data type 0x%02x (%s); only unsigned "
                             "bytes (0x08) are supported",
                             type, TypeName(type)));
  }
  if (found_dimensions != dimensions) {
    if (dimensions == kImageDimensions &&
        found_dimensions == kLabelDimensions) {
      return Invalid(file,
                     "is a labels file (magic 0x00000801); the images file "
                     "must come first, then the labels file");
    }
    return Invalid(file,
                   absl::StrFormat("has %d dimensions (magic 0x%08x); "
                                   "expected %d (%s)",
                                   found_dimensions, magic, dimensions,
                                   dimensions == kImageDimensions
                                       ? "count x height x width"
                                       : "count"));
  }
  const size_t header_bytes = 4 + 4 * static_cast<size_t>(dimensions);
  if (rest.size() < header_bytes) {
    return Invalid(file, absl::StrFormat(
                             "is truncated: its header is %d bytes, but only "
                             "%d are left",
                             header_bytes, rest.size()));
  }
  std::vector<uint32_t> sizes;
  for (int i = 0; i < dimensions; ++i) {
    sizes.push_back(ReadBigEndian32(rest, 4 + 4 * i));
  }
  *offset += header_bytes;
  return sizes;
}

}  // namespace

absl::StatusOr<IdxLayout> ReadIdxLayout(absl::string_view bytes,
                                        const IdxLimits& limits) {
  if (static_cast<uint64_t>(bytes.size()) >
      static_cast<uint64_t>(std::max<int64_t>(limits.max_bytes, 0))) {
    return absl::InvalidArgumentError(
        absl::StrCat("IDX data set is ", bytes.size(), " bytes; the limit is ",
                     limits.max_bytes, " bytes"));
  }
  if (bytes.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("IDX data set is empty; ", kContract));
  }
  size_t offset = 0;
  EVONAS_ASSIGN_OR_RETURN(
      std::vector<uint32_t> image_sizes,
      ReadHeader(bytes, &offset, "images file", kImageDimensions));
  const uint64_t count = image_sizes[0];
  const uint64_t height = image_sizes[1];
  const uint64_t width = image_sizes[2];
  if (count == 0 || height == 0 || width == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "images file holds %d images of %dx%d pixels; at least one image "
        "of at least 1x1 is required",
        count, height, width));
  }
  // Each size is below 2^32, so height * width fits in 64 bits.
  const uint64_t pixels = height * width;
  const uint64_t max_columns =
      static_cast<uint64_t>(std::max<int64_t>(limits.max_columns, 0));
  if (pixels + 1 > max_columns) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "images of %dx%d are %d pixels, %d columns with the label; the limit "
        "is %d columns",
        height, width, pixels, pixels + 1, limits.max_columns));
  }
  // Sizes are below 2^32, so pixels + 1 cannot overflow; after this check
  // count * (pixels + 1) <= max_values cannot either.
  const uint64_t max_values =
      static_cast<uint64_t>(std::max<int64_t>(limits.max_values, 0));
  if (count > max_values / (pixels + 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%d images of %dx%d pixels and their labels are %d values, more than "
        "the limit of %d (%d MB as doubles, as a worker trains on them); "
        "raise %s of evonas-controller and evonas-worker if the workers have "
        "the memory",
        count, height, width, count * (pixels + 1), limits.max_values,
        limits.max_values / 125000, kMaxDatasetValuesFlag));
  }
  const uint64_t pixel_bytes = count * pixels;
  const uint64_t pixels_offset = offset;
  if (bytes.size() - offset < pixel_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "images file is truncated: its header announces %d images of %dx%d "
        "(%d bytes of pixels), but only %d bytes follow it",
        count, height, width, pixel_bytes, bytes.size() - offset));
  }
  offset += pixel_bytes;
  if (offset == bytes.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the data set ends after the images file; the labels file (magic "
        "0x00000801) must follow it immediately"));
  }
  EVONAS_ASSIGN_OR_RETURN(
      std::vector<uint32_t> label_sizes,
      ReadHeader(bytes, &offset, "labels file", kLabelDimensions));
  if (label_sizes[0] != count) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the labels file holds %d labels, but the images file %d images; "
        "they must be the same (are the two files from the same set?)",
        label_sizes[0], count));
  }
  const uint64_t labels_offset = offset;
  const uint64_t left = bytes.size() - offset;
  if (left < count) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "labels file is truncated: its header announces %d labels, but only "
        "%d bytes follow it",
        count, left));
  }
  if (left > count) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%d bytes follow the end of the labels file; %s and nothing else",
        left - count, kContract));
  }
  IdxLayout layout;
  layout.count = static_cast<int64_t>(count);
  layout.height = static_cast<int64_t>(height);
  layout.width = static_cast<int64_t>(width);
  layout.pixels_offset = static_cast<int64_t>(pixels_offset);
  layout.labels_offset = static_cast<int64_t>(labels_offset);
  return layout;
}

std::vector<std::string> IdxColumnNames(int64_t pixels) {
  std::vector<std::string> columns;
  columns.reserve(pixels + 1);
  for (int64_t i = 0; i < pixels; ++i) {
    columns.push_back(absl::StrCat("pixel_", i));
  }
  columns.push_back("label");
  return columns;
}

absl::StatusOr<Table> ParseIdx(absl::string_view bytes,
                               const IdxLimits& limits, IdxLayout* layout) {
  EVONAS_ASSIGN_OR_RETURN(const IdxLayout found, ReadIdxLayout(bytes, limits));
  const int64_t pixels = found.height * found.width;
  Table table;
  try {
    table.columns = IdxColumnNames(pixels);
    // Reserved, not sized: each value is written once, with no zero fill
    // before it.
    table.values.reserve(found.count * (pixels + 1));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "not enough memory for %d images of %dx%d as a table of doubles "
        "(%d MB)",
        found.count, found.height, found.width,
        found.count * (pixels + 1) / 125000));
  }
  const auto* image = reinterpret_cast<const unsigned char*>(
      bytes.data() + found.pixels_offset);
  const auto* label = reinterpret_cast<const unsigned char*>(
      bytes.data() + found.labels_offset);
  for (int64_t i = 0; i < found.count; ++i, image += pixels) {
    table.values.insert(table.values.end(), image, image + pixels);
    table.values.push_back(label[i]);
  }
  table.rows = found.count;
  if (layout != nullptr) *layout = found;
  return table;
}

}  // namespace evonas
