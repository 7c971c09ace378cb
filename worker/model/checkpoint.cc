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
    // The image shape only means something with a trunk; written as it is
    // so that the round trip is exact either way.
    s->set_image_height(stage.image_height);
    s->set_image_width(stage.image_width);
    for (const ConvParameters& conv : stage.conv_layers) {
      v1::ConvLayerWeights* c = s->add_conv_layers();
      c->set_in_channels(conv.in_channels);
      c->set_out_channels(conv.out_channels);
      c->set_kernel_size(conv.kernel_size);
      Copy(conv.weight, c->mutable_weight());
      Copy(conv.bias, c->mutable_bias());
      c->set_activation(conv.activation);
      c->set_pooling(conv.pooling);
      c->set_residual(conv.residual);
      c->set_dropout(conv.dropout);
      c->set_batch_norm(conv.batch_norm);
      Copy(conv.bn_scale, c->mutable_bn_scale());
      Copy(conv.bn_shift, c->mutable_bn_shift());
      Copy(conv.bn_running_mean, c->mutable_bn_running_mean());
      Copy(conv.bn_running_var, c->mutable_bn_running_var());
    }
    for (const DenseParameters& layer : stage.layers) {
      v1::LayerWeights* l = s->add_layers();
      l->set_inputs(layer.inputs);
      l->set_outputs(layer.outputs);
      Copy(layer.weight, l->mutable_weight());
      Copy(layer.bias, l->mutable_bias());
      l->set_activation(layer.activation);
      l->set_residual(layer.residual);
      Copy(layer.ln_scale, l->mutable_ln_scale());
      Copy(layer.ln_shift, l->mutable_ln_shift());
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
    stage.image_height = s.image_height();
    stage.image_width = s.image_width();
    for (const v1::ConvLayerWeights& c : s.conv_layers()) {
      ConvParameters& conv = stage.conv_layers.emplace_back();
      conv.in_channels = c.in_channels();
      conv.out_channels = c.out_channels();
      conv.kernel_size = c.kernel_size();
      conv.weight = ToVector(c.weight());
      conv.bias = ToVector(c.bias());
      // An enum value this build does not know stays as it is (proto3
      // enums are open) and ValidateMlp refuses it by number.
      conv.activation = c.activation();
      conv.pooling = c.pooling();
      conv.residual = c.residual();
      conv.dropout = c.dropout();
      conv.batch_norm = c.batch_norm();
      conv.bn_scale = ToVector(c.bn_scale());
      conv.bn_shift = ToVector(c.bn_shift());
      conv.bn_running_mean = ToVector(c.bn_running_mean());
      conv.bn_running_var = ToVector(c.bn_running_var());
    }
    for (const v1::LayerWeights& l : s.layers()) {
      DenseParameters& layer = stage.layers.emplace_back();
      layer.inputs = l.inputs();
      layer.outputs = l.outputs();
      layer.weight = ToVector(l.weight());
      layer.bias = ToVector(l.bias());
      layer.activation = l.activation();
      layer.residual = l.residual();
      layer.ln_scale = ToVector(l.ln_scale());
      layer.ln_shift = ToVector(l.ln_shift());
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
