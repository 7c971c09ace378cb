#include "worker/worker.h"

#include <malloc.h>

#include <condition_variable>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/genome.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/simulated_evaluator.h"
#include "common/status_macros.h"
#include "common/validation_split.h"
#include "grpcpp/grpcpp.h"
#include "worker/artifacts.h"
#include "worker/model/checkpoint.h"
#include "worker/model/morphism.h"
#include "worker/model/trainer.h"
#include "worker/peak_memory.h"

namespace evonas::worker {
namespace {

constexpr size_t kChunkBytes = 1 << 20;
// Largest change of the outputs, relative to the largest output, that a
// function-preserving morphism may cause (float64 rounding is far smaller).
constexpr double kMaxInheritedDifference = 1e-9;

absl::Status FromGrpc(const grpc::Status& status, absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

void SetDeadline(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

// One line for what the worker made of a lease before reporting it: `how`
// ("trained", "simulated") and the key metrics, or the failure's reason.
void LogOutcome(const v1::Lease& lease, const v1::WorkResult& result,
                absl::string_view how) {
  if (!result.failure_reason().empty()) {
    log::Warning("candidate_failed", {{"candidate", lease.candidate_id()},
                                      {"mode", how},
                                      {"reason", result.failure_reason()}});
    return;
  }
  const v1::Metrics& metrics = result.metrics();
  log::Info(how, {{"candidate", lease.candidate_id()},
                  {"parameters", metrics.parameter_count()},
                  {"model_bytes", result.model_size_bytes()},
                  {"training_seconds", metrics.training_seconds()},
                  {"stopped_at_time_limit",
                   metrics.stopped_at_time_limit() ? "yes" : "no"}});
}

// One line per trained stage: how long each phase ran and when it last
// improved the selection rows' max abs error (bench/strategy_bench.py
// --phases reads these).
void LogStages(const v1::Lease& lease,
               const std::vector<model::StageReport>& stages) {
  for (size_t k = 0; k < stages.size(); ++k) {
    const model::StageReport& r = stages[k];
    if (r.frozen) continue;
    log::Info("stage_trained",
              {{"candidate", lease.candidate_id()},
               {"stage", k},
               {"inherited", lease.has_inheritance() ? "yes" : "no"},
               {"adam_steps", r.adam_steps},
               {"adam_best_step", r.adam_best_step},
               {"adam_seconds", r.adam_seconds},
               {"lbfgs_iterations", r.lbfgs_iterations},
               {"lbfgs_best_iteration", r.lbfgs_best_iteration},
               {"lbfgs_seconds", r.lbfgs_seconds},
               {"max_error_iterations", r.max_error_iterations},
               {"max_error_best_iteration", r.max_error_best_iteration},
               {"max_error_seconds", r.max_error_seconds}});
  }
}

// One line for the controller's answer to a report. The event names
// "reported" and "report_refused" are what log readers (bench/crash_loop.py)
// look for.
void LogReport(const v1::Lease& lease, const v1::WorkResult& result,
               const absl::Status& status) {
  if (status.ok()) {
    log::Info("reported",
              {{"candidate", lease.candidate_id()},
               {"outcome",
                result.failure_reason().empty() ? "succeeded" : "failed"}});
  } else {
    log::Error("report_refused", {{"candidate", lease.candidate_id()},
                                  {"error", status.ToString()}});
  }
}

// The job's copy of `rows` of the data set: the only copy the worker makes,
// straight from the cached data set (IDX bytes or CSV doubles), one
// allocation per matrix.
model::Samples Select(const Dataset& dataset, const std::vector<int64_t>& rows,
                      const std::vector<int64_t>& inputs,
                      const std::vector<int64_t>& outputs) {
  model::Samples samples;
  const int64_t n = static_cast<int64_t>(rows.size());
  samples.x = {n, static_cast<int64_t>(inputs.size()),
               dataset.SelectColumns(rows, inputs)};
  samples.y = {n, static_cast<int64_t>(outputs.size()),
               dataset.SelectColumns(rows, outputs)};
  return samples;
}

std::vector<std::string> ToVector(
    const google::protobuf::RepeatedPtrField<std::string>& field) {
  return {field.begin(), field.end()};
}

// Lease.step_fraction, or what a controller older than it meant.
double StepFraction(const v1::Lease& lease) {
  if (lease.step_fraction() > 0) return lease.step_fraction();
  if (lease.has_inheritance()) return lease.inheritance().step_fraction();
  return 1;
}

// Builds the training job of a lease from the cached data sets.
absl::StatusOr<model::TrainJob> MakeJob(const v1::Lease& lease,
                                        DatasetCache& cache, int threads) {
  model::TrainJob job;
  job.genome = lease.genome();
  job.seed = lease.seed();
  job.within_tolerance = lease.within_tolerance();
  job.step_fraction = StepFraction(lease);
  job.threads = threads;
  // A candidate that would train past the limit stops there with its best
  // weights, rather than training on only to fail the requirement.
  job.max_training_seconds = lease.requirements().max_training_seconds();
  if (lease.task() == v1::TASK_CLASSIFICATION) {
    if (lease.class_count() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "lease: a classification with class_count ", lease.class_count(),
          "; it needs at least 2"));
    }
    job.class_count = lease.class_count();
  }
  if (lease.image_shape_size() == 2) {
    job.image_height = lease.image_shape(0);
    job.image_width = lease.image_shape(1);
  } else if (lease.genome().conv_layers_size() > 0) {
    // Train() would refuse it too; say where the shape should have come
    // from.
    return absl::InvalidArgumentError(absl::StrCat(
        "lease: the genome has convolutional layers but the lease has ",
        lease.image_shape_size() == 0
            ? std::string("no image_shape")
            : absl::StrCat(lease.image_shape_size(), " image_shape values"),
        " (want height and width); convolutional genomes need an image "
        "data set (IDX) and a controller that sends its shape"));
  }
  const auto input_names = ToVector(lease.input_columns());
  const auto output_names = ToVector(lease.output_columns());

  EVONAS_ASSIGN_OR_RETURN(
      auto dataset, cache.Get(lease.dataset_id(), lease.dataset_format()));
  EVONAS_ASSIGN_OR_RETURN(auto inputs, dataset->ColumnIndices(input_names));
  EVONAS_ASSIGN_OR_RETURN(auto outputs, dataset->ColumnIndices(output_names));
  const double judging_fraction = lease.judging_split().fraction();
  if (!(judging_fraction >= 0 && judging_fraction < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease: judging_split.fraction is ", judging_fraction,
                     "; it must be in [0, 1)"));
  }
  RowPartition rows = PartitionRows(lease.validation_split(), dataset->rows(),
                                    lease.judging_split());
  if (judging_fraction > 0 && rows.judging.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lease: judging_split (fraction ", judging_fraction,
        ") selects none of the data set's ", dataset->rows(), " rows"));
  }
  const double row_fraction = lease.training_row_fraction();
  if (!(row_fraction >= 0 && row_fraction <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lease: training_row_fraction is ", row_fraction,
        "; it must be in (0, 1], or 0 for every training row"));
  }
  const size_t all_training = rows.training.size();
  rows.training = TrainingRowSubset(std::move(rows.training),
                                    lease.validation_split().seed(),
                                    row_fraction);
  if (rows.training.empty() && all_training > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lease: training_row_fraction ", row_fraction, " keeps none of the ",
        all_training, " training rows; raise "
        "multi_fidelity.short_row_fraction"));
  }
  job.training = Select(*dataset, rows.training, inputs, outputs);
  job.validation = Select(*dataset, rows.validation, inputs, outputs);
  if (!rows.judging.empty()) {
    job.judging = Select(*dataset, rows.judging, inputs, outputs);
  }

  if (!lease.test_dataset_id().empty()) {
    EVONAS_ASSIGN_OR_RETURN(
        auto test,
        cache.Get(lease.test_dataset_id(), lease.dataset_format()));
    EVONAS_ASSIGN_OR_RETURN(auto test_in, test->ColumnIndices(input_names));
    EVONAS_ASSIGN_OR_RETURN(auto test_out, test->ColumnIndices(output_names));
    std::vector<int64_t> all(test->rows());
    for (int64_t i = 0; i < test->rows(); ++i) all[i] = i;
    job.test = Select(*test, all, test_in, test_out);
  }
  return job;
}

}  // namespace

