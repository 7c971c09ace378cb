#ifndef EVONAS_SERVER_AUTH_ACCESS_CONTROL_H_
#define EVONAS_SERVER_AUTH_ACCESS_CONTROL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "evonas/v1/types.pb.h"
#include "grpcpp/server_context.h"
#include "server/store/store.h"

namespace evonas::auth {

// Who made a call, from its bearer token.
struct Principal {
  std::string token_id;
  std::string kind;    // kClientKind or kWorkerKind
  std::string tenant;  // empty for workers
};

struct AccessOptions {
  // RUNNING experiments a tenant may have at once.
  int64_t max_running_experiments = 8;
};

// Whether an id names something the caller's tenant may see.
enum class Visibility {
  kOwn,      // the tenant's own: go ahead
  kForeign,  // exists, but not the tenant's: answer as if absent
  kAbsent,   // does not exist: let the controller answer (as for everyone)
};

// Bearer-token authentication and tenant ownership over the controller's
// database, through a connection of its own (the tables of schema v3). It
// only reads: ownership is written by the controller, in the transaction
// that stores what is owned (Controller::CreateExperiment,
// DatasetUpload::Finish). Thread-safe.
class AccessControl {
 public:
  // Opens the database the controller uses (already migrated by it).
  static absl::StatusOr<std::unique_ptr<AccessControl>> Open(
      const std::string& db_path, AccessOptions options);

  // The caller of a call with `metadata` (its "authorization: Bearer ..."
  // entry), if it holds a valid token of `kind`. Unauthenticated for a
  // missing, malformed, unknown, revoked or expired token; PermissionDenied
  // for a valid token of the other kind.
  absl::StatusOr<Principal> Authenticate(
      const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
      absl::string_view kind);

  absl::StatusOr<Visibility> DatasetVisibility(const std::string& tenant,
                                               const std::string& id);
  absl::StatusOr<Visibility> ExperimentVisibility(const std::string& tenant,
                                                  const std::string& id);
  // A candidate is visible when its experiment is.
  absl::StatusOr<Visibility> CandidateVisibility(const std::string& tenant,
                                                 const std::string& id);

  // `dataset` with the tenant's own name and time; NotFound if the tenant
  // did not upload it.
  absl::StatusOr<v1::Dataset> TenantView(const std::string& tenant,
                                         v1::Dataset dataset);
  // The tenant's data sets among `all` (every data set, as the controller
  // lists them), as the tenant sees them, newest first.
  absl::StatusOr<std::vector<v1::Dataset>> TenantDatasets(
      const std::string& tenant, const std::vector<v1::Dataset>& all);
  // Ids of the tenant's experiments.
  absl::StatusOr<std::vector<std::string>> ExperimentIdsOf(
      const std::string& tenant);

  // The limits it was opened with. The controller enforces the limit of
  // running experiments, in the transaction that creates one
  // (Controller::CreateExperiment with an ExperimentOwnership).
  const AccessOptions& options() const { return options_; }

 private:
  AccessControl(std::unique_ptr<store::Store> store, AccessOptions options)
      : options_(options), store_(std::move(store)) {}

  const AccessOptions options_;
  absl::Mutex mu_;
  std::unique_ptr<store::Store> store_ ABSL_GUARDED_BY(mu_);
};

}  // namespace evonas::auth

#endif  // EVONAS_SERVER_AUTH_ACCESS_CONTROL_H_
