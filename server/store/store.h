#ifndef EVONAS_SERVER_STORE_STORE_H_
#define EVONAS_SERVER_STORE_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
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

// The NotFound statuses for an id that does not exist. Tenant isolation
// answers with the same ones for another tenant's id, so that the two cannot
// be told apart.
absl::Status DatasetNotFound(absl::string_view id);
absl::Status ExperimentNotFound(absl::string_view id);
absl::Status CandidateNotFound(absl::string_view id);

// A bearer token as stored: never the token itself, only its SHA-256.
struct TokenRecord {
  std::string id;      // public handle for `token list` and `token revoke`
  std::string sha256;  // lower-case hex SHA-256 of the secret token
  std::string kind;    // "client" or "worker"
  std::string tenant;  // the client token's tenant; empty for workers
  int64_t created_at_ms = 0;
  int64_t revoked_at_ms = 0;  // 0 while valid
  int64_t expires_at_ms = 0;  // unix ms from which it is refused; 0: never
};

// One tenant's view of a data set it uploaded: the bytes (and id) are shared
// by every tenant that uploaded them, the name and time are its own.
struct DatasetOwnership {
  std::string tenant;
  std::string dataset_id;
  std::string name;
  int64_t created_at_ms = 0;
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

  // --- Tokens and tenants (schema v3) ---
  // AlreadyExists when the id or the hash is taken.
  absl::Status InsertToken(const TokenRecord& token);
  // Every token, oldest first.
  absl::StatusOr<std::vector<TokenRecord>> ListTokens();
  // The token whose secret hashes to `sha256`, revoked or not.
  absl::StatusOr<std::optional<TokenRecord>> FindToken(
      const std::string& sha256);
  // Marks the token revoked at `now_ms` (a revoked token stays revoked);
  // NotFound for an unknown id.
  absl::Status RevokeToken(const std::string& id, int64_t now_ms);

  // Records that `tenant` uploaded the data set, unless it did before (then
  // its first name and time stay).
  absl::Status AddDatasetOwner(const DatasetOwnership& ownership);
  absl::StatusOr<std::optional<DatasetOwnership>> FindDatasetOwnership(
      const std::string& tenant, const std::string& dataset_id);
  // The tenant's data sets, newest first.
  absl::StatusOr<std::vector<DatasetOwnership>> ListDatasetOwnerships(
      const std::string& tenant);
  // Whether a data set, experiment or candidate with the id exists at all.
  absl::StatusOr<bool> DatasetExists(const std::string& id);
  absl::StatusOr<bool> ExperimentExists(const std::string& id);
  // The experiment of a candidate, or nullopt for an unknown candidate.
  absl::StatusOr<std::optional<std::string>> ExperimentOfCandidate(
      const std::string& candidate_id);

  absl::Status SetExperimentOwner(const std::string& experiment_id,
                                  const std::string& tenant);
  // The owner of an experiment, or nullopt if it has none (unknown, or made
  // by a controller running without authentication).
  absl::StatusOr<std::optional<std::string>> ExperimentOwner(
      const std::string& experiment_id);
  // Ids of the tenant's experiments.
  absl::StatusOr<std::vector<std::string>> ExperimentIdsOf(
      const std::string& tenant);
  // Number of the tenant's experiments in state RUNNING.
  absl::StatusOr<int64_t> CountRunningExperiments(const std::string& tenant);
  // Gives `tenant` every data set and experiment that no tenant owns (made
  // before schema v3 or while authentication was off), in one transaction.
  // Returns how many data sets and experiments it adopted.
  absl::StatusOr<std::pair<int64_t, int64_t>> AdoptOwnerless(
      const std::string& tenant);

  // --- Small files in the database (schema v5) ---
  // Stores `bytes` under their hex SHA-256 `sha256` (the caller's hash)
  // unless that hash is stored already: content-addressed, so the bytes are
  // the same. Call it in the transaction that writes the referring row.
  absl::Status PutInlineBlob(const std::string& sha256,
                             absl::string_view bytes);
  // The bytes stored under `sha256`, or nullopt when they are not in the
  // database (then they may be a BlobStore file).
  absl::StatusOr<std::optional<std::string>> InlineBlob(
      const std::string& sha256);

  // --- Workers' latency tables (schema v8) ---
  // Stores `table` as the one of its hardware class, replacing the older.
  absl::Status PutLatencyTable(const v1::LatencyTable& table,
                               int64_t reported_at_ms);
  // Every stored table, by hardware class.
  absl::StatusOr<std::vector<v1::LatencyTable>> ListLatencyTables();

  // Every blob (BlobStore SHA-256) a row refers to: data set ids, candidate
  // models and artifacts. What is in the blob directory but not here is an
  // orphan (a crash after the blob was written, before its row committed).
  absl::StatusOr<std::set<std::string>> ReferencedBlobs();

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
