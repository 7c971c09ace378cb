#ifndef EVONAS_WORKER_MODEL_CHECKPOINT_H_
#define EVONAS_WORKER_MODEL_CHECKPOINT_H_

// The MODEL_FORMAT_CHECKPOINT file: a trained network's weights as a
// v1::NetworkWeights proto, from which a child candidate inherits. No
// LibTorch.

#include <string>

#include "absl/status/statusor.h"
#include "evonas/v1/types.pb.h"
#include "worker/model/mlp.h"

namespace evonas::model {

// The proto form of `network`, every number copied exactly. Expects a
// network that passes ValidateNetwork; copies the shapes as they are.
v1::NetworkWeights ToNetworkWeights(const NetworkParameters& network);

// The network a checkpoint describes, convolutional layers and image shape
// included. InvalidArgument naming the field ("stages[1]: layers[0].weight
// has 9 values, expected 4 x 2", "stages[0]: conv_layers[1].bn_scale ...")
// when the proto does not describe a network that passes ValidateNetwork.
absl::StatusOr<NetworkParameters> FromNetworkWeights(
    const v1::NetworkWeights& weights);

// The checkpoint file's bytes (binary-serialised NetworkWeights), and back.
// ParseCheckpoint: InvalidArgument when `bytes` is not a NetworkWeights
// message or FromNetworkWeights refuses it.
std::string SerializeCheckpoint(const NetworkParameters& network);
absl::StatusOr<NetworkParameters> ParseCheckpoint(const std::string& bytes);

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_CHECKPOINT_H_
