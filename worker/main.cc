// evonas-worker: a stateless daemon that leases candidates from an
// evonas-controller, trains them with LibTorch and reports the results.

#include <unistd.h>

#include <csignal>
#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "worker/worker.h"

ABSL_FLAG(std::string, controller, "localhost:50051",
          "Address of the evonas-controller.");
ABSL_FLAG(std::string, worker_id, "",
          "Stable id of this worker; default HOSTNAME-PID.");
ABSL_FLAG(int, threads, 1, "Intra-op threads for training.");
ABSL_FLAG(std::string, cache_dir, "evonas-worker-cache",
          "Directory for cached data sets.");
ABSL_FLAG(int64_t, cache_max_bytes, int64_t{2} << 30,
          "Disk budget of the data set cache, in bytes.");

namespace {
// Set by the signal handler, polled by the main thread.
volatile std::sig_atomic_t stop_signal = 0;
void RecordSignal(int sig) { stop_signal = sig; }
}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("evonas-worker --controller ADDR");
  absl::ParseCommandLine(argc, argv);

  evonas::worker::WorkerOptions options;
  options.worker_id = absl::GetFlag(FLAGS_worker_id);
  if (options.worker_id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    options.worker_id = absl::StrCat(host, "-", getpid());
  }
  options.threads = absl::GetFlag(FLAGS_threads);
  options.cache_dir = absl::GetFlag(FLAGS_cache_dir);
  options.cache_max_bytes = absl::GetFlag(FLAGS_cache_max_bytes);

  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_controller),
                                     grpc::InsecureChannelCredentials());
  evonas::worker::Worker worker(options, channel);
  std::signal(SIGINT, RecordSignal);
  std::signal(SIGTERM, RecordSignal);
  std::thread watcher([&worker] {
    while (stop_signal == 0) usleep(100 * 1000);
    std::cerr << "evonas-worker: stopping; a lease in progress is given back\n";
    worker.RequestStop();
  });
  std::cerr << "evonas-worker " << options.worker_id << ": working for "
            << absl::GetFlag(FLAGS_controller) << "\n";
  worker.Run();
  // Run() only returns after a stop request, so the watcher has finished.
  watcher.join();
  return 0;
}
