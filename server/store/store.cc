#include "server/store/store.h"

#include <array>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace evonas::store {
namespace {

// Each entry migrates from version i to i + 1. Never edit a released entry;
// append a new one.
constexpr std::array<absl::string_view, 8> kMigrations = {
    R"sql(
CREATE TABLE datasets (
  id TEXT PRIMARY KEY,
  created_at_ms INTEGER NOT NULL,
  proto BLOB NOT NULL
);
CREATE TABLE experiments (
  id TEXT PRIMARY KEY,
  created_at_ms INTEGER NOT NULL,
  state INTEGER NOT NULL,
  proto BLOB NOT NULL
);
CREATE TABLE candidates (
  id TEXT PRIMARY KEY,
  experiment_id TEXT NOT NULL REFERENCES experiments(id),
  sequence INTEGER NOT NULL,
  state INTEGER NOT NULL,
  worker_id TEXT NOT NULL DEFAULT '',
  lease_id TEXT NOT NULL DEFAULT '',
  lease_deadline_ms INTEGER NOT NULL DEFAULT 0,
  model_sha256 TEXT NOT NULL DEFAULT '',
  violation REAL NOT NULL DEFAULT 0,
  proto BLOB NOT NULL,
  UNIQUE (experiment_id, sequence)
);
CREATE INDEX candidates_by_state ON candidates(state);
CREATE INDEX candidates_by_lease ON candidates(lease_id);
)sql",
    // Version 2: further files of a trained candidate (ONNX, model card).
    R"sql(
CREATE TABLE artifacts (
  candidate_id TEXT NOT NULL REFERENCES candidates(id),
  format INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  PRIMARY KEY (candidate_id, format)
);
)sql",
    // Version 3: bearer tokens (only their SHA-256) and the tenant that owns
    // each data set and experiment. A data set's bytes are stored once, but
    // every tenant that uploaded them has its own row with its own name and
    // time, so one tenant never sees another's upload.
    R"sql(
CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  sha256 TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL CHECK (kind IN ('client', 'worker')),
  tenant TEXT NOT NULL DEFAULT '',
  created_at_ms INTEGER NOT NULL,
  revoked_at_ms INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE dataset_owners (
  tenant TEXT NOT NULL,
  dataset_id TEXT NOT NULL REFERENCES datasets(id),
  name TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  PRIMARY KEY (tenant, dataset_id)
);
CREATE TABLE experiment_owners (
  experiment_id TEXT PRIMARY KEY REFERENCES experiments(id),
  tenant TEXT NOT NULL
);
CREATE INDEX experiment_owners_by_tenant ON experiment_owners(tenant);
)sql",
    // Version 4: tokens may expire (0: never, as every earlier token).
    R"sql(
ALTER TABLE tokens ADD COLUMN expires_at_ms INTEGER NOT NULL DEFAULT 0;
)sql",
    // Version 5: small files (models, checkpoints, artifacts) in the database
    // itself, addressed by SHA-256 like the blob files, and written in the
    // transaction of the row that refers to them. Files written before stay
    // files; readers look here first.
    R"sql(
CREATE TABLE inline_blobs (
  sha256 TEXT PRIMARY KEY,
  bytes BLOB NOT NULL
);
)sql",
    // Version 6: every LeaseWork first looks for the worker's active lease
    // (ActiveLeaseOf); without this index that read every RUNNING candidate,
    // one per busy worker.
    R"sql(
CREATE INDEX candidates_by_worker ON candidates(worker_id, state);
)sql",
    // Version 7: an experiment's counts by state (every GetExperiment and
    // ListExperiments) read only its own candidates; with the index on state
    // alone they read every succeeded candidate of every experiment.
    R"sql(
CREATE INDEX candidates_by_experiment ON candidates(experiment_id, state);
)sql",
    // Version 8: the workers' latency tables, the latest per hardware class,
    // so that cost estimates survive a controller restart.
    R"sql(
