#ifndef EVONAS_CLIENT_PNG_H_
#define EVONAS_CLIENT_PNG_H_

// PNG files of 8-bit RGB images, written with zlib alone (no image library
// is among our dependencies).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace evonas::client {

// An 8-bit RGB image: rows top to bottom, three bytes (red, green, blue)
// a pixel.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;
};

// `image` as a PNG file (signature, IHDR, one IDAT, IEND): colour type 2,
// no interlace, every row unfiltered, deflated at the best compression.
// InvalidArgument when the image is empty or its pixels do not fill it;
// Internal when zlib fails.
absl::StatusOr<std::string> EncodePng(const RgbImage& image);

}  // namespace evonas::client

#endif  // EVONAS_CLIENT_PNG_H_
