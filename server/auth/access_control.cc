#include "server/auth/access_control.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "server/auth/tokens.h"

namespace evonas::auth {
namespace {

constexpr absl::string_view kBearer = "Bearer ";

google::protobuf::Timestamp ToTimestamp(int64_t ms) {
  google::protobuf::Timestamp t;
  t.set_seconds(ms / 1000);
  t.set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
  return t;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AccessControl>> AccessControl::Open(
    const std::string& db_path, AccessOptions options) {
  EVONAS_ASSIGN_OR_RETURN(auto store, store::Store::Open(db_path));
  return std::unique_ptr<AccessControl>(
      new AccessControl(std::move(store), options));
}

absl::StatusOr<Principal> AccessControl::Authenticate(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
    absl::string_view kind) {
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(
        "this call needs a bearer token: send metadata \"authorization: "
        "Bearer TOKEN\" (the evonas CLI and worker read $EVONAS_TOKEN); the "
        "controller's admin creates tokens with `evonas-controller token "
        "create`");
  }
  const absl::string_view value(it->second.data(), it->second.size());
  if (!absl::StartsWith(value, kBearer) || value.size() == kBearer.size()) {
    return absl::UnauthenticatedError(
        "the authorization metadata must be \"Bearer TOKEN\"");
  }
  const std::string hash = HashSecret(value.substr(kBearer.size()));
  std::optional<store::TokenRecord> token;
  {
    absl::MutexLock lock(&mu_);
    EVONAS_ASSIGN_OR_RETURN(token, store_->FindToken(hash));
  }
  if (!token.has_value()) {
    return absl::UnauthenticatedError(
        "unknown token: check $EVONAS_TOKEN (or --token), or ask the "
        "controller's admin for one");
  }
  if (token->revoked_at_ms != 0) {
    return absl::UnauthenticatedError(absl::StrCat(
        "token ", token->id,
        " was revoked; ask the controller's admin for a new one"));
  }
  if (TokenExpired(*token, absl::ToUnixMillis(absl::Now()))) {
    return absl::UnauthenticatedError(absl::StrCat(
        "token ", token->id, " expired at ",
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                         absl::FromUnixMillis(token->expires_at_ms),
                         absl::UTCTimeZone()),
        "; ask the controller's admin for a new one (`evonas-controller "
        "token create`)"));
  }
  if (token->kind != kind) {
    return absl::PermissionDeniedError(
        kind == kClientKind
            ? "a worker token cannot call evonas.v1.EvonasService; use a "
              "client token of your tenant"
            : "a client token cannot call evonas.v1.WorkerService; workers "
              "need a worker token (`evonas-controller token create --kind "
              "worker`)");
  }
  return Principal{token->id, token->kind, token->tenant};
}

absl::StatusOr<Visibility> AccessControl::DatasetVisibility(
    const std::string& tenant, const std::string& id) {
  absl::MutexLock lock(&mu_);
  EVONAS_ASSIGN_OR_RETURN(auto ownership,
                          store_->FindDatasetOwnership(tenant, id));
  if (ownership.has_value()) return Visibility::kOwn;
  EVONAS_ASSIGN_OR_RETURN(bool exists, store_->DatasetExists(id));
  return exists ? Visibility::kForeign : Visibility::kAbsent;
}

absl::StatusOr<Visibility> AccessControl::ExperimentVisibility(
    const std::string& tenant, const std::string& id) {
  absl::MutexLock lock(&mu_);
  EVONAS_ASSIGN_OR_RETURN(std::optional<std::string> owner,
                          store_->ExperimentOwner(id));
  if (owner.has_value() && *owner == tenant) return Visibility::kOwn;
  // An experiment without an owner (made while authentication was off) is
  // nobody's.
  EVONAS_ASSIGN_OR_RETURN(bool exists, store_->ExperimentExists(id));
  return exists ? Visibility::kForeign : Visibility::kAbsent;
}

absl::StatusOr<Visibility> AccessControl::CandidateVisibility(
    const std::string& tenant, const std::string& id) {
  std::optional<std::string> experiment_id;
  {
    absl::MutexLock lock(&mu_);
    EVONAS_ASSIGN_OR_RETURN(experiment_id, store_->ExperimentOfCandidate(id));
  }
  if (!experiment_id.has_value()) return Visibility::kAbsent;
  EVONAS_ASSIGN_OR_RETURN(Visibility experiment,
                          ExperimentVisibility(tenant, *experiment_id));
  return experiment == Visibility::kOwn ? Visibility::kOwn
                                        : Visibility::kForeign;
}

absl::StatusOr<v1::Dataset> AccessControl::TenantView(const std::string& tenant,
                                                      v1::Dataset dataset) {
  absl::MutexLock lock(&mu_);
  EVONAS_ASSIGN_OR_RETURN(auto ownership,
                          store_->FindDatasetOwnership(tenant, dataset.id()));
  if (!ownership.has_value()) return store::DatasetNotFound(dataset.id());
  dataset.set_name(ownership->name);
  *dataset.mutable_created_at() = ToTimestamp(ownership->created_at_ms);
  return dataset;
}

absl::StatusOr<std::vector<v1::Dataset>> AccessControl::TenantDatasets(
    const std::string& tenant, const std::vector<v1::Dataset>& all) {
  std::map<std::string, const v1::Dataset*> by_id;
  for (const v1::Dataset& d : all) by_id[d.id()] = &d;
  absl::MutexLock lock(&mu_);
  EVONAS_ASSIGN_OR_RETURN(auto ownerships,
                          store_->ListDatasetOwnerships(tenant));
  std::vector<v1::Dataset> datasets;
  for (const store::DatasetOwnership& o : ownerships) {
    auto it = by_id.find(o.dataset_id);
    if (it == by_id.end()) continue;
    v1::Dataset& d = datasets.emplace_back(*it->second);
    d.set_name(o.name);
    *d.mutable_created_at() = ToTimestamp(o.created_at_ms);
  }
  return datasets;
}

absl::StatusOr<std::vector<std::string>> AccessControl::ExperimentIdsOf(
    const std::string& tenant) {
  absl::MutexLock lock(&mu_);
  return store_->ExperimentIdsOf(tenant);
}

}  // namespace evonas::auth
