#ifndef EVONAS_CLIENT_CONTROLLER_CLIENT_H_
#define EVONAS_CLIENT_CONTROLLER_CLIENT_H_

#include <cstdint>
#include <functional>
#include <istream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/channel.h"
#include "evonas/v1/evonas_service.grpc.pb.h"
#include "evonas/v1/evonas_service.pb.h"

namespace evonas::client {

// Size of the chunks UploadDataset sends (the API allows at most 1 MiB).
inline constexpr int64_t kUploadChunkBytes = int64_t{1} << 20;

struct ClientOptions {
  // Deadline of every unary call.
  absl::Duration rpc_timeout = absl::Seconds(30);
  // Deadline of a streaming transfer of n bytes: transfer_base_timeout plus
  // n / transfer_min_bytes_per_second.
  absl::Duration transfer_base_timeout = absl::Seconds(60);
  int64_t transfer_min_bytes_per_second = int64_t{1} << 20;
};

// The one place where a grpc::Status becomes an absl::Status (same code,
// same message). The two code spaces are identical.
absl::Status FromGrpcStatus(const grpc::Status& status);

// A thin client of evonas.v1.EvonasService: one channel, one stub, a deadline
// on every call. Every method returns the controller's error unchanged
// (see FromGrpcStatus). Thread-safe.
class ControllerClient {
 public:
  // Calls `address` (host:port) with `security` (TLS, token; see
  // CreateControllerChannel). Does not connect until the first call.
  static absl::StatusOr<std::unique_ptr<ControllerClient>> Connect(
      const std::string& address, const ChannelSecurity& security,
      const ClientOptions& options);
  // Uses an existing channel (tests pass an in-process one).
  ControllerClient(std::shared_ptr<grpc::Channel> channel,
                   const ClientOptions& options);

  ControllerClient(const ControllerClient&) = delete;
  ControllerClient& operator=(const ControllerClient&) = delete;

  // Called on the calling thread after each chunk is written, with the
  // bytes sent so far (increasing) and the `size_bytes` given to
  // UploadDataset.
  using UploadProgressCallback =
      std::function<void(int64_t sent_bytes, int64_t total_bytes)>;
  // Streams `data` to UploadDataset in chunks of kUploadChunkBytes. The first
  // message carries `name`, `size_bytes` (0 if unknown), which also sizes
  // the deadline, and `format`. DataLoss if reading `data` fails.
  // `on_progress`, if set, sees every chunk written.
  absl::StatusOr<v1::Dataset> UploadDataset(
      const std::string& name, int64_t size_bytes, std::istream& data,
      v1::DatasetFormat format = v1::DATASET_FORMAT_CSV,
      const UploadProgressCallback& on_progress = nullptr);
  absl::StatusOr<v1::Dataset> GetDataset(const std::string& dataset_id);
  absl::StatusOr<v1::ListDatasetsResponse> ListDatasets();

  absl::StatusOr<v1::Experiment> CreateExperiment(
      const v1::ExperimentSpec& spec);
  absl::StatusOr<v1::Experiment> GetExperiment(
      const std::string& experiment_id);
  absl::StatusOr<v1::ListExperimentsResponse> ListExperiments();
  absl::StatusOr<v1::Experiment> CancelExperiment(
      const std::string& experiment_id);

  absl::StatusOr<v1::ListCandidatesResponse> ListCandidates(
      const std::string& experiment_id);
  absl::StatusOr<v1::Candidate> GetCandidate(const std::string& candidate_id);
  absl::StatusOr<v1::ParetoFront> GetParetoFront(
      const std::string& experiment_id);

  // Calls `on_message` for every message DownloadModel streams for the file
  // in `format`, in order.
  // `expected_bytes` (0 if unknown) sizes the deadline. If `on_message`
  // returns an error the call is cancelled and that error returned.
  using DownloadCallback =
      std::function<absl::Status(const v1::DownloadModelResponse&)>;
  absl::Status DownloadModel(
      const std::string& candidate_id, int64_t expected_bytes,
      const DownloadCallback& on_message,
      v1::ModelFormat format = v1::MODEL_FORMAT_TORCHSCRIPT);

  // Calls `on_update` for every experiment WatchExperiment streams, until the
  // experiment is finished (OK). `timeout` bounds the whole stream
  // (DeadlineExceeded); zero means no deadline, for a watch that lasts as
  // long as the search. If `on_update` returns an error the call is
  // cancelled and that error returned.
  using WatchCallback = std::function<absl::Status(const v1::Experiment&)>;
  absl::Status WatchExperiment(const std::string& experiment_id,
                               absl::Duration timeout,
                               const WatchCallback& on_update);

  // Deadline allowance for streaming `bytes` bytes (see ClientOptions).
  absl::Duration TransferTimeout(int64_t bytes) const;

 private:
  // Runs `call(context, response)` with the unary deadline set on `context`.
  template <typename Response, typename Call>
  absl::StatusOr<Response> CallUnary(const Call& call);

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::EvonasService::Stub> stub_;
};

}  // namespace evonas::client

#endif  // EVONAS_CLIENT_CONTROLLER_CLIENT_H_