CREATE TABLE latency_tables (
  hardware_class TEXT PRIMARY KEY,
  reported_at_ms INTEGER NOT NULL,
  proto BLOB NOT NULL
);
)sql",
};

constexpr absl::string_view kCandidateColumns =
    "lease_id, lease_deadline_ms, model_sha256, violation, proto";

template <typename Message>
absl::StatusOr<Message> ParseProto(const std::string& bytes,
                                   absl::string_view what) {
  Message message;
  if (!message.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat("corrupt ", what, " row"));
  }
  return message;
}

absl::StatusOr<StoredCandidate> ReadCandidate(const Statement& stmt) {
  StoredCandidate stored;
  stored.lease_id = stmt.ColumnText(0);
  stored.lease_deadline_ms = stmt.ColumnInt(1);
  stored.model_sha256 = stmt.ColumnText(2);
  stored.violation = stmt.ColumnDouble(3);
  EVONAS_ASSIGN_OR_RETURN(stored.candidate,
                          ParseProto<v1::Candidate>(stmt.ColumnBlob(4),
                                                    "candidate"));
  return stored;
}

}  // namespace

absl::Status DatasetNotFound(absl::string_view id) {
  return absl::NotFoundError(absl::StrCat("no data set ", id));
}
absl::Status ExperimentNotFound(absl::string_view id) {
  return absl::NotFoundError(absl::StrCat("no experiment ", id));
}
absl::Status CandidateNotFound(absl::string_view id) {
  return absl::NotFoundError(absl::StrCat("no candidate ", id));
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  EVONAS_ASSIGN_OR_RETURN(auto db, Database::Open(path));
  std::unique_ptr<Store> store(new Store(std::move(db)));
  EVONAS_RETURN_IF_ERROR(store->Migrate());
  return store;
}

absl::Status Store::Migrate() {
  EVONAS_RETURN_IF_ERROR(db_->Exec(
      "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
  EVONAS_ASSIGN_OR_RETURN(int64_t version, SchemaVersion());
  if (version > static_cast<int64_t>(kMigrations.size())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database schema version ", version, " is newer than this controller (",
        kMigrations.size(), "); upgrade evonas-controller"));
  }
  for (size_t v = static_cast<size_t>(version); v < kMigrations.size(); ++v) {
    EVONAS_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(db_.get()));
    EVONAS_RETURN_IF_ERROR(db_->Exec(kMigrations[v]));
    EVONAS_RETURN_IF_ERROR(db_->Exec("DELETE FROM schema_version"));
    EVONAS_ASSIGN_OR_RETURN(
        Statement stmt,
        db_->Prepare("INSERT INTO schema_version (version) VALUES (?)"));
    EVONAS_RETURN_IF_ERROR(stmt.Bind(1, static_cast<int64_t>(v + 1)).Run());
    EVONAS_RETURN_IF_ERROR(txn->Commit());
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Store::SchemaVersion() {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt, db_->Prepare("SELECT MAX(version) FROM schema_version"));
  EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row || stmt.ColumnIsNull(0)) return 0;
  return stmt.ColumnInt(0);
}

absl::StatusOr<std::unique_ptr<Transaction>> Store::BeginTransaction() {
  return Transaction::Begin(db_.get());
}

absl::Status Store::InsertDataset(const v1::Dataset& dataset) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("INSERT OR IGNORE INTO datasets (id, created_at_ms, proto) "
                   "VALUES (?, ?, ?)"));
  int64_t created_ms = dataset.created_at().seconds() * 1000 +
                       dataset.created_at().nanos() / 1000000;
  return stmt.Bind(1, dataset.id())
      .Bind(2, created_ms)
      .BindBlob(3, dataset.SerializeAsString())
      .Run();
}