// Makes a call wait while the controller is unreachable (gRPC's
// wait-for-ready) until `timeout`, and lets RequestStop() cancel it while it
// lives. Without it, a call fails at once while the channel backs off after
// a failed reconnect, and gRPC (1.51) tries to reconnect only when a waiting
// call asks it to: a worker whose retries all fail fast stays cut off for
// seconds after a restarted controller is back, long enough to lose its
// lease.
class Worker::WaitingCall {
 public:
  WaitingCall(Worker* worker, grpc::ClientContext& context,
              absl::Duration timeout)
      : worker_(worker), context_(&context) {
    context.set_wait_for_ready(true);
    SetDeadline(context, timeout);
    absl::MutexLock lock(&worker_->calls_mu_);
    worker_->waiting_calls_.insert(context_);
    if (worker_->stop_.load()) context_->TryCancel();
  }
  ~WaitingCall() {
    absl::MutexLock lock(&worker_->calls_mu_);
    worker_->waiting_calls_.erase(context_);
  }
  WaitingCall(const WaitingCall&) = delete;
  WaitingCall& operator=(const WaitingCall&) = delete;

 private:
  Worker* const worker_;
  grpc::ClientContext* const context_;
};

void Worker::RequestStop() {
  stop_.store(true);
  absl::MutexLock lock(&calls_mu_);
  for (grpc::ClientContext* context : waiting_calls_) context->TryCancel();
}

