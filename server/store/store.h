#ifndef EVONAS_SERVER_STORE_STORE_H_
#define EVONAS_SERVER_STORE_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "evonas/v1/types.pb.h"
#include "server/store/sqlite.h"

namespace evonas::store {

// A candidate with the controller-private fields the API does not show.
struct StoredCandidate {
  v1::Candidate candidate;
  std::string lease_id;            // empty unless RUNNING
  int64_t lease_deadline_ms = 0;   // unix ms; meaningful when RUNNING
  std::string model_sha256;        // blob of the trained model, if SUCCEEDED
  double violation = 0;            // total requirement violation (see Assess)
};

// Experiments, data sets and candidates in one SQLite database. Every
// method is one statement or one transaction, so a crash leaves the database
// at a committed state. Not thread-safe: the controller serialises calls.
class Store {
 public:
  // Opens `path` (":memory:" for tests) and migrates the schema to the
  // newest version.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);

  // Schema version after migration.
  absl::StatusOr<int64_t> SchemaVersion();

  // Starts a transaction that groups several calls; see Transaction.
  absl::StatusOr<std::unique_ptr<Transaction>> BeginTransaction();

  // Inserts the data set unless one with the same id exists (then no-op).
  absl::Status InsertDataset(const v1::Dataset& dataset);
  absl::StatusOr<v1::Dataset> GetDataset(const std::string& id);
  absl::StatusOr<std::vector<v1::Dataset>> ListDatasets();

  // Inserts a new experiment (id, spec, state, created_at are stored; counts
  // are derived on read).
  absl::Status InsertExperiment(const v1::Experiment& experiment);
  // Returns the experiment with counts filled, or NotFound.
  absl::StatusOr<v1::Experiment> GetExperiment(const std::string& id);
  absl::StatusOr<std::vector<v1::Experiment>> ListExperiments();
  absl::StatusOr<std::vector<std::string>> ListRunningExperimentIds();
  absl::Status SetExperimentState(const std::string& id,
                                  v1::ExperimentState state,
                                  int64_t finished_at_ms);

  absl::Status InsertCandidate(const StoredCandidate& candidate);
  // Rewrites every field of an existing candidate.
  absl::Status UpdateCandidate(const StoredCandidate& candidate);
  absl::StatusOr<StoredCandidate> GetCandidate(const std::string& id);
  // All candidates of an experiment, by sequence.
  absl::StatusOr<std::vector<StoredCandidate>> ListCandidates(
      const std::string& experiment_id);
  absl::StatusOr<v1::CandidateCounts> CountCandidates(
      const std::string& experiment_id);
  // Number of candidates ever proposed for the experiment.
  absl::StatusOr<int64_t> CandidateTotal(const std::string& experiment_id);

  // The queued candidate of a running experiment that waited longest.
  absl::StatusOr<std::optional<StoredCandidate>> NextQueuedCandidate();
  // The RUNNING candidate leased to `worker_id`, if any.
  absl::StatusOr<std::optional<StoredCandidate>> ActiveLeaseOf(
      const std::string& worker_id);
  absl::StatusOr<std::optional<StoredCandidate>> CandidateByLease(
      const std::string& lease_id);
  // RUNNING candidates whose lease deadline is before `now_ms`.
  absl::StatusOr<std::vector<StoredCandidate>> ExpiredLeases(int64_t now_ms);

  // Records a further file (blob `sha256`) of a succeeded candidate; each
  // format at most once per candidate.
  absl::Status InsertArtifact(const std::string& candidate_id,
                              v1::ModelFormat format,
                              const std::string& sha256, int64_t size_bytes);
  // The blob of a candidate's file in `format`, or NotFound.
  absl::StatusOr<std::string> ArtifactSha256(const std::string& candidate_id,
                                             v1::ModelFormat format);

  // Number of rows in every table of the schema (schema_version included),
  // by table name; for health checks and tests that prove nothing changed.
  absl::StatusOr<std::map<std::string, int64_t>> RowCounts();
  // Runs `PRAGMA integrity_check`: OK when SQLite answers "ok", otherwise
  // DataLoss quoting (the first few of) its findings.
  absl::Status IntegrityCheck();

 private:
  explicit Store(std::unique_ptr<Database> db) : db_(std::move(db)) {}
  absl::Status Migrate();
  absl::StatusOr<std::vector<StoredCandidate>> QueryCandidates(
      absl::string_view where, const std::string& arg);
  absl::StatusOr<std::optional<StoredCandidate>> QueryOneCandidate(
      absl::string_view where, const std::string& arg);
  absl::StatusOr<v1::Experiment> FillCounts(v1::Experiment experiment);

  std::unique_ptr<Database> db_;
};

}  // namespace evonas::store

#endif  // EVONAS_SERVER_STORE_STORE_H_