absl::StatusOr<v1::Dataset> Store::GetDataset(const std::string& id) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt, db_->Prepare("SELECT proto FROM datasets WHERE id = ?"));
  stmt.Bind(1, id);
  EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return DatasetNotFound(id);
  return ParseProto<v1::Dataset>(stmt.ColumnBlob(0), "data set");
}

absl::StatusOr<std::vector<v1::Dataset>> Store::ListDatasets() {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT proto FROM datasets ORDER BY created_at_ms DESC, id"));
  std::vector<v1::Dataset> datasets;
  while (true) {
    EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    EVONAS_ASSIGN_OR_RETURN(
        datasets.emplace_back(),
        ParseProto<v1::Dataset>(stmt.ColumnBlob(0), "data set"));
  }
  return datasets;
}

absl::Status Store::InsertExperiment(const v1::Experiment& experiment) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("INSERT INTO experiments (id, created_at_ms, state, proto) "
                   "VALUES (?, ?, ?, ?)"));
  v1::Experiment stored = experiment;
  stored.clear_counts();
  int64_t created_ms = experiment.created_at().seconds() * 1000 +
                       experiment.created_at().nanos() / 1000000;
  return stmt.Bind(1, experiment.id())
      .Bind(2, created_ms)
      .Bind(3, static_cast<int64_t>(experiment.state()))
      .BindBlob(4, stored.SerializeAsString())
      .Run();
}

absl::StatusOr<v1::Experiment> Store::FillCounts(v1::Experiment experiment) {
  EVONAS_ASSIGN_OR_RETURN(*experiment.mutable_counts(),
                          CountCandidates(experiment.id()));
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT COUNT(*) FROM candidates WHERE experiment_id = ? "
                   "AND state = ? AND violation = 0"));
  stmt.Bind(1, experiment.id())
      .Bind(2, static_cast<int64_t>(v1::CANDIDATE_STATE_SUCCEEDED));
  EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
  experiment.set_feasible_count(row ? stmt.ColumnInt(0) : 0);
  return experiment;
}

absl::StatusOr<v1::Experiment> Store::GetExperiment(const std::string& id) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT proto FROM experiments WHERE id = ?"));
  stmt.Bind(1, id);
  EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return ExperimentNotFound(id);
  EVONAS_ASSIGN_OR_RETURN(
      v1::Experiment experiment,
      ParseProto<v1::Experiment>(stmt.ColumnBlob(0), "experiment"));
  return FillCounts(std::move(experiment));
}

absl::StatusOr<std::vector<v1::Experiment>> Store::ListExperiments() {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(
          "SELECT proto FROM experiments ORDER BY created_at_ms DESC, id"));
  std::vector<v1::Experiment> experiments;
  while (true) {
    EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    EVONAS_ASSIGN_OR_RETURN(
        v1::Experiment experiment,
        ParseProto<v1::Experiment>(stmt.ColumnBlob(0), "experiment"));
    EVONAS_ASSIGN_OR_RETURN(experiments.emplace_back(),
                            FillCounts(std::move(experiment)));
  }
  return experiments;
}

absl::StatusOr<std::vector<std::string>> Store::ListRunningExperimentIds() {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT id FROM experiments WHERE state = ? "
                   "ORDER BY created_at_ms, id"));
  stmt.Bind(1, static_cast<int64_t>(v1::EXPERIMENT_STATE_RUNNING));
  std::vector<std::string> ids;
  while (true) {
    EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    ids.push_back(stmt.ColumnText(0));
  }
  return ids;
}

absl::Status Store::SetExperimentState(const std::string& id,
                                       v1::ExperimentState state,
                                       int64_t finished_at_ms) {
  EVONAS_ASSIGN_OR_RETURN(v1::Experiment experiment, GetExperiment(id));
  experiment.clear_counts();
  experiment.clear_feasible_count();
  experiment.set_state(state);
  if (finished_at_ms > 0) {
    experiment.mutable_finished_at()->set_seconds(finished_at_ms / 1000);
    experiment.mutable_finished_at()->set_nanos(
        static_cast<int32_t>(finished_at_ms % 1000) * 1000000);
  }
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("UPDATE experiments SET state = ?, proto = ? WHERE id = ?"));
  return stmt.Bind(1, static_cast<int64_t>(state))
      .BindBlob(2, experiment.SerializeAsString())
      .Bind(3, id)
      .Run();
}

