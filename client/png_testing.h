#ifndef EVONAS_CLIENT_PNG_TESTING_H_
#define EVONAS_CLIENT_PNG_TESTING_H_

// Tests only: reads back the PNG files that EncodePng writes, with zlib and
// no image library, checking every part of the format on the way.

#include <zlib.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "client/png.h"

namespace evonas::client::testing {

struct DecodedPng {
  RgbImage image;
  // Chunk types in file order, e.g. {"IHDR", "IDAT", "IEND"}.
  std::vector<std::string> chunks;
};

inline uint32_t ReadUint32(const std::string& bytes, size_t at) {
  return static_cast<uint32_t>(static_cast<unsigned char>(bytes[at])) << 24 |
         static_cast<uint32_t>(static_cast<unsigned char>(bytes[at + 1]))
             << 16 |
         static_cast<uint32_t>(static_cast<unsigned char>(bytes[at + 2])) << 8 |
         static_cast<uint32_t>(static_cast<unsigned char>(bytes[at + 3]));
}

// DataLoss on a wrong signature, chunk CRC, header or pixel data; only
// 8-bit RGB, uninterlaced, unfiltered rows (what EncodePng writes).
inline absl::StatusOr<DecodedPng> DecodePng(const std::string& png) {
  DecodedPng decoded;
  if (png.compare(0, 8, std::string("\x89PNG\r\n\x1a\n", 8)) != 0) {
    return absl::DataLossError("no PNG signature");
  }
  std::string idat;
  size_t at = 8;
  int bit_depth = 0, colour_type = 0, interlace = 1;
  while (at + 12 <= png.size()) {
    const uint32_t length = ReadUint32(png, at);
    if (at + 12 + length > png.size()) {
      return absl::DataLossError("chunk runs past the end");
    }
    const std::string type = png.substr(at + 4, 4);
    const std::string data = png.substr(at + 8, length);
    const uint32_t crc = ReadUint32(png, at + 8 + length);
    const uLong expected =
        crc32(crc32(0L, Z_NULL, 0),
              reinterpret_cast<const Bytef*>(png.data() + at + 4), 4 + length);
    if (crc != expected) {
      return absl::DataLossError(absl::StrCat("bad CRC of chunk ", type));
    }
    decoded.chunks.push_back(type);
    if (type == "IHDR") {
      if (length != 13) return absl::DataLossError("IHDR is not 13 bytes");
      decoded.image.width = static_cast<int>(ReadUint32(data, 0));
      decoded.image.height = static_cast<int>(ReadUint32(data, 4));
      bit_depth = data[8];
      colour_type = data[9];
      interlace = data[12];
      if (data[10] != 0 || data[11] != 0) {
        return absl::DataLossError("unknown compression or filter method");
      }
    } else if (type == "IDAT") {
      idat += data;
    }
    at += 12 + length;
  }
  if (at != png.size()) return absl::DataLossError("bytes after the chunks");
  if (bit_depth != 8 || colour_type != 2 || interlace != 0) {
    return absl::DataLossError("not 8-bit RGB without interlace");
  }
  const size_t row = 1 + 3 * static_cast<size_t>(decoded.image.width);
  std::string raw(row * decoded.image.height, '\0');
  uLongf raw_size = raw.size();
  if (uncompress(reinterpret_cast<Bytef*>(raw.data()), &raw_size,
                 reinterpret_cast<const Bytef*>(idat.data()),
                 idat.size()) != Z_OK ||
      raw_size != raw.size()) {
    return absl::DataLossError("IDAT does not inflate to the image's size");
  }
  for (int y = 0; y < decoded.image.height; ++y) {
    if (raw[y * row] != 0) return absl::DataLossError("a filtered row");
    decoded.image.pixels.insert(decoded.image.pixels.end(),
                                raw.begin() + y * row + 1,
                                raw.begin() + (y + 1) * row);
  }
  return decoded;
}

// The colour of pixel (x, y) as "#rrggbb".
inline std::string PixelColour(const RgbImage& image, int x, int y) {
  const uint8_t* p = &image.pixels[3 * (static_cast<size_t>(y) * image.width +
                                        static_cast<size_t>(x))];
  static const char kHex[] = "0123456789abcdef";
  std::string colour = "#";
  for (int k = 0; k < 3; ++k) {
    colour += kHex[p[k] >> 4];
    colour += kHex[p[k] & 15];
  }
  return colour;
}

}  // namespace evonas::client::testing

#endif  // EVONAS_CLIENT_PNG_TESTING_H_
