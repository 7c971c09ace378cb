#ifndef EVONAS_WORKER_MODEL_ONNX_EXPORT_H_
#define EVONAS_WORKER_MODEL_ONNX_EXPORT_H_

// ONNX export of a trained MLP, for runtimes outside the PyTorch world. Uses
// Debian's libonnx protobuf classes; no LibTorch.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/model/mlp.h"

namespace evonas::model {

// Operator set of the exported graphs: accepted by onnx.checker (1.12) and by
// OpenCV's dnn module (4.6).
inline constexpr int64_t kOnnxOpset = 13;

// Element type of the graph's input, output and weights.
enum class OnnxDtype {
  // Runs in OpenCV's dnn and every common runtime. The float64 weights are
  // rounded to float32, so outputs differ from Forward by float32 rounding.
  kFloat32,
  // Keeps the trained precision; runtimes that support double run it (OpenCV
  // 4.6 does not).
  kFloat64,
};

struct OnnxOptions {
  OnnxDtype dtype = OnnxDtype::kFloat32;
  // Recorded as metadata_props "dataset_id" when not empty: the SHA-256 of
  // the training data set.
  std::string dataset_id;
  // Column names, recorded in the doc_string of "x" and "y" when not empty.
  // When given, there must be one per input (output).
  std::vector<std::string> input_columns;
  std::vector<std::string> output_columns;
};

// Serialised ONNX ModelProto (opset kOnnxOpset) computing what Forward
// computes: input "x" [N, inputs] in raw units; per stage Sub/Div
// standardisation, per layer Gemm (transB=1) and the activation (Tanh; Relu;
// Sigmoid and Mul for SiLU; Mul, Erf, Add and Mul for GELU; Sin), before
// the activation for a layer-normalised layer ReduceMean, Gemm (the mean
// spread over the row), Sub, Mul, ReduceMean, Add, Sqrt, Reciprocal, Mul,
// Mul, Add (opset 13 has no LayerNormalization), an Add of
// the layer's input for a residual layer, Mul/Add de-standardisation; the
// stages' outputs summed in stage order by Add nodes; output "y" [N,
// outputs]. A convolutional network (one stage, mlp.h) has after the
// standardisation: Reshape to [N, 1, height, width], per conv layer a Conv
// (pads kernel_size / 2, stride 1) with the batch normalisation folded into
// its weights and bias, the activation nodes, an Add for a residual layer,
// MaxPool or AveragePool (kernel 2, stride 2); then Flatten (axis 1) into
// the first Gemm; "x" is then [N, height * width], the row-major image.
// metadata_props holds "evonas_version" and, if
// given, "dataset_id". The model passes onnx::checker::check_model and strict
// shape inference before it is returned.
//
// InvalidArgument when ValidateNetwork fails, a column list has the wrong
// length, (kFloat32) a finite value is too large for float32, or the model
// would exceed protobuf's 2 GiB message limit. Internal when the checker
// rejects the graph (a bug here). Thread-safe.
absl::StatusOr<std::string> ExportOnnx(const NetworkParameters& parameters,
                                       const OnnxOptions& options = {});

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_ONNX_EXPORT_H_
