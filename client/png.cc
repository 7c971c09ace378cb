#include "client/png.h"

#include <zlib.h>

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace evonas::client {
namespace {

void AppendUint32(std::string* out, uint32_t value) {
  out->push_back(static_cast<char>(value >> 24));
  out->push_back(static_cast<char>(value >> 16));
  out->push_back(static_cast<char>(value >> 8));
  out->push_back(static_cast<char>(value));
}

// Length, type, data and the CRC-32 of type and data.
void AppendChunk(std::string* out, absl::string_view type,
                 absl::string_view data) {
  AppendUint32(out, static_cast<uint32_t>(data.size()));
  const size_t start = out->size();
  absl::StrAppend(out, type, data);
  const uLong crc = crc32(crc32(0L, Z_NULL, 0),
                          reinterpret_cast<const Bytef*>(out->data() + start),
                          static_cast<uInt>(out->size() - start));
  AppendUint32(out, static_cast<uint32_t>(crc));
}

}  // namespace

absl::StatusOr<std::string> EncodePng(const RgbImage& image) {
  // Rows of 3 bytes a pixel plus their filter byte must fit zlib's uInt.
  constexpr int kMaxSide = 16384;
  if (image.width <= 0 || image.height <= 0 || image.width > kMaxSide ||
      image.height > kMaxSide) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot encode a ", image.width, "x", image.height,
                     " image as PNG (1 to ", kMaxSide, " pixels a side)"));
  }
  const size_t row_bytes = 3 * static_cast<size_t>(image.width);
  if (image.pixels.size() != row_bytes * image.height) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a ", image.width, "x", image.height, " RGB image has ",
        row_bytes * image.height, " bytes, not ", image.pixels.size()));
  }

  std::string header;
  AppendUint32(&header, static_cast<uint32_t>(image.width));
  AppendUint32(&header, static_cast<uint32_t>(image.height));
  header += '\x08';  // Bits per sample.
  header += '\x02';  // Colour type: RGB.
  header += '\x00';  // Compression: deflate.
  header += '\x00';  // Filter method 0.
  header += '\x00';  // No interlace.

  std::string raw;
  raw.reserve((row_bytes + 1) * image.height);
  for (int y = 0; y < image.height; ++y) {
    raw += '\x00';  // Filter type None.
    raw.append(
        reinterpret_cast<const char*>(image.pixels.data()) + y * row_bytes,
        row_bytes);
  }
  uLongf deflated_size = compressBound(static_cast<uLong>(raw.size()));
  std::string deflated(deflated_size, '\0');
  const int result =
      compress2(reinterpret_cast<Bytef*>(deflated.data()), &deflated_size,
                reinterpret_cast<const Bytef*>(raw.data()),
                static_cast<uLong>(raw.size()), Z_BEST_COMPRESSION);
  if (result != Z_OK) {
    return absl::InternalError(
        absl::StrCat("zlib could not deflate the PNG's pixels (", result, ")"));
  }
  deflated.resize(deflated_size);

  std::string png("\x89PNG\r\n\x1a\n", 8);
  AppendChunk(&png, "IHDR", header);
  AppendChunk(&png, "IDAT", deflated);
  AppendChunk(&png, "IEND", "");
  return png;
}

}  // namespace evonas::client
