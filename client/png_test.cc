#include "client/png.h"

#include "client/png_testing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace evonas::client {
namespace {

using ::evonas::client::testing::DecodePng;
using ::testing::ElementsAre;

TEST(EncodePngTest, ChunksAndPixelsReadBack) {
  RgbImage image;
  image.width = 3;
  image.height = 2;
  image.pixels = {255, 0, 0, 0,  255, 0,  0,   0,   255,  //
                  0,   0, 0, 17, 34,  51, 255, 255, 255};
  const absl::StatusOr<std::string> png = EncodePng(image);
  ASSERT_TRUE(png.ok()) << png.status();
  EXPECT_EQ(png->substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  // IHDR first, 13 bytes.
  EXPECT_EQ(png->substr(8, 8), std::string("\0\0\0\x0dIHDR", 8));
  const auto decoded = DecodePng(*png);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->chunks, ElementsAre("IHDR", "IDAT", "IEND"));
  EXPECT_EQ(decoded->image.width, 3);
  EXPECT_EQ(decoded->image.height, 2);
  EXPECT_EQ(decoded->image.pixels, image.pixels);
  // The file ends with IEND's fixed CRC.
  EXPECT_EQ(png->substr(png->size() - 12),
            std::string("\0\0\0\0IEND\xae\x42\x60\x82", 12));
}

TEST(EncodePngTest, CorruptionIsCaughtByTheCrc) {
  RgbImage image;
  image.width = 1;
  image.height = 1;
  image.pixels = {1, 2, 3};
  std::string png = *EncodePng(image);
  png[20] ^= 1;  // The width, inside IHDR.
  EXPECT_FALSE(DecodePng(png).ok());
}

TEST(EncodePngTest, RejectsImagesItCannotWrite) {
  RgbImage empty;
  EXPECT_EQ(EncodePng(empty).status().code(),
            absl::StatusCode::kInvalidArgument);
  RgbImage short_pixels;
  short_pixels.width = 2;
  short_pixels.height = 2;
  short_pixels.pixels.assign(11, 0);
  EXPECT_EQ(EncodePng(short_pixels).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace evonas::client