absl::Status Store::InsertCandidate(const StoredCandidate& stored) {
  const v1::Candidate& c = stored.candidate;
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(absl::StrCat(
          "INSERT INTO candidates (id, experiment_id, sequence, state, "
          "worker_id, ",
          kCandidateColumns, ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")));
  return stmt.Bind(1, c.id())
      .Bind(2, c.experiment_id())
      .Bind(3, c.sequence())
      .Bind(4, static_cast<int64_t>(c.state()))
      .Bind(5, c.worker_id())
      .Bind(6, stored.lease_id)
      .Bind(7, stored.lease_deadline_ms)
      .Bind(8, stored.model_sha256)
      .Bind(9, stored.violation)
      .BindBlob(10, c.SerializeAsString())
      .Run();
}

absl::Status Store::UpdateCandidate(const StoredCandidate& stored) {
  const v1::Candidate& c = stored.candidate;
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("UPDATE candidates SET state = ?, worker_id = ?, "
                   "lease_id = ?, lease_deadline_ms = ?, model_sha256 = ?, "
                   "violation = ?, proto = ? WHERE id = ?"));
  EVONAS_RETURN_IF_ERROR(stmt.Bind(1, static_cast<int64_t>(c.state()))
                             .Bind(2, c.worker_id())
                             .Bind(3, stored.lease_id)
                             .Bind(4, stored.lease_deadline_ms)
                             .Bind(5, stored.model_sha256)
                             .Bind(6, stored.violation)
                             .BindBlob(7, c.SerializeAsString())
                             .Bind(8, c.id())
                             .Run());
  if (db_->Changes() != 1) {
    return absl::NotFoundError(absl::StrCat("no candidate ", c.id()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredCandidate>> Store::QueryCandidates(
    absl::string_view where, const std::string& arg) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt, db_->Prepare(absl::StrCat("SELECT ", kCandidateColumns,
                                                " FROM candidates WHERE ",
                                                where)));
  if (!arg.empty()) stmt.Bind(1, arg);
  std::vector<StoredCandidate> candidates;
  while (true) {
    EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    EVONAS_ASSIGN_OR_RETURN(candidates.emplace_back(), ReadCandidate(stmt));
  }
  return candidates;
}

absl::StatusOr<std::optional<StoredCandidate>> Store::QueryOneCandidate(
    absl::string_view where, const std::string& arg) {
  EVONAS_ASSIGN_OR_RETURN(auto candidates,
                          QueryCandidates(absl::StrCat(where, " LIMIT 1"), arg));
  if (candidates.empty()) return std::nullopt;
  return std::move(candidates.front());
}

absl::StatusOr<StoredCandidate> Store::GetCandidate(const std::string& id) {
  EVONAS_ASSIGN_OR_RETURN(auto found, QueryOneCandidate("id = ?", id));
  if (!found) return CandidateNotFound(id);
  return std::move(*found);
}

absl::StatusOr<std::vector<StoredCandidate>> Store::ListCandidates(
    const std::string& experiment_id) {
  return QueryCandidates("experiment_id = ? ORDER BY sequence", experiment_id);
}

absl::StatusOr<v1::CandidateCounts> Store::CountCandidates(
    const std::string& experiment_id) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT state, COUNT(*) FROM candidates "
                   "WHERE experiment_id = ? GROUP BY state"));
  stmt.Bind(1, experiment_id);
  v1::CandidateCounts counts;
  while (true) {
    EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    int64_t n = stmt.ColumnInt(1);
    switch (static_cast<v1::CandidateState>(stmt.ColumnInt(0))) {
      case v1::CANDIDATE_STATE_QUEUED: counts.set_queued(n); break;
      case v1::CANDIDATE_STATE_RUNNING: counts.set_running(n); break;
      case v1::CANDIDATE_STATE_SUCCEEDED: counts.set_succeeded(n); break;
      case v1::CANDIDATE_STATE_FAILED: counts.set_failed(n); break;
      case v1::CANDIDATE_STATE_CANCELLED: counts.set_cancelled(n); break;
      default: break;
    }
  }
  return counts;
}

