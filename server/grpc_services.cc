#include "server/grpc_services.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/sha256.h"

namespace evonas {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

namespace {

constexpr size_t kChunkBytes = 1 << 20;

template <typename T, typename Fill>
grpc::Status Respond(const absl::StatusOr<T>& result, Fill fill) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  fill(*result);
  return grpc::Status::OK;
}

// Streams `bytes` in chunks; the first message also gets `first`.
template <typename Response, typename Writer, typename First>
grpc::Status StreamChunks(const std::string& bytes, Writer* writer,
                          First first) {
  size_t offset = 0;
  do {
    Response response;
    if (offset == 0) first(response);
    size_t n = std::min(kChunkBytes, bytes.size() - offset);
    response.set_chunk(bytes.substr(offset, n));
    offset += n;
    if (!writer->Write(response)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
  } while (offset < bytes.size());
  return grpc::Status::OK;
}

}  // namespace

grpc::Status EvonasServiceImpl::UploadDataset(
    grpc::ServerContext* context,
    grpc::ServerReader<v1::UploadDatasetRequest>* reader,
    v1::Dataset* response) {
  return UploadDatasetFor(context, reader, response, std::nullopt);
}

grpc::Status EvonasServiceImpl::UploadDatasetFor(
    grpc::ServerContext* context,
    grpc::ServerReader<v1::UploadDatasetRequest>* reader,
    v1::Dataset* response, std::optional<std::string> owner) {
  v1::UploadDatasetRequest request;
  if (!reader->Read(&request)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "upload stream is empty; send metadata first");
  }
  if (!request.has_metadata()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the first upload message must carry metadata");
  }
  const std::string name = request.metadata().name();
  auto upload = controller_->BeginUpload(name, request.metadata().size_bytes(),
                                         request.metadata().format());
  if (!upload.ok()) return ToGrpcStatus(upload.status());
  do {
    if (request.chunk().size() > kChunkBytes) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "upload chunks must be at most 1 MiB");
    }
    absl::Status status = (*upload)->Append(request.chunk());
    if (!status.ok()) return ToGrpcStatus(status);
  } while (reader->Read(&request));
  // Read() also returns false when the stream broke (client cancelled or
  // disconnected, deadline, a message over gRPC's limit): then the bytes so
  // far are only a prefix of the file. A cancellation by the client shows in
  // IsCancelled() at once; one that gRPC itself raises (an oversized
  // message) may show only a moment later, so a declared size (which
  // Finish() checks) is what reliably protects a client from a stored
  // prefix.
  if (context->IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED,
                        "upload was interrupted; nothing was stored");
  }
  return Respond((*upload)->Finish(std::move(owner)), [&](const v1::Dataset& d) {
    *response = d;
    // This upload's name, also when the same bytes were stored before under
    // another one.
    response->set_name(name);
  });
}

grpc::Status EvonasServiceImpl::GetDataset(grpc::ServerContext*,
                                           const v1::GetDatasetRequest* request,
                                           v1::Dataset* response) {
  return Respond(controller_->GetDataset(request->dataset_id()),
                 [&](const v1::Dataset& d) { *response = d; });
}

grpc::Status EvonasServiceImpl::ListDatasets(grpc::ServerContext*,
                                             const v1::ListDatasetsRequest*,
                                             v1::ListDatasetsResponse* response) {
  return Respond(controller_->ListDatasets(), [&](const auto& datasets) {
    for (const auto& d : datasets) *response->add_datasets() = d;
  });
}

grpc::Status EvonasServiceImpl::CreateExperiment(
    grpc::ServerContext*, const v1::CreateExperimentRequest* request,
    v1::Experiment* response) {
  return Respond(controller_->CreateExperiment(request->spec()),
                 [&](const v1::Experiment& e) { *response = e; });
}

grpc::Status EvonasServiceImpl::GetExperiment(
    grpc::ServerContext*, const v1::GetExperimentRequest* request,
    v1::Experiment* response) {
  return Respond(controller_->GetExperiment(request->experiment_id()),
                 [&](const v1::Experiment& e) { *response = e; });
}

