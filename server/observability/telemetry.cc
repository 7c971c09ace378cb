#include "server/observability/telemetry.h"

#include <limits>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/requirements.h"
#include "common/status_macros.h"
#include "prometheus/gauge.h"
#include "prometheus/text_serializer.h"

namespace evonas::observability {
namespace {

// Call latencies from 1 ms to a minute (uploads and model downloads are the
// slow ones; WatchExperiment streams last as long as the client watches).
const prometheus::Histogram::BucketBoundaries& RpcBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
      0.25,  0.5,    1,     2.5,  5,     10,   30, 60};
  return *buckets;
}

// "CANDIDATE_STATE_SUCCEEDED" -> "succeeded".
std::string StateLabel(const std::string& enum_name, absl::string_view prefix) {
  absl::string_view name = enum_name;
  if (absl::StartsWith(name, prefix)) name.remove_prefix(prefix.size());
  return absl::AsciiStrToLower(name);
}
std::string Label(v1::CandidateState state) {
  return StateLabel(v1::CandidateState_Name(state), "CANDIDATE_STATE_");
}
std::string Label(v1::ExperimentState state) {
  return StateLabel(v1::ExperimentState_Name(state), "EXPERIMENT_STATE_");
}

prometheus::MetricFamily GaugeFamily(std::string name, std::string help) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = prometheus::MetricType::Gauge;
  return family;
}

void AddGauge(prometheus::MetricFamily& family, double value,
              std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  family.metric.push_back(std::move(metric));
}

// Times one call from its creation (when the server has matched it to a
// method) to the status it sends.
class LatencyInterceptor final : public grpc::experimental::Interceptor {
 public:
  LatencyInterceptor(ControllerTelemetry* telemetry, const char* method)
      : telemetry_(telemetry),
        method_(method == nullptr ? "" : method),
        start_(absl::Now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      telemetry_->RecordRpc(method_, methods->GetSendStatus().error_code(),
                            absl::Now() - start_);
    }
    methods->Proceed();
  }

 private:
  ControllerTelemetry* const telemetry_;
  const std::string method_;
  const absl::Time start_;
};

class LatencyInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit LatencyInterceptorFactory(ControllerTelemetry* telemetry)
      : telemetry_(telemetry) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new LatencyInterceptor(telemetry_, info->method());
  }

 private:
  ControllerTelemetry* const telemetry_;
};

}  // namespace

absl::StatusOr<Census> TakeCensus(store::Store& store) {
  Census census;
  EVONAS_ASSIGN_OR_RETURN(std::vector<std::string> running,
                          store.ListRunningExperimentIds());
  census.running_experiments = static_cast<int64_t>(running.size());
  // Only running experiments have queued candidates: cancelling or
  // finishing one cancels its queue.
  for (const std::string& id : running) {
    EVONAS_ASSIGN_OR_RETURN(v1::CandidateCounts counts,
                            store.CountCandidates(id));
    census.queued_candidates += counts.queued();
  }
  // Every lease's deadline is before the end of time: these are all RUNNING
  // candidates, also those of cancelled experiments, which may still report.
  EVONAS_ASSIGN_OR_RETURN(
      std::vector<store::StoredCandidate> leased,
      store.ExpiredLeases(std::numeric_limits<int64_t>::max()));
  census.active_leases = static_cast<int64_t>(leased.size());
  EVONAS_ASSIGN_OR_RETURN(auto rows, store.RowCounts());
  census.experiments = rows["experiments"];
  return census;
}

absl::StatusOr<std::function<absl::StatusOr<Census>()>> OpenCensus(
    const std::string& db_path) {
  EVONAS_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> opened,
                          store::Store::Open(db_path));
  struct Source {
    absl::Mutex mu;
    std::unique_ptr<store::Store> store ABSL_GUARDED_BY(mu);
  };
  auto source = std::make_shared<Source>();
  source->store = std::move(opened);
  return [source]() -> absl::StatusOr<Census> {
    absl::MutexLock lock(&source->mu);
    return TakeCensus(*source->store);
  };
}

