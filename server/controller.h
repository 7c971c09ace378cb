#ifndef EVONAS_SERVER_CONTROLLER_H_
#define EVONAS_SERVER_CONTROLLER_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "evonas/v1/types.pb.h"
#include "evonas/v1/worker_service.pb.h"
#include "common/genome.h"
#include "common/idx.h"
#include "server/observability/controller_observer.h"
#include "server/search/strategy.h"
#include "server/store/blob_store.h"
#include "server/store/store.h"

namespace evonas {

struct ControllerOptions {
  std::string db_path = "evonas.db";
  std::string data_dir = "evonas-data";
  // A lease not heartbeated for this long expires and its candidate is
  // queued again.
  absl::Duration lease_timeout = absl::Seconds(60);
  absl::Duration heartbeat_interval = absl::Seconds(10);
  // Leases handed out per candidate before it is marked failed.
  int max_attempts = 3;
  // Largest data set upload accepted.
  int64_t max_upload_bytes = int64_t{1} << 30;
  // Most values (images x (pixels + 1)) of an IDX data set
  // (IdxLimits::max_values; --max-dataset-values).
  int64_t max_dataset_values = IdxLimits().max_values;
  // Largest model a worker may report.
  int64_t max_model_bytes = int64_t{256} << 20;
  // A reported model, checkpoint or artifact of at most this many bytes is
  // stored in the database, in the transaction that records the report,
  // instead of as a file of its own: no file to create and fsync per report,
  // and nothing to orphan. Larger ones are blob files. 0: files only.
  int64_t inline_blob_max_bytes = int64_t{64} << 10;
  // Create() deletes blobs that no row refers to (written just before a
  // crash, never committed) if they are older than this. Nothing can commit
  // while Create() runs, so the grace only spares the blobs of a second
  // controller wrongly started on the same data_dir.
  absl::Duration orphan_blob_grace = absl::Minutes(10);
  // What a worker is told to wait when there is no work.
  absl::Duration no_work_retry = absl::Seconds(1);
  // LeaseWork runs the maintenance pass (lease expiry, budgets) itself when
  // it has not run for this long; the server also runs it periodically.
  absl::Duration maintenance_interval = absl::Milliseconds(200);
  // Time source; tests replace it.
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // Builds the search strategy of an experiment from its validated spec,
  // the workers' latency tables, the units of the networks' output layer
  // and the data set's images (search::MakeStrategy); tests replace it with
  // a fake.
  std::function<absl::StatusOr<std::unique_ptr<search::Strategy>>(
      const v1::ExperimentSpec&, absl::Span<const v1::LatencyTable>,
      int64_t network_outputs, const ImageShape& image)>
      make_strategy = search::MakeStrategy;
  // Told of significant events (for logs and metrics), if set; not owned,
  // must outlive the controller.
  observability::ControllerObserver* observer = nullptr;
};

class Controller;

// The tenant that creates an experiment, when authentication is on.
struct ExperimentOwnership {
  std::string tenant;
  // RUNNING experiments the tenant may have at once.
  int64_t max_running_experiments = 0;
};

// One data set upload in progress. Not thread-safe (one per stream).
// Nothing is stored until Finish() has validated the whole file.
class DatasetUpload {
 public:
  // ResourceExhausted once the upload exceeds the size limit;
  // InvalidArgument once it exceeds its declared size.
  absl::Status Append(absl::string_view chunk);
  // Validates the data (InspectDataset in common/dataset.h, by the upload's
  // format) and stores it; returns the (possibly pre-existing) data set.
  // InvalidArgument names the first problem in the file, or says that fewer
  // bytes arrived than were declared (a cut-off upload). With `owner`, the
  // tenant's ownership (this upload's name, now) is recorded in the same
  // transaction as the data set, so no crash can store one without the
  // other.
  absl::StatusOr<v1::Dataset> Finish(
      std::optional<std::string> owner = std::nullopt);

