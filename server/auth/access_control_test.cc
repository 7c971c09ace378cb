#include "server/auth/access_control.h"

#include <filesystem>
#include <limits>

#include "gtest/gtest.h"
#include "server/auth/tokens.h"

namespace evonas::auth {
namespace {

using Metadata = std::multimap<grpc::string_ref, grpc::string_ref>;

std::unique_ptr<store::Store> Store() {
  return store::Store::Open(":memory:").value();
}

class AccessControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One database per test: ctest runs tests in parallel processes.
    const std::string path =
        ::testing::TempDir() + "/access_control-" +
        ::testing::UnitTest::GetInstance()->current_test_info()->name() +
        ".db";
    std::filesystem::remove(path);
    store_ = store::Store::Open(path).value();
    AccessOptions options;
    options.max_running_experiments = 1;
    access_ = AccessControl::Open(path, options).value();
    acme_ = CreateToken(*store_, kClientKind, "acme", 1).value();
    beta_ = CreateToken(*store_, kClientKind, "beta", 1).value();
    worker_ = CreateToken(*store_, kWorkerKind, "", 1).value();
  }

  absl::StatusOr<Principal> Call(const std::string& header,
                                 absl::string_view kind) {
    Metadata metadata;
    if (!header.empty()) metadata.emplace("authorization", header);
    return access_->Authenticate(metadata, kind);
  }

  std::unique_ptr<store::Store> store_;
  std::unique_ptr<AccessControl> access_;
  IssuedToken acme_, beta_, worker_;
};

TEST_F(AccessControlTest, StoresOnlyTheHash) {
  for (const store::TokenRecord& t : store_->ListTokens().value()) {
    EXPECT_NE(t.sha256, acme_.secret);
    EXPECT_EQ(t.sha256.size(), 64u);
  }
  EXPECT_EQ(acme_.record.sha256, HashSecret(acme_.secret));
  EXPECT_EQ(acme_.secret.substr(0, 7), "evonas_");
}

