#ifndef EVONAS_SERVER_AUTH_AUTHORIZED_SERVICES_H_
#define EVONAS_SERVER_AUTH_AUTHORIZED_SERVICES_H_

#include "evonas/v1/evonas_service.grpc.pb.h"
#include "evonas/v1/worker_service.grpc.pb.h"
#include "server/auth/access_control.h"
#include "server/grpc_services.h"

namespace evonas::auth {

// EvonasService for clients with tokens: every call needs a client token,
// and a client sees and touches only its tenant's data sets, experiments,
// candidates and models. Another tenant's id is answered exactly as an id
// that does not exist. Delegates the work to `inner`; an RPC it does not
// override answers UNIMPLEMENTED, so a new RPC is closed until reviewed here.
class AuthorizedEvonasService final : public v1::EvonasService::Service {
 public:
  AuthorizedEvonasService(EvonasServiceImpl* inner, AccessControl* access)
      : inner_(inner), access_(access) {}

  grpc::Status UploadDataset(
      grpc::ServerContext* context,
      grpc::ServerReader<v1::UploadDatasetRequest>* reader,
      v1::Dataset* response) override;
  grpc::Status GetDataset(grpc::ServerContext* context,
                          const v1::GetDatasetRequest* request,
                          v1::Dataset* response) override;
  grpc::Status ListDatasets(grpc::ServerContext* context,
                            const v1::ListDatasetsRequest* request,
                            v1::ListDatasetsResponse* response) override;
  grpc::Status CreateExperiment(grpc::ServerContext* context,
                                const v1::CreateExperimentRequest* request,
                                v1::Experiment* response) override;
  grpc::Status GetExperiment(grpc::ServerContext* context,
                             const v1::GetExperimentRequest* request,
                             v1::Experiment* response) override;
  grpc::Status ListExperiments(grpc::ServerContext* context,
                               const v1::ListExperimentsRequest* request,
                               v1::ListExperimentsResponse* response) override;
  grpc::Status CancelExperiment(grpc::ServerContext* context,
                                const v1::CancelExperimentRequest* request,
                                v1::Experiment* response) override;
  grpc::Status ListCandidates(grpc::ServerContext* context,
                              const v1::ListCandidatesRequest* request,
                              v1::ListCandidatesResponse* response) override;
  grpc::Status GetCandidate(grpc::ServerContext* context,
                            const v1::GetCandidateRequest* request,
                            v1::Candidate* response) override;
  grpc::Status GetParetoFront(grpc::ServerContext* context,
                              const v1::GetParetoFrontRequest* request,
                              v1::ParetoFront* response) override;
  grpc::Status DownloadModel(
      grpc::ServerContext* context, const v1::DownloadModelRequest* request,
      grpc::ServerWriter<v1::DownloadModelResponse>* writer) override;
  grpc::Status WatchExperiment(
      grpc::ServerContext* context, const v1::WatchExperimentRequest* request,
      grpc::ServerWriter<v1::Experiment>* writer) override;

 private:
  EvonasServiceImpl* const inner_;
  AccessControl* const access_;
};

// WorkerService for workers with tokens: every call needs a worker token.
// Workers serve every tenant.
class AuthorizedWorkerService final : public v1::WorkerService::Service {
 public:
  AuthorizedWorkerService(WorkerServiceImpl* inner, AccessControl* access)
      : inner_(inner), access_(access) {}

  grpc::Status LeaseWork(grpc::ServerContext* context,
                         const v1::LeaseWorkRequest* request,
                         v1::LeaseWorkResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context,
                         const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status ReleaseLease(grpc::ServerContext* context,
                            const v1::ReleaseLeaseRequest* request,
                            v1::ReleaseLeaseResponse* response) override;
  grpc::Status ReportResult(grpc::ServerContext* context,
                            grpc::ServerReader<v1::ReportResultRequest>* reader,
                            v1::ReportResultResponse* response) override;
  grpc::Status FetchDataset(
      grpc::ServerContext* context, const v1::FetchDatasetRequest* request,
      grpc::ServerWriter<v1::FetchDatasetResponse>* writer) override;
  grpc::Status FetchCheckpoint(
      grpc::ServerContext* context, const v1::FetchCheckpointRequest* request,
      grpc::ServerWriter<v1::FetchCheckpointResponse>* writer) override;

 private:
  // OK when the call carries a valid worker token.
  grpc::Status Check(grpc::ServerContext* context);

  WorkerServiceImpl* const inner_;
  AccessControl* const access_;
};

}  // namespace evonas::auth

#endif  // EVONAS_SERVER_AUTH_AUTHORIZED_SERVICES_H_