grpc::Status EvonasServiceImpl::ListExperiments(
    grpc::ServerContext*, const v1::ListExperimentsRequest*,
    v1::ListExperimentsResponse* response) {
  return Respond(controller_->ListExperiments(), [&](const auto& experiments) {
    for (const auto& e : experiments) *response->add_experiments() = e;
  });
}

grpc::Status EvonasServiceImpl::CancelExperiment(
    grpc::ServerContext*, const v1::CancelExperimentRequest* request,
    v1::Experiment* response) {
  return Respond(controller_->CancelExperiment(request->experiment_id()),
                 [&](const v1::Experiment& e) { *response = e; });
}

grpc::Status EvonasServiceImpl::ListCandidates(
    grpc::ServerContext*, const v1::ListCandidatesRequest* request,
    v1::ListCandidatesResponse* response) {
  return Respond(controller_->ListCandidates(request->experiment_id()),
                 [&](const auto& candidates) {
                   for (const auto& c : candidates) {
                     *response->add_candidates() = c;
                   }
                 });
}

grpc::Status EvonasServiceImpl::GetCandidate(
    grpc::ServerContext*, const v1::GetCandidateRequest* request,
    v1::Candidate* response) {
  return Respond(controller_->GetCandidate(request->candidate_id()),
                 [&](const v1::Candidate& c) { *response = c; });
}

grpc::Status EvonasServiceImpl::GetParetoFront(
    grpc::ServerContext*, const v1::GetParetoFrontRequest* request,
    v1::ParetoFront* response) {
  return Respond(controller_->GetParetoFront(request->experiment_id()),
                 [&](const v1::ParetoFront& f) { *response = f; });
}

grpc::Status EvonasServiceImpl::DownloadModel(
    grpc::ServerContext*, const v1::DownloadModelRequest* request,
    grpc::ServerWriter<v1::DownloadModelResponse>* writer) {
  absl::StatusOr<std::string> model =
      controller_->ReadModel(request->candidate_id(), request->format());
  if (!model.ok()) return ToGrpcStatus(model.status());
  const std::string sha = Sha256Hex(*model);
  return StreamChunks<v1::DownloadModelResponse>(
      *model, writer, [&](v1::DownloadModelResponse& first) {
        first.set_total_bytes(static_cast<int64_t>(model->size()));
        first.set_sha256(sha);
      });
}

grpc::Status WorkerServiceImpl::LeaseWork(grpc::ServerContext*,
                                          const v1::LeaseWorkRequest* request,
                                          v1::LeaseWorkResponse* response) {
  return Respond(controller_->LeaseWork(request->worker_id(), request->info()),
                 [&](const std::optional<v1::Lease>& lease) {
                   if (lease) {
                     *response->mutable_lease() = *lease;
                   } else {
                     response->set_retry_after_seconds(1.0);
                   }
                 });
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext*,
                                          const v1::HeartbeatRequest* request,
                                          v1::HeartbeatResponse* response) {
  return Respond(
      controller_->Heartbeat(request->worker_id(), request->lease_id()),
      [&](absl::Time deadline) {
        int64_t ms = absl::ToUnixMillis(deadline);
        response->mutable_deadline()->set_seconds(ms / 1000);
        response->mutable_deadline()->set_nanos((ms % 1000) * 1000000);
      });
}

grpc::Status WorkerServiceImpl::ReleaseLease(
    grpc::ServerContext*, const v1::ReleaseLeaseRequest* request,
    v1::ReleaseLeaseResponse*) {
  return ToGrpcStatus(
      controller_->ReleaseLease(request->worker_id(), request->lease_id()));
}