 private:
  friend class Controller;
  DatasetUpload(Controller* controller, std::string name,
                int64_t declared_size, v1::DatasetFormat format)
      : controller_(controller),
        name_(std::move(name)),
        declared_size_(declared_size),
        format_(format) {}
  Controller* controller_;
  std::string name_;
  int64_t declared_size_;  // 0: unknown
  v1::DatasetFormat format_;  // CSV or IDX
  std::string bytes_;
};

// All state of the evonas controller: data sets, experiments, candidates,
// leases and the search. Thread-safe; every method is one critical section
// over the store, so concurrent RPCs see consistent states.
//
// Group commit: the critical sections run inside one open database
// transaction (a batch), and each call returns only after the batch that
// holds its reads and writes has committed. No answer, and no
// acknowledgement of a result, can therefore depend on anything a crash
// could undo, while one fsync covers every call that queued up during the
// previous one. If a batch fails to commit, every call in it fails with
// Unavailable and nothing of it is stored.
class Controller {
 public:
  // Opens the database and the blob store and sweeps orphan blobs (see
  // orphan_blob_grace) before anything is served.
  static absl::StatusOr<std::unique_ptr<Controller>> Create(
      ControllerOptions options);

  // --- Data sets ---
  // Starts an upload; ResourceExhausted when `declared_size` is over the
  // limit, InvalidArgument for a bad name, a negative size (0: unknown) or
  // an unknown format (UNSPECIFIED: CSV).
  absl::StatusOr<std::unique_ptr<DatasetUpload>> BeginUpload(
      std::string name, int64_t declared_size,
      v1::DatasetFormat format = v1::DATASET_FORMAT_UNSPECIFIED);
  absl::StatusOr<v1::Dataset> GetDataset(const std::string& id);
  absl::StatusOr<std::vector<v1::Dataset>> ListDatasets();
  // The stored bytes of a data set (as uploaded, in its format).
  absl::StatusOr<std::string> ReadDataset(const std::string& id);

  // --- Experiments ---
  // Validates `spec` (InvalidArgument or NotFound naming the field) and
  // starts the search. With `owner`, the experiment and its owning tenant
  // are written in one transaction, so no crash can leave an experiment
  // without an owner; ResourceExhausted when the tenant already runs
  // owner->max_running_experiments.
  absl::StatusOr<v1::Experiment> CreateExperiment(
      v1::ExperimentSpec spec,
      std::optional<ExperimentOwnership> owner = std::nullopt);
  absl::StatusOr<v1::Experiment> GetExperiment(const std::string& id);
  absl::StatusOr<std::vector<v1::Experiment>> ListExperiments();
  absl::StatusOr<v1::Experiment> CancelExperiment(const std::string& id);
  absl::StatusOr<std::vector<v1::Candidate>> ListCandidates(
      const std::string& experiment_id);
  absl::StatusOr<v1::Candidate> GetCandidate(const std::string& id);
  absl::StatusOr<v1::ParetoFront> GetParetoFront(
      const std::string& experiment_id);
  // A file of a SUCCEEDED candidate: TorchScript for UNSPECIFIED, else the
  // artifact the worker reported in that format (NotFound if none). A
  // candidate recorded as a duplicate serves its original's files.
  absl::StatusOr<std::string> ReadModel(
      const std::string& candidate_id,
      v1::ModelFormat format = v1::MODEL_FORMAT_TORCHSCRIPT);