absl::StatusOr<int64_t> Store::CandidateTotal(const std::string& experiment_id) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT COUNT(*) FROM candidates WHERE experiment_id = ?"));
  stmt.Bind(1, experiment_id);
  EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
  return row ? stmt.ColumnInt(0) : 0;
}

absl::StatusOr<std::optional<StoredCandidate>> Store::NextQueuedCandidate() {
  return QueryOneCandidate(
      absl::StrCat("state = ", v1::CANDIDATE_STATE_QUEUED,
                   " AND experiment_id IN (SELECT id FROM experiments WHERE "
                   "state = ",
                   v1::EXPERIMENT_STATE_RUNNING,
                   ") ORDER BY rowid"),
      "");
}

absl::StatusOr<std::optional<StoredCandidate>> Store::ActiveLeaseOf(
    const std::string& worker_id) {
  return QueryOneCandidate(
      absl::StrCat("worker_id = ? AND state = ", v1::CANDIDATE_STATE_RUNNING),
      worker_id);
}

absl::StatusOr<std::optional<StoredCandidate>> Store::CandidateByLease(
    const std::string& lease_id) {
  if (lease_id.empty()) return std::nullopt;
  return QueryOneCandidate("lease_id = ?", lease_id);
}

absl::StatusOr<std::vector<StoredCandidate>> Store::ExpiredLeases(
    int64_t now_ms) {
  return QueryCandidates(absl::StrCat("state = ", v1::CANDIDATE_STATE_RUNNING,
                                      " AND lease_deadline_ms < ",
                                      now_ms),
                         "");
}

absl::Status Store::InsertArtifact(const std::string& candidate_id,
                                   v1::ModelFormat format,
                                   const std::string& sha256,
                                   int64_t size_bytes) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("INSERT INTO artifacts (candidate_id, format, sha256, "
                   "size_bytes) VALUES (?, ?, ?, ?)"));
  return stmt.Bind(1, candidate_id)
      .Bind(2, static_cast<int64_t>(format))
      .Bind(3, sha256)
      .Bind(4, size_bytes)
      .Run();
}

absl::StatusOr<std::string> Store::ArtifactSha256(
    const std::string& candidate_id, v1::ModelFormat format) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT sha256 FROM artifacts WHERE candidate_id = ? AND "
                   "format = ?"));
  stmt.Bind(1, candidate_id).Bind(2, static_cast<int64_t>(format));
  EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat(
        "candidate ", candidate_id, " has no ", v1::ModelFormat_Name(format),
        " file: the worker that trained it did not produce one"));
  }
  return stmt.ColumnText(0);
}

namespace {

TokenRecord ReadToken(const Statement& stmt) {
  TokenRecord token;
  token.id = stmt.ColumnText(0);
  token.sha256 = stmt.ColumnText(1);
  token.kind = stmt.ColumnText(2);
  token.tenant = stmt.ColumnText(3);
  token.created_at_ms = stmt.ColumnInt(4);
  token.revoked_at_ms = stmt.ColumnInt(5);
  token.expires_at_ms = stmt.ColumnInt(6);
  return token;
}

constexpr absl::string_view kTokenColumns =
    "id, sha256, kind, tenant, created_at_ms, revoked_at_ms, expires_at_ms";

DatasetOwnership ReadOwnership(const Statement& stmt) {
  DatasetOwnership ownership;
  ownership.tenant = stmt.ColumnText(0);
  ownership.dataset_id = stmt.ColumnText(1);
  ownership.name = stmt.ColumnText(2);
  ownership.created_at_ms = stmt.ColumnInt(3);
  return ownership;
}

}  // namespace

