// An ExperimentSpec from the fuzz bytes (text or binary protobuf) through
// Controller::CreateExperiment: requirements, budget, columns, objectives,
// search space and strategy settings are validated there, then the search
// strategy proposes the first candidate. Non-empty data set ids are pointed
// at the fixture's data sets, so that the fuzzer gets past the lookup.
// A refused spec must be InvalidArgument or NotFound and store nothing; an
// accepted one must have valid requirements and must propose and cancel.

#include <cstddef>
#include <cstdint>

#include "common/requirements.h"
#include "fuzz/controller_fixture.h"
#include "fuzz/fuzz_proto.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* fixture = new evonas::fuzz::ControllerFixture();
  evonas::v1::ExperimentSpec spec;
  if (!evonas::fuzz::ParseTextOrBinary(
          absl::string_view(reinterpret_cast<const char*>(data), size),
          &spec)) {
    return 0;
  }
  if (!spec.dataset_id().empty()) spec.set_dataset_id(fixture->train_id());
  if (!spec.test_dataset_id().empty()) {
    spec.set_test_dataset_id(fixture->test_id());
  }
  const absl::Status requirements =
      evonas::ValidateRequirements(spec.requirements());
  evonas::Controller& controller = fixture->controller();
  const auto before = fixture->RowCounts();
  absl::StatusOr<evonas::v1::Experiment> created =
      controller.CreateExperiment(spec);
  if (!created.ok()) {
    const absl::StatusCode code = created.status().code();
    if ((code != absl::StatusCode::kInvalidArgument &&
         code != absl::StatusCode::kNotFound) ||
        created.status().message().empty()) {
      evonas::fuzz::Fail("CreateExperiment", created.status());
    }
    if (fixture->RowCounts() != before) {
      evonas::fuzz::Fail("a refused spec changed the database",
                         created.status());
    }
    return 0;
  }
  if (!requirements.ok()) {
    evonas::fuzz::Fail("accepted a spec with bad requirements", requirements);
  }
  // The strategy proposes from the validated spec; the lease goes back.
  std::optional<evonas::v1::Lease> lease =
      evonas::fuzz::OrFail(controller.LeaseWork("spec-fuzz-worker"), "LeaseWork");
  if (lease) {
    absl::Status released =
        controller.ReleaseLease("spec-fuzz-worker", lease->lease_id());
    if (!released.ok()) evonas::fuzz::Fail("ReleaseLease", released);
  }
  absl::StatusOr<evonas::v1::Experiment> cancelled =
      controller.CancelExperiment(created->id());
  // A spec whose budget is spent by the first proposal is already complete.
  if (!cancelled.ok() &&
      cancelled.status().code() != absl::StatusCode::kFailedPrecondition) {
    evonas::fuzz::Fail("CancelExperiment", cancelled.status());
  }
  return 0;
}
