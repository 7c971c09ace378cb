#include "worker/model/onnx_export.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "evonas/v1/types.pb.h"
#include "onnx/checker.h"
#include "onnx/onnx_pb.h"
#include "onnx/shape_inference/implementation.h"
#include "worker/model/mlp.h"
#include "worker/model/quantize.h"

#ifndef EVONAS_VERSION
#define EVONAS_VERSION "unknown"
#endif

namespace evonas::model {
namespace {

// Builds one GraphProto whose tensors all have one element type.
class GraphBuilder {
 public:
  GraphBuilder(onnx::GraphProto* graph, OnnxDtype dtype)
      : graph_(graph), dtype_(dtype) {}

  int32_t ElementType() const {
    return dtype_ == OnnxDtype::kFloat32 ? onnx::TensorProto::FLOAT
                                         : onnx::TensorProto::DOUBLE;
  }

  // Adds initializer `name` of shape `dims` holding `values`, rounded to
  // float32 for kFloat32. InvalidArgument when a finite value overflows.
  absl::Status AddInitializer(const std::string& name,
                              const std::vector<int64_t>& dims,
                              const std::vector<double>& values) {
    onnx::TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(ElementType());
    for (int64_t d : dims) t->add_dims(d);
    if (dtype_ == OnnxDtype::kFloat64) {
      t->mutable_double_data()->Add(values.begin(), values.end());
      return absl::OkStatus();
    }
    t->mutable_float_data()->Reserve(static_cast<int>(values.size()));
    for (size_t i = 0; i < values.size(); ++i) {
      const float f = static_cast<float>(values[i]);
      if (std::isfinite(values[i]) && !std::isfinite(f)) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, "[", i, "] = ", values[i],
                         " does not fit in float32; export as float64"));
      }
      t->add_float_data(f);
    }
    return absl::OkStatus();
  }

  // Adds int64 initializer `name` (shapes for Reshape): never rounded.
  void AddInt64Initializer(const std::string& name,
                           const std::vector<int64_t>& dims,
                           const std::vector<int64_t>& values) {
    onnx::TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    for (int64_t d : dims) t->add_dims(d);
    t->mutable_int64_data()->Add(values.begin(), values.end());
  }

  // Appends node `op_type` named `output` (its single output).
  onnx::NodeProto* AddNode(const std::string& op_type,
                           const std::vector<std::string>& inputs,
                           const std::string& output) {
    onnx::NodeProto* node = graph_->add_node();
    node->set_op_type(op_type);
    node->set_name(output);
    for (const std::string& in : inputs) node->add_input(in);
    node->add_output(output);
    return node;
  }

  // Declares graph input or output `name` of shape [N, columns].
  void Declare(onnx::ValueInfoProto* value, const std::string& name,
               int64_t columns, const std::string& doc) {
    value->set_name(name);
    value->set_doc_string(doc);
    onnx::TypeProto_Tensor* tensor =
        value->mutable_type()->mutable_tensor_type();
    tensor->set_elem_type(ElementType());
    tensor->mutable_shape()->add_dim()->set_dim_param("N");
    tensor->mutable_shape()->add_dim()->set_dim_value(columns);
  }

 private:
  onnx::GraphProto* graph_;
  OnnxDtype dtype_;
};

void SetInts(onnx::NodeProto* node, const std::string& name,
             const std::vector<int64_t>& values) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}

void SetInt(onnx::NodeProto* node, const std::string& name, int64_t value) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

std::string ColumnDoc(const char* what, int64_t count,
                      const std::vector<std::string>& columns) {
  std::string doc = absl::StrCat(what, ", ", count, " columns");
  if (!columns.empty())
    absl::StrAppend(&doc, ": ", absl::StrJoin(columns, ", "));
  return doc;
}

absl::Status CheckColumns(const char* field,
                          const std::vector<std::string>& columns,
                          int64_t expected) {
  if (columns.empty() || static_cast<int64_t>(columns.size()) == expected) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("OnnxOptions.", field, " has ", columns.size(),
                   " names but the network has ", expected));
}

