// Load benchmark of the controller (issue 5): many simulated workers, each a
// real gRPC client on loopback, lease and report as fast as the controller
// answers. Prints round trips per second, latency percentiles, the
// controller's CPU time and peak RSS, and checks afterwards that every
// acknowledged report is the one accepted result of its candidate.
//
// The controller runs as its own process (bench/run_load_bench.sh starts it
// with --plaintext --no-auth); --controller-pid lets us read its /proc.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "evonas/v1/evonas_service.grpc.pb.h"
#include "evonas/v1/worker_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "worker/worker.h"

namespace {

using Clock = std::chrono::steady_clock;

struct ProcessUsage {
  double cpu_seconds = 0;  // user + system
  int64_t peak_rss_kb = 0;
};

// CPU time and peak RSS of `pid` from /proc; zeros when it cannot be read.
ProcessUsage ReadUsage(int pid) {
  ProcessUsage usage;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (std::getline(stat, line)) {
    // Fields after the ")" that ends the command name; utime and stime are
    // the 14th and 15th fields of the whole line.
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::string field;
    int64_t utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::stoll(field);
      if (i == 15) stime = std::stoll(field);
    }
    usage.cpu_seconds =
        static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
  }
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      usage.peak_rss_kb = std::stoll(line.substr(6));
    }
  }
  return usage;
}

// A small regression data set: 3 inputs, 1 output.
std::string SmallCsv() {
  std::string csv = "x1,x2,x3,y\n";
  for (int i = 0; i < 200; ++i) {
    const double a = i / 200.0, b = (i * 7 % 200) / 200.0,
                 c = (i * 13 % 200) / 200.0;
    csv += absl::StrFormat("%.6f,%.6f,%.6f,%.6f\n", a, b, c, a * b - c);
  }
  return csv;
}

struct WorkerStats {
  std::vector<int32_t> lease_us;
  std::vector<int32_t> report_us;
  int64_t round_trips = 0;   // lease + accepted report
  int64_t no_work = 0;       // LeaseWork answered without a lease
  std::map<std::string, int64_t> errors;  // by "RPC: status code"
  std::vector<std::string> accepted;      // candidate ids acknowledged
};

int32_t MicrosSince(Clock::time_point start) {
  return static_cast<int32_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() -
                                                            start)
          .count());
}

void RunWorker(evonas::v1::WorkerService::Stub* stub, const std::string& id,
               Clock::time_point end, WorkerStats& stats) {
  using evonas::v1::LeaseWorkRequest;
  using evonas::v1::LeaseWorkResponse;
  while (Clock::now() < end) {
    LeaseWorkRequest request;
    request.set_worker_id(id);
    request.mutable_info()->set_threads(1);
    LeaseWorkResponse response;
    grpc::ClientContext lease_context;
    lease_context.set_deadline(std::chrono::system_clock::now() +
                               std::chrono::seconds(60));
    Clock::time_point start = Clock::now();
    grpc::Status status = stub->LeaseWork(&lease_context, request, &response);
    stats.lease_us.push_back(MicrosSince(start));
    if (!status.ok()) {
      ++stats.errors["LeaseWork: " + std::to_string(status.error_code()) +
                     " " + status.error_message()];
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (!response.has_lease()) {
      ++stats.no_work;
      std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(
          std::max(0.01, response.retry_after_seconds()) * 1000)));
      continue;
    }
    const evonas::v1::Lease& lease = response.lease();
    evonas::worker::SimulatedReport report =
        evonas::worker::SimulateLease(lease, id);
    grpc::ClientContext report_context;
    report_context.set_deadline(std::chrono::system_clock::now() +
                               std::chrono::seconds(60));
    evonas::v1::ReportResultResponse answer;
    start = Clock::now();
    auto writer = stub->ReportResult(&report_context, &answer);
    evonas::v1::ReportResultRequest first;
    *first.mutable_result() = report.result;
    // The model and the checkpoint artifact are small: one message carries
    // them back to back, as the worker's stream does.
    std::string payload = report.model;
    for (const std::string& bytes : report.artifacts) payload += bytes;
    first.set_model_chunk(payload);
    writer->Write(first);
    writer->WritesDone();
    status = writer->Finish();
    stats.report_us.push_back(MicrosSince(start));
    if (!status.ok()) {
      ++stats.errors["ReportResult: " + std::to_string(status.error_code()) +
                     " " + status.error_message()];
      continue;
    }
    ++stats.round_trips;
    stats.accepted.push_back(lease.candidate_id());
  }
}

