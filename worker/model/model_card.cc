#include "worker/model/model_card.h"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/genome.h"
#include "common/requirements.h"
#include "common/status_macros.h"
#include "evonas/v1/types.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"
#include "worker/model/mlp.h"

#ifndef EVONAS_VERSION
#define EVONAS_VERSION "unknown"
#endif

namespace evonas::model {
namespace {

// Length of the valid UTF-8 sequence starting at text[i], or 0 when the
// bytes there are not one (RFC 3629: no overlong forms, no surrogates,
// nothing above U+10FFFF).
size_t Utf8SequenceLength(absl::string_view text, size_t i) {
  const auto byte = [&text](size_t k) -> unsigned {
    return k < text.size() ? static_cast<unsigned char>(text[k]) : 0x100;
  };
  const auto in = [](unsigned b, unsigned lo, unsigned hi) {
    return b >= lo && b <= hi;
  };
  const unsigned b0 = byte(i), b1 = byte(i + 1);
  if (b0 < 0x80) return 1;
  if (in(b0, 0xC2, 0xDF)) return in(b1, 0x80, 0xBF) ? 2 : 0;
  unsigned lo = 0x80, hi = 0xBF;
  size_t length = 0;
  if (in(b0, 0xE0, 0xEF)) {
    length = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // U+D800..U+DFFF are surrogates
  } else if (in(b0, 0xF0, 0xF4)) {
    length = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (!in(b1, lo, hi)) return 0;
  for (size_t k = 2; k < length; ++k) {
    if (!in(byte(i + k), 0x80, 0xBF)) return 0;
  }
  return length;
}

// A double as JSON: the shortest text that reads back to the same value;
// protobuf's strings for non-finite values.
std::string JsonNumber(double value) {
  if (std::isnan(value)) return "\"NaN\"";
  if (std::isinf(value)) return value > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  char buffer[64];
  const std::to_chars_result r =
      std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, r.ptr);
}

std::string JsonNumber(int64_t value) { return absl::StrCat(value); }

std::string JsonStrings(const std::vector<std::string>& values) {
  std::vector<std::string> quoted;
  quoted.reserve(values.size());
  for (const std::string& v : values) quoted.push_back(JsonQuote(v));
  return absl::StrCat("[", absl::StrJoin(quoted, ", "), "]");
}

// {"key": value, ...} from already-encoded values; `indent` spaces before
// each member on its own line, or all on one line when `indent` is 0.
class JsonObject {
 public:
  JsonObject& Add(absl::string_view key, std::string json_value) {
    members_.push_back(absl::StrCat(JsonQuote(key), ": ", json_value));
    return *this;
  }
  std::string Finish(int indent = 0) const {
    if (indent == 0)
      return absl::StrCat("{", absl::StrJoin(members_, ", "), "}");
    const std::string pad(indent, ' ');
    return absl::StrCat("{\n", pad, absl::StrJoin(members_, ",\n" + pad),
                        "\n}");
  }

 private:
  std::vector<std::string> members_;
};

absl::StatusOr<std::string> ProtoJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto status =
      google::protobuf::util::MessageToJsonString(m, &json, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot print ", m.GetTypeName(),
                                            " as JSON: ", status.ToString()));
  }
  return json;
}

absl::Status CheckColumns(const char* what,
                          const std::vector<std::string>& columns,
                          int64_t expected) {
  if (columns.empty() || static_cast<int64_t>(columns.size()) == expected) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("model card: ", columns.size(), " ", what,
                   " column names for a network with ", expected));
}

// Whether `metrics` meet the requirements that `select` copies from `all`
// into a Requirements of their own, as Assess decides it.
template <typename Select>
bool Met(const v1::Requirements& all, const v1::Metrics& metrics,
         JudgedRows rows, Select select) {
  v1::Requirements one;
  select(all, one);
  return Assess(one, metrics, rows).feasible;
}

std::string Requirement(absl::string_view name, std::string limit,
                        std::string achieved, bool met,
                        const char* extra_key = nullptr,
                        std::string extra_value = "") {
  JsonObject entry;
  entry.Add("name", JsonQuote(name)).Add("limit", std::move(limit));
  if (extra_key != nullptr) entry.Add(extra_key, std::move(extra_value));
  entry.Add("achieved", std::move(achieved)).Add("met", met ? "true" : "false");
  return entry.Finish();
}