ControllerTelemetry::ControllerTelemetry(TelemetryOptions options)
    : options_(std::move(options)),
      registry_(std::make_shared<prometheus::Registry>()),
      candidates_finished_(
          prometheus::BuildCounter()
              .Name("evonas_candidates_finished_total")
              .Help("Candidates that reached a final state (succeeded, "
                    "failed, cancelled); copies of earlier candidates are "
                    "not counted. rate() gives candidates per second.")
              .Register(*registry_)),
      experiments_created_(prometheus::BuildCounter()
                               .Name("evonas_experiments_created_total")
                               .Help("Experiments created.")
                               .Register(*registry_)
                               .Add({})),
      experiments_finished_(
          prometheus::BuildCounter()
              .Name("evonas_experiments_finished_total")
              .Help("Experiments that stopped running, by final state "
                    "(completed, cancelled).")
              .Register(*registry_)),
      leases_expired_(
          prometheus::BuildCounter()
              .Name("evonas_leases_expired_total")
              .Help("Leases that expired without a report, by outcome: the "
                    "candidate was requeued, or failed out of attempts.")
              .Register(*registry_)),
      census_failures_(prometheus::BuildCounter()
                           .Name("evonas_census_failures_total")
                           .Help("Scrapes whose database census failed; "
                                 "their census gauges are missing.")
                           .Register(*registry_)
                           .Add({})),
      rpc_seconds_(prometheus::BuildHistogram()
                       .Name("grpc_server_handling_seconds")
                       .Help("Duration of gRPC calls to the controller, from "
                             "the call's start to its status.")
                       .Register(*registry_)) {
  census_ = options_.census;
  // Zero samples for the labels operators alert on, so that rate() and
  // absent-series alerts work before the first event.
  for (v1::CandidateState state :
       {v1::CANDIDATE_STATE_SUCCEEDED, v1::CANDIDATE_STATE_FAILED,
        v1::CANDIDATE_STATE_CANCELLED}) {
    candidates_finished_.Add({{"state", Label(state)}});
  }
  for (v1::ExperimentState state :
       {v1::EXPERIMENT_STATE_COMPLETED, v1::EXPERIMENT_STATE_CANCELLED}) {
    experiments_finished_.Add({{"state", Label(state)}});
  }
  leases_expired_.Add({{"outcome", "requeued"}});
  leases_expired_.Add({{"outcome", "failed"}});
}

void ControllerTelemetry::SetCensus(
    std::function<absl::StatusOr<Census>()> census) {
  absl::MutexLock lock(&mu_);
  census_ = std::move(census);
}

void ControllerTelemetry::ExperimentCreated(const v1::Experiment& experiment,
                                            const std::string& tenant) {
  experiments_created_.Increment();
  const v1::ExperimentSpec& spec = experiment.spec();
  log::Info("experiment_created",
            {{"experiment", experiment.id()},
             {"tenant", tenant},
             {"name", spec.name()},
             {"dataset", spec.dataset_id()},
             {"strategy", StateLabel(v1::Strategy_Name(spec.strategy()),
                                     "STRATEGY_")},
             {"max_candidates", spec.budget().max_candidates()},
             {"max_wall_seconds", spec.budget().max_wall_seconds()}});
}

void ControllerTelemetry::ExperimentFinished(const std::string& experiment_id,
                                             v1::ExperimentState state) {
  const std::string label = Label(state);
  experiments_finished_.Add({{"state", label}}).Increment();
  log::Info(absl::StrCat("experiment_", label),
            {{"experiment", experiment_id}});
}

void ControllerTelemetry::CandidateFinished(const v1::Candidate& candidate) {
  if (!candidate.duplicate_of().empty()) {
    // Not trained: its result is its original's.
    log::Debug("candidate_copied", {{"candidate", candidate.id()},
                                    {"experiment", candidate.experiment_id()},
                                    {"copy_of", candidate.duplicate_of()}});
    return;
  }
  candidates_finished_.Add({{"state", Label(candidate.state())}}).Increment();
  switch (candidate.state()) {
    case v1::CANDIDATE_STATE_SUCCEEDED:
      log::Info("candidate_succeeded",
                {{"candidate", candidate.id()},
                 {"experiment", candidate.experiment_id()},
                 {"worker", candidate.worker_id()},
                 {"feasible", candidate.feasible() ? "true" : "false"},
                 {"max_abs_error",
                  SearchEvaluation(candidate.metrics()).max_abs_error()},
                 {"parameters", candidate.metrics().parameter_count()},
                 {"worker_seconds", candidate.worker_seconds()}});
      break;
    case v1::CANDIDATE_STATE_FAILED:
      log::Warning("candidate_failed",
                   {{"candidate", candidate.id()},
                    {"experiment", candidate.experiment_id()},
                    {"worker", candidate.worker_id()},
                    {"attempts", candidate.attempts()},
                    {"reason", candidate.failure_reason()}});
      break;
    default:
      log::Debug("candidate_cancelled",
                 {{"candidate", candidate.id()},
                  {"experiment", candidate.experiment_id()}});
  }
}

void ControllerTelemetry::LeaseExpired(const v1::Candidate& candidate,
                                       const std::string& worker_id) {
  const bool requeued = candidate.state() == v1::CANDIDATE_STATE_QUEUED;
  leases_expired_.Add({{"outcome", requeued ? "requeued" : "failed"}})
      .Increment();
  log::Warning("lease_expired", {{"candidate", candidate.id()},
                                 {"experiment", candidate.experiment_id()},
                                 {"worker", worker_id},
                                 {"attempts", candidate.attempts()},
                                 {"outcome", requeued ? "requeued" : "failed"}});
}