// Appends the nodes applying `activation` to `in`; returns the output name.
std::string AddActivation(GraphBuilder& b, v1::Activation activation,
                          const std::string& in, const std::string& out) {
  switch (activation) {
    case v1::ACTIVATION_TANH:
      b.AddNode("Tanh", {in}, out);
      break;
    case v1::ACTIVATION_RELU:
      b.AddNode("Relu", {in}, out);
      break;
    case v1::ACTIVATION_SILU:
      // h * sigmoid(h).
      b.AddNode("Sigmoid", {in}, out + "_sigmoid");
      b.AddNode("Mul", {in, out + "_sigmoid"}, out);
      break;
    case v1::ACTIVATION_GELU:
      // (h * 0.5) * (1 + erf(h * (1 / sqrt(2)))), torch's order.
      b.AddNode("Mul", {in, "gelu_half"}, out + "_half");
      b.AddNode("Mul", {in, "gelu_inv_sqrt2"}, out + "_scaled");
      b.AddNode("Erf", {out + "_scaled"}, out + "_erf");
      b.AddNode("Add", {out + "_erf", "gelu_one"}, out + "_erf_plus_one");
      b.AddNode("Mul", {out + "_half", out + "_erf_plus_one"}, out);
      break;
    case v1::ACTIVATION_SINE:
      b.AddNode("Sin", {in}, out);
      break;
    case v1::ACTIVATION_GAUSSIAN:
      // exp(-(h * h)).
      b.AddNode("Mul", {in, in}, out + "_square");
      b.AddNode("Neg", {out + "_square"}, out + "_negated");
      b.AddNode("Exp", {out + "_negated"}, out);
      break;
    default:
      return in;  // the linear output layer
  }
  return out;
}

// Appends layer normalisation of `in` ([N, outputs]) over its neurons, in
// the order of Forward: (in - mean) * (1 / sqrt(var + eps)) * scale + shift.
// Opset 13 has no LayerNormalization (it came with 17), so it is plain
// nodes; OpenCV 4.6 cannot add or subtract an [N, 1] tensor to an [N, n]
// one (it can multiply), so the mean is spread over the row by a Gemm with
// a column of ones (exact: m * 1). `*out` names the result.
absl::Status AddLayerNorm(GraphBuilder& b, const DenseParameters& layer,
                          const std::string& in, const std::string& name,
                          std::string* out) {
  const auto mean_of = [&](const std::string& x, const std::string& mean) {
    onnx::NodeProto* node = b.AddNode("ReduceMean", {x}, mean);
    SetInts(node, "axes", {1});
    SetInt(node, "keepdims", 1);
  };
  EVONAS_RETURN_IF_ERROR(b.AddInitializer(
      name + "_ones", {layer.outputs, 1},
      std::vector<double>(static_cast<size_t>(layer.outputs), 1.0)));
  EVONAS_RETURN_IF_ERROR(
      b.AddInitializer(name + "_eps", {1}, {kLayerNormEpsilon}));
  EVONAS_RETURN_IF_ERROR(
      b.AddInitializer(name + "_scale", {layer.outputs}, layer.ln_scale));
  EVONAS_RETURN_IF_ERROR(
      b.AddInitializer(name + "_shift", {layer.outputs}, layer.ln_shift));
  mean_of(in, name + "_mean");
  SetInt(
      b.AddNode("Gemm", {name + "_mean", name + "_ones"}, name + "_mean_row"),
      "transB", 1);
  b.AddNode("Sub", {in, name + "_mean_row"}, name + "_centered");
  b.AddNode("Mul", {name + "_centered", name + "_centered"}, name + "_squared");
  mean_of(name + "_squared", name + "_var");
  b.AddNode("Add", {name + "_var", name + "_eps"}, name + "_var_eps");
  b.AddNode("Sqrt", {name + "_var_eps"}, name + "_std");
  b.AddNode("Reciprocal", {name + "_std"}, name + "_rstd");
  b.AddNode("Mul", {name + "_centered", name + "_rstd"}, name + "_hat");
  b.AddNode("Mul", {name + "_hat", name + "_scale"}, name + "_scaled");
  b.AddNode("Add", {name + "_scaled", name + "_shift"}, name);
  *out = name;
  return absl::OkStatus();
}

