#ifndef EVONAS_SERVER_OBSERVABILITY_TELEMETRY_H_
#define EVONAS_SERVER_OBSERVABILITY_TELEMETRY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "evonas/v1/types.pb.h"
#include "grpcpp/support/server_interceptor.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "server/observability/controller_observer.h"
#include "server/store/store.h"

namespace evonas::observability {

// What the database holds at one moment, for the gauges.
struct Census {
  int64_t experiments = 0;          // stored, in any state
  int64_t running_experiments = 0;  // state RUNNING
  int64_t queued_candidates = 0;    // waiting for a worker
  int64_t active_leases = 0;        // candidates leased (state RUNNING)
};

// Takes the census. Give it a Store of its own on the controller's database:
// with WAL it reads a committed snapshot while the controller writes, so a
// scrape never waits for the controller's lock. Costs the running
// experiments' candidate counts (on the (experiment, sequence) index), the
// RUNNING candidates (on the state index) and a COUNT(*) per table; a whole
// scrape took 3-11 ms at 5,040 candidates. (Store::ListExperiments would tell
// every state apart, but scans every succeeded candidate per experiment:
// 140-180 ms there.)
absl::StatusOr<Census> TakeCensus(store::Store& store);

// A census source for TelemetryOptions.census: TakeCensus over a connection
// of its own to the database at `db_path` (which the controller has created
// and migrated), one scrape at a time.
absl::StatusOr<std::function<absl::StatusOr<Census>()>> OpenCensus(
    const std::string& db_path);

struct TelemetryOptions {
  // A worker counts as live this long after it last asked for work or
  // heartbeated; after a longer silence its return is logged as a join again.
  absl::Duration live_worker_window = absl::Seconds(60);
  // Called at every scrape; the census gauges are left out of a scrape when
  // it is unset or fails (counted in evonas_census_failures_total).
  std::function<absl::StatusOr<Census>()> census;
  // Time source; tests replace it.
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

// The controller's logs and Prometheus metrics: each event of the
// ControllerObserver becomes one structured log line (common/log.h) and
// counter increments; the gauges are computed at scrape time, and an RPC
// interceptor records latencies. Thread-safe.
//
// Metrics (see also README, "Operating evonas"):
//   evonas_queue_depth, evonas_active_leases            gauges (census)
//   evonas_experiments{state="running"|"finished"}      gauge (census)
//   evonas_live_workers                                 gauge
//   evonas_candidates_finished_total{state}             counter
//   evonas_experiments_created_total                    counter
//   evonas_experiments_finished_total{state}            counter
//   evonas_leases_expired_total{outcome}                counter
//   evonas_census_failures_total                        counter
//   grpc_server_handling_seconds{grpc_service,grpc_method,grpc_code}
//                                                       histogram
class ControllerTelemetry final : public ControllerObserver,
                                  public prometheus::Collectable {
 public:
  explicit ControllerTelemetry(TelemetryOptions options = {});

  // Sets the census after construction (it usually needs the controller's
  // database, opened after the telemetry).
  void SetCensus(std::function<absl::StatusOr<Census>()> census);

  // ControllerObserver.
  void ExperimentCreated(const v1::Experiment& experiment,
                         const std::string& tenant) override;
  void ExperimentFinished(const std::string& experiment_id,
                          v1::ExperimentState state) override;
  void CandidateFinished(const v1::Candidate& candidate) override;
  void LeaseExpired(const v1::Candidate& candidate,
                    const std::string& worker_id) override;
  void WorkerSeen(const std::string& worker_id) override;

  // A gRPC server interceptor factory that records every call's duration,
  // from its start to its status, in grpc_server_handling_seconds. The
  // telemetry must outlive the server it is installed in.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  NewRpcInterceptorFactory();
  // Records one finished call; `full_method` is gRPC's
  // "/package.Service/Method".
  void RecordRpc(absl::string_view full_method, int status_code,
                 absl::Duration duration);

  // Workers seen within live_worker_window.
  int64_t LiveWorkers() const;

  // Every metric family (prometheus::Collectable), the census taken now.
  std::vector<prometheus::MetricFamily> Collect() const override;
  // Collect() in Prometheus's text exposition format.
  std::string Exposition() const;

 private:
  // The gauges of a census taken now; none when it fails.
  std::vector<prometheus::MetricFamily> CensusFamilies() const;

  const TelemetryOptions options_;
  const std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& candidates_finished_;
  prometheus::Counter& experiments_created_;
  prometheus::Family<prometheus::Counter>& experiments_finished_;
  prometheus::Family<prometheus::Counter>& leases_expired_;
  prometheus::Counter& census_failures_;
  prometheus::Family<prometheus::Histogram>& rpc_seconds_;

  mutable absl::Mutex mu_;
  std::function<absl::StatusOr<Census>()> census_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, absl::Time> last_seen_ ABSL_GUARDED_BY(mu_);
  // last_seen_ is swept of silent workers when it doubles after a sweep.
  size_t size_after_sweep_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace evonas::observability

#endif  // EVONAS_SERVER_OBSERVABILITY_TELEMETRY_H_