void ControllerTelemetry::WorkerSeen(const std::string& worker_id) {
  const absl::Time now = options_.clock();
  bool joined = false;
  {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = last_seen_.try_emplace(worker_id, now);
    joined = inserted || now - it->second > options_.live_worker_window;
    it->second = now;
    if (last_seen_.size() > 2 * size_after_sweep_ + 64) {
      // Worker ids change with every restart (HOSTNAME-PID): forget the
      // silent ones so that the map stays as large as the fleet.
      for (auto seen = last_seen_.begin(); seen != last_seen_.end();) {
        if (now - seen->second > options_.live_worker_window) {
          seen = last_seen_.erase(seen);
        } else {
          ++seen;
        }
      }
      size_after_sweep_ = last_seen_.size();
    }
  }
  if (joined) log::Info("worker_joined", {{"worker", worker_id}});
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ControllerTelemetry::NewRpcInterceptorFactory() {
  return std::make_unique<LatencyInterceptorFactory>(this);
}

void ControllerTelemetry::RecordRpc(absl::string_view full_method,
                                    int status_code, absl::Duration duration) {
  // "/evonas.v1.WorkerService/LeaseWork" -> service and method.
  std::vector<absl::string_view> parts =
      absl::StrSplit(absl::StripPrefix(full_method, "/"), '/');
  std::string service, method;
  if (parts.size() == 2) {
    service = std::string(parts[0]);
    method = std::string(parts[1]);
  } else {
    method = std::string(full_method);
  }
  rpc_seconds_
      .Add({{"grpc_service", service},
            {"grpc_method", method},
            {"grpc_code", absl::StatusCodeToString(
                              static_cast<absl::StatusCode>(status_code))}},
           RpcBuckets())
      .Observe(absl::ToDoubleSeconds(duration));
}

int64_t ControllerTelemetry::LiveWorkers() const {
  const absl::Time now = options_.clock();
  absl::MutexLock lock(&mu_);
  int64_t live = 0;
  for (const auto& [worker, seen] : last_seen_) {
    if (now - seen <= options_.live_worker_window) ++live;
  }
  return live;
}

std::vector<prometheus::MetricFamily> ControllerTelemetry::Collect() const {
  // The census first: its failure shows in this scrape's counter.
  std::vector<prometheus::MetricFamily> census_families = CensusFamilies();
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (prometheus::MetricFamily& family : census_families) {
    families.push_back(std::move(family));
  }
  prometheus::MetricFamily live = GaugeFamily(
      "evonas_live_workers",
      absl::StrCat("Workers that asked for work or heartbeated in the last ",
                   absl::FormatDuration(options_.live_worker_window), "."));
  AddGauge(live, static_cast<double>(LiveWorkers()));
  families.push_back(std::move(live));
  return families;
}

std::vector<prometheus::MetricFamily> ControllerTelemetry::CensusFamilies()
    const {
  std::vector<prometheus::MetricFamily> families;
  std::function<absl::StatusOr<Census>()> census_source;
  {
    absl::MutexLock lock(&mu_);
    census_source = census_;
  }
  if (!census_source) return families;
  // Outside mu_: the census reads the database.
  absl::StatusOr<Census> census = census_source();
  if (!census.ok()) {
    census_failures_.Increment();
    log::Warning("census_failed", {{"error", census.status().ToString()}});
    return families;
  }
  prometheus::MetricFamily queue = GaugeFamily(
      "evonas_queue_depth", "Candidates queued, waiting for a worker.");
  AddGauge(queue, static_cast<double>(census->queued_candidates));
  prometheus::MetricFamily leases = GaugeFamily(
      "evonas_active_leases",
      "Candidates leased to a worker (state RUNNING).");
  AddGauge(leases, static_cast<double>(census->active_leases));
  prometheus::MetricFamily experiments = GaugeFamily(
      "evonas_experiments",
      "Experiments running, and finished (completed or cancelled; "
      "evonas_experiments_finished_total tells them apart since the "
      "controller started).");
  AddGauge(experiments, static_cast<double>(census->running_experiments),
           {{"state", "running"}});
  AddGauge(experiments,
           static_cast<double>(census->experiments -
                               census->running_experiments),
           {{"state", "finished"}});
  families.push_back(std::move(queue));
  families.push_back(std::move(leases));
  families.push_back(std::move(experiments));
  return families;
}

std::string ControllerTelemetry::Exposition() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, Collect());
  return out.str();
}

}  // namespace evonas::observability