// Appends the convolutional trunk of `p` to the standardised input `in`
// ([N, height * width]); returns the name of its flattened output [N,
// channels * height' * width'], channel-major as Forward flattens it.
// Batch normalisation is folded into the convolution in float64
// (FoldBatchNorm), before any rounding to float32. Runtimes then need no
// BatchNormalization node, and the graph is one Conv per layer as deployed
// CNNs are.
absl::Status AddConvTrunk(GraphBuilder& b, const MlpParameters& p,
                          const std::string& in, std::string* out,
                          bool& has_gelu) {
  b.AddInt64Initializer("image_shape", {4},
                        {-1, 1, p.image_height, p.image_width});
  b.AddNode("Reshape", {in, "image_shape"}, "image");
  std::string h = "image";
  for (size_t i = 0; i < p.conv_layers.size(); ++i) {
    const ConvParameters c = FoldBatchNorm(p.conv_layers[i]);
    const int64_t k = c.kernel_size;
    const std::string w = absl::StrCat("conv", i, "_W");
    const std::string bias_name = absl::StrCat("conv", i, "_b");
    EVONAS_RETURN_IF_ERROR(
        b.AddInitializer(w, {c.out_channels, c.in_channels, k, k}, c.weight));
    EVONAS_RETURN_IF_ERROR(
        b.AddInitializer(bias_name, {c.out_channels}, c.bias));
    const std::string conv = absl::StrCat("conv", i, "_linear");
    onnx::NodeProto* node = b.AddNode("Conv", {h, w, bias_name}, conv);
    SetInts(node, "kernel_shape", {k, k});
    SetInts(node, "pads", {k / 2, k / 2, k / 2, k / 2});
    SetInts(node, "strides", {1, 1});
    std::string next =
        AddActivation(b, c.activation, conv, absl::StrCat("conv", i));
    has_gelu = has_gelu || c.activation == v1::ACTIVATION_GELU;
    if (c.residual) {
      // input + activation, the order of Forward.
      const std::string sum = absl::StrCat("conv", i, "_residual");
      b.AddNode("Add", {h, next}, sum);
      next = sum;
    }
    if (c.pooling != v1::POOLING_NONE) {
      // Kernel 2, stride 2, no padding, floor: an odd last row or column
      // is dropped, as in Forward.
      const std::string pooled = absl::StrCat("conv", i, "_pool");
      onnx::NodeProto* pool =
          b.AddNode(c.pooling == v1::POOLING_MAX ? "MaxPool" : "AveragePool",
                    {next}, pooled);
      SetInts(pool, "kernel_shape", {2, 2});
      SetInts(pool, "strides", {2, 2});
      next = pooled;
    }
    h = next;
  }
  onnx::NodeProto* flatten = b.AddNode("Flatten", {h}, "conv_flat");
  SetInt(flatten, "axis", 1);
  *out = "conv_flat";
  return absl::OkStatus();
}

// Appends stage `k`'s nodes computing its raw output, named `output`, from
// "x". Stage 0 keeps the single-stage names ("W0", "x_mean"); later stages'
// names are prefixed "s<k>_".
absl::Status AddStage(GraphBuilder& b, const MlpParameters& p, size_t k,
                      const std::string& output, bool& has_gelu) {
  const std::string prefix = k == 0 ? "" : absl::StrCat("s", k, "_");
  const auto n = [&prefix](const std::string& name) { return prefix + name; };
  const int64_t inputs = static_cast<int64_t>(p.x_mean.size());
  const int64_t outputs = p.layers.back().outputs;
  EVONAS_RETURN_IF_ERROR(b.AddInitializer(n("x_mean"), {inputs}, p.x_mean));
  EVONAS_RETURN_IF_ERROR(b.AddInitializer(n("x_std"), {inputs}, p.x_std));
  b.AddNode("Sub", {"x", n("x_mean")}, n("x_centered"));
  b.AddNode("Div", {n("x_centered"), n("x_std")}, n("x_standardised"));

  std::string h = n("x_standardised");
  // ValidateNetwork allows a trunk only in a single-stage network, so its
  // names need no stage prefix.
  if (!p.conv_layers.empty()) {
    EVONAS_RETURN_IF_ERROR(AddConvTrunk(b, p, h, &h, has_gelu));
  }
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const DenseParameters& layer = p.layers[i];
    const std::string w = n(absl::StrCat("W", i));
    const std::string bias = n(absl::StrCat("b", i));
    EVONAS_RETURN_IF_ERROR(
        b.AddInitializer(w, {layer.outputs, layer.inputs}, layer.weight));
    EVONAS_RETURN_IF_ERROR(b.AddInitializer(bias, {layer.outputs}, layer.bias));
    const std::string linear = n(absl::StrCat("layer", i, "_linear"));
    onnx::AttributeProto* trans_b =
        b.AddNode("Gemm", {h, w, bias}, linear)->add_attribute();
    trans_b->set_name("transB");
    trans_b->set_type(onnx::AttributeProto::INT);
    trans_b->set_i(1);
    std::string normalised = linear;
    if (layer.layer_norm()) {
      EVONAS_RETURN_IF_ERROR(AddLayerNorm(
          b, layer, linear, n(absl::StrCat("layer", i, "_norm")), &normalised));
    }
    const std::string activated = AddActivation(b, layer.activation, normalised,
                                                n(absl::StrCat("layer", i)));
    if (layer.residual) {
      // input + activation, the order of Forward.
      const std::string sum = n(absl::StrCat("layer", i, "_residual"));
      b.AddNode("Add", {h, activated}, sum);
      h = sum;
    } else {
      h = activated;
    }
    has_gelu = has_gelu || layer.activation == v1::ACTIVATION_GELU;
  }
  EVONAS_RETURN_IF_ERROR(b.AddInitializer(n("y_std"), {outputs}, p.y_std));
  EVONAS_RETURN_IF_ERROR(b.AddInitializer(n("y_mean"), {outputs}, p.y_mean));
  b.AddNode("Mul", {h, n("y_std")}, n("y_scaled"));
  b.AddNode("Add", {n("y_scaled"), n("y_mean")}, output);
  return absl::OkStatus();
}