  // --- Workers ---
  // The worker's active lease if it has one, else the next candidate, else
  // nullopt (no work). A latency table in `info` becomes the one of its
  // hardware class (when it differs from the stored one), and with it every
  // later GenomeCost.estimated_latency_seconds; an invalid table is
  // InvalidArgument and nothing is leased.
  absl::StatusOr<std::optional<v1::Lease>> LeaseWork(
      const std::string& worker_id, const v1::WorkerInfo& info = {});
  // The latency table of every hardware class a worker has reported.
  absl::StatusOr<std::vector<v1::LatencyTable>> LatencyTables();
  // Extends the lease; Aborted when the worker no longer holds it.
  absl::StatusOr<absl::Time> Heartbeat(const std::string& worker_id,
                                       const std::string& lease_id);
  // Requeues the candidate without counting an attempt.
  absl::Status ReleaseLease(const std::string& worker_id,
                            const std::string& lease_id);
  // The checkpoint (a serialised v1::NetworkWeights) that the worker's
  // active lease inherits. Aborted when the worker does not hold the lease;
  // FailedPrecondition when it was reported or does not inherit.
  absl::StatusOr<std::string> FetchCheckpoint(const std::string& worker_id,
                                              const std::string& lease_id);
  // Checks what can be checked from the first message of a report, before
  // its model arrives, so that a hostile or stale report is refused without
  // buffering the model: InvalidArgument for missing ids or an inconsistent
  // report, ResourceExhausted for a declared model over the limit, Aborted
  // and FailedPrecondition as for Report. Report checks everything again.
  absl::Status BeginReport(const v1::WorkResult& result);
  // Checks and records a result; `model` is the TorchScript file (empty on
  // failure) and `artifacts` the bytes of result.artifacts(), in order. A
  // MODEL_FORMAT_CHECKPOINT artifact must parse as v1::NetworkWeights whose
  // stages and layers match the genome, with finite values and the reported
  // parameter count.
  // Returns whether the candidate is feasible. Aborted: lease not held;
  // FailedPrecondition: already reported; InvalidArgument: the report is
  // inconsistent (nothing is stored).
  absl::StatusOr<bool> Report(const v1::WorkResult& result,
                              const std::string& model,
                              const std::vector<std::string>& artifacts = {});

  // Expires overdue leases and finishes experiments whose budget is spent.
  // The server calls it periodically; LeaseWork also runs it when it has not
  // run for options.maintenance_interval.
  absl::Status Maintain();

  // --- Operations ---
  // Rows per database table, and PRAGMA integrity_check (DataLoss with the
  // findings unless "ok"); for health checks and tests.
  absl::StatusOr<std::map<std::string, int64_t>> RowCounts();
  absl::Status IntegrityCheck();

 private:
  friend class DatasetUpload;
  Controller(ControllerOptions options, std::unique_ptr<store::Store> store,
             std::unique_ptr<store::BlobStore> blobs)
      : options_(std::move(options)),
        store_(std::move(store)),
        blobs_(std::move(blobs)) {}

  absl::StatusOr<v1::Dataset> StoreDataset(const std::string& name,
                                           const std::string& bytes,
                                           v1::DatasetFormat format,
                                           std::optional<std::string> owner);