absl::Status Store::InsertToken(const TokenRecord& token) {
  {
    EVONAS_ASSIGN_OR_RETURN(
        Statement stmt,
        db_->Prepare("SELECT COUNT(*) FROM tokens WHERE id = ? OR sha256 = ?"));
    stmt.Bind(1, token.id).Bind(2, token.sha256);
    EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (row && stmt.ColumnInt(0) > 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("token ", token.id, " or its secret exists already"));
    }
  }
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(absl::StrCat("INSERT INTO tokens (", kTokenColumns,
                                ") VALUES (?, ?, ?, ?, ?, ?, ?)")));
  return stmt.Bind(1, token.id)
      .Bind(2, token.sha256)
      .Bind(3, token.kind)
      .Bind(4, token.tenant)
      .Bind(5, token.created_at_ms)
      .Bind(6, token.revoked_at_ms)
      .Bind(7, token.expires_at_ms)
      .Run();
}

absl::StatusOr<std::vector<TokenRecord>> Store::ListTokens() {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(absl::StrCat("SELECT ", kTokenColumns,
                                " FROM tokens ORDER BY created_at_ms, id")));
  std::vector<TokenRecord> tokens;
  while (true) {
    EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    tokens.push_back(ReadToken(stmt));
  }
  return tokens;
}

absl::StatusOr<std::optional<TokenRecord>> Store::FindToken(
    const std::string& sha256) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(absl::StrCat("SELECT ", kTokenColumns,
                                " FROM tokens WHERE sha256 = ?")));
  stmt.Bind(1, sha256);
  EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return std::nullopt;
  return ReadToken(stmt);
}

absl::Status Store::RevokeToken(const std::string& id, int64_t now_ms) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("UPDATE tokens SET revoked_at_ms = ? WHERE id = ? AND "
                   "revoked_at_ms = 0"));
  EVONAS_RETURN_IF_ERROR(stmt.Bind(1, now_ms).Bind(2, id).Run());
  if (db_->Changes() == 1) return absl::OkStatus();
  EVONAS_ASSIGN_OR_RETURN(
      Statement exists, db_->Prepare("SELECT 1 FROM tokens WHERE id = ?"));
  exists.Bind(1, id);
  EVONAS_ASSIGN_OR_RETURN(bool row, exists.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat(
        "no token ", id, "; `evonas-controller token list` shows the ids"));
  }
  return absl::OkStatus();  // revoked before
}

absl::Status Store::AddDatasetOwner(const DatasetOwnership& ownership) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("INSERT OR IGNORE INTO dataset_owners (tenant, dataset_id, "
                   "name, created_at_ms) VALUES (?, ?, ?, ?)"));
  return stmt.Bind(1, ownership.tenant)
      .Bind(2, ownership.dataset_id)
      .Bind(3, ownership.name)
      .Bind(4, ownership.created_at_ms)
      .Run();
}

absl::StatusOr<std::optional<DatasetOwnership>> Store::FindDatasetOwnership(
    const std::string& tenant, const std::string& dataset_id) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT tenant, dataset_id, name, created_at_ms FROM "
                   "dataset_owners WHERE tenant = ? AND dataset_id = ?"));
  stmt.Bind(1, tenant).Bind(2, dataset_id);
  EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return std::nullopt;
  return ReadOwnership(stmt);
}

absl::StatusOr<std::vector<DatasetOwnership>> Store::ListDatasetOwnerships(
    const std::string& tenant) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT tenant, dataset_id, name, created_at_ms FROM "
                   "dataset_owners WHERE tenant = ? "
                   "ORDER BY created_at_ms DESC, dataset_id"));
  stmt.Bind(1, tenant);
  std::vector<DatasetOwnership> ownerships;
  while (true) {
    EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    ownerships.push_back(ReadOwnership(stmt));
  }
  return ownerships;
}