absl::StatusOr<onnx::ModelProto> BuildModel(const NetworkParameters& network,
                                            const OnnxOptions& options) {
  const MlpParameters& first = network.stages.front();
  const int64_t inputs = static_cast<int64_t>(first.x_mean.size());
  const int64_t outputs = first.layers.back().outputs;
  const bool conv = !first.conv_layers.empty();
  onnx::ModelProto model;
  model.set_ir_version(onnx::IR_VERSION);
  model.set_producer_name("evonas");
  model.set_producer_version(EVONAS_VERSION);
  model.set_doc_string(
      conv ? absl::StrCat("evonas CNN: raw pixels x [N, ", first.image_height,
                          " * ", first.image_width,
                          "] (row-major image) -> raw outputs y [N, outputs]; "
                          "the standardisation is built in")
           : "evonas MLP: raw inputs x [N, inputs] -> raw outputs y [N, "
             "outputs]; the standardisation is built in; the output is the "
             "sum of the stages' outputs");
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  auto add_metadata = [&model](const std::string& key,
                               const std::string& value) {
    onnx::StringStringEntryProto* entry = model.add_metadata_props();
    entry->set_key(key);
    entry->set_value(value);
  };
  add_metadata("evonas_version", EVONAS_VERSION);
  if (!options.dataset_id.empty()) {
    add_metadata("dataset_id", options.dataset_id);
  }

  onnx::GraphProto* graph = model.mutable_graph();
  graph->set_name(conv ? "evonas_cnn" : "evonas_mlp");
  GraphBuilder b(graph, options.dtype);
  b.Declare(graph->add_input(), "x", inputs,
            ColumnDoc("raw inputs", inputs, options.input_columns));
  b.Declare(graph->add_output(), "y", outputs,
            ColumnDoc("raw outputs", outputs, options.output_columns));

  bool has_gelu = false;
  std::string sum;
  const size_t stages = network.stages.size();
  for (size_t k = 0; k < stages; ++k) {
    const std::string out =
        stages == 1 ? "y" : absl::StrCat("y_stage", k);
    EVONAS_RETURN_IF_ERROR(AddStage(b, network.stages[k], k, out, has_gelu));
    if (k == 0) {
      sum = out;
      continue;
    }
    // ((y_0 + y_1) + y_2) + ..., the order of Forward.
    const std::string next =
        k + 1 == stages ? "y" : absl::StrCat("y_sum", k);
    b.AddNode("Add", {sum, out}, next);
    sum = next;
  }
  if (has_gelu) {
    EVONAS_RETURN_IF_ERROR(b.AddInitializer("gelu_half", {1}, {0.5}));
    EVONAS_RETURN_IF_ERROR(
        b.AddInitializer("gelu_inv_sqrt2", {1}, {M_SQRT1_2}));
    EVONAS_RETURN_IF_ERROR(b.AddInitializer("gelu_one", {1}, {1.0}));
  }
  return model;
}

}  // namespace

absl::StatusOr<std::string> ExportOnnx(const NetworkParameters& parameters,
                                       const OnnxOptions& options) {
  EVONAS_RETURN_IF_ERROR(ValidateNetwork(parameters));
  const MlpParameters& first = parameters.stages.front();
  EVONAS_RETURN_IF_ERROR(
      CheckColumns("input_columns", options.input_columns,
                   static_cast<int64_t>(first.x_mean.size())));
  EVONAS_RETURN_IF_ERROR(CheckColumns("output_columns", options.output_columns,
                                      first.layers.back().outputs));
  EVONAS_ASSIGN_OR_RETURN(onnx::ModelProto model,
                          BuildModel(parameters, options));
  try {
    onnx::checker::check_model(model);
    // Strict shape inference with type checks, as onnx.checker's full_check:
    // it also proves that "y" comes out as [N, outputs].
    onnx::ModelProto inferred = model;
    onnx::shape_inference::InferShapes(
        inferred, onnx::OpSchemaRegistry::Instance(),
        onnx::ShapeInferenceOptions(/*check_type_val=*/true,
                                    /*strict_mode_val=*/1));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("exported ONNX model fails the ONNX checker: ", e.what()));
  }
  if (model.ByteSizeLong() > static_cast<size_t>(INT32_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ONNX model would take ", model.ByteSizeLong(),
                     " bytes, more than protobuf's 2 GiB limit"));
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) {
    return absl::InternalError("cannot serialise the ONNX model");
  }
  return bytes;
}

}  // namespace evonas::model
