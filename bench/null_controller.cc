// The ceiling of the load benchmark (issue 5): a WorkerService that does no
// work at all. LeaseWork answers every call at once with the same small
// lease (a fresh candidate id each time); ReportResult reads the stream and
// acknowledges it. No database, no search, no checks, no locks beyond an
// atomic counter, served by gRPC's callback API (no thread per call).
//
// bench/load_bench --skip-setup against it measures how many lease + report
// round trips per second the machine can carry with its 1,000 client
// threads when the server costs nothing: what no controller design can
// beat on the same machine.
#include <signal.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "evonas/v1/worker_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace {

using evonas::v1::LeaseWorkRequest;
using evonas::v1::LeaseWorkResponse;
using evonas::v1::ReportResultRequest;
using evonas::v1::ReportResultResponse;

class NullWorkerService final
    : public evonas::v1::WorkerService::CallbackService {
 public:
  NullWorkerService() {
    // What load_bench's experiment leases: 3 inputs, 1 output, a 16-16
    // tanh network, as the controller's first proposals look.
    evonas::v1::Lease& lease = lease_;
    lease.set_experiment_id("exp-null");
    lease.set_dataset_id("null");
    for (const char* column : {"x1", "x2", "x3"}) lease.add_input_columns(column);
    lease.add_output_columns("y");
    lease.set_seed(1);
    lease.set_within_tolerance(1e-6);
    lease.set_heartbeat_interval_seconds(10);
    evonas::v1::Genome& genome = *lease.mutable_genome();
    for (int i = 0; i < 2; ++i) {
      evonas::v1::DenseLayer* layer = genome.add_hidden_layers();
      layer->set_width(16);
      layer->set_activation(evonas::v1::ACTIVATION_TANH);
    }
    genome.mutable_training()->set_learning_rate(1e-2);
    genome.mutable_training()->set_adam_steps(1000);
    genome.mutable_training()->set_lbfgs_steps(200);
  }

  grpc::ServerUnaryReactor* LeaseWork(grpc::CallbackServerContext* context,
                                      const LeaseWorkRequest* /*request*/,
                                      LeaseWorkResponse* response) override {
    const int64_t n = next_.fetch_add(1, std::memory_order_relaxed);
    evonas::v1::Lease& lease = *response->mutable_lease();
    lease = lease_;
    lease.set_candidate_id(absl::StrCat("cand-", n));
    lease.set_lease_id(absl::StrCat("lease-", n));
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerReadReactor<ReportResultRequest>* ReportResult(
      grpc::CallbackServerContext* /*context*/,
      ReportResultResponse* response) override {
    return new Reader(response);
  }

 private:
  // Reads the report's messages and acknowledges it.
  class Reader : public grpc::ServerReadReactor<ReportResultRequest> {
   public:
    explicit Reader(ReportResultResponse* response) : response_(response) {
      StartRead(&request_);
    }
    void OnReadDone(bool ok) override {
      if (ok) {
        StartRead(&request_);
        return;
      }
      response_->set_feasible(true);
      Finish(grpc::Status::OK);
    }
    void OnDone() override { delete this; }

   private:
    ReportResultRequest request_;
    ReportResultResponse* response_;
  };

  evonas::v1::Lease lease_;
  std::atomic<int64_t> next_{0};
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"A WorkerService that does nothing: the load benchmark's ceiling"};
  std::string listen = "127.0.0.1:0";
  std::string port_file;
  app.add_option("--listen", listen, "Address to serve on");
  app.add_option("--port-file", port_file, "Write the bound port here");
  CLI11_PARSE(app, argc, argv);

  // SIGTERM and SIGINT end the server from this thread (sigwait below), not
  // from a handler: Shutdown is not async-signal-safe.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  NullWorkerService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "null_controller: cannot listen on " << listen << "\n";
    return 1;
  }
  if (!port_file.empty()) std::ofstream(port_file) << port << "\n";
  int signal = 0;
  sigwait(&stop, &signal);
  server->Shutdown();
  return 0;
}