TEST_F(AccessControlTest, AuthenticatesByKind) {
  auto acme = Call("Bearer " + acme_.secret, kClientKind);
  ASSERT_TRUE(acme.ok()) << acme.status();
  EXPECT_EQ(acme->tenant, "acme");
  EXPECT_TRUE(Call("Bearer " + worker_.secret, kWorkerKind).ok());

  EXPECT_EQ(Call("", kClientKind).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Call(acme_.secret, kClientKind).status().code(),
            absl::StatusCode::kUnauthenticated);  // no "Bearer "
  EXPECT_EQ(Call("Bearer evonas_wrong", kClientKind).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Call("Bearer " + worker_.secret, kClientKind).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Call("Bearer " + acme_.secret, kWorkerKind).status().code(),
            absl::StatusCode::kPermissionDenied);

  ASSERT_TRUE(store_->RevokeToken(acme_.record.id, 2).ok());
  absl::Status revoked = Call("Bearer " + acme_.secret, kClientKind).status();
  EXPECT_EQ(revoked.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(revoked.message().find("revoked"), absl::string_view::npos);
}

TEST_F(AccessControlTest, ExpiredTokensAreRefusedWithAWayOut) {
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  // Created a day ago for an hour: expired 23 hours ago.
  IssuedToken old = CreateToken(*store_, kClientKind, "acme",
                                now_ms - 24 * 3600 * 1000, std::nullopt,
                                absl::Hours(1))
                        .value();
  EXPECT_EQ(old.record.expires_at_ms, now_ms - 23 * 3600 * 1000);
  absl::Status expired = Call("Bearer " + old.secret, kClientKind).status();
  EXPECT_EQ(expired.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(expired.message().find("expired at"), absl::string_view::npos)
      << expired;
  EXPECT_NE(expired.message().find("token create"), absl::string_view::npos);
  // Expired is reported even to a caller of the wrong kind: the token is
  // useless either way.
  EXPECT_EQ(Call("Bearer " + old.secret, kWorkerKind).status().code(),
            absl::StatusCode::kUnauthenticated);

  IssuedToken fresh = CreateToken(*store_, kWorkerKind, "", now_ms,
                                  std::nullopt, ParseTokenLifetime("30d").value())
                          .value();
  EXPECT_EQ(fresh.record.expires_at_ms, now_ms + 30LL * 24 * 3600 * 1000);
  EXPECT_TRUE(Call("Bearer " + fresh.secret, kWorkerKind).ok());
  EXPECT_EQ(store_->FindToken(fresh.record.sha256).value()->expires_at_ms,
            fresh.record.expires_at_ms);
  // Tokens made without a lifetime never expire.
  EXPECT_EQ(acme_.record.expires_at_ms, 0);
  EXPECT_FALSE(TokenExpired(acme_.record, std::numeric_limits<int64_t>::max()));
}

TEST(TokenLifetimeTest, ParsesDaysAndDurations) {
  EXPECT_EQ(ParseTokenLifetime("30d").value(), absl::Hours(24 * 30));
  EXPECT_EQ(ParseTokenLifetime("12h").value(), absl::Hours(12));
  EXPECT_EQ(ParseTokenLifetime(" 1h30m ").value(), absl::Minutes(90));
  for (const char* bad : {"", "d", "30", "0d", "-1d", "0s", "-5h", "soon",
                          "inf", "3651d", "99999999999999d"}) {
    absl::Status status = ParseTokenLifetime(bad).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParseTokenLifetime("soon").status().message().find("30d"),
            absl::string_view::npos);
  EXPECT_EQ(CreateToken(*Store(), kWorkerKind, "", 1, std::nullopt,
                        absl::ZeroDuration())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(AccessControlTest, RefusesBadTokenRequests) {
  EXPECT_EQ(CreateToken(*store_, "admin", "", 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateToken(*store_, kClientKind, "", 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateToken(*store_, kClientKind, "a b", 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateToken(*store_, kWorkerKind, "acme", 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateToken(*store_, kWorkerKind, "", 1, "short").status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::string secret(40, 'k');
  ASSERT_TRUE(CreateToken(*store_, kWorkerKind, "", 1, secret).ok());
  EXPECT_EQ(CreateToken(*store_, kWorkerKind, "", 1, secret).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(Call("Bearer " + secret, kWorkerKind).ok());
}

TEST_F(AccessControlTest, TenantsSeeOnlyTheirOwnDataSetViews) {
  v1::Dataset dataset;
  dataset.set_id("d1");
  dataset.set_name("acme-customer.csv");
  dataset.mutable_created_at()->set_seconds(100);
  ASSERT_TRUE(store_->InsertDataset(dataset).ok());
  ASSERT_TRUE(
      store_->AddDatasetOwner({"acme", "d1", "acme-customer.csv", 100000}).ok());
  EXPECT_EQ(access_->DatasetVisibility("acme", "d1").value(), Visibility::kOwn);
  EXPECT_EQ(access_->DatasetVisibility("beta", "d1").value(),
            Visibility::kForeign);
  EXPECT_EQ(access_->DatasetVisibility("beta", "d2").value(),
            Visibility::kAbsent);
  EXPECT_EQ(access_->TenantView("beta", dataset).status(),
            store::DatasetNotFound("d1"));

  // beta uploads the same bytes later under its own name: it sees its own
  // name and time, never acme's.
  ASSERT_TRUE(store_->AddDatasetOwner({"beta", "d1", "beta.csv", 200000}).ok());
  v1::Dataset seen = access_->TenantView("beta", dataset).value();
  EXPECT_EQ(seen.name(), "beta.csv");
  EXPECT_EQ(seen.created_at().seconds(), 200);
  std::vector<v1::Dataset> listed =
      access_->TenantDatasets("beta", {dataset}).value();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].name(), "beta.csv");
  EXPECT_EQ(access_->TenantView("acme", dataset).value().name(),
            "acme-customer.csv");
}

TEST_F(AccessControlTest, ExperimentsAndCandidatesFollowTheirOwner) {
  v1::Experiment experiment;
  experiment.set_id("e1");
  experiment.set_state(v1::EXPERIMENT_STATE_RUNNING);
  ASSERT_TRUE(store_->InsertExperiment(experiment).ok());
  store::StoredCandidate candidate;
  candidate.candidate.set_id("c1");
  candidate.candidate.set_experiment_id("e1");
  ASSERT_TRUE(store_->InsertCandidate(candidate).ok());
  // Without an owner, an experiment is nobody's.
  EXPECT_EQ(access_->ExperimentVisibility("acme", "e1").value(),
            Visibility::kForeign);
  ASSERT_TRUE(store_->SetExperimentOwner("e1", "acme").ok());
  EXPECT_EQ(access_->ExperimentVisibility("acme", "e1").value(),
            Visibility::kOwn);
  EXPECT_EQ(access_->CandidateVisibility("acme", "c1").value(),
            Visibility::kOwn);
  EXPECT_EQ(access_->CandidateVisibility("beta", "c1").value(),
            Visibility::kForeign);
  EXPECT_EQ(access_->CandidateVisibility("beta", "c2").value(),
            Visibility::kAbsent);
}

}  // namespace
}  // namespace evonas::auth
