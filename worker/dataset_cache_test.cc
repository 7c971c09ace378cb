#include "worker/dataset_cache.h"

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace evonas::worker {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Serves the data sets it holds, by hash, in chunks of 5 bytes, and counts
// the fetches.
class DatasetServer final : public v1::WorkerService::Service {
 public:
  std::string Add(std::string bytes) {
    const std::string id = Sha256Hex(bytes);
    absl::MutexLock lock(&mu_);
    datasets_[id] = std::move(bytes);
    return id;
  }
  int fetches() {
    absl::MutexLock lock(&mu_);
    return fetches_;
  }

  grpc::Status FetchDataset(
      grpc::ServerContext*, const v1::FetchDatasetRequest* request,
      grpc::ServerWriter<v1::FetchDatasetResponse>* writer) override {
    absl::MutexLock lock(&mu_);
    ++fetches_;
    auto it = datasets_.find(request->dataset_id());
    if (it == datasets_.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such data set");
    }
    for (size_t i = 0; i < it->second.size(); i += 5) {
      v1::FetchDatasetResponse response;
      if (i == 0) response.set_total_bytes(it->second.size());
      response.set_chunk(it->second.substr(i, 5));
      writer->Write(response);
    }
    return grpc::Status::OK;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::string> datasets_ ABSL_GUARDED_BY(mu_);
  int fetches_ ABSL_GUARDED_BY(mu_) = 0;
};

// Two images of 1x2 pixels, labels 3 and 4, as stored (IDX).
std::string TinyIdx() {
  return std::string("\0\0\x08\x03\0\0\0\x02\0\0\0\x01\0\0\0\x02", 16) +
         std::string("\x01\x02\xfe\xff", 4) +
         std::string("\0\0\x08\x01\0\0\0\x02\x03\x04", 10);
}

class DatasetCacheTest : public ::testing::Test {
 protected:
  DatasetCacheTest() {
    dir_ = fs::path(::testing::TempDir()) /
           ("dataset_cache_test_" +
            std::string(::testing::UnitTest::GetInstance()
                            ->current_test_info()
                            ->name()));
    fs::remove_all(dir_);
    grpc::ServerBuilder builder;
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    stub_ = v1::WorkerService::NewStub(
        server_->InProcessChannel(grpc::ChannelArguments()));
  }
  ~DatasetCacheTest() override {
    server_->Shutdown();
    fs::remove_all(dir_);
  }

  DatasetServer service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  fs::path dir_;
};

TEST_F(DatasetCacheTest, ParsesByTheLeasesFormat) {
  const std::string idx = service_.Add(TinyIdx());
  const std::string csv = service_.Add("x,y\n1,2\n");
  DatasetCache cache(stub_.get(), dir_.string(), 1 << 20);

  auto images = cache.Get(idx, v1::DATASET_FORMAT_IDX);
  ASSERT_TRUE(images.ok()) << images.status();
  EXPECT_THAT((*images)->columns(),
              ElementsAre("pixel_0", "pixel_1", "label"));
  EXPECT_THAT((*images)->SelectColumns({0, 1}, {0, 1, 2}),
              ElementsAre(1, 2, 3, 254, 255, 4));

  for (const auto format :
       {v1::DATASET_FORMAT_CSV, v1::DATASET_FORMAT_UNSPECIFIED}) {
    auto table = cache.Get(csv, format);
    ASSERT_TRUE(table.ok()) << table.status();
    EXPECT_THAT((*table)->SelectColumns({0}, {0, 1}), ElementsAre(1, 2));
  }
  // Parsed copies are kept: no new fetch.
  const int fetches = service_.fetches();
  ASSERT_TRUE(cache.Get(idx, v1::DATASET_FORMAT_IDX).ok());
  EXPECT_EQ(service_.fetches(), fetches);
}

TEST_F(DatasetCacheTest, TheWrongFormatIsAnErrorNamingTheDataSet) {
  const std::string idx = service_.Add(TinyIdx());
  DatasetCache cache(stub_.get(), dir_.string(), 1 << 20);
  const absl::Status status = cache.Get(idx, v1::DATASET_FORMAT_CSV).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("data set " + idx + " (CSV): line 1"));
  // The same bytes as IDX are fine: the refusal was not cached.
  EXPECT_TRUE(cache.Get(idx, v1::DATASET_FORMAT_IDX).ok());
}

TEST_F(DatasetCacheTest, ReadsItsDiskCopyInsteadOfFetching) {
  const std::string idx = service_.Add(TinyIdx());
  {
    DatasetCache cache(stub_.get(), dir_.string(), 1 << 20);
    ASSERT_TRUE(cache.Get(idx, v1::DATASET_FORMAT_IDX).ok());
  }
  EXPECT_EQ(service_.fetches(), 1);
  DatasetCache restarted(stub_.get(), dir_.string(), 1 << 20);
  auto images = restarted.Get(idx, v1::DATASET_FORMAT_IDX);
  ASSERT_TRUE(images.ok()) << images.status();
  EXPECT_EQ((*images)->rows(), 2);
  EXPECT_EQ(service_.fetches(), 1);
}

TEST_F(DatasetCacheTest, ParsedTablesAreBoundedByBytes) {
  // 6 values, kept as the 30 bytes of the IDX file.
  const std::string idx = service_.Add(TinyIdx());
  const std::string csv = service_.Add("x,y\n1,2\n");  // 2 doubles: 16 bytes
  // Room for either data set, not both. The disk keeps only the last file
  // fetched (max_bytes 0), so a miss in memory shows as a fetch.
  DatasetCache cache(stub_.get(), dir_.string(), /*max_bytes=*/0,
                     /*max_parsed_bytes=*/45);
  auto images = cache.Get(idx, v1::DATASET_FORMAT_IDX);
  ASSERT_TRUE(images.ok());
  ASSERT_TRUE(cache.Get(csv, v1::DATASET_FORMAT_CSV).ok());
  EXPECT_EQ(service_.fetches(), 2);
  // The CSV, used last, stayed; the images went (though the holder of
  // `images` still has them).
  ASSERT_TRUE(cache.Get(csv, v1::DATASET_FORMAT_CSV).ok());
  EXPECT_EQ(service_.fetches(), 2);
  ASSERT_TRUE(cache.Get(idx, v1::DATASET_FORMAT_IDX).ok());
  EXPECT_EQ(service_.fetches(), 3);
  EXPECT_EQ((*images)->rows(), 2);
}

TEST_F(DatasetCacheTest, AnIdxDataSetTakesOneBytePerValue) {
  const std::string idx = service_.Add(TinyIdx());  // 30 bytes, 6 values
  const std::string csv = service_.Add("x,y\n1,2\n");  // 16 bytes
  // 46 bytes hold both; as a table of doubles the images alone would take
  // 48.
  DatasetCache cache(stub_.get(), dir_.string(), /*max_bytes=*/0,
                     /*max_parsed_bytes=*/46);
  auto images = cache.Get(idx, v1::DATASET_FORMAT_IDX);
  ASSERT_TRUE(images.ok()) << images.status();
  EXPECT_EQ((*images)->value_bytes(), 30);
  ASSERT_TRUE(cache.Get(csv, v1::DATASET_FORMAT_CSV).ok());
  ASSERT_TRUE(cache.Get(idx, v1::DATASET_FORMAT_IDX).ok());
  ASSERT_TRUE(cache.Get(csv, v1::DATASET_FORMAT_CSV).ok());
  EXPECT_EQ(service_.fetches(), 2);
}

TEST_F(DatasetCacheTest, DataSetsOverTheLimitsAreRefusedNamingTheFlag) {
  const std::string idx = service_.Add(TinyIdx());  // 2 x 3 = 6 values
  DatasetLimits limits;
  limits.idx.max_values = 5;
  DatasetCache cache(stub_.get(), dir_.string(), 1 << 20, 1 << 20, limits);
  const absl::Status status = cache.Get(idx, v1::DATASET_FORMAT_IDX).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("data set " + idx + " (IDX): 2 images of 1x2 pixels "
                        "and their labels are 6 values, more than the limit "
                        "of 5"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("--max-dataset-values"));
  limits.idx.max_values = 6;
  DatasetCache roomier(stub_.get(), dir_.string(), 1 << 20, 1 << 20, limits);
  EXPECT_TRUE(roomier.Get(idx, v1::DATASET_FORMAT_IDX).ok());
}

TEST_F(DatasetCacheTest, ParsedTablesAreBoundedByCountLeastRecentlyUsedFirst) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(service_.Add("x\n" + std::to_string(i) + "\n"));
  }
  DatasetCache cache(stub_.get(), dir_.string(), /*max_bytes=*/0);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(cache.Get(ids[i], v1::DATASET_FORMAT_CSV).ok());
  }
  ASSERT_TRUE(cache.Get(ids[0], v1::DATASET_FORMAT_CSV).ok());  // used again
  EXPECT_EQ(service_.fetches(), 4);
  ASSERT_TRUE(cache.Get(ids[4], v1::DATASET_FORMAT_CSV).ok());  // evicts ids[1]
  EXPECT_EQ(service_.fetches(), 5);
  for (int i : {0, 2, 3, 4}) {
    ASSERT_TRUE(cache.Get(ids[i], v1::DATASET_FORMAT_CSV).ok());
  }
  EXPECT_EQ(service_.fetches(), 5);
  ASSERT_TRUE(cache.Get(ids[1], v1::DATASET_FORMAT_CSV).ok());
  EXPECT_EQ(service_.fetches(), 6);
}

TEST_F(DatasetCacheTest, CorruptDiskCopyIsFetchedAgain) {
  const std::string idx = service_.Add(TinyIdx());
  fs::create_directories(dir_);
  std::ofstream(dir_ / idx, std::ios::binary) << "not the data set";
  DatasetCache cache(stub_.get(), dir_.string(), 1 << 20);
  auto images = cache.Get(idx, v1::DATASET_FORMAT_IDX);
  ASSERT_TRUE(images.ok()) << images.status();
  EXPECT_EQ(service_.fetches(), 1);
}

}  // namespace
}  // namespace evonas::worker
