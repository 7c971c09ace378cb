#include "worker/artifacts.h"

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "worker/model/checkpoint.h"
#include "worker/model/mlp.h"
#include "worker/model/model_card.h"
#include "worker/model/onnx_export.h"
#include "worker/model/trainer.h"

namespace evonas::worker {
namespace {

std::vector<std::string> ToVector(
    const google::protobuf::RepeatedPtrField<std::string>& field) {
  return {field.begin(), field.end()};
}

void Add(v1::ModelFormat format, std::string bytes, Artifacts& artifacts) {
  v1::Artifact& declared = artifacts.declared.emplace_back();
  declared.set_format(format);
  declared.set_size_bytes(static_cast<int64_t>(bytes.size()));
  declared.set_sha256(Sha256Hex(bytes));
  artifacts.bytes.push_back(std::move(bytes));
}

// The names of the network's outputs: the output columns, or for a
// classifier one logit per class, "<label column>=<class>".
std::vector<std::string> OutputNames(const v1::Lease& lease) {
  std::vector<std::string> names = ToVector(lease.output_columns());
  if (lease.class_count() > 0 && names.size() == 1) {
    const std::string label = names[0];
    names.clear();
    for (int c = 0; c < lease.class_count(); ++c) {
      names.push_back(absl::StrCat(label, "=", c));
    }
  }
  return names;
}

}  // namespace

Artifacts DeriveArtifacts(const v1::Lease& lease,
                          const model::TrainOutput& output) {
  Artifacts artifacts;
  const model::NetworkParameters& parameters = output.parameters;

  model::OnnxOptions onnx_options;
  onnx_options.dataset_id = lease.dataset_id();
  onnx_options.input_columns = ToVector(lease.input_columns());
  onnx_options.output_columns = OutputNames(lease);
  absl::StatusOr<std::string> onnx = model::ExportOnnx(parameters, onnx_options);
  if (onnx.ok()) {
    Add(v1::MODEL_FORMAT_ONNX, std::move(*onnx), artifacts);
  } else {
    artifacts.warnings.push_back(
        absl::StrCat("no ONNX file: ", onnx.status().message()));
  }

  Add(v1::MODEL_FORMAT_CHECKPOINT, model::SerializeCheckpoint(parameters),
      artifacts);

  absl::StatusOr<std::string> card = model::ModelCardJson(
      parameters, lease.genome(), output.metrics, lease.requirements(),
      lease.dataset_id(), onnx_options.input_columns,
      onnx_options.output_columns,
      JudgedRowsOf(/*refit=*/lease.validation_split().fraction() == 0,
                   !lease.test_dataset_id().empty(),
                   output.metrics.has_judging()));
  if (card.ok()) {
    Add(v1::MODEL_FORMAT_MODEL_CARD, std::move(*card), artifacts);
  } else {
    artifacts.warnings.push_back(
        absl::StrCat("no model card: ", card.status().message()));
  }
  return artifacts;
}

}  // namespace evonas::worker
