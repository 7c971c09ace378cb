#include "server/store/blob_store.h"

#include <chrono>
#include <filesystem>
#include <fstream>

#include "common/sha256.h"
#include "gtest/gtest.h"

namespace evonas::store {
namespace {
namespace fs = std::filesystem;

class BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
  }
  fs::path dir_;
};

int CountFiles(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    n += e.is_regular_file();
  }
  return n;
}

TEST_F(BlobStoreTest, PutThenReadByHash) {
  auto blobs = BlobStore::Open(dir_.string()).value();
  std::string sha = blobs->Put("hello").value();
  EXPECT_EQ(sha, Sha256Hex("hello"));
  EXPECT_TRUE(blobs->Contains(sha));
  EXPECT_EQ(blobs->Read(sha).value(), "hello");
}

TEST_F(BlobStoreTest, RemoveUnreferencedDeletesOnlyOldOrphans) {
  auto blobs = BlobStore::Open(dir_.string()).value();
  const std::string kept = blobs->Put("referenced").value();
  const std::string orphan = blobs->Put("orphan").value();
  const std::string young = blobs->Put("young orphan").value();
  const auto now = fs::file_time_type::clock::now();
  for (const std::string& sha : {kept, orphan}) {
    fs::last_write_time(dir_ / sha.substr(0, 2) / sha,
                        now - std::chrono::hours(1));
  }
  // Files that are not blobs are not the sweep's business.
  std::ofstream(dir_ / "README") << "x";
  fs::create_directories(dir_ / "ab");
  std::ofstream(dir_ / "ab" / "notes.txt") << "x";
  fs::last_write_time(dir_ / "ab" / "notes.txt", now - std::chrono::hours(1));

  EXPECT_EQ(blobs->RemoveUnreferenced({kept}, now - std::chrono::minutes(10))
                .value(),
            1);
  EXPECT_TRUE(blobs->Contains(kept));
  EXPECT_FALSE(blobs->Contains(orphan));
  EXPECT_TRUE(blobs->Contains(young));  // may belong to a commit in flight
  EXPECT_TRUE(fs::exists(dir_ / "README"));
  EXPECT_TRUE(fs::exists(dir_ / "ab" / "notes.txt"));
  // With no grace left, the young orphan goes too; a second sweep is a no-op.
  EXPECT_EQ(blobs->RemoveUnreferenced({kept}, now + std::chrono::hours(1))
                .value(),
            1);
  EXPECT_FALSE(blobs->Contains(young));
  EXPECT_EQ(blobs->RemoveUnreferenced({kept}, now + std::chrono::hours(1))
                .value(),
            0);
  EXPECT_EQ(blobs->Read(kept).value(), "referenced");
}

TEST_F(BlobStoreTest, UnknownOrMalformedHashIsNotFound) {
  auto blobs = BlobStore::Open(dir_.string()).value();
  EXPECT_EQ(blobs->Read(std::string(64, 'a')).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(blobs->Read("../../etc/passwd").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(blobs->Contains("../x"));
}

TEST_F(BlobStoreTest, UncommittedWriterLeavesNothing) {
  auto blobs = BlobStore::Open(dir_.string()).value();
  {
    auto writer = blobs->NewWriter().value();
    ASSERT_TRUE(writer->Append("partial upload").ok());
  }
  EXPECT_EQ(CountFiles(dir_), 0);
}

TEST_F(BlobStoreTest, StreamedWriteEqualsPut) {
  auto blobs = BlobStore::Open(dir_.string()).value();
  auto writer = blobs->NewWriter().value();
  ASSERT_TRUE(writer->Append("hel").ok());
  ASSERT_TRUE(writer->Append("lo").ok());
  EXPECT_EQ(writer->size(), 5);
  EXPECT_EQ(writer->Commit().value(), Sha256Hex("hello"));
}

TEST_F(BlobStoreTest, OpenSweepsTemporariesOfACrash) {
  fs::create_directories(dir_ / "tmp");
  { std::ofstream(dir_ / "tmp" / "blob-crashed") << "half"; }
  auto blobs = BlobStore::Open(dir_.string()).value();
  EXPECT_EQ(CountFiles(dir_), 0);
}

}  // namespace
}  // namespace evonas::store
