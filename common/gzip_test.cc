#include "common/gzip.h"

#include <zlib.h>

#include <cstdint>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace evonas {
namespace {

using ::testing::HasSubstr;

// gzip-compresses `data` with zlib (what gzip(1) writes).
std::string Gzip(const std::string& data) {
  z_stream stream{};
  EXPECT_EQ(deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED,
                         16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string out(deflateBound(&stream, data.size()) + 32, '\0');
  stream.next_in =
      reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

std::string RandomBytes(size_t n) {
  std::mt19937 random(7);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(random() & 0xFF);
  return s;
}

absl::Status Gunzip(const std::string& gz, int64_t limit, std::string* out) {
  out->clear();
  return GunzipAppend(gz, limit, out);
}

TEST(GzipTest, RoundTripAppends) {
  const std::string data = RandomBytes(3 << 20);  // several output steps
  std::string out = "prefix";
  ASSERT_TRUE(GunzipAppend(Gzip(data), 1 << 30, &out).ok());
  EXPECT_EQ(out, "prefix" + data);
}

TEST(GzipTest, EmptyContent) {
  std::string out;
  ASSERT_TRUE(Gunzip(Gzip(""), 0, &out).ok());
  EXPECT_EQ(out, "");
}

TEST(GzipTest, ConcatenatedMembers) {
  std::string out;
  ASSERT_TRUE(Gunzip(Gzip("abc") + Gzip("def"), 100, &out).ok());
  EXPECT_EQ(out, "abcdef");
}

TEST(GzipTest, ExactlyAtTheLimit) {
  const std::string data(1000, 'a');
  std::string out;
  ASSERT_TRUE(Gunzip(Gzip(data), 1000, &out).ok());
  EXPECT_EQ(out, data);
}

TEST(GzipTest, BombStopsAtTheLimit) {
  // 100 MB of zeros compress to about 100 kB.
  const std::string bomb = Gzip(std::string(100 << 20, '\0'));
  ASSERT_LT(bomb.size(), 200u << 10);
  std::string out;
  const absl::Status status = Gunzip(bomb, 1 << 20, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("exceed the limit of 1048576 bytes"));
  EXPECT_LE(out.size(), 1u << 20);
  // The limit counts what *out held before.
  out = std::string(10, 'x');
  EXPECT_EQ(GunzipAppend(Gzip("abc"), 12, &out).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(GzipTest, NotGzip) {
  std::string out;
  const absl::Status status = Gunzip("x,y\n1,2\n", 100, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("not gzip"));
  EXPECT_FALSE(IsGzip("\x1f"));
  EXPECT_TRUE(IsGzip("\x1f\x8b"));
}

TEST(GzipTest, CutOff) {
  const std::string gz = Gzip(RandomBytes(10000));
  std::string out;
  const absl::Status status = Gunzip(gz.substr(0, gz.size() / 2), 1 << 20, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("cut off"));
  // Without its 8-byte trailer (CRC and size) the data are incomplete too.
  EXPECT_EQ(Gunzip(gz.substr(0, gz.size() - 8), 1 << 20, &out).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(GzipTest, CorruptChecksum) {
  std::string gz = Gzip("hello, world");
  gz[gz.size() - 8] ^= 1;  // CRC-32
  std::string out;
  const absl::Status status = Gunzip(gz, 100, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("corrupt gzip data"));
}

TEST(GzipTest, ForgedSizeInTheTrailerIsCorrupt) {
  // The trailer's size is only a hint for reserving; zlib checks it.
  std::string gz = Gzip("abc");
  gz.replace(gz.size() - 4, 4, "\xff\xff\xff\xff");
  std::string out;
  const absl::Status status = Gunzip(gz, 1 << 30, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("corrupt gzip data"));
  // Reserved at most what deflate could expand the input to, not 4 GiB.
  EXPECT_LE(out.capacity(), gz.size() * 1032 + 8192);
}

TEST(GzipTest, GarbageAfterAMember) {
  std::string out;
  EXPECT_EQ(Gunzip(Gzip("abc") + "junk", 100, &out).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace evonas