namespace {

absl::StatusOr<bool> RowExists(Database* db, absl::string_view sql,
                               const std::string& arg) {
  EVONAS_ASSIGN_OR_RETURN(Statement stmt, db->Prepare(sql));
  stmt.Bind(1, arg);
  return stmt.Step();
}

}  // namespace

absl::StatusOr<bool> Store::DatasetExists(const std::string& id) {
  return RowExists(db_.get(), "SELECT 1 FROM datasets WHERE id = ?", id);
}

absl::StatusOr<bool> Store::ExperimentExists(const std::string& id) {
  return RowExists(db_.get(), "SELECT 1 FROM experiments WHERE id = ?", id);
}

absl::StatusOr<std::optional<std::string>> Store::ExperimentOfCandidate(
    const std::string& candidate_id) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT experiment_id FROM candidates WHERE id = ?"));
  stmt.Bind(1, candidate_id);
  EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return std::nullopt;
  return stmt.ColumnText(0);
}

absl::Status Store::SetExperimentOwner(const std::string& experiment_id,
                                       const std::string& tenant) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("INSERT OR REPLACE INTO experiment_owners (experiment_id, "
                   "tenant) VALUES (?, ?)"));
  return stmt.Bind(1, experiment_id).Bind(2, tenant).Run();
}

absl::StatusOr<std::optional<std::string>> Store::ExperimentOwner(
    const std::string& experiment_id) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(
          "SELECT tenant FROM experiment_owners WHERE experiment_id = ?"));
  stmt.Bind(1, experiment_id);
  EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return std::nullopt;
  return stmt.ColumnText(0);
}

absl::StatusOr<std::vector<std::string>> Store::ExperimentIdsOf(
    const std::string& tenant) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(
          "SELECT experiment_id FROM experiment_owners WHERE tenant = ?"));
  stmt.Bind(1, tenant);
  std::vector<std::string> ids;
  while (true) {
    EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    ids.push_back(stmt.ColumnText(0));
  }
  return ids;
}

absl::StatusOr<int64_t> Store::CountRunningExperiments(
    const std::string& tenant) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT COUNT(*) FROM experiment_owners o JOIN experiments "
                   "e ON e.id = o.experiment_id WHERE o.tenant = ? AND "
                   "e.state = ?"));
  stmt.Bind(1, tenant).Bind(2,
                            static_cast<int64_t>(v1::EXPERIMENT_STATE_RUNNING));
  EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
  return row ? stmt.ColumnInt(0) : 0;
}

absl::StatusOr<std::pair<int64_t, int64_t>> Store::AdoptOwnerless(
    const std::string& tenant) {
  EVONAS_ASSIGN_OR_RETURN(auto txn, BeginTransaction());
  EVONAS_ASSIGN_OR_RETURN(
      Statement datasets,
      db_->Prepare("SELECT created_at_ms, proto FROM datasets WHERE id NOT IN "
                   "(SELECT dataset_id FROM dataset_owners)"));
  std::vector<DatasetOwnership> adopted;
  while (true) {
    EVONAS_ASSIGN_OR_RETURN(bool row, datasets.Step());
    if (!row) break;
    EVONAS_ASSIGN_OR_RETURN(
        v1::Dataset dataset,
        ParseProto<v1::Dataset>(datasets.ColumnBlob(1), "data set"));
    adopted.push_back(
        {tenant, dataset.id(), dataset.name(), datasets.ColumnInt(0)});
  }
  for (const DatasetOwnership& ownership : adopted) {
    EVONAS_RETURN_IF_ERROR(AddDatasetOwner(ownership));
  }
  EVONAS_ASSIGN_OR_RETURN(
      Statement experiments,
      db_->Prepare("INSERT INTO experiment_owners (experiment_id, tenant) "
                   "SELECT id, ? FROM experiments WHERE id NOT IN "
                   "(SELECT experiment_id FROM experiment_owners)"));
  EVONAS_RETURN_IF_ERROR(experiments.Bind(1, tenant).Run());
  const int64_t adopted_experiments = db_->Changes();
  EVONAS_RETURN_IF_ERROR(txn->Commit());
  return std::make_pair(static_cast<int64_t>(adopted.size()),
                        adopted_experiments);
}

