// evonas-worker: a stateless daemon that leases candidates from an
// evonas-controller, trains them with LibTorch and reports the results. This
// file only parses flags into WorkerOptions and runs the Worker.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/channel.h"
#include "common/idx.h"
#include "common/log.h"
#include "common/simulated_evaluator.h"
#include "grpcpp/grpcpp.h"
#include "worker/latency_calibration.h"
#include "worker/worker.h"

namespace {
// Set by the signal handler, polled by a watcher thread.
volatile std::sig_atomic_t stop_signal = 0;
void RecordSignal(int sig) { stop_signal = sig; }
}  // namespace

int main(int argc, char** argv) {
  evonas::worker::WorkerOptions options;
  std::string controller = "localhost:50051";
  evonas::ChannelSecurity security;
  std::string log_level = "info";
  // The environment gives defaults (a deployment's secrets); flags override.
  for (auto [name, target] :
       {std::pair<const char*, std::string*>{"EVONAS_CONTROLLER", &controller},
        {"EVONAS_TOKEN", &security.token},
        {"EVONAS_TLS_CA", &security.tls_ca_file}}) {
    const char* value = std::getenv(name);
    if (value != nullptr && *value != '\0') *target = value;
  }
  CLI::App app{"evonas-worker: leases candidates from an evonas-controller, "
               "trains them and reports metrics and models. SIGTERM gives "
               "the current lease back and exits."};
  app.add_option("--controller", controller,
                 "Address of the evonas-controller (default: "
                 "$EVONAS_CONTROLLER)")
      ->capture_default_str();
  app.add_option("--token", security.token,
                 "Worker token (default: $EVONAS_TOKEN; prefer the variable: "
                 "a flag shows in the process list)");
  app.add_option("--tls-ca", security.tls_ca_file,
                 "PEM certificate to trust for the controller (default: "
                 "$EVONAS_TLS_CA, else the system's roots)");
  app.add_flag("--plaintext", security.plaintext,
               "Connect without TLS (only to a controller started with "
               "--plaintext)");
  app.add_option("--worker-id", options.worker_id,
                 "Stable id of this worker (default HOSTNAME-PID)");
  app.add_option("--threads", options.threads, "Intra-op threads for training")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--cache-dir", options.cache_dir,
                 "Directory for cached data sets")
      ->capture_default_str();
  app.add_option("--cache-max-bytes", options.cache_max_bytes,
                 "Disk budget of the data set cache, in bytes")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--cache-max-parsed-bytes", options.cache_max_parsed_bytes,
                 "Memory budget of the parsed data sets kept between leases, "
                 "in bytes (an IDX data set takes 1 byte per value, a CSV 8)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option(evonas::kMaxDatasetValuesFlag,
                 options.dataset_limits.idx.max_values,
                 "Most values (images x (pixels + 1)) of an IDX data set this "
                 "worker trains on; a lease needs 8 bytes per value. Keep it "
                 "at least the controller's flag of the same name")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--simulate", options.simulate,
               "Do not train: report the simulated evaluator's metrics and a "
               "small text model (for testing strategies and load-testing)");
  app.add_option("--watts-per-core", options.watts_per_core,
                 "Watts per busy core, for the training energy estimate "
                 "used when RAPL (/sys/class/powercap) is not readable")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--log-level", log_level,
                 "Least severe event logged on stderr: debug, info, warning "
                 "or error")
      ->capture_default_str()
      ->check(CLI::IsMember({"debug", "info", "warning", "error"}));
  CLI11_PARSE(app, argc, argv);
  // The check above accepted the name, so this parses.
  evonas::log::SetMinLevel(
      evonas::log::ParseLevel(log_level).value_or(evonas::log::Level::kInfo));
  if (options.worker_id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    options.worker_id = absl::StrCat(host, "-", getpid());
  }

  // The worker's own jittered backoff paces its retries. gRPC's reconnect
  // backoff (1 s, growing to 120 s by default) would otherwise keep the
  // channel failing for seconds to minutes after a restarted controller is
  // back; cap it at the worker's.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options.max_backoff)));
  auto channel = evonas::CreateControllerChannel(controller, security, args);
  if (!channel.ok()) {
    evonas::log::Error(
        "channel_setup_failed",
        {{"controller", controller}, {"error", channel.status().ToString()}});
    return 2;
  }
  if (options.simulate) {
    options.latency_table = evonas::SimulatedLatencyTable();
  } else {
    const std::string hardware_class =
        evonas::worker::LocalHardwareClass(options.threads);
    absl::StatusOr<evonas::v1::LatencyTable> table =
        evonas::worker::CalibrateLatency(hardware_class, options.threads);
    if (table.ok()) {
      options.latency_table = *std::move(table);
      evonas::log::Info(
          "latency_calibrated",
          {{"hardware_class", hardware_class},
           {"networks", options.latency_table.calibration_points()}});
    } else {
      // Training does not need the table; the controller then cannot
      // estimate latency for this hardware.
      evonas::log::Warning("latency_calibration_failed",
                           {{"error", table.status().ToString()}});
    }
  }
  evonas::worker::Worker worker(options, *channel);
  std::signal(SIGINT, RecordSignal);
  std::signal(SIGTERM, RecordSignal);
  std::thread watcher([&worker] {
    while (stop_signal == 0) usleep(100 * 1000);
    evonas::log::Info("stopping",
                      {{"signal", static_cast<int>(stop_signal)},
                       {"detail", "a lease in progress is given back"}});
    worker.RequestStop();
  });
  evonas::log::Info("started",
                    {{"worker", options.worker_id},
                     {"controller", controller},
                     {"transport", security.plaintext ? "plaintext" : "tls"},
                     {"threads", options.threads},
                     {"mode", options.simulate ? "simulate" : "train"},
                     {"cache_dir", options.cache_dir}});
  worker.Run();
  // Run() returns only after a stop request, so the watcher has finished.
  watcher.join();
  evonas::log::Info("stopped", {{"worker", options.worker_id}});
  return 0;
}
