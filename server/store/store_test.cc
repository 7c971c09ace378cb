#include "server/store/store.h"

#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace evonas::store {
namespace {

v1::Experiment MakeExperiment(const std::string& id, int64_t created_s) {
  v1::Experiment experiment;
  experiment.set_id(id);
  experiment.set_state(v1::EXPERIMENT_STATE_RUNNING);
  experiment.mutable_created_at()->set_seconds(created_s);
  experiment.mutable_spec()->set_dataset_id("d1");
  return experiment;
}

StoredCandidate MakeCandidate(const std::string& experiment_id, int64_t seq,
                              v1::CandidateState state) {
  StoredCandidate stored;
  stored.candidate.set_id(experiment_id + "-c" + std::to_string(seq));
  stored.candidate.set_experiment_id(experiment_id);
  stored.candidate.set_sequence(seq);
  stored.candidate.set_state(state);
  stored.candidate.mutable_genome()->add_hidden_layers()->set_width(8);
  return stored;
}

constexpr int64_t kNewestSchema = 8;

TEST(StoreTest, MigratesToNewestSchema) {
  auto store = Store::Open(":memory:").value();
  EXPECT_EQ(store->SchemaVersion().value(), kNewestSchema);
}

TEST(StoreTest, LatencyTablesKeepTheLatestPerHardwareClass) {
  std::string path = ::testing::TempDir() + "/latency.db";
  std::filesystem::remove(path);
  v1::LatencyTable a;
  a.set_hardware_class("CPU A x1");
  a.set_calibration_points(60);
  v1::LatencyTable b = a;
  b.set_hardware_class("CPU B x2");
  {
    auto store = Store::Open(path).value();
    EXPECT_TRUE(store->ListLatencyTables().value().empty());
    ASSERT_TRUE(store->PutLatencyTable(a, 1).ok());
    ASSERT_TRUE(store->PutLatencyTable(b, 2).ok());
    a.set_calibration_points(61);  // recalibrated
    ASSERT_TRUE(store->PutLatencyTable(a, 3).ok());
  }
  auto store = Store::Open(path).value();  // survives a restart
  std::vector<v1::LatencyTable> tables = store->ListLatencyTables().value();
  ASSERT_EQ(tables.size(), 2u);
  EXPECT_EQ(tables[0].hardware_class(), "CPU A x1");
  EXPECT_EQ(tables[0].calibration_points(), 61);
  EXPECT_EQ(tables[1].hardware_class(), "CPU B x2");
}

// A database of an older controller (schema v3: tokens without expiry)
// opens, migrates and keeps its rows; its tokens never expire.
TEST(StoreTest, VersionThreeDatabaseKeepsWorking) {
  std::string path = ::testing::TempDir() + "/v3.db";
  std::filesystem::remove(path);
  {
    auto store = Store::Open(path).value();
    ASSERT_TRUE(
        store->InsertToken({"tok-1", "hash-1", "client", "acme", 10, 0, 99})
            .ok());
    ASSERT_TRUE(store->InsertExperiment(MakeExperiment("e1", 1)).ok());
  }
  {
    // Undo every migration after v3, as an older controller left it.
    auto db = Database::Open(path).value();
    ASSERT_TRUE(db->Exec("DROP TABLE latency_tables; "
                         "DROP INDEX candidates_by_experiment; "
                         "DROP INDEX candidates_by_worker; "
                         "DROP TABLE inline_blobs; "
                         "ALTER TABLE tokens DROP COLUMN expires_at_ms; "
                         "UPDATE schema_version SET version = 3")
                    .ok());
  }
  auto store = Store::Open(path).value();
  EXPECT_EQ(store->SchemaVersion().value(), kNewestSchema);
  std::optional<TokenRecord> token = store->FindToken("hash-1").value();
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(token->tenant, "acme");
  EXPECT_EQ(token->expires_at_ms, 0);
  EXPECT_TRUE(store->GetExperiment("e1").ok());
  EXPECT_TRUE(store->IntegrityCheck().ok());
}

// The feasible count of an experiment, asked for by every GetExperiment,
// searches the experiment's own candidates through an index rather than
// every candidate of a state.
TEST(StoreTest, ExperimentCountsUseTheExperimentIndex) {
  std::string path = ::testing::TempDir() + "/plan.db";
  std::filesystem::remove(path);
  Store::Open(path).value();
  auto db = Database::Open(path).value();
  for (const char* query :
       {"SELECT COUNT(*) FROM candidates WHERE experiment_id = 'e' AND "
        "state = 3 AND violation = 0",
        "SELECT state, COUNT(*) FROM candidates WHERE experiment_id = 'e' "
        "GROUP BY state"}) {
    SCOPED_TRACE(query);
    auto plan = db->Prepare(absl::StrCat("EXPLAIN QUERY PLAN ", query));
    ASSERT_TRUE(plan.ok()) << plan.status();
    std::string details;
    while (plan->Step().value()) absl::StrAppend(&details, plan->ColumnText(3));
    EXPECT_NE(details.find("candidates_by_experiment"), std::string::npos)
        << details;
  }
}

TEST(StoreTest, ReopeningKeepsDataAndSchema) {
  std::string path = ::testing::TempDir() + "/reopen.db";
  std::filesystem::remove(path);
  {
    auto store = Store::Open(path).value();
    v1::Dataset dataset;
    dataset.set_id("abc");
    dataset.add_columns("x");
    ASSERT_TRUE(store->InsertDataset(dataset).ok());
  }
  auto store = Store::Open(path).value();
  EXPECT_EQ(store->SchemaVersion().value(), kNewestSchema);
  EXPECT_EQ(store->GetDataset("abc").value().columns(0), "x");
}

TEST(StoreTest, DatasetInsertIsIdempotent) {
  auto store = Store::Open(":memory:").value();
  v1::Dataset dataset;
  dataset.set_id("abc");
  dataset.set_name("first");
  ASSERT_TRUE(store->InsertDataset(dataset).ok());
  dataset.set_name("second");
  ASSERT_TRUE(store->InsertDataset(dataset).ok());
  EXPECT_EQ(store->GetDataset("abc").value().name(), "first");
  EXPECT_EQ(store->ListDatasets().value().size(), 1u);
  EXPECT_EQ(store->GetDataset("nope").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(StoreTest, ExperimentsListNewestFirstWithCounts) {
  auto store = Store::Open(":memory:").value();
  ASSERT_TRUE(store->InsertExperiment(MakeExperiment("e1", 100)).ok());
  ASSERT_TRUE(store->InsertExperiment(MakeExperiment("e2", 200)).ok());
  ASSERT_TRUE(store->InsertCandidate(
      MakeCandidate("e1", 0, v1::CANDIDATE_STATE_QUEUED)).ok());
  StoredCandidate done = MakeCandidate("e1", 1, v1::CANDIDATE_STATE_SUCCEEDED);
  ASSERT_TRUE(store->InsertCandidate(done).ok());
  StoredCandidate infeasible =
      MakeCandidate("e1", 2, v1::CANDIDATE_STATE_SUCCEEDED);
  infeasible.violation = 0.5;
  ASSERT_TRUE(store->InsertCandidate(infeasible).ok());

  auto experiments = store->ListExperiments().value();
  ASSERT_EQ(experiments.size(), 2u);
  EXPECT_EQ(experiments[0].id(), "e2");
  v1::Experiment e1 = store->GetExperiment("e1").value();
  EXPECT_EQ(e1.counts().queued(), 1);
  EXPECT_EQ(e1.counts().succeeded(), 2);
  EXPECT_EQ(e1.feasible_count(), 1);
  EXPECT_EQ(store->CandidateTotal("e1").value(), 3);
}

TEST(StoreTest, DuplicateSequenceIsRejected) {
  auto store = Store::Open(":memory:").value();
  ASSERT_TRUE(store->InsertExperiment(MakeExperiment("e1", 1)).ok());
  ASSERT_TRUE(store->InsertCandidate(
      MakeCandidate("e1", 0, v1::CANDIDATE_STATE_QUEUED)).ok());
  StoredCandidate twin = MakeCandidate("e1", 0, v1::CANDIDATE_STATE_QUEUED);
  twin.candidate.set_id("other");
  EXPECT_FALSE(store->InsertCandidate(twin).ok());
}

TEST(StoreTest, QueueLeaseAndExpiry) {
  auto store = Store::Open(":memory:").value();
  ASSERT_TRUE(store->InsertExperiment(MakeExperiment("e1", 1)).ok());
  v1::Experiment stopped = MakeExperiment("e0", 0);
  stopped.set_state(v1::EXPERIMENT_STATE_CANCELLED);
  ASSERT_TRUE(store->InsertExperiment(stopped).ok());
  ASSERT_TRUE(store->InsertCandidate(
      MakeCandidate("e0", 0, v1::CANDIDATE_STATE_QUEUED)).ok());
  ASSERT_TRUE(store->InsertCandidate(
      MakeCandidate("e1", 0, v1::CANDIDATE_STATE_QUEUED)).ok());
  ASSERT_TRUE(store->InsertCandidate(
      MakeCandidate("e1", 1, v1::CANDIDATE_STATE_QUEUED)).ok());

  // Queued candidates of stopped experiments are never handed out.
  auto next = store->NextQueuedCandidate().value();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->candidate.id(), "e1-c0");

  next->candidate.set_state(v1::CANDIDATE_STATE_RUNNING);
  next->candidate.set_worker_id("w1");
  next->lease_id = "lease-1";
  next->lease_deadline_ms = 1000;
  ASSERT_TRUE(store->UpdateCandidate(*next).ok());

  EXPECT_EQ(store->ActiveLeaseOf("w1").value()->candidate.id(), "e1-c0");
  EXPECT_FALSE(store->ActiveLeaseOf("w2").value().has_value());
  EXPECT_EQ(store->CandidateByLease("lease-1").value()->candidate.id(),
            "e1-c0");
  EXPECT_FALSE(store->CandidateByLease("").value().has_value());
  EXPECT_TRUE(store->ExpiredLeases(999).value().empty());
  EXPECT_EQ(store->ExpiredLeases(1001).value().size(), 1u);
  EXPECT_EQ(store->NextQueuedCandidate().value()->candidate.id(), "e1-c1");
}

TEST(StoreTest, RolledBackTransactionLeavesNoTrace) {
  auto store = Store::Open(":memory:").value();
  {
    auto txn = store->BeginTransaction().value();
    ASSERT_TRUE(store->InsertExperiment(MakeExperiment("e1", 1)).ok());
  }
  EXPECT_EQ(store->GetExperiment("e1").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(StoreTest, ArtifactsByCandidateAndFormat) {
  auto store = Store::Open(":memory:").value();
  ASSERT_TRUE(store->InsertExperiment(MakeExperiment("e1", 1)).ok());
  ASSERT_TRUE(store->InsertCandidate(
      MakeCandidate("e1", 0, v1::CANDIDATE_STATE_SUCCEEDED)).ok());
  ASSERT_TRUE(
      store->InsertArtifact("e1-c0", v1::MODEL_FORMAT_ONNX, "abc", 3).ok());
  EXPECT_EQ(store->ArtifactSha256("e1-c0", v1::MODEL_FORMAT_ONNX).value(),
            "abc");
  absl::StatusOr<std::string> missing =
      store->ArtifactSha256("e1-c0", v1::MODEL_FORMAT_MODEL_CARD);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("MODEL_FORMAT_MODEL_CARD"),
            std::string::npos);
  // Once per format; and only for a candidate that exists.
  EXPECT_FALSE(
      store->InsertArtifact("e1-c0", v1::MODEL_FORMAT_ONNX, "def", 3).ok());
  EXPECT_FALSE(
      store->InsertArtifact("nope", v1::MODEL_FORMAT_ONNX, "abc", 3).ok());
}

TEST(StoreTest, ReferencedBlobsAreDatasetsModelsAndArtifacts) {
  auto store = Store::Open(":memory:").value();
  EXPECT_TRUE(store->ReferencedBlobs().value().empty());
  v1::Dataset dataset;
  dataset.set_id("d1");
  ASSERT_TRUE(store->InsertDataset(dataset).ok());
  ASSERT_TRUE(store->InsertExperiment(MakeExperiment("e1", 1)).ok());
  StoredCandidate done = MakeCandidate("e1", 0, v1::CANDIDATE_STATE_SUCCEEDED);
  done.model_sha256 = "model";
  ASSERT_TRUE(store->InsertCandidate(done).ok());
  // A candidate without a model refers to no blob (not to "").
  ASSERT_TRUE(store->InsertCandidate(
      MakeCandidate("e1", 1, v1::CANDIDATE_STATE_QUEUED)).ok());
  ASSERT_TRUE(
      store->InsertArtifact("e1-c0", v1::MODEL_FORMAT_ONNX, "onnx", 4).ok());
  ASSERT_TRUE(
      store->InsertArtifact("e1-c0", v1::MODEL_FORMAT_CHECKPOINT, "d1", 2).ok());
  EXPECT_EQ(store->ReferencedBlobs().value(),
            (std::set<std::string>{"d1", "model", "onnx"}));
}

TEST(StoreTest, SetExperimentStateRecordsFinish) {
  auto store = Store::Open(":memory:").value();
  ASSERT_TRUE(store->InsertExperiment(MakeExperiment("e1", 1)).ok());
  ASSERT_TRUE(store->SetExperimentState("e1", v1::EXPERIMENT_STATE_COMPLETED,
                                        5000).ok());
  v1::Experiment e1 = store->GetExperiment("e1").value();
  EXPECT_EQ(e1.state(), v1::EXPERIMENT_STATE_COMPLETED);
  EXPECT_EQ(e1.finished_at().seconds(), 5);
  EXPECT_TRUE(store->ListRunningExperimentIds().value().empty());
}

TEST(StoreTest, RowCountsCoverEveryTableAndIntegrityCheckPasses) {
  auto store = Store::Open(":memory:").value();
  ASSERT_TRUE(store->InsertExperiment(MakeExperiment("e1", 1)).ok());
  ASSERT_TRUE(store->InsertCandidate(
                       MakeCandidate("e1", 0, v1::CANDIDATE_STATE_QUEUED))
                  .ok());
  ASSERT_TRUE(store->InsertCandidate(
                       MakeCandidate("e1", 1, v1::CANDIDATE_STATE_QUEUED))
                  .ok());
  const std::map<std::string, int64_t> counts = store->RowCounts().value();
  const std::map<std::string, int64_t> expected = {{"artifacts", 0},
                                                   {"candidates", 2},
                                                   {"dataset_owners", 0},
                                                   {"datasets", 0},
                                                   {"experiment_owners", 0},
                                                   {"experiments", 1},
                                                   {"inline_blobs", 0},
                                                   {"latency_tables", 0},
                                                   {"schema_version", 1},
                                                   {"tokens", 0}};
  EXPECT_EQ(counts, expected);
  EXPECT_TRUE(store->IntegrityCheck().ok());
}

TEST(StoreTest, TokensAreFoundByHashAndRevokedOnce) {
  auto store = Store::Open(":memory:").value();
  TokenRecord token{"tok-1", "hash-1", "client", "acme", 10, 0, 1000};
  ASSERT_TRUE(store->InsertToken(token).ok());
  EXPECT_EQ(store->FindToken("hash-1").value()->expires_at_ms, 1000);
  EXPECT_EQ(store->InsertToken(token).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store->FindToken("hash-1").value()->tenant, "acme");
  EXPECT_FALSE(store->FindToken("hash-2").value().has_value());
  ASSERT_TRUE(store->RevokeToken("tok-1", 20).ok());
  ASSERT_TRUE(store->RevokeToken("tok-1", 30).ok());  // stays at 20
  EXPECT_EQ(store->FindToken("hash-1").value()->revoked_at_ms, 20);
  EXPECT_EQ(store->RevokeToken("tok-9", 20).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store->ListTokens().value().size(), 1u);
}

TEST(StoreTest, InlineBlobsAreContentAddressedAndRolledBackWithTheirRow) {
  auto store = Store::Open(":memory:").value();
  const std::string bytes("model\0with a zero byte", 21);
  ASSERT_TRUE(store->PutInlineBlob("sha-1", bytes).ok());
  ASSERT_TRUE(store->PutInlineBlob("sha-1", bytes).ok());  // no-op
  EXPECT_EQ(store->InlineBlob("sha-1").value(), bytes);
  EXPECT_FALSE(store->InlineBlob("sha-2").value().has_value());
  {
    auto txn = store->BeginTransaction().value();
    ASSERT_TRUE(store->PutInlineBlob("sha-2", "never committed").ok());
  }  // rolled back
  EXPECT_FALSE(store->InlineBlob("sha-2").value().has_value());
  EXPECT_EQ(store->RowCounts().value().at("inline_blobs"), 1);
}

TEST(StoreTest, EachTenantHasItsOwnViewOfASharedDataset) {
  auto store = Store::Open(":memory:").value();
  v1::Dataset dataset;
  dataset.set_id("abc");
  ASSERT_TRUE(store->InsertDataset(dataset).ok());
  ASSERT_TRUE(store->AddDatasetOwner({"acme", "abc", "a.csv", 1}).ok());
  ASSERT_TRUE(store->AddDatasetOwner({"acme", "abc", "again.csv", 5}).ok());
  ASSERT_TRUE(store->AddDatasetOwner({"beta", "abc", "b.csv", 2}).ok());
  EXPECT_EQ(store->FindDatasetOwnership("acme", "abc").value()->name, "a.csv");
  EXPECT_EQ(store->FindDatasetOwnership("beta", "abc").value()->name, "b.csv");
  EXPECT_FALSE(store->FindDatasetOwnership("gamma", "abc").value());
  EXPECT_EQ(store->ListDatasetOwnerships("beta").value().size(), 1u);
  EXPECT_TRUE(store->DatasetExists("abc").value());
  EXPECT_FALSE(store->DatasetExists("abd").value());
}

TEST(StoreTest, ExperimentOwnersAndRunningCounts) {
  auto store = Store::Open(":memory:").value();
  ASSERT_TRUE(store->InsertExperiment(MakeExperiment("e1", 1)).ok());
  ASSERT_TRUE(store->InsertExperiment(MakeExperiment("e2", 2)).ok());
  ASSERT_TRUE(store->InsertCandidate(
                       MakeCandidate("e1", 0, v1::CANDIDATE_STATE_QUEUED))
                  .ok());
  ASSERT_TRUE(store->SetExperimentOwner("e1", "acme").ok());
  ASSERT_TRUE(store->SetExperimentOwner("e2", "acme").ok());
  EXPECT_EQ(store->ExperimentOwner("e1").value(), "acme");
  EXPECT_FALSE(store->ExperimentOwner("e3").value().has_value());
  EXPECT_EQ(store->CountRunningExperiments("acme").value(), 2);
  ASSERT_TRUE(
      store->SetExperimentState("e2", v1::EXPERIMENT_STATE_CANCELLED, 3).ok());
  EXPECT_EQ(store->CountRunningExperiments("acme").value(), 1);
  EXPECT_EQ(store->CountRunningExperiments("beta").value(), 0);
  EXPECT_EQ(store->ExperimentIdsOf("acme").value().size(), 2u);
  EXPECT_EQ(store->ExperimentOfCandidate("e1-c0").value(), "e1");
  EXPECT_FALSE(store->ExperimentOfCandidate("e1-c9").value().has_value());
  EXPECT_EQ(store->GetExperiment("e9").status(), ExperimentNotFound("e9"));
}

TEST(StoreTest, AdoptOwnerlessGivesOnlyUnownedObjects) {
  auto store = Store::Open(":memory:").value();
  for (const char* id : {"d1", "d2"}) {
    v1::Dataset dataset;
    dataset.set_id(id);
    dataset.set_name(std::string(id) + ".csv");
    ASSERT_TRUE(store->InsertDataset(dataset).ok());
  }
  ASSERT_TRUE(store->AddDatasetOwner({"beta", "d2", "mine.csv", 1}).ok());
  ASSERT_TRUE(store->InsertExperiment(MakeExperiment("e1", 1)).ok());
  ASSERT_TRUE(store->InsertExperiment(MakeExperiment("e2", 2)).ok());
  ASSERT_TRUE(store->SetExperimentOwner("e2", "beta").ok());
  EXPECT_EQ(store->AdoptOwnerless("acme").value(), std::make_pair(1L, 1L));
  EXPECT_EQ(store->FindDatasetOwnership("acme", "d1").value()->name, "d1.csv");
  EXPECT_FALSE(store->FindDatasetOwnership("acme", "d2").value());
  EXPECT_EQ(store->ExperimentOwner("e1").value(), "acme");
  EXPECT_EQ(store->ExperimentOwner("e2").value(), "beta");
  EXPECT_EQ(store->AdoptOwnerless("acme").value(), std::make_pair(0L, 0L));
}

}  // namespace
}  // namespace evonas::store
