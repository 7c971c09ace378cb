#include "server/auth/authorized_services.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "server/auth/tokens.h"
#include "server/store/store.h"

namespace evonas::auth {
namespace {

// The caller's principal if it holds a valid token of `kind`.
absl::StatusOr<Principal> Caller(AccessControl* access,
                                 grpc::ServerContext* context,
                                 absl::string_view kind) {
  return access->Authenticate(context->client_metadata(), kind);
}

// NotFound, worded as for a missing id, when `visibility` is kForeign (or
// failed); OK otherwise.
absl::Status HideForeign(const absl::StatusOr<Visibility>& visibility,
                         const absl::Status& not_found) {
  if (!visibility.ok()) return visibility.status();
  if (*visibility == Visibility::kForeign) return not_found;
  return absl::OkStatus();
}

// The controller's words for a spec naming a data set that does not exist
// (Controller::ValidateSpec); the hostile-input test checks they match.
absl::Status SpecDatasetNotFound(absl::string_view field,
                                 absl::string_view id) {
  return absl::NotFoundError(
      absl::StrCat(field, ": no data set ", id, "; upload it first"));
}

}  // namespace

#define EVONAS_AUTHENTICATE(principal, kind)                         \
  absl::StatusOr<Principal> principal = Caller(access_, context, kind); \
  if (!principal.ok()) return ToGrpcStatus(principal.status())

grpc::Status AuthorizedEvonasService::UploadDataset(
    grpc::ServerContext* context,
    grpc::ServerReader<v1::UploadDatasetRequest>* reader,
    v1::Dataset* response) {
  EVONAS_AUTHENTICATE(caller, kClientKind);
  // The controller stores the data set and the tenant's ownership of it in
  // one transaction.
  grpc::Status status =
      inner_->UploadDatasetFor(context, reader, response, caller->tenant);
  if (!status.ok()) return status;
  absl::StatusOr<v1::Dataset> view = access_->TenantView(caller->tenant,
                                                         *response);
  if (!view.ok()) return ToGrpcStatus(view.status());
  *response = *std::move(view);
  return grpc::Status::OK;
}

grpc::Status AuthorizedEvonasService::GetDataset(
    grpc::ServerContext* context, const v1::GetDatasetRequest* request,
    v1::Dataset* response) {
  EVONAS_AUTHENTICATE(caller, kClientKind);
  const std::string& id = request->dataset_id();
  absl::Status hidden = HideForeign(
      access_->DatasetVisibility(caller->tenant, id), store::DatasetNotFound(id));
  if (!hidden.ok()) return ToGrpcStatus(hidden);
  grpc::Status status = inner_->GetDataset(context, request, response);
  if (!status.ok()) return status;
  absl::StatusOr<v1::Dataset> view =
      access_->TenantView(caller->tenant, *response);
  if (!view.ok()) return ToGrpcStatus(view.status());
  *response = *std::move(view);
  return grpc::Status::OK;
}

grpc::Status AuthorizedEvonasService::ListDatasets(
    grpc::ServerContext* context, const v1::ListDatasetsRequest* request,
    v1::ListDatasetsResponse* response) {
  EVONAS_AUTHENTICATE(caller, kClientKind);
  v1::ListDatasetsResponse all;
  grpc::Status status = inner_->ListDatasets(context, request, &all);
  if (!status.ok()) return status;
  absl::StatusOr<std::vector<v1::Dataset>> mine = access_->TenantDatasets(
      caller->tenant, {all.datasets().begin(), all.datasets().end()});
  if (!mine.ok()) return ToGrpcStatus(mine.status());
  for (v1::Dataset& d : *mine) *response->add_datasets() = std::move(d);
  return grpc::Status::OK;
}

grpc::Status AuthorizedEvonasService::CreateExperiment(
    grpc::ServerContext* context, const v1::CreateExperimentRequest* request,
    v1::Experiment* response) {
  EVONAS_AUTHENTICATE(caller, kClientKind);
  const v1::ExperimentSpec& spec = request->spec();
  for (auto [field, id] :
       {std::pair<absl::string_view, const std::string*>{"dataset_id",
                                                         &spec.dataset_id()},
        {"test_dataset_id", &spec.test_dataset_id()}}) {
    if (id->empty()) continue;  // the controller explains what is missing
    absl::Status hidden =
        HideForeign(access_->DatasetVisibility(caller->tenant, *id),
                    SpecDatasetNotFound(field, *id));
    if (!hidden.ok()) return ToGrpcStatus(hidden);
  }
  // The controller checks the tenant's limit and stores the experiment with
  // its owner in one transaction.
  absl::StatusOr<v1::Experiment> created =
      inner_->controller()->CreateExperiment(
          request->spec(),
          ExperimentOwnership{caller->tenant,
                              access_->options().max_running_experiments});
  if (!created.ok()) return ToGrpcStatus(created.status());
  *response = *std::move(created);
  return grpc::Status::OK;
}

grpc::Status AuthorizedEvonasService::GetExperiment(
    grpc::ServerContext* context, const v1::GetExperimentRequest* request,
    v1::Experiment* response) {
  EVONAS_AUTHENTICATE(caller, kClientKind);
  const std::string& id = request->experiment_id();
  absl::Status hidden =
      HideForeign(access_->ExperimentVisibility(caller->tenant, id),
                  store::ExperimentNotFound(id));
  if (!hidden.ok()) return ToGrpcStatus(hidden);
  return inner_->GetExperiment(context, request, response);
}

grpc::Status AuthorizedEvonasService::ListExperiments(
    grpc::ServerContext* context, const v1::ListExperimentsRequest* request,
    v1::ListExperimentsResponse* response) {
  EVONAS_AUTHENTICATE(caller, kClientKind);
  absl::StatusOr<std::vector<std::string>> ids =
      access_->ExperimentIdsOf(caller->tenant);
  if (!ids.ok()) return ToGrpcStatus(ids.status());
  const std::set<std::string> mine(ids->begin(), ids->end());
  v1::ListExperimentsResponse all;
  grpc::Status status = inner_->ListExperiments(context, request, &all);
  if (!status.ok()) return status;
  for (v1::Experiment& e : *all.mutable_experiments()) {
    if (mine.count(e.id()) > 0) *response->add_experiments() = std::move(e);
  }
  return grpc::Status::OK;
}

grpc::Status AuthorizedEvonasService::CancelExperiment(
    grpc::ServerContext* context, const v1::CancelExperimentRequest* request,
    v1::Experiment* response) {
  EVONAS_AUTHENTICATE(caller, kClientKind);
  const std::string& id = request->experiment_id();
  absl::Status hidden =
      HideForeign(access_->ExperimentVisibility(caller->tenant, id),
                  store::ExperimentNotFound(id));
  if (!hidden.ok()) return ToGrpcStatus(hidden);
  return inner_->CancelExperiment(context, request, response);
}

grpc::Status AuthorizedEvonasService::ListCandidates(
    grpc::ServerContext* context, const v1::ListCandidatesRequest* request,
    v1::ListCandidatesResponse* response) {
  EVONAS_AUTHENTICATE(caller, kClientKind);
  const std::string& id = request->experiment_id();
  absl::Status hidden =
      HideForeign(access_->ExperimentVisibility(caller->tenant, id),
                  store::ExperimentNotFound(id));
  if (!hidden.ok()) return ToGrpcStatus(hidden);
  return inner_->ListCandidates(context, request, response);
}

grpc::Status AuthorizedEvonasService::GetCandidate(
    grpc::ServerContext* context, const v1::GetCandidateRequest* request,
    v1::Candidate* response) {
  EVONAS_AUTHENTICATE(caller, kClientKind);
  const std::string& id = request->candidate_id();
  absl::Status hidden =
      HideForeign(access_->CandidateVisibility(caller->tenant, id),
                  store::CandidateNotFound(id));
  if (!hidden.ok()) return ToGrpcStatus(hidden);
  return inner_->GetCandidate(context, request, response);
}

grpc::Status AuthorizedEvonasService::GetParetoFront(
    grpc::ServerContext* context, const v1::GetParetoFrontRequest* request,
    v1::ParetoFront* response) {
  EVONAS_AUTHENTICATE(caller, kClientKind);
  const std::string& id = request->experiment_id();
  absl::Status hidden =
      HideForeign(access_->ExperimentVisibility(caller->tenant, id),
                  store::ExperimentNotFound(id));
  if (!hidden.ok()) return ToGrpcStatus(hidden);
  return inner_->GetParetoFront(context, request, response);
}

grpc::Status AuthorizedEvonasService::DownloadModel(
    grpc::ServerContext* context, const v1::DownloadModelRequest* request,
    grpc::ServerWriter<v1::DownloadModelResponse>* writer) {
  EVONAS_AUTHENTICATE(caller, kClientKind);
  const std::string& id = request->candidate_id();
  absl::Status hidden =
      HideForeign(access_->CandidateVisibility(caller->tenant, id),
                  store::CandidateNotFound(id));
  if (!hidden.ok()) return ToGrpcStatus(hidden);
  return inner_->DownloadModel(context, request, writer);
}

grpc::Status AuthorizedEvonasService::WatchExperiment(
    grpc::ServerContext* context, const v1::WatchExperimentRequest* request,
    grpc::ServerWriter<v1::Experiment>* writer) {
  EVONAS_AUTHENTICATE(caller, kClientKind);
  const std::string& id = request->experiment_id();
  absl::Status hidden =
      HideForeign(access_->ExperimentVisibility(caller->tenant, id),
                  store::ExperimentNotFound(id));
  if (!hidden.ok()) return ToGrpcStatus(hidden);
  return inner_->WatchExperiment(context, request, writer);
}

grpc::Status AuthorizedWorkerService::Check(grpc::ServerContext* context) {
  return ToGrpcStatus(Caller(access_, context, kWorkerKind).status());
}

grpc::Status AuthorizedWorkerService::LeaseWork(
    grpc::ServerContext* context, const v1::LeaseWorkRequest* request,
    v1::LeaseWorkResponse* response) {
  grpc::Status status = Check(context);
  return status.ok() ? inner_->LeaseWork(context, request, response) : status;
}

grpc::Status AuthorizedWorkerService::Heartbeat(
    grpc::ServerContext* context, const v1::HeartbeatRequest* request,
    v1::HeartbeatResponse* response) {
  grpc::Status status = Check(context);
  return status.ok() ? inner_->Heartbeat(context, request, response) : status;
}

grpc::Status AuthorizedWorkerService::ReleaseLease(
    grpc::ServerContext* context, const v1::ReleaseLeaseRequest* request,
    v1::ReleaseLeaseResponse* response) {
  grpc::Status status = Check(context);
  return status.ok() ? inner_->ReleaseLease(context, request, response)
                     : status;
}

grpc::Status AuthorizedWorkerService::ReportResult(
    grpc::ServerContext* context,
    grpc::ServerReader<v1::ReportResultRequest>* reader,
    v1::ReportResultResponse* response) {
  grpc::Status status = Check(context);
  return status.ok() ? inner_->ReportResult(context, reader, response)
                     : status;
}

grpc::Status AuthorizedWorkerService::FetchDataset(
    grpc::ServerContext* context, const v1::FetchDatasetRequest* request,
    grpc::ServerWriter<v1::FetchDatasetResponse>* writer) {
  grpc::Status status = Check(context);
  return status.ok() ? inner_->FetchDataset(context, request, writer) : status;
}

grpc::Status AuthorizedWorkerService::FetchCheckpoint(
    grpc::ServerContext* context, const v1::FetchCheckpointRequest* request,
    grpc::ServerWriter<v1::FetchCheckpointResponse>* writer) {
  grpc::Status status = Check(context);
  return status.ok() ? inner_->FetchCheckpoint(context, request, writer)
                     : status;
}

#undef EVONAS_AUTHENTICATE

}  // namespace evonas::auth
