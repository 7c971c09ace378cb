#ifndef EVONAS_WORKER_WORKER_H_
#define EVONAS_WORKER_WORKER_H_

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/dataset.h"
#include "evonas/v1/worker_service.grpc.pb.h"
#include "worker/dataset_cache.h"
#include "worker/energy.h"
#include "worker/model/trainer.h"

namespace evonas::worker {

struct WorkerOptions {
  std::string worker_id;
  int threads = 1;
  std::string cache_dir = "evonas-worker-cache";
  int64_t cache_max_bytes = int64_t{2} << 30;
  // Memory budget of the parsed data sets kept between leases (DatasetCache).
  int64_t cache_max_parsed_bytes = int64_t{1} << 30;
  // What a fetched data set may hold (--max-dataset-values): as large as the
  // controller accepts, or the worker refuses the leases of its data sets.
  DatasetLimits dataset_limits;
  // Deadline of unary RPCs.
  absl::Duration rpc_timeout = absl::Seconds(30);
  // Longest wait between retries while the controller is unreachable.
  absl::Duration max_backoff = absl::Seconds(30);
  // Report SimulateTraining's metrics and model text instead of training:
  // no data set is fetched and LibTorch does not run. For testing search
  // strategies and load-testing the controller.
  bool simulate = false;
  // Training energy: RAPL counters under this directory when readable,
  // otherwise training CPU-seconds times watts_per_core (see energy.h).
  std::string powercap_dir = kPowercapDir;
  double watts_per_core = kDefaultWattsPerCore;
  // Sent with every LeaseWork (WorkerInfo.latency_table) when it names a
  // hardware class: this worker's calibration (latency_calibration.h).
  v1::LatencyTable latency_table;
};

// What --simulate reports for `lease`: SimulateTraining's metrics and model
// text, or a failure naming the problem of an invalid genome. Exposed so
// that bench/load_bench reports exactly what a simulating worker does.
struct SimulatedReport {
  v1::WorkResult result;
  std::string model;
  // The bytes of result.artifacts, in order: the simulator's checkpoint.
  std::vector<std::string> artifacts;
};
SimulatedReport SimulateLease(const v1::Lease& lease,
                              const std::string& worker_id);

// The lease loop: lease, fetch data, train, heartbeat meanwhile, report.
// Holds no state that matters beyond one lease, so it can die any time.
class Worker {
 public:
  Worker(WorkerOptions options, std::shared_ptr<grpc::Channel> channel);

  // Works until RequestStop(); a lease in progress is then given back.
  void Run();
  // Thread-safe; may be called from any thread (not a signal handler).
  // Also cancels the calls that are waiting for the controller.
  void RequestStop();

 private:
  class WaitingCall;

  // Trains one lease and reports it (or gives it back on stop).
  void Process(const v1::Lease& lease);
  // Builds the training job of `lease` (data sets, inheritance) and trains
  // it, measuring its energy. Unavailable when the controller could not
  // be reached for data; `lease_lost` becomes true when the controller
  // refused a checkpoint because the lease is gone.
  absl::StatusOr<model::TrainOutput> TrainLease(const v1::Lease& lease,
                                                const std::atomic<bool>& cancel,
                                                EnergyMeter& energy,
                                                std::atomic<bool>& lease_lost);
  // Starts `job` from the parent's checkpoint with the lease's morphism
  // applied, after checking that a function-preserving morphism reproduces
  // the parent's outputs. Errors carry a reason for the failure report.
  absl::Status Inherit(const v1::Lease& lease, std::atomic<bool>& lease_lost,
                       model::TrainJob& job);
  // The parent's checkpoint bytes, checked against the lease's size and
  // SHA-256. Unavailable when the controller cannot be reached, Aborted when
  // it says the lease is no longer ours, DataLoss on a size or hash mismatch.
  absl::StatusOr<std::string> FetchCheckpoint(const v1::Lease& lease);
  // Sends `model` and then `artifacts` (the bytes of result.artifacts()).
  absl::Status Report(const v1::WorkResult& result, const std::string& model,
                      const std::vector<std::string>& artifacts = {});
  void Release(const v1::Lease& lease);
  // Sleeps up to `duration`, returning early on stop.
  void Wait(absl::Duration duration);

  const WorkerOptions options_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  DatasetCache cache_;
  std::atomic<bool> stop_{false};
  absl::Mutex calls_mu_;
  // Calls in flight that wait for the controller (see WaitingCall).
  std::set<grpc::ClientContext*> waiting_calls_ ABSL_GUARDED_BY(calls_mu_);
};

}  // namespace evonas::worker

#endif  // EVONAS_WORKER_WORKER_H_