Worker::Worker(WorkerOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      stub_(v1::WorkerService::NewStub(channel)),
      cache_(stub_.get(), options_.cache_dir, options_.cache_max_bytes,
             options_.cache_max_parsed_bytes, options_.dataset_limits) {}

void Worker::Wait(absl::Duration duration) {
  const absl::Time until = absl::Now() + duration;
  while (!stop_.load() && absl::Now() < until) {
    absl::SleepFor(std::min(absl::Milliseconds(100), until - absl::Now()));
  }
}

void Worker::Run() {
  std::mt19937_64 jitter(std::random_device{}());
  absl::Duration backoff = absl::Milliseconds(250);
  while (!stop_.load()) {
    grpc::ClientContext context;
    WaitingCall waiting(this, context, options_.rpc_timeout);
    v1::LeaseWorkRequest request;
    request.set_worker_id(options_.worker_id);
    request.mutable_info()->set_threads(options_.threads);
    if (!options_.latency_table.hardware_class().empty()) {
      *request.mutable_info()->mutable_latency_table() = options_.latency_table;
    }
    v1::LeaseWorkResponse response;
    grpc::Status status = stub_->LeaseWork(&context, request, &response);
    if (!status.ok() && stop_.load()) break;
    if (!status.ok()) {
      // Controller down or restarting: back off with jitter so that many
      // workers do not reconnect in lockstep.
      std::uniform_real_distribution<double> factor(0.5, 1.0);
      const absl::Duration wait = backoff * factor(jitter);
      log::Warning(
          "lease_failed",
          {{"worker", options_.worker_id},
           {"code", absl::StatusCodeToString(
                        static_cast<absl::StatusCode>(status.error_code()))},
           {"error", status.error_message()},
           {"retry_in_ms", absl::ToInt64Milliseconds(wait)}});
      Wait(wait);
      backoff = std::min(backoff * 2, options_.max_backoff);
      continue;
    }
    backoff = absl::Milliseconds(250);
    if (!response.has_lease()) {
      Wait(absl::Seconds(std::max(0.1, response.retry_after_seconds())));
      continue;
    }
    Process(response.lease());
  }
}

SimulatedReport SimulateLease(const v1::Lease& lease,
                              const std::string& worker_id) {
  SimulatedReport report;
  v1::WorkResult& result = report.result;
  result.set_worker_id(worker_id);
  result.set_lease_id(lease.lease_id());
  if (absl::Status valid = ValidateGenome(lease.genome()); !valid.ok()) {
    result.set_failure_reason(std::string(valid.message()));
    return report;
  }
  if (lease.task() == v1::TASK_CLASSIFICATION) {
    result.set_failure_reason(
        "the simulated evaluator models regression only; train "
        "classification candidates with a real worker (without --simulate)");
    return report;
  }
  if (lease.genome().conv_layers_size() > 0) {
    result.set_failure_reason(
        "the simulated evaluator models MLPs only; train convolutional "
        "candidates with a real worker (without --simulate)");
    return report;
  }
  const double row_fraction = lease.training_row_fraction();
  if (!(row_fraction >= 0 && row_fraction <= 1)) {
    result.set_failure_reason(
        absl::StrCat("lease: training_row_fraction is ", row_fraction,
                     "; it must be in (0, 1], or 0 for every training row"));
    return report;
  }
  SimulationOptions simulation;
  simulation.step_fraction = StepFraction(lease);
  simulation.row_fraction = row_fraction > 0 ? row_fraction : 1;
  simulation.inputs = lease.input_columns_size();
  simulation.outputs = lease.output_columns_size();
  simulation.seed = lease.seed();
  simulation.within_tolerance = lease.within_tolerance();
  simulation.with_test = !lease.test_dataset_id().empty();
  simulation.with_judging = lease.judging_split().fraction() > 0;
  simulation.max_training_seconds = lease.requirements().max_training_seconds();
  if (lease.has_inheritance()) {
    const double parent = lease.inheritance().parent_step_fraction();
    simulation.inheritance = SimulatedInheritance{
        lease.inheritance().parent_genome(), lease.inheritance().morphism(),
        parent > 0 ? parent : 1};
  }
  SimulatedTraining simulated = SimulateTraining(lease.genome(), simulation);
  *result.mutable_metrics() = simulated.metrics;
  report.model = std::move(simulated.model_file);
  result.set_model_size_bytes(static_cast<int64_t>(report.model.size()));
  result.set_model_sha256(Sha256Hex(report.model));
  v1::Artifact* checkpoint = result.add_artifacts();
  checkpoint->set_format(v1::MODEL_FORMAT_CHECKPOINT);
  checkpoint->set_size_bytes(static_cast<int64_t>(simulated.checkpoint.size()));
  checkpoint->set_sha256(Sha256Hex(simulated.checkpoint));
  report.artifacts.push_back(std::move(simulated.checkpoint));
  return report;
}

void Worker::Process(const v1::Lease& lease) {
  if (options_.simulate) {
    // No data and no training: the simulated evaluator stands in for both.
    SimulatedReport simulated = SimulateLease(lease, options_.worker_id);
    LogOutcome(lease, simulated.result, "simulated");
    LogReport(lease, simulated.result,
              Report(simulated.result, simulated.model, simulated.artifacts));
    return;
  }
  log::Info("training", {{"candidate", lease.candidate_id()},
                         {"experiment", lease.experiment_id()},
                         {"lease", lease.lease_id()},
                         {"inherits", lease.has_inheritance() ? "yes" : "no"},
                         {"step_fraction", StepFraction(lease)},
                         {"row_fraction", lease.training_row_fraction() > 0
                                              ? lease.training_row_fraction()
                                              : 1.0}});
  EnergyMeter energy(options_.powercap_dir, options_.watts_per_core);
  std::atomic<bool> cancel{false};
  std::atomic<bool> lease_lost{false};

  // Heartbeats while training; a lost lease or a stop request cancels it.
  std::mutex mu;
  std::condition_variable done_cv;
  bool done = false;
  std::thread heartbeat([&] {
    const auto interval = std::chrono::milliseconds(static_cast<int64_t>(
        std::max(0.05, lease.heartbeat_interval_seconds()) * 1000));
    auto next_beat = std::chrono::steady_clock::now() + interval;
    std::unique_lock<std::mutex> lock(mu);
    while (!done) {
      done_cv.wait_for(lock, std::chrono::milliseconds(100));
      if (done) break;
      energy.Sample();
      if (stop_.load()) cancel.store(true);
      if (std::chrono::steady_clock::now() < next_beat) continue;
      next_beat += interval;
      lock.unlock();
      grpc::ClientContext context;
      WaitingCall waiting(this, context, options_.rpc_timeout);
      v1::HeartbeatRequest request;
      request.set_worker_id(options_.worker_id);
      request.set_lease_id(lease.lease_id());
      v1::HeartbeatResponse response;
      grpc::Status status = stub_->Heartbeat(&context, request, &response);
      if (status.error_code() == grpc::StatusCode::ABORTED ||
          status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
        log::Warning("lease_lost", {{"candidate", lease.candidate_id()},
                                    {"lease", lease.lease_id()},
                                    {"error", status.error_message()}});
        lease_lost.store(true);
        cancel.store(true);
      }
      lock.lock();
    }
  });

  absl::StatusOr<model::TrainOutput> output =
      TrainLease(lease, cancel, energy, lease_lost);
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  done_cv.notify_all();
  heartbeat.join();

  if (lease_lost.load()) {
    // Someone else owns the candidate now. (The heartbeat logged the loss; a
    // fetch the controller refused for the lease did not.)
    if (!output.ok()) {
      log::Warning("lease_lost", {{"candidate", lease.candidate_id()},
                                  {"lease", lease.lease_id()},
                                  {"error", output.status().ToString()}});
    }
    return;
  }
  if (!output.ok() && output.status().code() == absl::StatusCode::kCancelled) {
    log::Info("giving_back", {{"candidate", lease.candidate_id()},
                              {"reason", "worker stopping"}});
    Release(lease);
    return;
  }
  if (!output.ok() &&
      output.status().code() == absl::StatusCode::kUnavailable) {
    // Could not fetch the data or checkpoint: not the candidate's fault.
    log::Warning("giving_back", {{"candidate", lease.candidate_id()},
                                 {"reason", output.status().ToString()}});
    Release(lease);
    return;
  }
  v1::WorkResult result;
  result.set_worker_id(options_.worker_id);
  result.set_lease_id(lease.lease_id());
  std::string model;
  Artifacts artifacts;
  if (output.ok()) {
    artifacts = DeriveArtifacts(lease, *output);
    for (const std::string& warning : output->warnings) {
      log::Warning("training_incomplete",
                   {{"candidate", lease.candidate_id()}, {"detail", warning}});
    }
    for (const std::string& warning : artifacts.warnings) {
      log::Warning("artifact_incomplete",
                   {{"candidate", lease.candidate_id()}, {"detail", warning}});
    }
    *result.mutable_metrics() = output->metrics;
    model = std::move(output->model_file);
    result.set_model_size_bytes(static_cast<int64_t>(model.size()));
    result.set_model_sha256(Sha256Hex(model));
    for (const v1::Artifact& artifact : artifacts.declared) {
      *result.add_artifacts() = artifact;
    }
  } else {
    result.set_failure_reason(std::string(output.status().message()));
  }
  LogOutcome(lease, result, "trained");
  LogReport(lease, result, Report(result, model, artifacts.bytes));
}

absl::StatusOr<model::TrainOutput> Worker::TrainLease(
    const v1::Lease& lease, const std::atomic<bool>& cancel,
    EnergyMeter& energy, std::atomic<bool>& lease_lost) {
  // Hand the heap's free memory (the previous lease's job and buffers) back
  // to the kernel first: it is not this candidate's, and without this it
  // stays resident and counts towards its peak.
  malloc_trim(0);
  const bool memory_measured = ResetPeakMemory();
  EVONAS_ASSIGN_OR_RETURN(model::TrainJob job,
                          MakeJob(lease, cache_, options_.threads));
  job.cancel = &cancel;
  if (lease.has_inheritance()) {
    EVONAS_RETURN_IF_ERROR(Inherit(lease, lease_lost, job));
  }
  energy.Start();
  // Moved: the trainer frees the training inputs once it has its own copy.
  EVONAS_ASSIGN_OR_RETURN(model::TrainOutput output,
                          model::Train(std::move(job)));
  energy.Finish(output.metrics);  // after Train set training_cpu_seconds
  LogStages(lease, output.stages);
  if (memory_measured) {
    output.metrics.set_peak_memory_bytes(PeakMemoryBytes().value_or(0));
  }
  return output;
}

absl::Status Worker::Inherit(const v1::Lease& lease,
                             std::atomic<bool>& lease_lost,
                             model::TrainJob& job) {
  const v1::Inheritance& inheritance = lease.inheritance();
  const std::string parent =
      absl::StrCat("parent ", inheritance.parent_candidate_id());
  absl::StatusOr<std::string> bytes = FetchCheckpoint(lease);
  if (!bytes.ok()) {
    if (bytes.status().code() == absl::StatusCode::kAborted) {
      lease_lost.store(true);
    }
    return bytes.status();
  }
  absl::StatusOr<model::NetworkParameters> weights =
      model::ParseCheckpoint(*bytes);
  if (!weights.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint of ", parent,
                     " is unusable: ", weights.status().message()));
  }
  const v1::Morphism& morphism = inheritance.morphism();
  absl::StatusOr<model::NetworkParameters> child = model::ApplyMorphism(
      inheritance.parent_genome(), *weights, morphism, lease.genome(),
      lease.seed(), job.training);
  if (!child.ok()) {
    return absl::Status(
        child.status().code(),
        absl::StrCat("inheriting from ", parent, ": ",
                     child.status().message()));
  }
  if (model::IsFunctionPreserving(morphism.kind())) {
    // The controller and the worker must agree on what the morphism does:
    // a child that does not compute its parent's function would silently
    // waste the inheritance.
    const model::Samples& rows = model::SelectionRows(job);
    absl::StatusOr<double> difference =
        model::MaxRelativeOutputDifference(*weights, *child, rows.x);
    if (!difference.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot check that ", v1::MorphismKind_Name(morphism.kind()), " of ",
          parent, " preserves its outputs: ", difference.status().message()));
    }
    if (!(*difference <= kMaxInheritedDifference)) {
      return absl::InternalError(absl::StrCat(
          v1::MorphismKind_Name(morphism.kind()), " of ", parent,
          " should preserve its outputs but changes them by up to ",
          *difference, " (relative to the largest output) on ", rows.x.rows,
          " rows; allowed ", kMaxInheritedDifference));
    }
  }
  log::Info("inherited", {{"candidate", lease.candidate_id()},
                          {"parent", inheritance.parent_candidate_id()},
                          {"morphism", v1::MorphismKind_Name(morphism.kind())},
                          {"stage", morphism.stage()},
                          {"layer", morphism.layer()},
                          {"step_fraction", job.step_fraction}});
  job.initial = *std::move(child);
  // Every kind leaves the stages before morphism.stage as they were (for
  // CONTINUE it is the first stage whose training genes changed).
  job.first_trainable_stage = morphism.stage();
  return absl::OkStatus();
}

