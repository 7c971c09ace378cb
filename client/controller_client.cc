#include "client/controller_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"

namespace evonas::client {
namespace {

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(std::chrono::system_clock::now() +
                        absl::ToChronoMilliseconds(timeout));
}

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  // grpc::StatusCode and absl::StatusCode share the canonical code numbers.
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

absl::StatusOr<std::unique_ptr<ControllerClient>> ControllerClient::Connect(
    const std::string& address, const ChannelSecurity& security,
    const ClientOptions& options) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      CreateControllerChannel(address, security);
  if (!channel.ok()) return channel.status();
  return std::make_unique<ControllerClient>(*std::move(channel), options);
}

ControllerClient::ControllerClient(std::shared_ptr<grpc::Channel> channel,
                                   const ClientOptions& options)
    : options_(options),
      channel_(std::move(channel)),
      stub_(v1::EvonasService::NewStub(channel_)) {}

absl::Duration ControllerClient::TransferTimeout(int64_t bytes) const {
  const int64_t rate =
      std::max<int64_t>(options_.transfer_min_bytes_per_second, 1);
  return options_.transfer_base_timeout +
         absl::Seconds(static_cast<double>(std::max<int64_t>(bytes, 0)) /
                       static_cast<double>(rate));
}

template <typename Response, typename Call>
absl::StatusOr<Response> ControllerClient::CallUnary(const Call& call) {
  grpc::ClientContext context;
  SetDeadline(&context, options_.rpc_timeout);
  Response response;
  const grpc::Status status = call(&context, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::Dataset> ControllerClient::UploadDataset(
    const std::string& name, int64_t size_bytes, std::istream& data,
    v1::DatasetFormat format, const UploadProgressCallback& on_progress) {
  grpc::ClientContext context;
  SetDeadline(&context, TransferTimeout(size_bytes));
  v1::Dataset dataset;
  std::unique_ptr<grpc::ClientWriter<v1::UploadDatasetRequest>> writer =
      stub_->UploadDataset(&context, &dataset);

  v1::UploadDatasetRequest request;
  request.mutable_metadata()->set_name(name);
  request.mutable_metadata()->set_size_bytes(size_bytes);
  request.mutable_metadata()->set_format(format);
  std::string buffer(static_cast<size_t>(kUploadChunkBytes), '\0');
  int64_t sent = 0;
  bool first = true;
  for (;;) {
    data.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize n = data.gcount();
    if (data.bad()) {
      context.TryCancel();
      writer->Finish();
      return absl::DataLossError(
          absl::StrCat("reading the data set failed after ", sent, " bytes"));
    }
    if (n == 0 && !first) break;
    request.set_chunk(buffer.data(), static_cast<size_t>(n));
    // A failed Write means the stream is closed; Finish says why.
    if (!writer->Write(request)) break;
    sent += n;
    if (on_progress) on_progress(sent, size_bytes);
    first = false;
    request.clear_metadata();
    if (n < static_cast<std::streamsize>(buffer.size())) break;  // EOF
  }
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  return dataset;
}

absl::StatusOr<v1::Dataset> ControllerClient::GetDataset(
    const std::string& dataset_id) {
  v1::GetDatasetRequest request;
  request.set_dataset_id(dataset_id);
  return CallUnary<v1::Dataset>([&](grpc::ClientContext* c, v1::Dataset* r) {
    return stub_->GetDataset(c, request, r);
  });
}

absl::StatusOr<v1::ListDatasetsResponse> ControllerClient::ListDatasets() {
  const v1::ListDatasetsRequest request;
  return CallUnary<v1::ListDatasetsResponse>(
      [&](grpc::ClientContext* c, v1::ListDatasetsResponse* r) {
        return stub_->ListDatasets(c, request, r);
      });
}

absl::StatusOr<v1::Experiment> ControllerClient::CreateExperiment(
    const v1::ExperimentSpec& spec) {
  v1::CreateExperimentRequest request;
  *request.mutable_spec() = spec;
  return CallUnary<v1::Experiment>(
      [&](grpc::ClientContext* c, v1::Experiment* r) {
        return stub_->CreateExperiment(c, request, r);
      });
}

absl::StatusOr<v1::Experiment> ControllerClient::GetExperiment(
    const std::string& experiment_id) {
  v1::GetExperimentRequest request;
  request.set_experiment_id(experiment_id);
  return CallUnary<v1::Experiment>(
      [&](grpc::ClientContext* c, v1::Experiment* r) {
        return stub_->GetExperiment(c, request, r);
      });
}

absl::StatusOr<v1::ListExperimentsResponse>
ControllerClient::ListExperiments() {
  const v1::ListExperimentsRequest request;
  return CallUnary<v1::ListExperimentsResponse>(
      [&](grpc::ClientContext* c, v1::ListExperimentsResponse* r) {
        return stub_->ListExperiments(c, request, r);
      });
}

absl::StatusOr<v1::Experiment> ControllerClient::CancelExperiment(
    const std::string& experiment_id) {
  v1::CancelExperimentRequest request;
  request.set_experiment_id(experiment_id);
  return CallUnary<v1::Experiment>(
      [&](grpc::ClientContext* c, v1::Experiment* r) {
        return stub_->CancelExperiment(c, request, r);
      });
}

absl::StatusOr<v1::ListCandidatesResponse> ControllerClient::ListCandidates(
    const std::string& experiment_id) {
  v1::ListCandidatesRequest request;
  request.set_experiment_id(experiment_id);
  return CallUnary<v1::ListCandidatesResponse>(
      [&](grpc::ClientContext* c, v1::ListCandidatesResponse* r) {
        return stub_->ListCandidates(c, request, r);
      });
}

absl::StatusOr<v1::Candidate> ControllerClient::GetCandidate(
    const std::string& candidate_id) {
  v1::GetCandidateRequest request;
  request.set_candidate_id(candidate_id);
  return CallUnary<v1::Candidate>(
      [&](grpc::ClientContext* c, v1::Candidate* r) {
        return stub_->GetCandidate(c, request, r);
      });
}

absl::StatusOr<v1::ParetoFront> ControllerClient::GetParetoFront(
    const std::string& experiment_id) {
  v1::GetParetoFrontRequest request;
  request.set_experiment_id(experiment_id);
  return CallUnary<v1::ParetoFront>(
      [&](grpc::ClientContext* c, v1::ParetoFront* r) {
        return stub_->GetParetoFront(c, request, r);
      });
}

absl::Status ControllerClient::DownloadModel(
    const std::string& candidate_id, int64_t expected_bytes,
    const DownloadCallback& on_message, v1::ModelFormat format) {
  grpc::ClientContext context;
  SetDeadline(&context, TransferTimeout(expected_bytes));
  v1::DownloadModelRequest request;
  request.set_candidate_id(candidate_id);
  request.set_format(format);
  std::unique_ptr<grpc::ClientReader<v1::DownloadModelResponse>> reader =
      stub_->DownloadModel(&context, request);
  v1::DownloadModelResponse response;
  while (reader->Read(&response)) {
    absl::Status status = on_message(response);
    if (!status.ok()) {
      context.TryCancel();
      reader->Finish();  // Reports CANCELLED; the callback's error wins.
      return status;
    }
  }
  return FromGrpcStatus(reader->Finish());
}

absl::Status ControllerClient::WatchExperiment(
    const std::string& experiment_id, absl::Duration timeout,
    const WatchCallback& on_update) {
  grpc::ClientContext context;
  if (timeout > absl::ZeroDuration()) SetDeadline(&context, timeout);
  v1::WatchExperimentRequest request;
  request.set_experiment_id(experiment_id);
  std::unique_ptr<grpc::ClientReader<v1::Experiment>> reader =
      stub_->WatchExperiment(&context, request);
  v1::Experiment experiment;
  while (reader->Read(&experiment)) {
    absl::Status status = on_update(experiment);
    if (!status.ok()) {
      context.TryCancel();
      reader->Finish();  // Reports CANCELLED; the callback's error wins.
      return status;
    }
  }
  return FromGrpcStatus(reader->Finish());
}

}  // namespace evonas::client