absl::Status Store::PutInlineBlob(const std::string& sha256,
                                  absl::string_view bytes) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(
          "INSERT OR IGNORE INTO inline_blobs (sha256, bytes) VALUES (?, ?)"));
  return stmt.Bind(1, sha256).BindBlob(2, bytes).Run();
}

absl::StatusOr<std::optional<std::string>> Store::InlineBlob(
    const std::string& sha256) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT bytes FROM inline_blobs WHERE sha256 = ?"));
  stmt.Bind(1, sha256);
  EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return std::nullopt;
  return stmt.ColumnBlob(0);
}

absl::Status Store::PutLatencyTable(const v1::LatencyTable& table,
                                    int64_t reported_at_ms) {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("INSERT OR REPLACE INTO latency_tables "
                   "(hardware_class, reported_at_ms, proto) VALUES (?, ?, ?)"));
  return stmt.Bind(1, table.hardware_class())
      .Bind(2, reported_at_ms)
      .BindBlob(3, table.SerializeAsString())
      .Run();
}

absl::StatusOr<std::vector<v1::LatencyTable>> Store::ListLatencyTables() {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare(
          "SELECT proto FROM latency_tables ORDER BY hardware_class"));
  std::vector<v1::LatencyTable> tables;
  while (true) {
    EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    EVONAS_ASSIGN_OR_RETURN(
        tables.emplace_back(),
        ParseProto<v1::LatencyTable>(stmt.ColumnBlob(0), "latency table"));
  }
  return tables;
}

absl::StatusOr<std::set<std::string>> Store::ReferencedBlobs() {
  EVONAS_ASSIGN_OR_RETURN(
      Statement stmt,
      db_->Prepare("SELECT id FROM datasets "
                   "UNION SELECT model_sha256 FROM candidates "
                   "WHERE model_sha256 != '' "
                   "UNION SELECT sha256 FROM artifacts"));
  std::set<std::string> blobs;
  while (true) {
    EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    blobs.insert(stmt.ColumnText(0));
  }
  return blobs;
}

absl::StatusOr<std::map<std::string, int64_t>> Store::RowCounts() {
  std::vector<std::string> tables;
  {
    EVONAS_ASSIGN_OR_RETURN(
        Statement stmt,
        db_->Prepare("SELECT name FROM sqlite_schema WHERE type = 'table' "
                     "AND name NOT LIKE 'sqlite_%' ORDER BY name"));
    while (true) {
      EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      tables.push_back(stmt.ColumnText(0));
    }
  }
  std::map<std::string, int64_t> counts;
  for (const std::string& table : tables) {
    // Table names come from sqlite_schema, not from a caller; quoted anyway.
    EVONAS_ASSIGN_OR_RETURN(
        Statement stmt,
        db_->Prepare(absl::StrCat("SELECT COUNT(*) FROM \"", table, "\"")));
    EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
    counts[table] = row ? stmt.ColumnInt(0) : 0;
  }
  return counts;
}

absl::Status Store::IntegrityCheck() {
  EVONAS_ASSIGN_OR_RETURN(Statement stmt,
                          db_->Prepare("PRAGMA integrity_check(20)"));
  std::vector<std::string> findings;
  while (true) {
    EVONAS_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    findings.push_back(stmt.ColumnText(0));
  }
  if (findings.size() == 1 && findings[0] == "ok") return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("database integrity check failed: ",
                                          absl::StrJoin(findings, "; ")));
}

}  // namespace evonas::store