absl::StatusOr<std::string> Worker::FetchCheckpoint(const v1::Lease& lease) {
  const v1::Inheritance& inheritance = lease.inheritance();
  const int64_t expected = inheritance.checkpoint_size_bytes();
  const std::string what =
      absl::StrCat("fetching the checkpoint of parent ",
                   inheritance.parent_candidate_id());
  grpc::ClientContext context;
  WaitingCall waiting(this, context,
                      options_.rpc_timeout +
                          absl::Seconds(std::max<int64_t>(0, expected) >> 20));
  v1::FetchCheckpointRequest request;
  request.set_worker_id(options_.worker_id);
  request.set_lease_id(lease.lease_id());
  auto reader = stub_->FetchCheckpoint(&context, request);
  std::string bytes;
  v1::FetchCheckpointResponse response;
  // The size the lease announced is the only one accepted: nothing beyond it
  // is buffered.
  std::string mismatch;
  while (reader->Read(&response)) {
    if (response.total_bytes() > 0 && response.total_bytes() != expected) {
      mismatch = absl::StrCat("the controller announces ",
                              response.total_bytes(), " bytes");
    } else if (static_cast<int64_t>(bytes.size() + response.chunk().size()) >
               expected) {
      mismatch = "the controller sends more";
    }
    if (!mismatch.empty()) {
      context.TryCancel();
      break;
    }
    bytes.append(response.chunk());
  }
  grpc::Status status = reader->Finish();
  if (!mismatch.empty()) {
    return absl::DataLossError(absl::StrCat(what, ": ", mismatch,
                                            ", the lease says ", expected));
  }
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::UnavailableError(
        absl::StrCat(what, ": ", status.error_message()));
  }
  EVONAS_RETURN_IF_ERROR(FromGrpc(status, what));
  if (static_cast<int64_t>(bytes.size()) != expected) {
    return absl::DataLossError(absl::StrCat(what, ": received ", bytes.size(),
                                            " bytes, the lease says ",
                                            expected));
  }
  if (Sha256Hex(bytes) != inheritance.checkpoint_sha256()) {
    return absl::DataLossError(
        absl::StrCat(what, ": SHA-256 ", Sha256Hex(bytes),
                     " differs from the lease's ",
                     inheritance.checkpoint_sha256()));
  }
  return bytes;
}

