#ifndef EVONAS_SERVER_GRPC_SERVICES_H_
#define EVONAS_SERVER_GRPC_SERVICES_H_

#include "absl/time/time.h"
#include "evonas/v1/evonas_service.grpc.pb.h"
#include "evonas/v1/worker_service.grpc.pb.h"
#include "server/controller.h"

namespace evonas {

// The one place where an absl::Status becomes a grpc::Status (same code, same
// message).
grpc::Status ToGrpcStatus(const absl::Status& status);

// Thin, stateless translations between gRPC and the Controller: requests in,
// absl::Status out as grpc::Status (in ToGrpcStatus only).
class EvonasServiceImpl final : public v1::EvonasService::Service {
 public:
  explicit EvonasServiceImpl(Controller* controller) : controller_(controller) {}

  grpc::Status UploadDataset(
      grpc::ServerContext* context,
      grpc::ServerReader<v1::UploadDatasetRequest>* reader,
      v1::Dataset* response) override;
  // UploadDataset for wrappers that know the uploading tenant: the data set
  // and the tenant's ownership are stored in one transaction.
  grpc::Status UploadDatasetFor(
      grpc::ServerContext* context,
      grpc::ServerReader<v1::UploadDatasetRequest>* reader,
      v1::Dataset* response, std::optional<std::string> owner);
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
  // Polls the controller every kWatchInterval and writes the experiment
  // whenever it changed; returns once it is finished or the client left.
  grpc::Status WatchExperiment(
      grpc::ServerContext* context, const v1::WatchExperimentRequest* request,
      grpc::ServerWriter<v1::Experiment>* writer) override;

  static constexpr absl::Duration kWatchInterval = absl::Milliseconds(500);

  // For wrappers that add what the RPC cannot carry (the owning tenant).
  Controller* controller() const { return controller_; }

 private:
  Controller* const controller_;
};

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(Controller* controller) : controller_(controller) {}

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
  Controller* const controller_;
};

}  // namespace evonas

#endif  // EVONAS_SERVER_GRPC_SERVICES_H_
