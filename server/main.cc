// evonas-controller: the gRPC service that stores data sets, runs searches
// and hands out work to evonas-worker processes. This file only parses flags
// into ControllerOptions and serves.

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/controller.h"
#include "server/grpc_services.h"

namespace {

// Set by the signal handler, polled by the main loop: a handler may do no
// more than that.
volatile std::sig_atomic_t stop_signal = 0;
void RecordSignal(int sig) { stop_signal = sig; }

struct Flags {
  std::string listen = "127.0.0.1:50051";
  std::string port_file;
  int lease_seconds = 60;
  int heartbeat_seconds = 10;
};

}  // namespace

int main(int argc, char** argv) {
  evonas::ControllerOptions options;
  Flags flags;
  CLI::App app{"evonas-controller: stores data sets and experiments, runs the "
               "search and leases work to evonas-worker processes."};
  app.add_option("--listen", flags.listen,
                 "Address to serve on, e.g. 0.0.0.0:50051; port 0 picks a "
                 "free port")
      ->capture_default_str();
  app.add_option("--db", options.db_path, "SQLite database file")
      ->capture_default_str();
  app.add_option("--data-dir", options.data_dir,
                 "Directory for blobs: data sets and trained models")
      ->capture_default_str();
  app.add_option("--port-file", flags.port_file,
                 "Write the chosen port here once serving (for scripts that "
                 "listen on port 0)");
  app.add_option("--lease-seconds", flags.lease_seconds,
                 "A lease not heartbeated for this long expires")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--heartbeat-seconds", flags.heartbeat_seconds,
                 "How often workers heartbeat")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-attempts", options.max_attempts,
                 "Leases per candidate before it is marked failed")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-upload-bytes", options.max_upload_bytes,
                 "Largest data set upload accepted, in bytes")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  options.lease_timeout = absl::Seconds(flags.lease_seconds);
  options.heartbeat_interval = absl::Seconds(flags.heartbeat_seconds);

  auto controller = evonas::Controller::Create(options);
  if (!controller.ok()) {
    std::cerr << "evonas-controller: " << controller.status() << "\n";
    return 1;
  }
  evonas::EvonasServiceImpl client_service(controller->get());
  evonas::WorkerServiceImpl worker_service(controller->get());

  // Standard health (grpc.health.v1) and reflection services, so generic
  // tools (grpcurl, grpc_health_probe, load balancers) work with evonas.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(flags.listen, grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&client_service);
  builder.RegisterService(&worker_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "evonas-controller: cannot listen on " << flags.listen
              << "\n";
    return 1;
  }
  std::cerr << "evonas-controller: serving on port " << port << " (db "
            << options.db_path << ")\n";
  if (!flags.port_file.empty()) {
    // Written to a temporary and renamed, so a reader never sees half a port.
    std::string tmp = flags.port_file + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), flags.port_file.c_str());
  }

  std::signal(SIGINT, RecordSignal);
  std::signal(SIGTERM, RecordSignal);
  while (stop_signal == 0) {
    absl::Status status = (*controller)->Maintain();
    if (!status.ok()) std::cerr << "evonas-controller: " << status << "\n";
    absl::SleepFor(absl::Milliseconds(500));
  }
  std::cerr << "evonas-controller: shutting down\n";
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}
