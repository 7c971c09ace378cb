#ifndef EVONAS_WORKER_ARTIFACTS_H_
#define EVONAS_WORKER_ARTIFACTS_H_

#include <string>
#include <vector>

#include "evonas/v1/worker_service.pb.h"
#include "worker/model/trainer.h"

namespace evonas::worker {

// The files a worker reports beside the TorchScript model, in report order.
struct Artifacts {
  std::vector<v1::Artifact> declared;  // format, size, SHA-256
  std::vector<std::string> bytes;      // one per declared
  // Why a file was left out (e.g. weights too large for float32 ONNX).
  std::vector<std::string> warnings;
};

// Derives what the controller stores beside the TorchScript file from a
// trained network: the float32 ONNX file, the checkpoint (a binary
// NetworkWeights, what a child inherits) and the JSON model card (with the
// metrics, the int8 ones included). A file that cannot be produced is left
// out with a warning; never fails.
Artifacts DeriveArtifacts(const v1::Lease& lease,
                          const model::TrainOutput& output);

}  // namespace evonas::worker

#endif  // EVONAS_WORKER_ARTIFACTS_H_