grpc::Status WorkerServiceImpl::ReportResult(
    grpc::ServerContext* context,
    grpc::ServerReader<v1::ReportResultRequest>* reader,
    v1::ReportResultResponse* response) {
  v1::ReportResultRequest request;
  if (!reader->Read(&request) || !request.has_result()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the first report message must carry result");
  }
  const v1::WorkResult result = request.result();
  // Refuses a stale, inconsistent or oversized report before its files are
  // buffered; every declared size is then known to be within the limit.
  absl::Status accepted = controller_->BeginReport(result);
  if (!accepted.ok()) return ToGrpcStatus(accepted);
  size_t declared = static_cast<size_t>(result.model_size_bytes());
  for (const v1::Artifact& artifact : result.artifacts()) {
    declared += static_cast<size_t>(artifact.size_bytes());
  }
  std::string payload;  // the model, then each artifact
  payload.reserve(declared);
  do {
    if (request.model_chunk().size() > kChunkBytes) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "report: model chunks must be at most 1 MiB");
    }
    if (payload.size() + request.model_chunk().size() > declared) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("report: more bytes than the declared ", declared,
                       " (model and artifacts)"));
    }
    payload.append(request.model_chunk());
  } while (reader->Read(&request));
  if (context->IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED,
                        "report was interrupted; send it again");
  }
  // Split by the declared sizes; a short stream leaves the last files short,
  // which the controller's size and hash checks refuse.
  size_t offset =
      std::min(payload.size(), static_cast<size_t>(result.model_size_bytes()));
  std::string model = payload.substr(0, offset);
  std::vector<std::string> artifacts;
  for (const v1::Artifact& artifact : result.artifacts()) {
    artifacts.push_back(
        payload.substr(offset, static_cast<size_t>(artifact.size_bytes())));
    offset = std::min(payload.size(),
                      offset + static_cast<size_t>(artifact.size_bytes()));
  }
  return Respond(controller_->Report(result, model, artifacts),
                 [&](bool feasible) { response->set_feasible(feasible); });
}

grpc::Status WorkerServiceImpl::FetchDataset(
    grpc::ServerContext*, const v1::FetchDatasetRequest* request,
    grpc::ServerWriter<v1::FetchDatasetResponse>* writer) {
  absl::StatusOr<std::string> bytes =
      controller_->ReadDataset(request->dataset_id());
  if (!bytes.ok()) return ToGrpcStatus(bytes.status());
  return StreamChunks<v1::FetchDatasetResponse>(
      *bytes, writer, [&](v1::FetchDatasetResponse& first) {
        first.set_total_bytes(static_cast<int64_t>(bytes->size()));
      });
}

grpc::Status WorkerServiceImpl::FetchCheckpoint(
    grpc::ServerContext*, const v1::FetchCheckpointRequest* request,
    grpc::ServerWriter<v1::FetchCheckpointResponse>* writer) {
  absl::StatusOr<std::string> bytes =
      controller_->FetchCheckpoint(request->worker_id(), request->lease_id());
  if (!bytes.ok()) return ToGrpcStatus(bytes.status());
  return StreamChunks<v1::FetchCheckpointResponse>(
      *bytes, writer, [&](v1::FetchCheckpointResponse& first) {
        first.set_total_bytes(static_cast<int64_t>(bytes->size()));
      });
}

grpc::Status EvonasServiceImpl::WatchExperiment(
    grpc::ServerContext* context, const v1::WatchExperimentRequest* request,
    grpc::ServerWriter<v1::Experiment>* writer) {
  std::string last_sent;
  while (!context->IsCancelled()) {
    absl::StatusOr<v1::Experiment> experiment =
        controller_->GetExperiment(request->experiment_id());
    if (!experiment.ok()) return ToGrpcStatus(experiment.status());
    // Only state and counts matter: time passing alone sends nothing.
    const std::string key =
        absl::StrCat(experiment->state(), "|",
                     experiment->counts().SerializeAsString(), "|",
                     experiment->feasible_count());
    if (key != last_sent) {
      if (!writer->Write(*experiment)) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      }
      last_sent = key;
    }
    if (experiment->state() == v1::EXPERIMENT_STATE_COMPLETED ||
        experiment->state() == v1::EXPERIMENT_STATE_CANCELLED) {
      return grpc::Status::OK;
    }
    absl::SleepFor(kWatchInterval);
  }
  // The client cancelled, its deadline passed, or the server shuts down.
  return grpc::Status(grpc::StatusCode::CANCELLED, "watch ended early");
}

}  // namespace evonas