  // --- Group commit (see the class comment) ---
  // Runs `body` under mu_ inside the open batch (opening one if needed),
  // then waits for that batch to commit; a failed commit replaces the
  // result.
  template <typename Body>
  auto InBatch(Body&& body) -> decltype(body());
  absl::Status OpenBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits until batch `epoch` has committed or failed, committing it when no
  // other call has.
  absl::Status AwaitCommit(int64_t epoch) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the open batch: commits it, or rolls it back when `cause` is not OK
  // (a call's writes that belong together failed halfway). On failure the
  // batch's calls fail and the caches are dropped.
  void FinishBatchLocked(absl::Status cause) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops every in-memory cache of the database; they reload on use.
  void DropCachesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // What the search of one experiment needs on every proposal, cached from
  // the database (loaded on first use, kept up to date by WriteCandidate,
  // dropped when a batch fails), so that a proposal does not read every
  // candidate of the experiment.
  struct SearchState {
    v1::Experiment experiment;  // spec, state, created_at; counts unset
    int64_t total = 0;          // candidates so far: the next sequence
    int trailing_copies = 0;    // copies (duplicate_of) at the end
    std::unordered_set<std::string> genome_keys;  // of every candidate
    // The first candidate (not a copy) of each genome key.
    std::unordered_map<std::string, std::string> original_by_key;
    std::vector<v1::Candidate> finished;  // final candidates, by sequence
    std::vector<bool> final_by_sequence;
    // Multi-fidelity: the level-1 candidates promoted so far.
    std::unordered_set<std::string> promoted;
    // RefitSettings: the search has ended and its refits are queued.
    bool refits_queued = false;
  };
  absl::StatusOr<SearchState*> SearchStateOf(const std::string& experiment_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds a new candidate's genome key, original and promotion to `state`.
  static void AddToSearchState(const v1::Candidate& c, SearchState& state);
  // Inserts (`insert`) or rewrites a candidate and updates SearchState.
  absl::Status WriteCandidate(const store::StoredCandidate& stored,
                              bool insert) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SetExperimentState(const std::string& id,
                                  v1::ExperimentState state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The data set `id` that the spec's `field` names; NotFound (asking to
  // upload it) when there is none.
  absl::StatusOr<v1::Dataset> NamedDataset(absl::string_view field,
                                           const std::string& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ResourceExhausted when `owner` already runs as many experiments as it may.
  absl::Status TenantHasRoomLocked(const ExperimentOwnership& owner)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checks `spec` and fills its defaults. `class_count`: from CountClasses
  // for a classification, 0 for a regression.
  absl::Status ValidateSpec(v1::ExperimentSpec& spec, int32_t class_count)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // TASK_CLASSIFICATION: the number of classes in the training data set's
  // label column (largest label + 1), after checking that every label of
  // the training and test data sets is a class index. Reads and parses the
  // data sets, so it runs outside the batch lock.
  absl::StatusOr<int32_t> CountClasses(const v1::ExperimentSpec& spec)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status MaintainLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What the budget of an experiment still allows.
  enum class BudgetState {
    // New candidates may be proposed.
    kLeft,
    // No new candidates; queued ones are still handed out (max_candidates).
    kNoNewCandidates,
    // No work at all: queued candidates are cancelled, running ones may
    // finish (wall clock, worker-seconds, stop_when_feasible).
    kStop,
  };
  // Reads the counts it needs itself; `experiment` needs spec and created_at.
  absl::StatusOr<BudgetState> CheckBudget(const v1::Experiment& experiment)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The experiment with worker_seconds filled in.
  absl::StatusOr<v1::Experiment> LoadExperiment(const std::string& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sum of the experiment's candidates' worker_seconds, cached.
  absl::StatusOr<double> WorkerSecondsOf(const std::string& experiment_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the current lease of `stored` (not yet written): adds its time
  // since hand-out to the candidate's worker_seconds; returns that time.
  double EndLease(store::StoredCandidate& stored)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds to the cached sum once the candidate's new total is committed.
  void AddWorkerSeconds(const std::string& experiment_id, double seconds)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The SUCCEEDED candidate whose checkpoint a child of `parent_id` may
  // inherit (the parent itself, or the original it duplicates), or nullopt
  // when there is none to inherit.
  absl::StatusOr<std::optional<std::string>> InheritableParent(
      const std::string& parent_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The workers' latency tables, read from the store on first use and after
  // a rolled-back batch.
  absl::StatusOr<const std::vector<v1::LatencyTable>*> LatencyTablesLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stores `table` (validated) unless its hardware class has an equal one;
  // strategies are rebuilt, since level-0 screening reads the tables. A new
  // hardware class re-estimates the candidates of running experiments.
  absl::Status RecordLatencyTableLocked(const v1::LatencyTable& table)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets every candidate of a running experiment to the latency estimate of
  // the current tables, so that a front compares all its candidates under
  // the same tables.
  absl::Status ReestimateLatenciesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The cheap objectives of `genome` in `experiment`, latency estimated
  // from the workers' tables.
  absl::StatusOr<v1::GenomeCost> CostLocked(const v1::Experiment& experiment,
                                            const v1::Genome& genome)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Candidate `sequence` of `experiment` with `genome` and its cost; not
  // written yet.
  absl::StatusOr<store::StoredCandidate> NewCandidate(
      const v1::Experiment& experiment, int64_t sequence, v1::Genome genome)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records candidate `sequence` as a copy of the finished `original` (see
  // Candidate.duplicate_of).
  absl::Status RecordDuplicate(const v1::Experiment& experiment,
                               int64_t sequence, v1::Genome genome,
                               const store::StoredCandidate& original)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status FinishIfDone(const std::string& experiment_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The search has ended and every search candidate is final: queues the
  // refits (RefitSettings) once, or, when there are none (any more),
  // completes the experiment.
  absl::Status EndSearch(const std::string& experiment_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::optional<store::StoredCandidate>> ProposeCandidate(
      const v1::Experiment& experiment) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues `source`'s genome again at `level`: a promotion (level 2 of
  // multi-fidelity) or a refit. With `continue_training` it continues from
  // `source`'s weights (CONTINUE) when it sent a checkpoint; otherwise it
  // trains from scratch.
  absl::StatusOr<store::StoredCandidate> QueueRerun(
      const v1::Experiment& experiment, const v1::Candidate& source,
      v1::EvaluationLevel level, bool continue_training)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<v1::Lease> GrantLease(store::StoredCandidate& stored,
                                       const std::string& worker_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<v1::Lease> MakeLease(const store::StoredCandidate& stored)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<store::StoredCandidate> HeldLease(const std::string& worker_id,
                                                   const std::string& lease_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a report's file is stored in the database (see
  // ControllerOptions.inline_blob_max_bytes) rather than as a blob file.
  bool StoredInline(absl::string_view bytes) const;
  // Makes the report's files that are not stored inline durable blob files,
  // unless present.
  absl::Status PutReportFiles(const v1::WorkResult& result,
                              const std::string& model,
                              const std::vector<std::string>& artifacts);
  // Writes the report's small files into the open batch.
  absl::Status PutInlineReportFilesLocked(
      const v1::WorkResult& result, const std::string& model,
      const std::vector<std::string>& artifacts)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckArtifacts(const v1::WorkResult& result,
                              const std::vector<std::string>& artifacts,
                              const v1::Genome& genome,
                              const v1::Experiment& experiment)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The images of `experiment`'s data set (empty for tables), cached.
  absl::StatusOr<ImageShape> ImageLocked(const v1::Experiment& experiment)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckMetrics(const v1::WorkResult& result,
                            const std::string& model,
                            const store::StoredCandidate& stored)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Every check of a report (Report's contract); the held lease's candidate.
  absl::StatusOr<store::StoredCandidate> CheckReport(
      const v1::WorkResult& result, const std::string& model,
      const std::vector<std::string>& artifacts)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t NowMs() const;

  const ControllerOptions options_;
  absl::Mutex mu_;
  std::unique_ptr<store::Store> store_ ABSL_GUARDED_BY(mu_);
  const std::unique_ptr<store::BlobStore> blobs_;  // thread-safe itself
  // Strategies are rebuilt from the stored spec after a restart.
  std::map<std::string, std::unique_ptr<search::Strategy>> strategies_
      ABSL_GUARDED_BY(mu_);
  // Experiment.worker_seconds by experiment id, derived from the candidates
  // (which hold the durable numbers) on first use.
  std::map<std::string, double> worker_seconds_ ABSL_GUARDED_BY(mu_);
  // ImageLocked's cache by data set id (a data set never changes).
  std::map<std::string, ImageShape> images_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, SearchState> search_states_ ABSL_GUARDED_BY(mu_);
  std::optional<std::vector<v1::LatencyTable>> latency_tables_
      ABSL_GUARDED_BY(mu_);
  int64_t last_maintenance_ms_ ABSL_GUARDED_BY(mu_) = 0;
  // The open batch, if any; batch_epoch_ numbers batches from 1.
  std::unique_ptr<store::Transaction> batch_ ABSL_GUARDED_BY(mu_);
  int64_t batch_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t finished_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  // Why a batch failed, by epoch (only failed ones; rare).
  std::map<int64_t, absl::Status> failed_batches_ ABSL_GUARDED_BY(mu_);
  absl::CondVar batch_finished_;
  // Observer calls waiting for the open batch to commit (dropped if it
  // fails), so that rolled-back work is never reported.
  std::vector<std::function<void(observability::ControllerObserver&)>>
      pending_events_ ABSL_GUARDED_BY(mu_);
  // Queues `event` for options_.observer, if there is one.
  void NotifyLocked(
      std::function<void(observability::ControllerObserver&)> event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
};

}  // namespace evonas

#endif  // EVONAS_SERVER_CONTROLLER_H_