absl::Status Worker::Report(const v1::WorkResult& result,
                            const std::string& model,
                            const std::vector<std::string>& artifacts) {
  // The result is kept until the controller accepts or refuses it for good:
  // a controller restart only delays the report.
  std::string payload = model;  // the stream carries the files back to back
  for (const std::string& bytes : artifacts) payload += bytes;
  absl::Duration backoff = absl::Milliseconds(250);
  std::mt19937_64 jitter(std::random_device{}());
  while (true) {
    grpc::ClientContext context;
    WaitingCall waiting(this, context,
                        options_.rpc_timeout +
                            absl::Seconds(payload.size() / (1 << 20)));
    v1::ReportResultResponse response;
    auto writer = stub_->ReportResult(&context, &response);
    v1::ReportResultRequest first;
    *first.mutable_result() = result;
    bool sent = writer->Write(first);
    for (size_t offset = 0; sent && offset < payload.size();
         offset += kChunkBytes) {
      v1::ReportResultRequest chunk;
      chunk.set_model_chunk(payload.substr(offset, kChunkBytes));
      sent = writer->Write(chunk);
    }
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    if (!status.ok() && stop_.load()) {
      return FromGrpc(status, "report (worker stopping)");
    }
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
        status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return FromGrpc(status, "report");
    }
    std::uniform_real_distribution<double> factor(0.5, 1.0);
    Wait(backoff * factor(jitter));
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

void Worker::Release(const v1::Lease& lease) {
  grpc::ClientContext context;
  SetDeadline(context, options_.rpc_timeout);
  v1::ReleaseLeaseRequest request;
  request.set_worker_id(options_.worker_id);
  request.set_lease_id(lease.lease_id());
  v1::ReleaseLeaseResponse response;
  grpc::Status status = stub_->ReleaseLease(&context, request, &response);
  if (status.ok()) {
    log::Info("gave_back", {{"candidate", lease.candidate_id()}});
  } else {
    // The lease then expires on the controller, which hands the candidate
    // out again.
    log::Warning("gave_back", {{"candidate", lease.candidate_id()},
                               {"controller_error", status.error_message()}});
  }
}

}  // namespace evonas::worker
