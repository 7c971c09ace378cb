#include "common/sha256.h"

#include <string>

#include "gtest/gtest.h"

namespace evonas {
namespace {

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(
      Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256Test, MillionAs) {
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, IncrementalEqualsOneShot) {
  std::string data;
  for (int i = 0; i < 10000; ++i) data.push_back(static_cast<char>(i * 7));
  Sha256 sha;
  for (size_t pos = 0; pos < data.size(); pos += 333) {
    sha.Update(absl::string_view(data).substr(pos, 333));
  }
  sha.Update("");
  EXPECT_EQ(sha.HexDigest(), Sha256Hex(data));
}

TEST(Sha256Test, EmbeddedNulBytes) {
  EXPECT_NE(Sha256Hex(std::string("a\0b", 3)), Sha256Hex("ab"));
}

TEST(Sha256Test, HexDigestIsStable) {
  Sha256 sha;
  sha.Update("abc");
  const std::string first = sha.HexDigest();
  EXPECT_EQ(sha.HexDigest(), first);
  EXPECT_EQ(first.size(), 64u);
}

}  // namespace
}  // namespace evonas
