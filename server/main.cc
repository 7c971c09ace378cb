// evonas-controller: the gRPC service that stores data sets, runs searches
// and hands out work to evonas-worker processes.

#include <csignal>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "grpcpp/grpcpp.h"
#include "server/controller.h"
#include "server/grpc_services.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "Address to serve on, e.g. 0.0.0.0:50051; port 0 picks a free port.");
ABSL_FLAG(std::string, db, "evonas.db", "SQLite database file.");
ABSL_FLAG(std::string, data_dir, "evonas-data",
          "Directory for blobs: data sets and trained models.");
ABSL_FLAG(std::string, port_file, "",
          "If set, the chosen port is written here once serving (for tests "
          "and scripts that listen on port 0).");
ABSL_FLAG(int, lease_seconds, 60,
          "A lease not heartbeated for this long expires.");
ABSL_FLAG(int, heartbeat_seconds, 10, "How often workers heartbeat.");
ABSL_FLAG(int, max_attempts, 3, "Leases per candidate before it fails.");
ABSL_FLAG(int64_t, max_upload_bytes, int64_t{1} << 30,
          "Largest data set upload accepted, in bytes.");

namespace {

// Set by the signal handler, polled by the main loop: a handler may do no
// more than that.
volatile std::sig_atomic_t stop_signal = 0;
void RecordSignal(int sig) { stop_signal = sig; }

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "evonas-controller --listen ADDR --db FILE --data-dir DIR");
  absl::ParseCommandLine(argc, argv);

  evonas::ControllerOptions options;
  options.db_path = absl::GetFlag(FLAGS_db);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.lease_timeout = absl::Seconds(absl::GetFlag(FLAGS_lease_seconds));
  options.heartbeat_interval =
      absl::Seconds(absl::GetFlag(FLAGS_heartbeat_seconds));
  options.max_attempts = absl::GetFlag(FLAGS_max_attempts);
  options.max_upload_bytes = absl::GetFlag(FLAGS_max_upload_bytes);

  auto controller = evonas::Controller::Create(options);
  if (!controller.ok()) {
    std::cerr << "evonas-controller: " << controller.status() << "\n";
    return 1;
  }
  evonas::EvonasServiceImpl client_service(controller->get());
  evonas::WorkerServiceImpl worker_service(controller->get());

  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen),
                           grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&client_service);
  builder.RegisterService(&worker_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "evonas-controller: cannot listen on "
              << absl::GetFlag(FLAGS_listen) << "\n";
    return 1;
  }
  std::cerr << "evonas-controller: serving on port " << port << " (db "
            << options.db_path << ")\n";
  if (!absl::GetFlag(FLAGS_port_file).empty()) {
    // Written to a temporary and renamed, so a reader never sees half a port.
    std::string tmp = absl::GetFlag(FLAGS_port_file) + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), absl::GetFlag(FLAGS_port_file).c_str());
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
