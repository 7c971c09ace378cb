#include "client/controller_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/fake_evonas_service.h"
#include "gtest/gtest.h"

namespace evonas::client {
namespace {

TEST(FromGrpcStatusTest, KeepsCodeAndMessage) {
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  const absl::Status status = FromGrpcStatus(
      grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "already done"));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(), "already done");
  EXPECT_EQ(
      FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "x")).code(),
      absl::StatusCode::kUnavailable);
}

TEST(ControllerClientTest, TransferTimeoutScalesWithSize) {
  ClientOptions options;
  options.transfer_base_timeout = absl::Seconds(10);
  options.transfer_min_bytes_per_second = 1000;
  ChannelSecurity plaintext;
  plaintext.plaintext = true;
  auto client = ControllerClient::Connect("localhost:1", plaintext, options);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->TransferTimeout(0), absl::Seconds(10));
  EXPECT_EQ((*client)->TransferTimeout(5000), absl::Seconds(15));
}

TEST(ControllerClientTest, UnreadableCaFileIsAnError) {
  ChannelSecurity security;
  security.tls_ca_file = "/nonexistent/ca.pem";
  auto client =
      ControllerClient::Connect("localhost:1", security, ClientOptions());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(client.status().message().find("--tls-ca"), std::string::npos);
}

class ControllerClientRpcTest : public ::testing::Test {
 protected:
  FakeController fake_;
  ControllerClient client_{fake_.channel, ClientOptions()};
};

TEST_F(ControllerClientRpcTest, UploadSendsMetadataFirstAndChunksOfOneMiB) {
  std::string data(2 * kUploadChunkBytes + kUploadChunkBytes / 2, 'a');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i % 251);
  fake_.service.dataset.set_id("d1");
  std::istringstream in(data);

  absl::StatusOr<v1::Dataset> dataset = client_.UploadDataset(
      "points.csv", static_cast<int64_t>(data.size()), in);

  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->id(), "d1");
  const std::vector<v1::UploadDatasetRequest> uploads = fake_.service.uploads();
  ASSERT_EQ(uploads.size(), 3u);
  EXPECT_EQ(uploads[0].metadata().name(), "points.csv");
  EXPECT_EQ(uploads[0].metadata().size_bytes(),
            static_cast<int64_t>(data.size()));
  EXPECT_FALSE(uploads[1].has_metadata());
  EXPECT_FALSE(uploads[2].has_metadata());
  std::string received;
  for (const auto& u : uploads) {
    EXPECT_LE(static_cast<int64_t>(u.chunk().size()), kUploadChunkBytes);
    received += u.chunk();
  }
  EXPECT_EQ(received, data);
  // 60 s base + 2.5 MiB at 1 MiB/s.
  EXPECT_GT(fake_.service.last_time_left(), std::chrono::seconds(55));
  EXPECT_LT(fake_.service.last_time_left(), std::chrono::seconds(63));
}

TEST_F(ControllerClientRpcTest, UploadProgressIncreasesToTheTotal) {
  const std::string data(2 * kUploadChunkBytes + 100, 'p');
  std::istringstream in(data);
  const int64_t total = static_cast<int64_t>(data.size());
  std::vector<int64_t> seen;
  absl::StatusOr<v1::Dataset> dataset = client_.UploadDataset(
      "p.csv", total, in, v1::DATASET_FORMAT_CSV,
      [&](int64_t sent_bytes, int64_t total_bytes) {
        EXPECT_EQ(total_bytes, total);
        seen.push_back(sent_bytes);
      });
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(seen, (std::vector<int64_t>{kUploadChunkBytes,
                                        2 * kUploadChunkBytes, total}));
}

TEST_F(ControllerClientRpcTest, UploadOfExactlyOneChunkSendsOneMessage) {
  std::istringstream in(std::string(kUploadChunkBytes, 'x'));
  ASSERT_TRUE(client_.UploadDataset("a", kUploadChunkBytes, in).ok());
  EXPECT_EQ(fake_.service.uploads().size(), 1u);
}

TEST_F(ControllerClientRpcTest, EmptyUploadStillSendsMetadata) {
  std::istringstream in("");
  ASSERT_TRUE(client_.UploadDataset("empty.csv", 0, in).ok());
  const auto uploads = fake_.service.uploads();
  ASSERT_EQ(uploads.size(), 1u);
  EXPECT_EQ(uploads[0].metadata().name(), "empty.csv");
  EXPECT_TRUE(uploads[0].chunk().empty());
}

TEST_F(ControllerClientRpcTest, UploadReturnsControllerError) {
  fake_.service.dataset_status =
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "line 3: not a number");
  std::istringstream in("a,b\n1,x\n");
  absl::StatusOr<v1::Dataset> dataset = client_.UploadDataset("bad.csv", 8, in);
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(dataset.status().message(), "line 3: not a number");
}

TEST_F(ControllerClientRpcTest, UnaryCallsCarryTheirDeadline) {
  fake_.service.dataset.set_id("d7");
  absl::StatusOr<v1::Dataset> dataset = client_.GetDataset("d7");
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(fake_.service.last_id(), "d7");
  EXPECT_GT(fake_.service.last_time_left(), std::chrono::seconds(25));
  // The wire format rounds the timeout up a little.
  EXPECT_LE(fake_.service.last_time_left(), std::chrono::seconds(31));
}

TEST_F(ControllerClientRpcTest, UnaryCallReturnsNotFound) {
  absl::StatusOr<v1::Experiment> experiment = client_.GetExperiment("exp-x");
  EXPECT_EQ(experiment.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ControllerClientRpcTest, UnimplementedMethodsReportUnimplemented) {
  EXPECT_EQ(client_.CancelExperiment("exp-1").status().code(),
            absl::StatusCode::kUnimplemented);
}

TEST_F(ControllerClientRpcTest, DownloadDeliversMessagesInOrder) {
  for (const char* chunk : {"ab", "cd", "e"}) {
    v1::DownloadModelResponse message;
    message.set_chunk(chunk);
    fake_.service.download.push_back(message);
  }
  std::string received;
  absl::Status status = client_.DownloadModel(
      "c1", 5, [&](const v1::DownloadModelResponse& message) {
        received += message.chunk();
        return absl::OkStatus();
      });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(received, "abcde");
  EXPECT_EQ(fake_.service.last_id(), "c1");
}

TEST_F(ControllerClientRpcTest, DownloadStopsOnCallbackError) {
  fake_.service.download.resize(3);
  int calls = 0;
  absl::Status status =
      client_.DownloadModel("c1", 0, [&](const v1::DownloadModelResponse&) {
        ++calls;
        return absl::DataLossError("bad");
      });
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(calls, 1);
}

TEST_F(ControllerClientRpcTest, DownloadReturnsControllerError) {
  fake_.service.download_status =
      grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "not trained");
  absl::Status status = client_.DownloadModel(
      "c1", 0,
      [](const v1::DownloadModelResponse&) { return absl::OkStatus(); });
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace evonas::client
