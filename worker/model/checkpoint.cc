#include "worker/model/checkpoint.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/repeated_field.h"

namespace evonas::model {
namespace {

std::vector<double> ToVector(
    const google::protobuf::RepeatedField<double>& field) {
  return {field.begin(), field.end()};
}

void Copy(const std::vector<double>& values,
          google::protobuf::RepeatedField<double>* field) {
  field->Reserve(static_cast<int>(values.size()));
  field->Add(values.begin(), values.end());
}

// Rewrites ValidateMlp's "MlpParameters.layers[..." / ValidateNetwork's
// "NetworkParameters.stages[..." into the proto's field names.
absl::Status InProtoTerms(const absl::Status& status) {
  std::string message(status.message());
  for (const std::string prefix : {"NetworkParameters.", "MlpParameters."}) {
    for (size_t at = message.find(prefix); at != std::string::npos;
         at = message.find(prefix)) {
      message.erase(at, prefix.size());
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("checkpoint (NetworkWeights): ", message));
}

}  // namespace

v1::NetworkWeights ToNetworkWeights(const NetworkParameters& network) {
  v1::NetworkWeights weights;
  for (const MlpParameters& stage : network.stages) {
    v1::StageWeights* s = weights.add_stages();
    Copy(stage.x_mean, s->mutable_x_mean());
    Copy(stage.x_std, s->mutable_x_std());
    Copy(stage.y_mean, s->mutable_y_mean());
    Copy(stage.y_std, s->mutable_y_std());
    for (const DenseParameters& layer : stage.layers) {
      v1::LayerWeights* l = s->add_layers();
      l->set_inputs(layer.inputs);
      l->set_outputs(layer.outputs);
      Copy(layer.weight, l->mutable_weight());
      Copy(layer.bias, l->mutable_bias());
      l->set_activation(layer.activation);
      l->set_residual(layer.residual);
    }
  }
  return weights;
}

absl::StatusOr<NetworkParameters> FromNetworkWeights(
    const v1::NetworkWeights& weights) {
  NetworkParameters network;
  for (const v1::StageWeights& s : weights.stages()) {
    MlpParameters& stage = network.stages.emplace_back();
    stage.x_mean = ToVector(s.x_mean());
    stage.x_std = ToVector(s.x_std());
    stage.y_mean = ToVector(s.y_mean());
    stage.y_std = ToVector(s.y_std());
    for (const v1::LayerWeights& l : s.layers()) {
      DenseParameters& layer = stage.layers.emplace_back();
      layer.inputs = l.inputs();
      layer.outputs = l.outputs();
      layer.weight = ToVector(l.weight());
      layer.bias = ToVector(l.bias());
      layer.activation = l.activation();
      layer.residual = l.residual();
    }
  }
  if (absl::Status s = ValidateNetwork(network); !s.ok()) {
    return InProtoTerms(s);
  }
  return network;
}

std::string SerializeCheckpoint(const NetworkParameters& network) {
  return ToNetworkWeights(network).SerializeAsString();
}

absl::StatusOr<NetworkParameters> ParseCheckpoint(const std::string& bytes) {
  v1::NetworkWeights weights;
  if (!weights.ParseFromString(bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint: ", bytes.size(),
                     " bytes that are not a NetworkWeights message"));
  }
  return FromNetworkWeights(weights);
}

}  // namespace evonas::model