std::vector<std::string> RequirementEntries(const v1::Requirements& r,
                                            const v1::Metrics& m,
                                            JudgedRows rows) {
  const v1::Evaluation& judged = JudgedEvaluation(m, rows);
  std::vector<std::string> entries;
  if (r.has_max_abs_error()) {
    entries.push_back(Requirement("max_abs_error",
                                  JsonNumber(r.max_abs_error()),
                                  JsonNumber(judged.max_abs_error()),
                                  Met(r, m, rows, [](const auto& a, auto& b) {
                                    b.set_max_abs_error(a.max_abs_error());
                                  })));
  }
  if (r.has_min_fraction_within()) {
    entries.push_back(
        Requirement("min_fraction_within", JsonNumber(r.min_fraction_within()),
                    JsonNumber(judged.fraction_within()),
                    Met(r, m, rows,
                        [](const auto& a, auto& b) {
                          b.set_min_fraction_within(a.min_fraction_within());
                          b.set_within_tolerance(a.within_tolerance());
                        }),
                    "within_tolerance", JsonNumber(r.within_tolerance())));
  }
  if (r.has_min_accuracy()) {
    entries.push_back(Requirement(
        "min_accuracy", JsonNumber(r.min_accuracy()),
        JsonNumber(judged.accuracy()),
        Met(r, m, rows, [](const auto& a, auto& b) {
          b.set_min_accuracy(a.min_accuracy());
        })));
  }
  if (r.has_max_parameters()) {
    entries.push_back(Requirement(
        "max_parameters", JsonNumber(r.max_parameters()),
        JsonNumber(m.parameter_count()), Met(r, m, rows, [](const auto& a, auto& b) {
          b.set_max_parameters(a.max_parameters());
        })));
  }
  if (r.has_max_model_bytes()) {
    entries.push_back(Requirement(
        "max_model_bytes", JsonNumber(r.max_model_bytes()),
        JsonNumber(m.model_bytes()), Met(r, m, rows, [](const auto& a, auto& b) {
          b.set_max_model_bytes(a.max_model_bytes());
        })));
  }
  if (r.has_max_training_seconds()) {
    // Met by construction when training stopped at the limit: say so.
    entries.push_back(Requirement(
        "max_training_seconds", JsonNumber(r.max_training_seconds()),
        JsonNumber(m.training_seconds()),
        Met(r, m, rows,
            [](const auto& a, auto& b) {
              b.set_max_training_seconds(a.max_training_seconds());
            }),
        m.stopped_at_time_limit() ? "stopped_at_limit" : nullptr,
        m.stopped_at_time_limit() ? "true" : ""));
  }
  if (r.has_max_inference_latency_seconds()) {
    entries.push_back(Requirement("max_inference_latency_seconds",
                                  JsonNumber(r.max_inference_latency_seconds()),
                                  JsonNumber(m.inference_latency_seconds()),
                                  Met(r, m, rows, [](const auto& a, auto& b) {
                                    b.set_max_inference_latency_seconds(
                                        a.max_inference_latency_seconds());
                                  })));
  }
  return entries;
}

// The JSON array of a stage's layers.
std::string LayersJson(const MlpParameters& p) {
  std::vector<std::string> layers;
  for (const DenseParameters& layer : p.layers) {
    const std::string activation =
        layer.activation == v1::ACTIVATION_UNSPECIFIED
            ? "linear"
            : ActivationName(layer.activation);
    layers.push_back(
        JsonObject()
            .Add("inputs", JsonNumber(layer.inputs))
            .Add("outputs", JsonNumber(layer.outputs))
            .Add("activation", JsonQuote(activation))
            .Add("residual", layer.residual ? "true" : "false")
            .Add("layer_norm", layer.layer_norm() ? "true" : "false")
            .Finish());
  }
  return absl::StrCat("[", absl::StrJoin(layers, ", "), "]");
}

const char* PoolingName(v1::Pooling pooling) {
  switch (pooling) {
    case v1::POOLING_NONE:
      return "none";
    case v1::POOLING_MAX:
      return "max";
    case v1::POOLING_AVERAGE:
      return "average";
    default:
      return "unknown";
  }
}

// The JSON array of a stage's convolutional layers, in order.
std::string ConvLayersJson(const MlpParameters& p) {
  std::vector<std::string> layers;
  for (const ConvParameters& c : p.conv_layers) {
    layers.push_back(
        JsonObject()
            .Add("in_channels", JsonNumber(c.in_channels))
            .Add("out_channels", JsonNumber(c.out_channels))
            .Add("kernel_size", JsonNumber(c.kernel_size))
            .Add("activation", JsonQuote(ActivationName(c.activation)))
            .Add("batch_norm", c.batch_norm ? "true" : "false")
            .Add("pooling", JsonQuote(PoolingName(c.pooling)))
            .Add("dropout", JsonNumber(c.dropout))
            .Add("residual", c.residual ? "true" : "false")
            .Finish());
  }
  return absl::StrCat("[", absl::StrJoin(layers, ", "), "]");
}

