// A worker's report through Controller::BeginReport and Controller::Report,
// the checks a controller applies to what a (possibly hostile) worker sends:
// report shape, metrics, model and artifact sizes and hashes, and the
// MODEL_FORMAT_CHECKPOINT artifact against the genome.
//
// Input: a v1::WorkResult (text or binary protobuf), optionally followed by
// "\n===\n" and a checkpoint (a v1::NetworkWeights in text format, which is
// serialised, or else the raw bytes). The worker holds a lease on the genome
// kGenome (2 inputs, 1 output). Fields the input leaves unset are filled in
// as an honest worker would (ids of the held lease, the model's size and
// SHA-256, the checkpoint as an artifact with its size and SHA-256), so that
// mutations reach the deeper checks; set fields are passed on as they are.
// Checks: Report accepts only what BeginReport accepts, a refused report
// stores nothing, and refusals carry the documented codes.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "fuzz/controller_fixture.h"
#include "fuzz/fuzz_proto.h"

namespace evonas::fuzz {
namespace {

constexpr char kWorker[] = "report-fuzz-worker";
constexpr char kSeparator[] = "\n===\n";
constexpr char kModel[] = "fuzz model bytes";

// Always proposes one hidden layer of 2 tanh units, so that seeds can carry a
// checkpoint that fits.
class FixedStrategy : public search::Strategy {
 public:
  search::Proposal Propose(int64_t, const std::vector<v1::Candidate>&) override {
    search::Proposal proposal;
    v1::DenseLayer* layer = proposal.genome.add_hidden_layers();
    layer->set_width(2);
    layer->set_activation(v1::ACTIVATION_TANH);
    proposal.genome.mutable_training()->set_learning_rate(1e-3);
    proposal.genome.mutable_training()->set_adam_steps(10);
    return proposal;
  }
};

ControllerFixture& Fixture() {
  static auto* fixture = new ControllerFixture(
      [](const v1::ExperimentSpec&, absl::Span<const v1::LatencyTable>,
         int64_t, const ImageShape&)
          -> absl::StatusOr<std::unique_ptr<search::Strategy>> {
        return std::make_unique<FixedStrategy>();
      });
  return *fixture;
}

// The worker's lease; a new experiment when the last one was reported (a
// copy of the same genome would not be leased again).
v1::Lease HeldLease() {
  Controller& controller = Fixture().controller();
  std::optional<v1::Lease> lease =
      OrFail(controller.LeaseWork(kWorker), "LeaseWork");
  if (lease) return *lease;
  v1::ExperimentSpec spec;
  spec.set_dataset_id(Fixture().train_id());
  spec.set_test_dataset_id(Fixture().test_id());
  spec.add_input_columns("x1");
  spec.add_input_columns("x2");
  spec.add_output_columns("y");
  spec.mutable_budget()->set_max_candidates(1);
  spec.mutable_requirements()->set_max_abs_error(0.1);
  OrFail(controller.CreateExperiment(spec), "CreateExperiment");
  lease = OrFail(controller.LeaseWork(kWorker), "LeaseWork");
  if (!lease) Fail("no lease in a new experiment", absl::OkStatus());
  return *lease;
}

void FillSize(v1::Artifact* artifact, const std::string& bytes) {
  if (artifact->size_bytes() == 0) artifact->set_size_bytes(bytes.size());
  if (artifact->sha256().empty()) artifact->set_sha256(Sha256Hex(bytes));
}

}  // namespace
}  // namespace evonas::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace evonas;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find(fuzz::kSeparator);
  v1::WorkResult result;
  if (!fuzz::ParseTextOrBinary(input.substr(0, split), &result)) return 0;
  std::optional<std::string> checkpoint;
  if (split != absl::string_view::npos) {
    const absl::string_view tail =
        input.substr(split + sizeof(fuzz::kSeparator) - 1);
    v1::NetworkWeights weights;
    checkpoint = fuzz::ParseText(tail, &weights) ? weights.SerializeAsString()
                                                 : std::string(tail);
  }

  const v1::Lease lease = fuzz::HeldLease();
  if (result.worker_id().empty()) result.set_worker_id(fuzz::kWorker);
  if (result.lease_id().empty()) result.set_lease_id(lease.lease_id());
  std::string model;
  if (result.failure_reason().empty()) {
    model = fuzz::kModel;
    if (result.model_size_bytes() == 0) result.set_model_size_bytes(model.size());
    if (result.model_sha256().empty()) result.set_model_sha256(Sha256Hex(model));
    if (result.has_metrics() && result.metrics().model_bytes() == 0) {
      result.mutable_metrics()->set_model_bytes(model.size());
    }
    if (checkpoint) {
      bool declared = false;
      for (const v1::Artifact& a : result.artifacts()) {
        declared |= a.format() == v1::MODEL_FORMAT_CHECKPOINT;
      }
      if (!declared) {
        result.add_artifacts()->set_format(v1::MODEL_FORMAT_CHECKPOINT);
      }
    }
  }
  std::vector<std::string> artifacts;
  for (v1::Artifact& artifact : *result.mutable_artifacts()) {
    std::string bytes =
        artifact.format() == v1::MODEL_FORMAT_CHECKPOINT && checkpoint
            ? *checkpoint
            : "artifact " + v1::ModelFormat_Name(artifact.format());
    fuzz::FillSize(&artifact, bytes);
    artifacts.push_back(std::move(bytes));
  }

  Controller& controller = fuzz::Fixture().controller();
  const auto before = fuzz::Fixture().RowCounts();
  const absl::Status begun = controller.BeginReport(result);
  const absl::StatusOr<bool> reported =
      controller.Report(result, model, artifacts);
  // To see why a seed is refused: EVONAS_FUZZ_VERBOSE=1 report_fuzz FILE.
  if (std::getenv("EVONAS_FUZZ_VERBOSE") != nullptr) {
    std::fprintf(stderr, "BeginReport: %s\nReport: %s\n",
                 begun.ToString().c_str(),
                 reported.status().ToString().c_str());
  }
  if (reported.ok()) {
    if (!begun.ok()) fuzz::Fail("Report accepted what BeginReport refused", begun);
    return 0;
  }
  switch (reported.status().code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kFailedPrecondition:
      break;
    default:
      fuzz::Fail("Report", reported.status());
  }
  if (reported.status().message().empty()) {
    fuzz::Fail("Report refused without a message", reported.status());
  }
  if (fuzz::Fixture().RowCounts() != before) {
    fuzz::Fail("a refused report changed the database", reported.status());
  }
  return 0;
}