double Percentile(std::vector<int32_t>& values, double p) {
  if (values.empty()) return 0;
  const size_t k = std::min(values.size() - 1,
                            static_cast<size_t>(p * values.size()));
  std::nth_element(values.begin(), values.begin() + k, values.end());
  return values[k] / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Load benchmark: simulated workers against one controller"};
  std::string address = "127.0.0.1:50051";
  int controller_pid = 0;
  int workers = 1000;
  int channels = 16;
  double seconds = 60;
  app.add_option("--controller", address, "Controller address (plaintext)");
  app.add_option("--controller-pid", controller_pid,
                 "Controller process id, for CPU time and peak RSS");
  app.add_option("--workers", workers, "Simulated workers (threads)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--channels", channels,
                 "gRPC channels (connections) the workers share")
      ->check(CLI::Range(1, 10000));
  app.add_option("--seconds", seconds, "How long the workers run")
      ->check(CLI::PositiveNumber);
  bool skip_setup = false;
  app.add_flag("--skip-setup", skip_setup,
               "Lease and report only, against bench/null_controller: no "
               "data set, no experiment, no check of the results afterwards");
  CLI11_PARSE(app, argc, argv);

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // ListCandidates of the whole run
  std::vector<std::shared_ptr<grpc::Channel>> connections;
  for (int i = 0; i < channels; ++i) {
    // A distinct argument keeps gRPC from sharing one connection.
    grpc::ChannelArguments own = args;
    own.SetInt("evonas.load_bench.channel", i);
    connections.push_back(grpc::CreateCustomChannel(
        address, grpc::InsecureChannelCredentials(), own));
  }
  auto client = evonas::v1::EvonasService::NewStub(connections[0]);

  // Data set and experiment.
  std::string dataset_id;
  if (!skip_setup) {
    grpc::ClientContext context;
    evonas::v1::Dataset dataset;
    auto writer = client->UploadDataset(&context, &dataset);
    evonas::v1::UploadDatasetRequest request;
    const std::string csv = SmallCsv();
    request.mutable_metadata()->set_name("load-bench.csv");
    request.mutable_metadata()->set_size_bytes(static_cast<int64_t>(csv.size()));
    request.set_chunk(csv);
    writer->Write(request);
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    if (!status.ok()) {
      std::cerr << "load_bench: upload failed: " << status.error_message()
                << "\n";
      return 1;
    }
    dataset_id = dataset.id();
  }
  std::string experiment_id;
  if (!skip_setup) {
    grpc::ClientContext context;
    evonas::v1::CreateExperimentRequest request;
    evonas::v1::ExperimentSpec& spec = *request.mutable_spec();
    spec.set_name("load-bench");
    spec.set_dataset_id(dataset_id);
    for (const char* column : {"x1", "x2", "x3"}) spec.add_input_columns(column);
    spec.add_output_columns("y");
    spec.mutable_budget()->set_max_candidates(1000000);
    spec.set_seed(1);
    evonas::v1::Experiment experiment;
    grpc::Status status =
        client->CreateExperiment(&context, request, &experiment);
    if (!status.ok()) {
      std::cerr << "load_bench: create experiment failed: "
                << status.error_message() << "\n";
      return 1;
    }
    experiment_id = experiment.id();
  }

  std::vector<std::unique_ptr<evonas::v1::WorkerService::Stub>> stubs;
  for (auto& channel : connections) {
    stubs.push_back(evonas::v1::WorkerService::NewStub(channel));
  }
  std::vector<WorkerStats> stats(workers);
  const ProcessUsage before =
      controller_pid > 0 ? ReadUsage(controller_pid) : ProcessUsage{};
  const Clock::time_point start = Clock::now();
  const Clock::time_point end =
      start + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
  {
    std::vector<std::thread> threads;
    threads.reserve(workers);
    for (int i = 0; i < workers; ++i) {
      threads.emplace_back(RunWorker, stubs[i % stubs.size()].get(),
                           absl::StrFormat("load-worker-%05d", i), end,
                           std::ref(stats[i]));
    }
    for (std::thread& t : threads) t.join();
  }
  const double elapsed =
      std::chrono::duration<double>(Clock::now() - start).count();
  const ProcessUsage after =
      controller_pid > 0 ? ReadUsage(controller_pid) : ProcessUsage{};

  WorkerStats all;
  for (WorkerStats& s : stats) {
    all.lease_us.insert(all.lease_us.end(), s.lease_us.begin(),
                        s.lease_us.end());
    all.report_us.insert(all.report_us.end(), s.report_us.begin(),
                         s.report_us.end());
    all.round_trips += s.round_trips;
    all.no_work += s.no_work;
    for (const auto& [what, n] : s.errors) all.errors[what] += n;
    all.accepted.insert(all.accepted.end(), s.accepted.begin(),
                        s.accepted.end());
  }

  // Every acknowledged report must be its candidate's one accepted result,
  // and every accepted result must have been acknowledged.
  std::map<std::string, int> acked;
  for (const std::string& id : all.accepted) ++acked[id];
  int64_t acked_twice = 0;
  for (const auto& [id, n] : acked) acked_twice += n > 1;
  evonas::v1::ListCandidatesResponse listed;
  if (!skip_setup) {
    grpc::ClientContext context;
    evonas::v1::ListCandidatesRequest request;
    request.set_experiment_id(experiment_id);
    grpc::Status status = client->ListCandidates(&context, request, &listed);
    if (!status.ok()) {
      std::cerr << "load_bench: ListCandidates failed: "
                << status.error_message() << "\n";
      return 1;
    }
  }
  int64_t succeeded = 0, lost = 0, unacknowledged = 0;
  std::map<std::string, int64_t> states;
  std::set<std::string> succeeded_ids;
  for (const evonas::v1::Candidate& c : listed.candidates()) {
    ++states[evonas::v1::CandidateState_Name(c.state())];
    if (c.state() == evonas::v1::CANDIDATE_STATE_SUCCEEDED) {
      ++succeeded;
      succeeded_ids.insert(c.id());
      if (acked.count(c.id()) == 0) ++unacknowledged;
    }
  }
  for (const auto& [id, n] : acked) lost += succeeded_ids.count(id) == 0;

  std::printf("load_bench: %d workers over %d channels for %.1f s\n", workers,
              channels, elapsed);
  std::printf("round trips (lease + accepted report): %lld = %.1f per second\n",
              static_cast<long long>(all.round_trips),
              all.round_trips / elapsed);
  std::printf("LeaseWork: %zu calls, p50 %.2f ms, p99 %.2f ms; no work %lld\n",
              all.lease_us.size(), Percentile(all.lease_us, 0.5),
              Percentile(all.lease_us, 0.99),
              static_cast<long long>(all.no_work));
  std::printf("ReportResult: %zu calls, p50 %.2f ms, p99 %.2f ms\n",
              all.report_us.size(), Percentile(all.report_us, 0.5),
              Percentile(all.report_us, 0.99));
  if (controller_pid > 0) {
    std::printf(
        "controller: %.1f CPU seconds (%.0f%% of one core), peak RSS %.1f MiB\n",
        after.cpu_seconds - before.cpu_seconds,
        100 * (after.cpu_seconds - before.cpu_seconds) / elapsed,
        after.peak_rss_kb / 1024.0);
  }
  for (const auto& [what, n] : all.errors) {
    std::printf("error x%lld: %s\n", static_cast<long long>(n), what.c_str());
  }
  std::printf("candidates:");
  for (const auto& [state, n] : states) {
    std::printf(" %s=%lld", state.c_str(), static_cast<long long>(n));
  }
  std::printf("\n");
  if (!skip_setup) std::printf(
      "check: %lld acknowledged, %lld succeeded; acknowledged twice %lld, "
      "acknowledged but not succeeded (lost) %lld, succeeded without "
      "acknowledgement %lld\n",
      static_cast<long long>(acked.size()), static_cast<long long>(succeeded),
      static_cast<long long>(acked_twice), static_cast<long long>(lost),
      static_cast<long long>(unacknowledged));
  if (skip_setup) std::printf("check: skipped (--skip-setup)\n");
  const bool ok = skip_setup ||
                  (acked_twice == 0 && lost == 0 && unacknowledged == 0 &&
                   static_cast<int64_t>(acked.size()) == succeeded);
  std::printf("RESULT %s trials_per_second=%.1f\n", ok ? "OK" : "MISMATCH",
              all.round_trips / elapsed);
  return ok ? 0 : 2;
}