// "layers" describes the first stage; "stages" lists every stage's layers
// and parameter count. A convolutional network (always one stage) also has
// "image" and "conv_layers", in the order they run: before "layers".
std::string Architecture(const NetworkParameters& network,
                         const v1::Genome& genome) {
  const MlpParameters& first = network.stages.front();
  std::vector<std::string> stages;
  for (const MlpParameters& stage : network.stages) {
    stages.push_back(JsonObject()
                         .Add("parameter_count",
                              JsonNumber(ParameterCount(stage)))
                         .Add("layers", LayersJson(stage))
                         .Finish());
  }
  const bool conv = !first.conv_layers.empty();
  JsonObject architecture;
  architecture.Add("kind", JsonQuote(conv ? "cnn" : "mlp"))
      .Add("precision",
           JsonQuote(ComputesInFloat32(first) ? "float32" : "float64"))
      .Add("description", JsonQuote(DescribeGenome(genome)))
      .Add("inputs", JsonNumber(static_cast<int64_t>(first.x_mean.size())))
      .Add("outputs", JsonNumber(first.layers.back().outputs))
      .Add("parameter_count", JsonNumber(ParameterCount(network)));
  if (conv) {
    architecture
        .Add("image", JsonObject()
                          .Add("height", JsonNumber(first.image_height))
                          .Add("width", JsonNumber(first.image_width))
                          .Add("channels", "1")
                          .Finish())
        .Add("conv_layers", ConvLayersJson(first));
  }
  architecture.Add("layers", LayersJson(first))
      .Add("stages", absl::StrCat("[", absl::StrJoin(stages, ", "), "]"))
      .Add("standardisation",
           JsonQuote(conv ? "built into the exported models: the pixels x "
                            "(the image row by row) become (x - x_mean) / "
                            "x_std, one value per pixel, and the output o "
                            "becomes o * y_std + y_mean"
                          : "built into the exported models: each stage sees "
                            "(x - x_mean) / x_std and its output o becomes "
                            "o * y_std + y_mean; the network's output is the "
                            "sum of the stages' outputs"));
  return architecture.Finish();
}

}  // namespace

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  out.reserve(text.size() + 2);
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const size_t length = Utf8SequenceLength(text, i);
    if (length == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (length > 1) {
      out.append(text.data() + i, length);
      i += length;
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
  return out;
}

absl::StatusOr<std::string> ModelCardJson(
    const NetworkParameters& parameters, const v1::Genome& genome,
    const v1::Metrics& metrics, const v1::Requirements& requirements,
    const std::string& dataset_id,
    const std::vector<std::string>& input_columns,
    const std::vector<std::string>& output_columns, JudgedRows judged_rows) {
  EVONAS_RETURN_IF_ERROR(ValidateNetwork(parameters));
  const MlpParameters& first = parameters.stages.front();
  EVONAS_RETURN_IF_ERROR(CheckColumns(
      "input", input_columns, static_cast<int64_t>(first.x_mean.size())));
  EVONAS_RETURN_IF_ERROR(
      CheckColumns("output", output_columns, first.layers.back().outputs));
  EVONAS_ASSIGN_OR_RETURN(std::string genome_json, ProtoJson(genome));
  EVONAS_ASSIGN_OR_RETURN(std::string metrics_json, ProtoJson(metrics));
  const Assessment assessment = Assess(requirements, metrics, judged_rows);
  const std::vector<std::string> entries =
      RequirementEntries(requirements, metrics, judged_rows);

  JsonObject card;
  card.Add("model_card_version", "1")
      .Add("producer", JsonQuote(absl::StrCat("evonas ", EVONAS_VERSION)))
      .Add("dataset_id", JsonQuote(dataset_id))
      .Add("input_columns", JsonStrings(input_columns))
      .Add("output_columns", JsonStrings(output_columns))
      .Add("architecture", Architecture(parameters, genome))
      .Add("genome", std::move(genome_json))
      .Add("metrics", std::move(metrics_json))
      .Add("judged_on", JsonQuote(JudgedRowsName(judged_rows)))
      .Add("requirements",
           entries.empty()
               ? "[]"
               : absl::StrCat("[\n    ", absl::StrJoin(entries, ",\n    "),
                              "\n  ]"))
      .Add("feasible", assessment.feasible ? "true" : "false")
      .Add("violations", JsonStrings(assessment.violations));
  return absl::StrCat(card.Finish(/*indent=*/2), "\n");
}

}  // namespace evonas::model
