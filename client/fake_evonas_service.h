#ifndef EVONAS_CLIENT_FAKE_EVONAS_SERVICE_H_
#define EVONAS_CLIENT_FAKE_EVONAS_SERVICE_H_

// Test only: an in-process EvonasService with canned answers that records
// what the client sent.

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "evonas/v1/evonas_service.grpc.pb.h"

namespace evonas::client {

class FakeEvonasService final : public v1::EvonasService::Service {
 public:
  // Canned answers; set them before the call.
  v1::Dataset dataset;
  grpc::Status dataset_status = grpc::Status::OK;
  v1::Experiment created_experiment;
  // GetExperiment returns these in turn, then repeats the last one.
  std::vector<v1::Experiment> experiments;
  v1::Candidate candidate;
  v1::ListCandidatesResponse candidates;
  v1::ParetoFront front;
  std::vector<v1::DownloadModelResponse> download;
  grpc::Status download_status = grpc::Status::OK;
  v1::ListDatasetsResponse dataset_list;
  v1::ListExperimentsResponse experiment_list;
  // WatchExperiment streams every entry of `experiments`, then ends with
  // this status.
  grpc::Status watch_status = grpc::Status::OK;

  grpc::Status UploadDataset(
      grpc::ServerContext* context,
      grpc::ServerReader<v1::UploadDatasetRequest>* reader,
      v1::Dataset* response) override {
    v1::UploadDatasetRequest request;
    std::vector<v1::UploadDatasetRequest> received;
    while (reader->Read(&request)) received.push_back(request);
    absl::MutexLock lock(&mu_);
    uploads_ = std::move(received);
    Record(context);
    *response = dataset;
    return dataset_status;
  }

  grpc::Status GetDataset(grpc::ServerContext* context,
                          const v1::GetDatasetRequest* request,
                          v1::Dataset* response) override {
    absl::MutexLock lock(&mu_);
    Record(context);
    last_id_ = request->dataset_id();
    *response = dataset;
    return dataset_status;
  }

  grpc::Status CreateExperiment(grpc::ServerContext* context,
                                const v1::CreateExperimentRequest* request,
                                v1::Experiment* response) override {
    absl::MutexLock lock(&mu_);
    Record(context);
    created_spec_ = request->spec();
    *response = created_experiment;
    *response->mutable_spec() = request->spec();
    return grpc::Status::OK;
  }

  grpc::Status GetExperiment(grpc::ServerContext* context,
                             const v1::GetExperimentRequest* request,
                             v1::Experiment* response) override {
    absl::MutexLock lock(&mu_);
    Record(context);
    last_id_ = request->experiment_id();
    if (experiments.empty()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such experiment");
    }
    const size_t i = std::min(get_experiment_calls_, experiments.size() - 1);
    ++get_experiment_calls_;
    *response = experiments[i];
    return grpc::Status::OK;
  }

  grpc::Status GetCandidate(grpc::ServerContext* context,
                            const v1::GetCandidateRequest* request,
                            v1::Candidate* response) override {
    absl::MutexLock lock(&mu_);
    Record(context);
    last_id_ = request->candidate_id();
    *response = candidate;
    return grpc::Status::OK;
  }

  grpc::Status ListCandidates(grpc::ServerContext* context,
                              const v1::ListCandidatesRequest* request,
                              v1::ListCandidatesResponse* response) override {
    absl::MutexLock lock(&mu_);
    Record(context);
    last_id_ = request->experiment_id();
    *response = candidates;
    return grpc::Status::OK;
  }

  grpc::Status GetParetoFront(grpc::ServerContext* context,
                              const v1::GetParetoFrontRequest* request,
                              v1::ParetoFront* response) override {
    absl::MutexLock lock(&mu_);
    Record(context);
    last_id_ = request->experiment_id();
    *response = front;
    return grpc::Status::OK;
  }

  grpc::Status DownloadModel(
      grpc::ServerContext* context, const v1::DownloadModelRequest* request,
      grpc::ServerWriter<v1::DownloadModelResponse>* writer) override {
    {
      absl::MutexLock lock(&mu_);
      Record(context);
      last_id_ = request->candidate_id();
    }
    for (const v1::DownloadModelResponse& message : download) {
      if (!writer->Write(message)) break;
    }
    return download_status;
  }

  grpc::Status ListDatasets(grpc::ServerContext* context,
                            const v1::ListDatasetsRequest*,
                            v1::ListDatasetsResponse* response) override {
    absl::MutexLock lock(&mu_);
    Record(context);
    *response = dataset_list;
    return grpc::Status::OK;
  }

  grpc::Status ListExperiments(grpc::ServerContext* context,
                               const v1::ListExperimentsRequest*,
                               v1::ListExperimentsResponse* response) override {
    absl::MutexLock lock(&mu_);
    Record(context);
    *response = experiment_list;
    return grpc::Status::OK;
  }

  grpc::Status WatchExperiment(
      grpc::ServerContext* context, const v1::WatchExperimentRequest* request,
      grpc::ServerWriter<v1::Experiment>* writer) override {
    std::vector<v1::Experiment> updates;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      Record(context);
      last_id_ = request->experiment_id();
      updates = experiments;
      status = watch_status;
    }
    for (const v1::Experiment& experiment : updates) {
      if (!writer->Write(experiment)) break;
    }
    return status;
  }

  std::vector<v1::UploadDatasetRequest> uploads() {
    absl::MutexLock lock(&mu_);
    return uploads_;
  }
  v1::ExperimentSpec created_spec() {
    absl::MutexLock lock(&mu_);
    return created_spec_;
  }
  std::string last_id() {
    absl::MutexLock lock(&mu_);
    return last_id_;
  }
  // Deadline of the last call, as time left when it arrived.
  std::chrono::system_clock::duration last_time_left() {
    absl::MutexLock lock(&mu_);
    return last_time_left_;
  }

 private:
  void Record(grpc::ServerContext* context) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    last_time_left_ = context->deadline() - std::chrono::system_clock::now();
  }

  absl::Mutex mu_;
  std::vector<v1::UploadDatasetRequest> uploads_ ABSL_GUARDED_BY(mu_);
  v1::ExperimentSpec created_spec_ ABSL_GUARDED_BY(mu_);
  std::string last_id_ ABSL_GUARDED_BY(mu_);
  size_t get_experiment_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::chrono::system_clock::duration last_time_left_ ABSL_GUARDED_BY(mu_){};
};

// A FakeEvonasService served in process, and a client channel to it.
struct FakeController {
  FakeController() {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    channel = server->InProcessChannel(grpc::ChannelArguments());
  }
  ~FakeController() { server->Shutdown(); }

  FakeEvonasService service;
  std::unique_ptr<grpc::Server> server;
  std::shared_ptr<grpc::Channel> channel;
};

}  // namespace evonas::client

#endif  // EVONAS_CLIENT_FAKE_EVONAS_SERVICE_H_
