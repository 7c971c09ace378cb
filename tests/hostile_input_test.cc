// Hostile input: the production gRPC services over a real Controller (a
// temporary SQLite file and blob directory), served on a loopback port and
// fed malformed, oversized, forged and interrupted requests through real
// stubs. Every case asserts the status code, a message a person can act on,
// and that the database did not change: the row count of every table, PRAGMA
// integrity_check, every data set, experiment and candidate as the API shows
// them, and the set of blobs are compared before and after. The server is
// shut down before the comparison, which waits for every handler to return,
// so a handler still working on a cancelled call cannot change anything
// afterwards.
//
// The services are served as in production, behind the token and tenant
// checks of server/auth: the cases' stubs carry tenant acme's client token
// and a worker token, and the token cases use others. TLS is not covered
// here (tests/e2e_test.cc runs over TLS). A garbage genome is not covered: no RPC
// lets a client or worker set one (candidates' genomes come from the
// controller's own search; the search space is bounded and tested here).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/channel.h"
#include "common/genome.h"
#include "common/sha256.h"
#include "evonas/v1/evonas_service.grpc.pb.h"
#include "evonas/v1/worker_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/auth/authorized_services.h"
#include "server/auth/tokens.h"
#include "server/controller.h"
#include "server/grpc_services.h"
#include "server/testing_checkpoint.h"

namespace evonas {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr size_t kMiB = size_t{1} << 20;
// Limits of the controller under test: small, so that exceeding them is
// cheap, but above the ~7 MB of the million-column header.
constexpr int64_t kMaxUploadBytes = 8 * kMiB;
constexpr int64_t kMaxModelBytes = kMiB;
// gRPC's default receive limit, which the controller keeps.
constexpr size_t kGrpcReceiveLimit = 4 * kMiB;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

constexpr char kCsv[] =
    "x1,x2,y\n"
    "0,0,0\n0,1,1\n1,0,1\n1,1,2\n2,0,2\n0,2,2\n2,2,4\n3,0,3\n0,3,3\n3,3,6\n"
    "4,0,4\n0,4,4\n4,4,8\n5,0,5\n0,5,5\n5,5,10\n6,0,6\n0,6,6\n6,6,12\n7,7,14\n";

void SetDeadline(grpc::ClientContext& context) {
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(60));
}

// What the cases may use: stubs to the server under test and the ids of the
// objects the fixture created.
struct World {
  v1::EvonasService::Stub* client = nullptr;
  v1::WorkerService::Stub* worker = nullptr;
  std::string dataset_id;
  std::string experiment_id;            // RUNNING, budget 100 candidates
  std::string cancelled_experiment_id;  // CANCELLED
  v1::Lease lease_a;     // held by "worker-a"
  v1::Lease lease_b;     // held by "worker-b"
  v1::Lease lease_done;  // reported by "worker-done": SUCCEEDED
  // `client` carries tenant acme's token (acme owns everything above) and
  // `worker` a worker token. These make stubs with any token ("" for none).
  std::function<std::unique_ptr<v1::EvonasService::Stub>(const std::string&)>
      client_as;
  std::function<std::unique_ptr<v1::WorkerService::Stub>(const std::string&)>
      worker_as;
  std::string acme_token;
  std::string beta_token;  // another tenant, which owns nothing
  std::string worker_token;
  std::string revoked_token;  // was acme's
  std::string expired_token;  // acme's, for one second in 1970
};

// ------------------------------------------------------------ data sets

// Sends `messages` as one upload; cancels instead of closing when `cancel`.
grpc::Status SendUpload(v1::EvonasService::Stub& stub,
                        const std::vector<v1::UploadDatasetRequest>& messages,
                        v1::Dataset* dataset = nullptr, bool cancel = false) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::Dataset response;
  auto writer = stub.UploadDataset(&context, &response);
  for (const v1::UploadDatasetRequest& message : messages) {
    if (!writer->Write(message)) break;  // the server has answered already
  }
  if (cancel) {
    context.TryCancel();
  } else {
    writer->WritesDone();
  }
  grpc::Status status = writer->Finish();
  if (dataset != nullptr) *dataset = response;
  return status;
}

// The messages of an upload of `csv`: metadata with `declared_size`, then
// chunks of `chunk_bytes` (the first one in the metadata message).
std::vector<v1::UploadDatasetRequest> UploadMessages(
    const std::string& csv, int64_t declared_size = 0,
    size_t chunk_bytes = kMiB) {
  std::vector<v1::UploadDatasetRequest> messages(1);
  messages[0].mutable_metadata()->set_name("data.csv");
  messages[0].mutable_metadata()->set_size_bytes(declared_size);
  for (size_t offset = 0; offset < csv.size(); offset += chunk_bytes) {
    if (offset > 0) messages.emplace_back();
    messages.back().set_chunk(csv.substr(offset, chunk_bytes));
  }
  return messages;
}

// Like UploadMessages, but every chunk ends at a line end, so that every
// prefix of whole chunks is itself a valid CSV when `csv` is.
std::vector<v1::UploadDatasetRequest> UploadMessagesAtLineEnds(
    const std::string& csv) {
  std::vector<v1::UploadDatasetRequest> messages(1);
  messages[0].mutable_metadata()->set_name("data.csv");
  size_t offset = 0;
  while (offset < csv.size()) {
    size_t end = csv.rfind('\n', std::min(offset + kMiB, csv.size()) - 1) + 1;
    if (offset > 0) messages.emplace_back();
    messages.back().set_chunk(csv.substr(offset, end - offset));
    offset = end;
  }
  return messages;
}

grpc::Status UploadCsv(World& w, const std::string& csv,
                       v1::Dataset* dataset = nullptr) {
  return SendUpload(*w.client, UploadMessages(csv), dataset);
}

// A case that uploads `csv` and expects it refused.
std::function<grpc::Status(World&)> Upload(std::string csv) {
  return [csv](World& w) { return UploadCsv(w, csv); };
}

// "a,b\n0,1\n1,2\n..." of about `bytes` bytes: valid, so that any prefix
// of it that ends in a digit is valid too.
std::string ValidCsvOfSize(size_t bytes) {
  std::string csv = "a,b\n";
  for (int64_t i = 0; csv.size() < bytes; ++i) {
    absl::StrAppend(&csv, i, ",", i + 1, "\n");
  }
  return csv;
}

// An IDX data set as stored (images file, then labels file): `count` images
// of height x width and `label_count` labels, under the given magic numbers.
std::string Idx(uint32_t count, uint32_t height, uint32_t width,
                uint32_t label_count, uint32_t images_magic = 0x803,
                uint32_t labels_magic = 0x801) {
  const auto big_endian = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  std::string images = big_endian(images_magic) + big_endian(count) +
                       big_endian(height) + big_endian(width) +
                       std::string(size_t{count} * height * width, '\x7f');
  std::string labels = big_endian(labels_magic) + big_endian(label_count) +
                       std::string(label_count, '\x03');
  return images + labels;
}

// The header of an images file that announces `count` images of height x
// width, with nothing after it.
std::string IdxHeader(uint32_t count, uint32_t height, uint32_t width) {
  return Idx(0, 0, 0, 0).substr(0, 4) + Idx(count, 0, 0, 0).substr(4, 4) +
         Idx(0, height, 0, 0).substr(8, 4) + Idx(0, 0, width, 0).substr(12, 4);
}

grpc::Status UploadWithFormat(World& w, const std::string& bytes,
                              v1::DatasetFormat format,
                              v1::Dataset* dataset = nullptr) {
  auto messages = UploadMessages(bytes, static_cast<int64_t>(bytes.size()));
  messages[0].mutable_metadata()->set_name("images.idx");
  messages[0].mutable_metadata()->set_format(format);
  return SendUpload(*w.client, messages, dataset);
}

// A case that uploads `bytes` as IDX and expects it refused.
std::function<grpc::Status(World&)> UploadIdx(std::string bytes) {
  return [bytes](World& w) {
    return UploadWithFormat(w, bytes, v1::DATASET_FORMAT_IDX);
  };
}

// ------------------------------------------------------------ experiments

v1::ExperimentSpec BaseSpec(const World& w) {
  v1::ExperimentSpec spec;
  spec.set_name("hostile");
  spec.set_dataset_id(w.dataset_id);
  spec.add_input_columns("x1");
  spec.add_input_columns("x2");
  spec.add_output_columns("y");
  spec.mutable_budget()->set_max_candidates(100);
  spec.set_seed(3);
  v1::SearchSpace* space = spec.mutable_search_space();
  space->set_min_depth(1);
  space->set_max_depth(2);
  space->set_min_width(4);
  space->set_max_width(8);
  space->set_min_adam_steps(50);
  space->set_max_adam_steps(100);
  space->set_lbfgs_steps(10);
  return spec;
}

grpc::Status CreateExperiment(World& w, const v1::ExperimentSpec& spec,
                              v1::Experiment* experiment = nullptr) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::CreateExperimentRequest request;
  *request.mutable_spec() = spec;
  v1::Experiment response;
  grpc::Status status = w.client->CreateExperiment(&context, request, &response);
  if (experiment != nullptr) *experiment = response;
  return status;
}

// A case that creates an experiment from BaseSpec changed by `mutate`.
std::function<grpc::Status(World&)> Create(
    std::function<void(v1::ExperimentSpec&)> mutate) {
  return [mutate](World& w) {
    v1::ExperimentSpec spec = BaseSpec(w);
    mutate(spec);
    return CreateExperiment(w, spec);
  };
}

// Calls a unary client RPC with a request built by `fill`.
template <typename Request, typename Response, typename Method>
std::function<grpc::Status(World&)> Unary(
    Method method, std::function<void(const World&, Request&)> fill) {
  return [method, fill](World& w) {
    grpc::ClientContext context;
    SetDeadline(context);
    Request request;
    fill(w, request);
    Response response;
    return ((*w.client).*method)(&context, request, &response);
  };
}

// Reads a server stream (DownloadModel, FetchDataset) to its end.
template <typename Response, typename Reader>
grpc::Status Drain(std::unique_ptr<Reader> reader) {
  Response response;
  while (reader->Read(&response)) {
  }
  return reader->Finish();
}

std::function<grpc::Status(World&)> Download(
    std::function<std::string(const World&)> candidate_id,
    v1::ModelFormat format = v1::MODEL_FORMAT_UNSPECIFIED) {
  return [candidate_id, format](World& w) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::DownloadModelRequest request;
    request.set_candidate_id(candidate_id(w));
    request.set_format(format);
    return Drain<v1::DownloadModelResponse>(
        w.client->DownloadModel(&context, request));
  };
}

// ------------------------------------------------------------ workers

// A report for `lease` by `worker_id` that passes every check.
v1::WorkResult GoodResult(const v1::Lease& lease, const std::string& worker_id,
                          const std::string& model) {
  v1::WorkResult result;
  result.set_worker_id(worker_id);
  result.set_lease_id(lease.lease_id());
  v1::Metrics* m = result.mutable_metrics();
  m->mutable_validation()->set_row_count(4);
  m->mutable_validation()->set_max_abs_error(0.01);
  m->mutable_validation()->set_fraction_within(0.5);
  m->mutable_validation()->set_rmse(0.005);
  m->mutable_validation()->set_mae(0.004);
  m->set_parameter_count(ParameterCount(lease.genome(), 2, 1));
  m->set_model_bytes(static_cast<int64_t>(model.size()));
  m->set_training_seconds(1.0);
  m->set_inference_latency_seconds(1e-4);
  m->set_training_row_count(16);
  result.set_model_size_bytes(static_cast<int64_t>(model.size()));
  result.set_model_sha256(Sha256Hex(model));
  return result;
}

std::string ModelOf(const v1::Lease& lease) {
  return "torchscript-of-" + lease.candidate_id();
}

// Sends `result` followed by `chunks` as one report; cancels instead of
// closing when `cancel`.
grpc::Status SendReport(v1::WorkerService::Stub& stub,
                        const v1::WorkResult& result,
                        const std::vector<std::string>& chunks,
                        bool cancel = false) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::ReportResultResponse response;
  auto writer = stub.ReportResult(&context, &response);
  v1::ReportResultRequest first;
  *first.mutable_result() = result;
  bool sent = writer->Write(first);
  for (size_t i = 0; sent && i < chunks.size(); ++i) {
    v1::ReportResultRequest chunk;
    chunk.set_model_chunk(chunks[i]);
    sent = writer->Write(chunk);
  }
  if (cancel) {
    context.TryCancel();
  } else {
    writer->WritesDone();
  }
  return writer->Finish();
}

// A case that reports worker-a's lease with a good result changed by
// `forge`; the model sent is `model` (default: the declared one).
std::function<grpc::Status(World&)> Forge(
    std::function<void(v1::WorkResult&, std::string& model)> forge) {
  return [forge](World& w) {
    std::string model = ModelOf(w.lease_a);
    v1::WorkResult result = GoodResult(w.lease_a, "worker-a", model);
    forge(result, model);
    std::vector<std::string> chunks;
    if (!model.empty()) chunks.push_back(model);
    return SendReport(*w.worker, result, chunks);
  };
}

// A case that reports worker-a's lease with a good result plus the files
// `artifacts` (declared as `forge` leaves them), e.g. an ONNX file.
std::function<grpc::Status(World&)> ForgeArtifacts(
    std::vector<std::pair<v1::ModelFormat, std::string>> artifacts,
    std::function<void(v1::WorkResult&)> forge) {
  return [artifacts, forge](World& w) {
    const std::string model = ModelOf(w.lease_a);
    v1::WorkResult result = GoodResult(w.lease_a, "worker-a", model);
    std::vector<std::string> chunks = {model};
    for (const auto& [format, bytes] : artifacts) {
      v1::Artifact* artifact = result.add_artifacts();
      artifact->set_format(format);
      artifact->set_size_bytes(static_cast<int64_t>(bytes.size()));
      artifact->set_sha256(Sha256Hex(bytes));
      chunks.push_back(bytes);
    }
    forge(result);
    return SendReport(*w.worker, result, chunks);
  };
}

grpc::Status Heartbeat(World& w, const std::string& worker_id,
                       const std::string& lease_id) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::HeartbeatRequest request;
  request.set_worker_id(worker_id);
  request.set_lease_id(lease_id);
  v1::HeartbeatResponse response;
  return w.worker->Heartbeat(&context, request, &response);
}

grpc::Status LeaseWork(World& w, const std::string& worker_id,
                       v1::LeaseWorkResponse* response) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::LeaseWorkRequest request;
  request.set_worker_id(worker_id);
  return w.worker->LeaseWork(&context, request, response);
}

// A case that reports worker-a's lease with a good result and a
// MODEL_FORMAT_CHECKPOINT file: `checkpoint` makes its bytes from the
// leased genome.
std::function<grpc::Status(World&)> ForgeCheckpoint(
    std::function<std::string(const v1::Genome&)> checkpoint,
    std::function<void(v1::WorkResult&)> forge = [](v1::WorkResult&) {}) {
  return [checkpoint, forge](World& w) {
    const std::string model = ModelOf(w.lease_a);
    const std::string bytes = checkpoint(w.lease_a.genome());
    v1::WorkResult result = GoodResult(w.lease_a, "worker-a", model);
    v1::Artifact* artifact = result.add_artifacts();
    artifact->set_format(v1::MODEL_FORMAT_CHECKPOINT);
    artifact->set_size_bytes(static_cast<int64_t>(bytes.size()));
    artifact->set_sha256(Sha256Hex(bytes));
    forge(result);
    return SendReport(*w.worker, result, {model, bytes});
  };
}

// Checkpoint bytes of the leased genome's shapes changed by `forge`.
std::function<std::string(const v1::Genome&)> CheckpointOf(
    std::function<void(v1::NetworkWeights&)> forge) {
  return [forge](const v1::Genome& genome) {
    v1::NetworkWeights weights = testing::CheckpointWeights(genome, 2, 1);
    forge(weights);
    return weights.SerializeAsString();
  };
}

grpc::Status FetchCheckpoint(World& w, const std::string& worker_id,
                             const std::string& lease_id) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::FetchCheckpointRequest request;
  request.set_worker_id(worker_id);
  request.set_lease_id(lease_id);
  return Drain<v1::FetchCheckpointResponse>(
      w.worker->FetchCheckpoint(&context, request));
}

// ------------------------------------------------------------ the table

struct Case {
  std::string name;
  std::function<grpc::Status(World&)> run;
  grpc::StatusCode code;
  // Must appear in the status message.
  std::string message;
  // Data sets the case adds (an accepted upload); otherwise nothing at all
  // may change.
  int64_t new_datasets = 0;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

using Code = grpc::StatusCode;

// ------------------------------------------------------------ tokens

// Calls ListExperiments with the token `token` and, if given, a raw
// authorization header instead.
std::function<grpc::Status(World&)> ListExperimentsWith(
    std::function<std::string(const World&)> token,
    std::string raw_header = "") {
  return [token, raw_header](World& w) {
    auto stub = w.client_as(token(w));
    grpc::ClientContext context;
    SetDeadline(context);
    if (!raw_header.empty()) context.AddMetadata("authorization", raw_header);
    v1::ListExperimentsResponse response;
    return stub->ListExperiments(&context, v1::ListExperimentsRequest(),
                                 &response);
  };
}

// A call by tenant beta on the id of one of acme's objects.
using TenantCall = std::function<grpc::Status(
    const World&, v1::EvonasService::Stub&, const std::string& id)>;

// Runs `call` as tenant beta on acme's object `id(w)` and on an id that
// exists nowhere. Returns the first answer if the two are the same but for
// the id (so that beta cannot tell acme's object from a missing one), else
// INTERNAL describing the difference.
std::function<grpc::Status(World&)> AsOtherTenant(
    std::function<std::string(const World&)> id, TenantCall call) {
  return [id, call](World& w) {
    auto beta = w.client_as(w.beta_token);
    const std::string foreign = id(w);
    const std::string absent = foreign + "0";
    const grpc::Status seen = call(w, *beta, foreign);
    const grpc::Status missing = call(w, *beta, absent);
    std::string expected = missing.error_message();
    const size_t at = expected.find(absent);
    if (at != std::string::npos) expected.replace(at, absent.size(), foreign);
    if (seen.error_code() != missing.error_code() ||
        seen.error_message() != expected) {
      return grpc::Status(
          grpc::StatusCode::INTERNAL,
          absl::StrCat("another tenant's id is answered differently (",
                       seen.error_code(), " \"", seen.error_message(),
                       "\") from a missing one (", missing.error_code(), " \"",
                       missing.error_message(), "\")"));
    }
    return seen;
  };
}

// A unary call of `method` with the request's id field set by `set_id`.
template <typename Request, typename Response, typename Method>
TenantCall UnaryById(Method method,
                     std::function<void(Request&, const std::string&)> set_id) {
  return [method, set_id](const World&, v1::EvonasService::Stub& stub,
                          const std::string& id) {
    grpc::ClientContext context;
    SetDeadline(context);
    Request request;
    set_id(request, id);
    Response response;
    return (stub.*method)(&context, request, &response);
  };
}

std::string AcmeExperiment(const World& w) { return w.experiment_id; }
std::string AcmeCandidate(const World& w) {
  return w.lease_done.candidate_id();
}

std::vector<Case> TokenCases() {
  using Svc = v1::EvonasService::Stub;
  auto set_experiment = [](auto& r, const std::string& id) {
    r.set_experiment_id(id);
  };
  return {
      {"TokenMissing", ListExperimentsWith([](const World&) { return ""; }),
       Code::UNAUTHENTICATED,
       "this call needs a bearer token: send metadata \"authorization: "
       "Bearer TOKEN\""},
      {"TokenMissingOnUpload",
       [](World& w) {
         return SendUpload(*w.client_as(""), UploadMessages("a,b\n1,2\n"));
       },
       Code::UNAUTHENTICATED, "this call needs a bearer token"},
      {"TokenNotBearer",
       ListExperimentsWith([](const World&) { return ""; },
                           "Basic dXNlcjpwYXNz"),
       Code::UNAUTHENTICATED,
       "the authorization metadata must be \"Bearer TOKEN\""},
      {"TokenUnknown",
       ListExperimentsWith([](const World&) { return "evonas_0123456789"; }),
       Code::UNAUTHENTICATED, "unknown token: check $EVONAS_TOKEN"},
      {"TokenRevoked",
       ListExperimentsWith([](const World& w) { return w.revoked_token; }),
       Code::UNAUTHENTICATED, "was revoked; ask the controller's admin"},
      {"TokenExpired",
       ListExperimentsWith([](const World& w) { return w.expired_token; }),
       Code::UNAUTHENTICATED, "expired at 1970-01-01T00:00:01"},
      {"TokenWorkerOnClientRpc",
       [](World& w) {
         grpc::ClientContext context;
         SetDeadline(context);
         v1::CancelExperimentRequest request;
         request.set_experiment_id(w.experiment_id);
         v1::Experiment response;
         return w.client_as(w.worker_token)
             ->CancelExperiment(&context, request, &response);
       },
       Code::PERMISSION_DENIED,
       "a worker token cannot call evonas.v1.EvonasService"},
      {"TokenClientOnWorkerRpc",
       [](World& w) {
         grpc::ClientContext context;
         SetDeadline(context);
         v1::LeaseWorkRequest request;
         request.set_worker_id("intruder");
         v1::LeaseWorkResponse response;
         return w.worker_as(w.acme_token)
             ->LeaseWork(&context, request, &response);
       },
       Code::PERMISSION_DENIED,
       "a client token cannot call evonas.v1.WorkerService"},
      {"TokenMissingOnReport",
       [](World& w) {
         const std::string model = ModelOf(w.lease_a);
         return SendReport(*w.worker_as(""),
                           GoodResult(w.lease_a, "worker-a", model), {model});
       },
       Code::UNAUTHENTICATED, "this call needs a bearer token"},
      {"TokenMissingOnFetchDataset",
       [](World& w) {
         grpc::ClientContext context;
         SetDeadline(context);
         v1::FetchDatasetRequest request;
         request.set_dataset_id(w.dataset_id);
         return Drain<v1::FetchDatasetResponse>(
             w.worker_as("")->FetchDataset(&context, request));
       },
       Code::UNAUTHENTICATED, "this call needs a bearer token"},

      // Another tenant's objects: NOT_FOUND, worded as for a missing id.
      {"OtherTenantGetExperiment",
       AsOtherTenant(AcmeExperiment,
                     UnaryById<v1::GetExperimentRequest, v1::Experiment>(
                         &Svc::GetExperiment, set_experiment)),
       Code::NOT_FOUND, "no experiment exp-"},
      {"OtherTenantCancelExperiment",
       AsOtherTenant(AcmeExperiment,
                     UnaryById<v1::CancelExperimentRequest, v1::Experiment>(
                         &Svc::CancelExperiment, set_experiment)),
       Code::NOT_FOUND, "no experiment exp-"},
      {"OtherTenantListCandidates",
       AsOtherTenant(
           AcmeExperiment,
           UnaryById<v1::ListCandidatesRequest, v1::ListCandidatesResponse>(
               &Svc::ListCandidates, set_experiment)),
       Code::NOT_FOUND, "no experiment exp-"},
      {"OtherTenantGetParetoFront",
       AsOtherTenant(AcmeExperiment,
                     UnaryById<v1::GetParetoFrontRequest, v1::ParetoFront>(
                         &Svc::GetParetoFront, set_experiment)),
       Code::NOT_FOUND, "no experiment exp-"},
      {"OtherTenantWatchExperiment",
       AsOtherTenant(AcmeExperiment,
                     [](const World&, Svc& stub, const std::string& id) {
                       grpc::ClientContext context;
                       SetDeadline(context);
                       v1::WatchExperimentRequest request;
                       request.set_experiment_id(id);
                       return Drain<v1::Experiment>(
                           stub.WatchExperiment(&context, request));
                     }),
       Code::NOT_FOUND, "no experiment exp-"},
      {"OtherTenantGetDataset",
       AsOtherTenant([](const World& w) { return w.dataset_id; },
                     UnaryById<v1::GetDatasetRequest, v1::Dataset>(
                         &Svc::GetDataset,
                         [](auto& r, const std::string& id) {
                           r.set_dataset_id(id);
                         })),
       Code::NOT_FOUND, "no data set "},
      {"OtherTenantExperimentOnDataset",
       AsOtherTenant([](const World& w) { return w.dataset_id; },
                     [](const World& w, Svc& stub, const std::string& id) {
                       grpc::ClientContext context;
                       SetDeadline(context);
                       v1::CreateExperimentRequest request;
                       *request.mutable_spec() = BaseSpec(w);
                       request.mutable_spec()->set_dataset_id(id);
                       v1::Experiment response;
                       return stub.CreateExperiment(&context, request,
                                                    &response);
                     }),
       Code::NOT_FOUND, "; upload it first"},
      {"OtherTenantGetCandidate",
       AsOtherTenant(AcmeCandidate,
                     UnaryById<v1::GetCandidateRequest, v1::Candidate>(
                         &Svc::GetCandidate,
                         [](auto& r, const std::string& id) {
                           r.set_candidate_id(id);
                         })),
       Code::NOT_FOUND, "no candidate exp-"},
      {"OtherTenantDownloadModel",
       AsOtherTenant(AcmeCandidate,
                     [](const World&, Svc& stub, const std::string& id) {
                       grpc::ClientContext context;
                       SetDeadline(context);
                       v1::DownloadModelRequest request;
                       request.set_candidate_id(id);
                       return Drain<v1::DownloadModelResponse>(
                           stub.DownloadModel(&context, request));
                     }),
       Code::NOT_FOUND, "no candidate exp-"},
      {"OtherTenantListsNothing",
       [](World& w) {
         auto beta = w.client_as(w.beta_token);
         grpc::ClientContext experiments_context, datasets_context;
         SetDeadline(experiments_context);
         SetDeadline(datasets_context);
         v1::ListExperimentsResponse experiments;
         v1::ListDatasetsResponse datasets;
         grpc::Status status = beta->ListExperiments(
             &experiments_context, v1::ListExperimentsRequest(), &experiments);
         if (!status.ok()) return status;
         status = beta->ListDatasets(&datasets_context,
                                     v1::ListDatasetsRequest(), &datasets);
         if (!status.ok()) return status;
         if (experiments.experiments_size() + datasets.datasets_size() > 0) {
           return grpc::Status(grpc::StatusCode::INTERNAL,
                               "tenant beta lists tenant acme's objects");
         }
         return grpc::Status::OK;
       },
       Code::OK, ""},
  };
}

std::vector<Case> Cases() {
  std::vector<Case> cases = {
      // --- Malformed CSV ---
      {"CsvRowWithTooFewFields", Upload("x,y\n1,2\n3\n"),
       Code::INVALID_ARGUMENT, "line 3: only 1 field, but the header has 2"},
      {"CsvRowWithTooManyFields", Upload("x,y\n1,2\n3,4,5\n"),
       Code::INVALID_ARGUMENT, "line 3: 3 fields, but the header has 2"},
      {"CsvNonNumericCell", Upload("x,y\n1,2\n3,abc\n"),
       Code::INVALID_ARGUMENT,
       "line 3, column \"y\": \"abc\" is not a number"},
      {"CsvNaN", Upload("x,y\n1,NaN\n"), Code::INVALID_ARGUMENT,
       "NaN and infinity are not allowed"},
      {"CsvInfinity", Upload("x,y\n-inf,1\n"), Code::INVALID_ARGUMENT,
       "line 2, column \"x\": \"-inf\" is not a finite number"},
      {"CsvNumberBeyondDouble", Upload("x,y\n1e999,1\n"),
       Code::INVALID_ARGUMENT, "outside the range of a double"},
      {"CsvEmptyFile", Upload(""), Code::INVALID_ARGUMENT, "CSV is empty"},
      {"CsvHeaderOnly", Upload("x,y\n"), Code::INVALID_ARGUMENT,
       "no data rows"},
      {"CsvDuplicateColumnNames", Upload("x,y,x\n1,2,3\n"),
       Code::INVALID_ARGUMENT,
       "column name \"x\" appears twice (columns 1 and 3)"},
      {"CsvMillionColumns",
       [](World& w) {
         std::string header;
         for (int i = 0; i < 1000000; ++i) {
           absl::StrAppend(&header, i == 0 ? "" : ",", "c", i);
         }
         return UploadCsv(w, header + "\n");
       },
       Code::INVALID_ARGUMENT, "more than 10000 columns"},
      {"CsvUnterminatedQuote", Upload("x,y\n1,\"2\n3,4\n"),
       Code::INVALID_ARGUMENT, "quoted field is never closed"},
      {"CsvBinaryGarbage",
       [](World& w) {
         std::mt19937 random(42);
         std::string garbage(64 * 1024, '\0');
         for (char& c : garbage) c = static_cast<char>(random() & 0xFF);
         garbage[0] = 'P';  // not a UTF-16 byte-order mark
         return UploadCsv(w, garbage);
       },
       Code::INVALID_ARGUMENT, "contains a NUL byte; the file is binary"},
      {"CsvGzipFile", Upload(std::string("\x1f\x8b\x08\x00\x00\x00", 6)),
       Code::INVALID_ARGUMENT, "contains a NUL byte"},
      {"CsvInvalidUtf8Name", Upload("x\xC3\x28,y\n1,2\n"),
       Code::INVALID_ARGUMENT, "is not valid UTF-8"},
      {"CsvUtf16", Upload(std::string("\xFF\xFEx\0,\0y\0\n\0", 10)),
       Code::INVALID_ARGUMENT, "save it as UTF-8"},
      {"CsvEmptyCell", Upload("x,y\n1,\n"), Code::INVALID_ARGUMENT,
       "empty cell"},
      {"CsvSemicolons", Upload("x;y\n1;2\n"), Code::INVALID_ARGUMENT,
       "fields must be separated by commas"},
      {"CsvBlankLineBetweenRows", Upload("x,y\n1,2\n\n3,4\n"),
       Code::INVALID_ARGUMENT, "line 3: blank line"},
      {"CsvEmptyColumnName", Upload("x,\n1,2\n"), Code::INVALID_ARGUMENT,
       "header column 2 has an empty name"},
      {"CsvUtf8BomIsAccepted",
       [](World& w) {
         v1::Dataset dataset;
         grpc::Status status = UploadCsv(w, "\xEF\xBB\xBFx,y\n1,2\n", &dataset);
         EXPECT_EQ(dataset.columns_size(), 2);
         if (dataset.columns_size() > 0) EXPECT_EQ(dataset.columns(0), "x");
         EXPECT_EQ(dataset.row_count(), 1);
         return status;
       },
       Code::OK, "", 1},
      {"CsvCrlfIsAccepted",
       [](World& w) {
         v1::Dataset dataset;
         grpc::Status status = UploadCsv(w, "x,y\r\n1,2\r\n3,4\r\n", &dataset);
         EXPECT_EQ(dataset.columns_size(), 2);
         if (dataset.columns_size() > 1) EXPECT_EQ(dataset.columns(1), "y");
         EXPECT_EQ(dataset.row_count(), 2);
         return status;
       },
       Code::OK, "", 1},
      {"CsvIdenticalUploadStoresNothingNew",
       [](World& w) {
         v1::Dataset dataset;
         grpc::Status status = UploadCsv(w, kCsv, &dataset);
         EXPECT_EQ(dataset.id(), w.dataset_id);
         return status;
       },
       Code::OK, ""},

      // --- Malformed IDX (images file + labels file) ---
      {"IdxEmpty", UploadIdx(""), Code::INVALID_ARGUMENT,
       "IDX data set is empty"},
      {"IdxCsvText", UploadIdx("x,y\n1,2\n"), Code::INVALID_ARGUMENT,
       "images file does not start with an IDX magic number"},
      {"IdxGzipped", UploadIdx(std::string("\x1f\x8b\x08\x00\x00\x00", 6)),
       Code::INVALID_ARGUMENT, "images file is gzip-compressed"},
      {"IdxFloatPixels", UploadIdx(Idx(3, 2, 3, 3, 0xD03)),
       Code::INVALID_ARGUMENT, "holds data type 0x0d (float)"},
      {"IdxFourDimensions", UploadIdx(Idx(3, 2, 3, 3, 0x804)),
       Code::INVALID_ARGUMENT, "has 4 dimensions"},
      {"IdxLabelsFileFirst",
       UploadIdx(Idx(0, 0, 0, 3).substr(16) + Idx(3, 2, 3, 0).substr(0, 34)),
       Code::INVALID_ARGUMENT, "the images file must come first"},
      {"IdxNoImages", UploadIdx(Idx(0, 28, 28, 0)), Code::INVALID_ARGUMENT,
       "at least one image of at least 1x1"},
      {"IdxCountMismatch", UploadIdx(Idx(3, 2, 3, 2)), Code::INVALID_ARGUMENT,
       "the labels file holds 2 labels, but the images file 3 images"},
      {"IdxTruncatedImages", UploadIdx(Idx(3, 2, 3, 3).substr(0, 30)),
       Code::INVALID_ARGUMENT, "images file is truncated"},
      {"IdxMissingLabels", UploadIdx(Idx(3, 2, 3, 3).substr(0, 34)),
       Code::INVALID_ARGUMENT, "ends after the images file"},
      {"IdxTruncatedLabels", UploadIdx(Idx(3, 2, 3, 3).substr(0, 44)),
       Code::INVALID_ARGUMENT, "labels file is truncated"},
      {"IdxTrailingBytes", UploadIdx(Idx(3, 2, 3, 3) + "x"),
       Code::INVALID_ARGUMENT, "1 bytes follow the end of the labels file"},
      {"IdxImagesBeyondColumnLimit",
       UploadIdx(IdxHeader(0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)),
       Code::INVALID_ARGUMENT, "the limit is 10000 columns"},
      {"IdxImagesBeyondValueLimit", UploadIdx(IdxHeader(0xFFFFFFFF, 28, 28)),
       Code::INVALID_ARGUMENT,
       "more than the limit of 134217728 (1073 MB as doubles, as a worker "
       "trains on them); raise --max-dataset-values"},
      {"IdxUnknownFormat",
       [](World& w) {
         return UploadWithFormat(w, Idx(3, 2, 3, 3),
                                 static_cast<v1::DatasetFormat>(7));
       },
       Code::INVALID_ARGUMENT, "metadata.format is 7"},
      {"IdxUploadedAsCsv",
       [](World& w) {
         return UploadWithFormat(w, Idx(3, 2, 3, 3), v1::DATASET_FORMAT_CSV);
       },
       Code::INVALID_ARGUMENT, "contains a NUL byte"},
      {"IdxIsAccepted",
       [](World& w) {
         v1::Dataset dataset;
         const std::string bytes = Idx(3, 2, 3, 3);
         grpc::Status status =
             UploadWithFormat(w, bytes, v1::DATASET_FORMAT_IDX, &dataset);
         EXPECT_EQ(dataset.id(), Sha256Hex(bytes));
         EXPECT_EQ(dataset.format(), v1::DATASET_FORMAT_IDX);
         EXPECT_THAT(dataset.image_shape(), ::testing::ElementsAre(2, 3));
         EXPECT_EQ(dataset.row_count(), 3);
         EXPECT_EQ(dataset.columns_size(), 7);
         if (dataset.columns_size() == 7) {
           EXPECT_EQ(dataset.columns(0), "pixel_0");
           EXPECT_EQ(dataset.columns(6), "label");
         }
         return status;
       },
       Code::OK, "", 1},

      // --- Upload streams ---
      {"UploadDeclaredBeyondLimit",
       [](World& w) {
         return SendUpload(*w.client,
                           UploadMessages("x,y\n1,2\n", kMaxUploadBytes + 1));
       },
       Code::RESOURCE_EXHAUSTED, "exceeds the limit of 8388608 bytes"},
      {"UploadStreamedBeyondLimit",
       [](World& w) {
         return UploadCsv(w, ValidCsvOfSize(kMaxUploadBytes + kMiB));
       },
       Code::RESOURCE_EXHAUSTED, "upload exceeds the limit of 8388608 bytes"},
      {"UploadCancelledMidStream",
       [](World& w) {
         // Chunks of whole rows, so that whatever prefix the server saw
         // would parse: only the cancellation may stop it from being stored.
         // (The client cancels instead of closing; the status is its own.)
         return SendUpload(*w.client,
                           UploadMessagesAtLineEnds(ValidCsvOfSize(3 * kMiB)),
                           nullptr, /*cancel=*/true);
       },
       Code::CANCELLED, "CANCELLED"},
      {"UploadShorterThanDeclared",
       [](World& w) {
         return SendUpload(*w.client, UploadMessages("x,y\n1,2\n", 1000));
       },
       Code::INVALID_ARGUMENT, "upload ended after 8 of the 1000 bytes"},
      {"UploadLongerThanDeclared",
       [](World& w) {
         return SendUpload(*w.client, UploadMessages("x,y\n1,2\n3,4\n", 8));
       },
       Code::INVALID_ARGUMENT, "longer than the 8 bytes declared"},
      {"UploadNegativeDeclaredSize",
       [](World& w) {
         return SendUpload(*w.client, UploadMessages("x,y\n1,2\n", -5));
       },
       Code::INVALID_ARGUMENT, "metadata.size_bytes is -5"},
      {"UploadWithoutMetadata",
       [](World& w) {
         v1::UploadDatasetRequest chunk;
         chunk.set_chunk("x,y\n1,2\n");
         return SendUpload(*w.client, {chunk});
       },
       Code::INVALID_ARGUMENT, "first upload message must carry metadata"},
      {"UploadEmptyStream",
       [](World& w) { return SendUpload(*w.client, {}); },
       Code::INVALID_ARGUMENT, "send metadata first"},
      {"UploadNameTooLong",
       [](World& w) {
         auto messages = UploadMessages("x,y\n1,2\n");
         messages[0].mutable_metadata()->set_name(std::string(300, 'n'));
         return SendUpload(*w.client, messages);
       },
       Code::INVALID_ARGUMENT, "metadata.name is longer than 200"},
      {"UploadChunkOverOneMiB",
       [](World& w) {
         return SendUpload(*w.client,
                           UploadMessages(ValidCsvOfSize(2 * kMiB), 0,
                                          kMiB + 1));
       },
       Code::INVALID_ARGUMENT, "upload chunks must be at most 1 MiB"},
      {"UploadMessageBeyondGrpcLimitAfterValidPrefix",
       [](World& w) {
         // The size is declared, as the CLI does: gRPC ends the stream on the
         // oversized message without telling the handler at once, and the
         // 8 bytes before it are a valid CSV.
         auto messages =
             UploadMessages("x,y\n1,2\n", 8 + kGrpcReceiveLimit + 1000);
         messages.emplace_back().set_chunk(
             std::string(kGrpcReceiveLimit + 1000, '1'));
         return SendUpload(*w.client, messages);
       },
       Code::RESOURCE_EXHAUSTED, "larger than max"},

      // --- Experiments ---
      {"ExperimentUnknownInputColumn",
       Create([](auto& s) { s.add_input_columns("x9"); }),
       Code::INVALID_ARGUMENT,
       "has no column \"x9\"; its columns are \"x1\", \"x2\", \"y\""},
      {"ExperimentUnknownHugeColumnName",
       Create([](auto& s) {
         s.add_output_columns(std::string(100000, 'z'));
       }),
       Code::INVALID_ARGUMENT, "has no column \"zzzz"},
      {"ExperimentColumnNamedTwice",
       Create([](auto& s) { s.add_input_columns("x1"); }),
       Code::INVALID_ARGUMENT, "input_columns: column \"x1\" is named twice"},
      {"ExperimentOutputIsInput",
       Create([](auto& s) { s.add_output_columns("x2"); }),
       Code::INVALID_ARGUMENT, "\"x2\" is both an input and an output"},
      {"ExperimentNoOutputs",
       Create([](auto& s) { s.clear_output_columns(); }),
       Code::INVALID_ARGUMENT, "output_columns: name at least one column"},
      {"ExperimentUnknownDataset",
       Create([](auto& s) { s.set_dataset_id(std::string(64, 'a')); }),
       Code::NOT_FOUND, "upload it first"},
      {"ExperimentMissingDataset",
       Create([](auto& s) { s.clear_dataset_id(); }), Code::INVALID_ARGUMENT,
       "dataset_id is required"},
      {"ExperimentUnknownTestDataset",
       Create([](auto& s) { s.set_test_dataset_id("no-such-data"); }),
       Code::NOT_FOUND, "test_dataset_id: no data set no-such-data"},
      {"ExperimentUnknownTask",
       Create([](auto& s) { s.set_task(static_cast<v1::Task>(7)); }),
       Code::INVALID_ARGUMENT, "task: unknown task 7"},
      {"ClassificationAccuracyAsPercentage",
       Create([](auto& s) {
         s.set_task(v1::TASK_CLASSIFICATION);
         s.mutable_requirements()->set_min_accuracy(85);
       }),
       Code::INVALID_ARGUMENT,
       "requirements.min_accuracy must be in (0, 1] (a fraction, not a "
       "percentage), got 85"},
      {"ClassificationWithRegressionRequirement",
       Create([](auto& s) {
         s.set_task(v1::TASK_CLASSIFICATION);
         s.mutable_requirements()->set_max_abs_error(0.1);
       }),
       Code::INVALID_ARGUMENT, "a classification is judged by min_accuracy"},
      {"RegressionWithAccuracyRequirement",
       Create([](auto& s) { s.mutable_requirements()->set_min_accuracy(0.9); }),
       Code::INVALID_ARGUMENT, "min_accuracy judges classifiers"},
      {"ClassificationWithTwoLabelColumns",
       Create([](auto& s) {
         s.set_task(v1::TASK_CLASSIFICATION);
         s.clear_input_columns();
         s.add_input_columns("x1");
         s.add_output_columns("x2");
       }),
       Code::INVALID_ARGUMENT,
       "output_columns: a classification predicts one column, the class "
       "label; got 2"},
      {"ClassificationWithRegressionObjective",
       Create([](auto& s) {
         s.set_task(v1::TASK_CLASSIFICATION);
         s.add_objectives(v1::OBJECTIVE_VALIDATION_MAX_ABS_ERROR);
       }),
       Code::INVALID_ARGUMENT,
       "OBJECTIVE_VALIDATION_MAX_ABS_ERROR measures regression errors"},
      {"ClassificationWithStages",
       Create([](auto& s) {
         s.set_task(v1::TASK_CLASSIFICATION);
         s.mutable_search_space()->set_max_residual_stages(1);
       }),
       Code::INVALID_ARGUMENT, "classification networks have one stage"},
      {"ExperimentNegativeMaxAbsError",
       Create([](auto& s) {
         s.mutable_requirements()->set_max_abs_error(-1e-3);
       }),
       Code::INVALID_ARGUMENT,
       "requirements.max_abs_error must be a positive finite number"},
      {"ExperimentNaNMaxAbsError",
       Create([](auto& s) {
         s.mutable_requirements()->set_max_abs_error(kNaN);
       }),
       Code::INVALID_ARGUMENT, "got nan"},
      {"ExperimentInfiniteTrainingSeconds",
       Create([](auto& s) {
         s.mutable_requirements()->set_max_training_seconds(kInf);
       }),
       Code::INVALID_ARGUMENT, "requirements.max_training_seconds"},
      {"ExperimentNegativeMaxParameters",
       Create([](auto& s) {
         s.mutable_requirements()->set_max_parameters(-10);
       }),
       Code::INVALID_ARGUMENT, "requirements.max_parameters must be positive"},
      {"ExperimentZeroModelBytes",
       Create([](auto& s) {
         s.mutable_requirements()->set_max_model_bytes(0);
       }),
       Code::INVALID_ARGUMENT, "requirements.max_model_bytes must be positive"},
      {"ExperimentFractionWithoutTolerance",
       Create([](auto& s) {
         s.mutable_requirements()->set_min_fraction_within(0.5);
       }),
       Code::INVALID_ARGUMENT,
       "min_fraction_within requires requirements.within_tolerance"},
      {"ExperimentFractionAboveOne",
       Create([](auto& s) {
         s.mutable_requirements()->set_within_tolerance(1e-3);
         s.mutable_requirements()->set_min_fraction_within(1.5);
       }),
       Code::INVALID_ARGUMENT, "min_fraction_within must be in [0, 1]"},
      {"ExperimentMaxParametersBelowSmallestNetwork",
       Create([](auto& s) {
         // 1 layer of 4: 2*4+4 + 4*1+1 = 17 parameters at least.
         s.mutable_requirements()->set_max_parameters(16);
       }),
       Code::INVALID_ARGUMENT,
       "requirements.max_parameters 16 contradicts the search space"},
      {"ExperimentNegativeCandidateBudget",
       Create([](auto& s) { s.mutable_budget()->set_max_candidates(-1); }),
       Code::INVALID_ARGUMENT, "budget.max_candidates must be in 0..1000000"},
      {"ExperimentHugeCandidateBudget",
       Create([](auto& s) {
         s.mutable_budget()->set_max_candidates(int64_t{1} << 40);
       }),
       Code::INVALID_ARGUMENT, "budget.max_candidates must be in 0..1000000"},
      {"ExperimentNegativeWallBudget",
       Create([](auto& s) {
         s.mutable_budget()->set_max_candidates(0);
         s.mutable_budget()->set_max_wall_seconds(-60);
       }),
       Code::INVALID_ARGUMENT, "budget.max_wall_seconds must be finite"},
      {"ExperimentInfiniteWallBudget",
       Create([](auto& s) { s.mutable_budget()->set_max_wall_seconds(kInf); }),
       Code::INVALID_ARGUMENT, "budget.max_wall_seconds must be finite"},
      {"ExperimentNoBudget", Create([](auto& s) { s.clear_budget(); }),
       Code::INVALID_ARGUMENT,
       "set max_candidates, max_wall_seconds or max_worker_seconds"},
      {"ExperimentValidationFractionTooLarge",
       Create([](auto& s) { s.set_validation_fraction(0.95); }),
       Code::INVALID_ARGUMENT, "validation_fraction must be in (0, 0.9]"},
      {"ExperimentValidationFractionNaN",
       Create([](auto& s) { s.set_validation_fraction(kNaN); }),
       Code::INVALID_ARGUMENT, "validation_fraction must be in (0, 0.9]"},
      {"ExperimentMinWidthAboveMax",
       Create([](auto& s) { s.mutable_search_space()->set_min_width(9); }),
       Code::INVALID_ARGUMENT, "width"},
      {"ExperimentUnknownActivation",
       Create([](auto& s) {
         s.mutable_search_space()->add_activations(
             static_cast<v1::Activation>(99));
       }),
       Code::INVALID_ARGUMENT, "search_space: unknown activation 99"},
      {"ExperimentConvLayersOnATable",
       Create([](auto& s) {
         s.mutable_search_space()->set_max_conv_layers(2);
       }),
       Code::INVALID_ARGUMENT,
       "search_space.max_conv_layers needs an image data set (IDX)"},
      {"ExperimentChannelsWithoutConvLayers",
       Create([](auto& s) { s.mutable_search_space()->set_max_channels(8); }),
       Code::INVALID_ARGUMENT, "need max_conv_layers > 0"},
      {"ExperimentUnknownStrategy",
       Create([](auto& s) { s.set_strategy(static_cast<v1::Strategy>(7)); }),
       Code::INVALID_ARGUMENT, "unknown strategy 7"},
      {"ExperimentNameTooLong",
       Create([](auto& s) { s.set_name(std::string(300, 'n')); }),
       Code::INVALID_ARGUMENT, "name is longer than 200"},
      {"ExperimentMessageBeyondGrpcLimit",
       Create([](auto& s) {
         s.set_name(std::string(kGrpcReceiveLimit + 1000, 'n'));
       }),
       Code::RESOURCE_EXHAUSTED, "larger than max"},

      // --- Unknown ids on every Get, List, Cancel and Download ---
      {"GetDatasetUnknown",
       Unary<v1::GetDatasetRequest, v1::Dataset>(
           &v1::EvonasService::Stub::GetDataset,
           [](const World&, auto& r) { r.set_dataset_id(std::string(64, 'f')); }),
       Code::NOT_FOUND, "no data set ffff"},
      {"GetDatasetEmptyId",
       Unary<v1::GetDatasetRequest, v1::Dataset>(
           &v1::EvonasService::Stub::GetDataset,
           [](const World&, auto&) {}),
       Code::INVALID_ARGUMENT, "dataset_id is required"},
      {"GetExperimentUnknown",
       Unary<v1::GetExperimentRequest, v1::Experiment>(
           &v1::EvonasService::Stub::GetExperiment,
           [](const World&, auto& r) { r.set_experiment_id("exp-000000"); }),
       Code::NOT_FOUND, "no experiment exp-000000"},
      {"GetExperimentHugeId",
       Unary<v1::GetExperimentRequest, v1::Experiment>(
           &v1::EvonasService::Stub::GetExperiment,
           [](const World&, auto& r) {
             r.set_experiment_id(std::string(100000, 'e'));
           }),
       Code::INVALID_ARGUMENT, "experiment_id is 100000 bytes long"},
      {"ListCandidatesUnknownExperiment",
       Unary<v1::ListCandidatesRequest, v1::ListCandidatesResponse>(
           &v1::EvonasService::Stub::ListCandidates,
           [](const World&, auto& r) { r.set_experiment_id("exp-000000"); }),
       Code::NOT_FOUND, "no experiment exp-000000"},
      {"ListCandidatesEmptyId",
       Unary<v1::ListCandidatesRequest, v1::ListCandidatesResponse>(
           &v1::EvonasService::Stub::ListCandidates,
           [](const World&, auto&) {}),
       Code::INVALID_ARGUMENT, "experiment_id is required"},
      {"GetParetoFrontUnknownExperiment",
       Unary<v1::GetParetoFrontRequest, v1::ParetoFront>(
           &v1::EvonasService::Stub::GetParetoFront,
           [](const World&, auto& r) { r.set_experiment_id("exp-000000"); }),
       Code::NOT_FOUND, "no experiment exp-000000"},
      {"WatchExperimentUnknown",
       [](World& w) {
         grpc::ClientContext context;
         SetDeadline(context);
         v1::WatchExperimentRequest request;
         request.set_experiment_id("exp-000000");
         return Drain<v1::Experiment>(
             w.client->WatchExperiment(&context, request));
       },
       Code::NOT_FOUND, "no experiment exp-000000"},
      {"WatchExperimentEmptyId",
       [](World& w) {
         grpc::ClientContext context;
         SetDeadline(context);
         return Drain<v1::Experiment>(w.client->WatchExperiment(
             &context, v1::WatchExperimentRequest()));
       },
       Code::INVALID_ARGUMENT, "experiment_id is required"},
      {"CancelUnknownExperiment",
       Unary<v1::CancelExperimentRequest, v1::Experiment>(
           &v1::EvonasService::Stub::CancelExperiment,
           [](const World&, auto& r) { r.set_experiment_id("exp-000000"); }),
       Code::NOT_FOUND, "no experiment exp-000000"},
      {"CancelCancelledExperiment",
       Unary<v1::CancelExperimentRequest, v1::Experiment>(
           &v1::EvonasService::Stub::CancelExperiment,
           [](const World& w, auto& r) {
             r.set_experiment_id(w.cancelled_experiment_id);
           }),
       Code::FAILED_PRECONDITION, "is not running"},
      {"GetCandidateUnknown",
       Unary<v1::GetCandidateRequest, v1::Candidate>(
           &v1::EvonasService::Stub::GetCandidate,
           [](const World&, auto& r) { r.set_candidate_id("exp-0-c00000"); }),
       Code::NOT_FOUND, "no candidate exp-0-c00000"},
      {"DownloadModelUnknownCandidate",
       Download([](const World&) { return "exp-0-c00000"; }),
       Code::NOT_FOUND, "no candidate exp-0-c00000"},
      {"DownloadModelEmptyId", Download([](const World&) { return ""; }),
       Code::INVALID_ARGUMENT, "candidate_id is required"},
      {"DownloadModelOfRunningCandidate",
       Download([](const World& w) { return w.lease_a.candidate_id(); }),
       Code::FAILED_PRECONDITION, "has no model: it is CANDIDATE_STATE_RUNNING"},
      {"DownloadModelUnknownFormat",
       Download([](const World& w) { return w.lease_done.candidate_id(); },
                static_cast<v1::ModelFormat>(99)),
       Code::INVALID_ARGUMENT, "format: unknown model format 99"},
      {"DownloadModelFormatNotProduced",
       Download([](const World& w) { return w.lease_done.candidate_id(); },
                v1::MODEL_FORMAT_ONNX),
       Code::NOT_FOUND, "has no MODEL_FORMAT_ONNX file"},
      {"FetchDatasetUnknown",
       [](World& w) {
         grpc::ClientContext context;
         SetDeadline(context);
         v1::FetchDatasetRequest request;
         request.set_dataset_id(std::string(64, '0'));
         return Drain<v1::FetchDatasetResponse>(
             w.worker->FetchDataset(&context, request));
       },
       Code::NOT_FOUND, "no data set 0000"},

      // --- Workers: ids and leases ---
      {"LeaseWorkEmptyWorkerId",
       [](World& w) {
         v1::LeaseWorkResponse response;
         return LeaseWork(w, "", &response);
       },
       Code::INVALID_ARGUMENT, "worker_id is required"},
      {"LeaseWorkWorkerIdTooLong",
       [](World& w) {
         v1::LeaseWorkResponse response;
         return LeaseWork(w, std::string(300, 'w'), &response);
       },
       Code::INVALID_ARGUMENT, "worker_id is required and at most 200"},
      {"LeaseWorkForgedLatencyTable",
       [](World& w) {
         grpc::ClientContext context;
         SetDeadline(context);
         v1::LeaseWorkRequest request;
         request.set_worker_id("worker-c");
         v1::LatencyTable* table =
             request.mutable_info()->mutable_latency_table();
         table->set_hardware_class("Forged CPU x1");
         v1::LayerLatencyModel* output = table->add_layers();
         output->set_seconds_per_multiply_add(-1e-9);
         v1::LeaseWorkResponse response;
         return w.worker->LeaseWork(&context, request, &response);
       },
       Code::INVALID_ARGUMENT,
       "info.latency_table model for ACTIVATION_UNSPECIFIED needs finite, "
       "non-negative coefficients; recalibrate the worker"},
      {"HeartbeatAnotherWorkersLease",
       [](World& w) { return Heartbeat(w, "worker-b", w.lease_a.lease_id()); },
       Code::ABORTED, "is not held by worker worker-b"},
      {"HeartbeatUnknownLease",
       [](World& w) { return Heartbeat(w, "worker-a", "lease-0000"); },
       Code::ABORTED, "lease lease-0000 is not held by worker worker-a"},
      {"HeartbeatEmptyWorkerId",
       [](World& w) { return Heartbeat(w, "", w.lease_a.lease_id()); },
       Code::INVALID_ARGUMENT, "worker_id is required"},
      {"ReleaseAnotherWorkersLease",
       [](World& w) {
         grpc::ClientContext context;
         SetDeadline(context);
         v1::ReleaseLeaseRequest request;
         request.set_worker_id("worker-b");
         request.set_lease_id(w.lease_a.lease_id());
         v1::ReleaseLeaseResponse response;
         return w.worker->ReleaseLease(&context, request, &response);
       },
       Code::ABORTED, "is not held by worker worker-b"},

      // --- Forged reports ---
      {"ReportNaNMetric",
       Forge([](v1::WorkResult& r, std::string&) {
         r.mutable_metrics()->mutable_validation()->set_max_abs_error(kNaN);
       }),
       Code::INVALID_ARGUMENT,
       "validation metrics must be finite and non-negative"},
      {"ReportNegativeRmse",
       Forge([](v1::WorkResult& r, std::string&) {
         r.mutable_metrics()->mutable_validation()->set_rmse(-1);
       }),
       Code::INVALID_ARGUMENT,
       "validation metrics must be finite and non-negative"},
      {"ReportFractionAboveOne",
       Forge([](v1::WorkResult& r, std::string&) {
         r.mutable_metrics()->mutable_validation()->set_fraction_within(1.5);
       }),
       Code::INVALID_ARGUMENT, "validation.fraction_within must be <= 1"},
      {"ReportInfiniteTrainingTime",
       Forge([](v1::WorkResult& r, std::string&) {
         r.mutable_metrics()->set_training_seconds(kInf);
       }),
       Code::INVALID_ARGUMENT, "times must be finite and non-negative"},
      {"ReportAnotherWorkersLease",
       Forge([](v1::WorkResult& r, std::string&) {
         r.set_worker_id("worker-b");
       }),
       Code::ABORTED, "is not held by worker worker-b"},
      {"ReportLeaseThatDoesNotExist",
       Forge([](v1::WorkResult& r, std::string&) {
         r.set_lease_id("lease-00000000000000000000000000000000");
       }),
       Code::ABORTED,
       "lease lease-00000000000000000000000000000000 is not held"},
      {"ReportParameterCountNotMatchingGenome",
       Forge([](v1::WorkResult& r, std::string&) {
         r.mutable_metrics()->set_parameter_count(
             r.metrics().parameter_count() + 1);
       }),
       Code::INVALID_ARGUMENT, "does not match the genome, which has"},
      {"ReportModelShorterThanDeclared",
       Forge([](v1::WorkResult&, std::string& model) { model.pop_back(); }),
       Code::INVALID_ARGUMENT, "but the report declares"},
      {"ReportModelLongerThanDeclared",
       Forge([](v1::WorkResult&, std::string& model) { model += "x"; }),
       Code::INVALID_ARGUMENT, "more bytes than the declared"},
      {"ReportModelBytesMetricDisagrees",
       Forge([](v1::WorkResult& r, std::string&) {
         r.mutable_metrics()->set_model_bytes(r.model_size_bytes() + 7);
       }),
       Code::INVALID_ARGUMENT, "(metrics say"},
      {"ReportModelHashMismatch",
       Forge([](v1::WorkResult&, std::string& model) { model[0] ^= 1; }),
       Code::INVALID_ARGUMENT, "model_sha256 does not match"},
      {"ReportNaNInt8Metric",
       Forge([](v1::WorkResult& r, std::string&) {
         v1::QuantizedMetrics* int8 = r.mutable_metrics()->mutable_int8();
         *int8->mutable_validation() = r.metrics().validation();
         int8->mutable_validation()->set_mae(kNaN);
         int8->set_model_bytes(100);
       }),
       Code::INVALID_ARGUMENT,
       "int8.validation metrics must be finite and non-negative"},
      {"ReportArtifactOfUnknownFormat",
       ForgeArtifacts({{static_cast<v1::ModelFormat>(99), "onnx-bytes"}},
                      [](v1::WorkResult&) {}),
       Code::INVALID_ARGUMENT,
       "artifacts may be MODEL_FORMAT_ONNX, MODEL_FORMAT_MODEL_CARD or "
       "MODEL_FORMAT_CHECKPOINT, got format 99"},
      {"ReportTorchScriptAsArtifact",
       ForgeArtifacts({{v1::MODEL_FORMAT_TORCHSCRIPT, "second-model"}},
                      [](v1::WorkResult&) {}),
       Code::INVALID_ARGUMENT, "got format 1"},
      {"ReportArtifactListedTwice",
       ForgeArtifacts({{v1::MODEL_FORMAT_ONNX, "onnx-1"},
                       {v1::MODEL_FORMAT_ONNX, "onnx-2"}},
                      [](v1::WorkResult&) {}),
       Code::INVALID_ARGUMENT, "artifact MODEL_FORMAT_ONNX is listed twice"},
      {"ReportArtifactHashMismatch",
       ForgeArtifacts({{v1::MODEL_FORMAT_MODEL_CARD, "{\"card\": 1}"}},
                      [](v1::WorkResult& r) {
                        r.mutable_artifacts(0)->set_sha256(Sha256Hex("other"));
                      }),
       Code::INVALID_ARGUMENT,
       "artifact MODEL_FORMAT_MODEL_CARD does not match its declared size and "
       "SHA-256"},
      {"ReportArtifactNegativeSize",
       ForgeArtifacts({{v1::MODEL_FORMAT_ONNX, ""}},
                      [](v1::WorkResult& r) {
                        r.mutable_artifacts(0)->set_size_bytes(-7);
                      }),
       Code::INVALID_ARGUMENT, "artifact MODEL_FORMAT_ONNX has size -7"},
      {"ReportArtifactBeyondLimit",
       ForgeArtifacts({{v1::MODEL_FORMAT_ONNX, "onnx"}},
                      [](v1::WorkResult& r) {
                        r.mutable_artifacts(0)->set_size_bytes(int64_t{1}
                                                               << 40);
                      }),
       Code::RESOURCE_EXHAUSTED,
       "artifact MODEL_FORMAT_ONNX of 1099511627776 bytes exceeds"},
      {"ReportSuccessWithoutMetrics",
       Forge([](v1::WorkResult& r, std::string&) { r.clear_metrics(); }),
       Code::INVALID_ARGUMENT, "set metrics on success or failure_reason"},
      {"ReportFailureWithModel",
       Forge([](v1::WorkResult& r, std::string&) {
         r.clear_metrics();
         r.set_failure_reason("diverged");
       }),
       Code::INVALID_ARGUMENT, "a failure report carries no metrics, no model"},
      {"ReportDuplicate",
       [](World& w) {
         const std::string model = ModelOf(w.lease_done);
         return SendReport(*w.worker,
                           GoodResult(w.lease_done, "worker-done", model),
                           {model});
       },
       Code::FAILED_PRECONDITION, "was already reported"},
      {"ReportDeclaredModelBeyondLimit",
       [](World& w) {
         // Declares a terabyte and starts sending: refused before the model
         // is buffered, not after.
         v1::WorkResult result = GoodResult(w.lease_a, "worker-a", "");
         result.set_model_size_bytes(int64_t{1} << 40);
         result.mutable_metrics()->set_model_bytes(int64_t{1} << 40);
         return SendReport(*w.worker, result,
                           std::vector<std::string>(2, std::string(kMiB, 'm')));
       },
       Code::RESOURCE_EXHAUSTED,
       "model_size_bytes 1099511627776 exceeds the controller's limit"},
      {"ReportNegativeModelSize",
       Forge([](v1::WorkResult& r, std::string& model) {
         r.set_model_size_bytes(-1);
         model.clear();
       }),
       Code::INVALID_ARGUMENT, "model_size_bytes is -1"},
      {"ReportChunkOverOneMiB",
       [](World& w) {
         const std::string model(kMiB - 10, 'm');
         v1::WorkResult result = GoodResult(w.lease_a, "worker-a", model);
         return SendReport(*w.worker, result,
                           {std::string(kMiB + 1, 'm')});
       },
       Code::INVALID_ARGUMENT, "model chunks must be at most 1 MiB"},
      {"ReportEmptyWorkerId",
       Forge([](v1::WorkResult& r, std::string&) { r.clear_worker_id(); }),
       Code::INVALID_ARGUMENT, "worker_id is required"},
      {"ReportEmptyStream",
       [](World& w) {
         grpc::ClientContext context;
         SetDeadline(context);
         v1::ReportResultResponse response;
         auto writer = w.worker->ReportResult(&context, &response);
         writer->WritesDone();
         return writer->Finish();
       },
       Code::INVALID_ARGUMENT, "the first report message must carry result"},
      {"ReportCancelledMidModel",
       [](World& w) {
         const std::string model(600 * 1024, 'm');
         v1::WorkResult result = GoodResult(w.lease_a, "worker-a", model);
         return SendReport(*w.worker, result,
                           {model.substr(0, 100 * 1024),
                            model.substr(100 * 1024, 100 * 1024)},
                           /*cancel=*/true);
       },
       Code::CANCELLED, "CANCELLED"},

      // --- Checkpoints, inheritance, budgets and objectives ---
      {"ReportCheckpointGarbage",
       ForgeCheckpoint([](const v1::Genome&) {
         return std::string("\xff\xff\xff\x07garbage", 11);
       }),
       Code::INVALID_ARGUMENT,
       "checkpoint is not a binary-serialised evonas.v1.NetworkWeights"},
      {"ReportCheckpointOfWrongLayerShape",
       ForgeCheckpoint(CheckpointOf([](v1::NetworkWeights& w) {
         v1::LayerWeights* layer = w.mutable_stages(0)->mutable_layers(0);
         layer->set_outputs(layer->outputs() + 1);
         for (int64_t i = 0; i < layer->inputs(); ++i) layer->add_weight(0);
         layer->add_bias(0);
       })),
       Code::INVALID_ARGUMENT, "checkpoint stage 0 layer 0 is 2x"},
      {"ReportCheckpointWithExtraStage",
       ForgeCheckpoint(CheckpointOf([](v1::NetworkWeights& w) {
         *w.add_stages() = w.stages(0);
       })),
       Code::INVALID_ARGUMENT, "checkpoint has 2 stages but the genome has 1"},
      {"ReportCheckpointNaNWeight",
       ForgeCheckpoint(CheckpointOf([](v1::NetworkWeights& w) {
         w.mutable_stages(0)->mutable_layers(0)->set_weight(0, kNaN);
       })),
       Code::INVALID_ARGUMENT,
       "checkpoint stage 0 layer 0 weight holds nan; values must be finite"},
      {"ReportCheckpointZeroStd",
       ForgeCheckpoint(CheckpointOf([](v1::NetworkWeights& w) {
         w.mutable_stages(0)->set_y_std(0, 0);
       })),
       Code::INVALID_ARGUMENT,
       "checkpoint stage 0 y_std holds 0; values must be finite and positive"},
      // A checkpoint of the genome's shapes has the genome's parameter
      // count, so a count that differs from the checkpoint's is refused as
      // not matching the genome before the file is looked at.
      {"ReportCheckpointParameterCountMismatch",
       ForgeCheckpoint(CheckpointOf([](v1::NetworkWeights&) {}),
                       [](v1::WorkResult& r) {
                         r.mutable_metrics()->set_parameter_count(
                             r.metrics().parameter_count() - 1);
                       }),
       Code::INVALID_ARGUMENT, "does not match the genome, which has"},
      {"FetchCheckpointOfAnotherWorkersLease",
       [](World& w) {
         return FetchCheckpoint(w, "worker-b", w.lease_a.lease_id());
       },
       Code::ABORTED, "is not held by worker worker-b"},
      {"FetchCheckpointOfUnknownLease",
       [](World& w) { return FetchCheckpoint(w, "worker-a", "lease-0000"); },
       Code::ABORTED, "lease lease-0000 is not held by worker worker-a"},
      {"FetchCheckpointOfLeaseWithoutParent",
       [](World& w) {
         return FetchCheckpoint(w, "worker-a", w.lease_a.lease_id());
       },
       Code::FAILED_PRECONDITION, "does not inherit"},
      {"FetchCheckpointOfReportedLease",
       [](World& w) {
         return FetchCheckpoint(w, "worker-done", w.lease_done.lease_id());
       },
       Code::FAILED_PRECONDITION, "was already reported"},
      {"ExperimentNegativeWorkerSecondsBudget",
       Create([](auto& s) { s.mutable_budget()->set_max_worker_seconds(-1); }),
       Code::INVALID_ARGUMENT,
       "budget.max_worker_seconds must be finite and non-negative"},
      {"ExperimentNaNWorkerSecondsBudget",
       Create([](auto& s) {
         s.mutable_budget()->set_max_worker_seconds(kNaN);
       }),
       Code::INVALID_ARGUMENT,
       "budget.max_worker_seconds must be finite and non-negative"},
      {"ExperimentOnlyStopWhenFeasible",
       Create([](auto& s) {
         s.clear_budget();
         s.mutable_budget()->set_stop_when_feasible(true);
       }),
       Code::INVALID_ARGUMENT, "stop_when_feasible alone may never stop"},
      {"ExperimentUnknownObjective",
       Create([](auto& s) {
         s.add_objectives(v1::OBJECTIVE_FLOPS);
         s.add_objectives(static_cast<v1::Objective>(77));
       }),
       Code::INVALID_ARGUMENT, "objectives[1]: unknown objective 77"},
      {"ExperimentObjectiveTwice",
       Create([](auto& s) {
         s.add_objectives(v1::OBJECTIVE_PARAMETER_COUNT);
         s.add_objectives(v1::OBJECTIVE_PARAMETER_COUNT);
       }),
       Code::INVALID_ARGUMENT,
       "objectives[1]: OBJECTIVE_PARAMETER_COUNT given twice"},
      {"ExperimentNegativeFitnessWeight",
       Create([](auto& s) {
         v1::ObjectiveWeight* term = s.add_fitness_weights();
         term->set_objective(v1::OBJECTIVE_MODEL_BYTES);
         term->set_weight(-1);
       }),
       Code::INVALID_ARGUMENT,
       "fitness_weights[0].weight must be finite and >= 0, got -1"},
      {"ExperimentNaNStepFraction",
       Create([](auto& s) {
         s.mutable_inheritance()->set_enabled(true);
         s.mutable_inheritance()->set_step_fraction(kNaN);
       }),
       Code::INVALID_ARGUMENT, "inheritance.step_fraction is nan"},
      {"ExperimentNaNShortStepFraction",
       Create([](auto& s) {
         s.mutable_multi_fidelity()->set_enabled(true);
         s.mutable_multi_fidelity()->set_short_step_fraction(kNaN);
       }),
       Code::INVALID_ARGUMENT,
       "multi_fidelity.short_step_fraction must be in (0, 1), got nan"},
      {"ExperimentReductionFactorOne",
       Create([](auto& s) {
         s.mutable_multi_fidelity()->set_enabled(true);
         s.mutable_multi_fidelity()->set_reduction_factor(1);
       }),
       Code::INVALID_ARGUMENT,
       "multi_fidelity.reduction_factor must be in 2..100, got 1"},
  };
  for (Case& c : TokenCases()) cases.push_back(std::move(c));
  return cases;
}

// The state a hostile request must not change.
struct Snapshot {
  std::map<std::string, int64_t> rows;
  // Every data set, experiment and candidate as the API returns them.
  std::string objects;
  std::set<std::string> blobs;  // paths relative to the blob directory
};

class HostileInputTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("evonas-hostile-" + GetParam().name);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ControllerOptions options;
    options.db_path = (dir_ / "evonas.db").string();
    options.data_dir = (dir_ / "data").string();
    options.lease_timeout = absl::Hours(1);
    options.max_upload_bytes = kMaxUploadBytes;
    options.max_model_bytes = kMaxModelBytes;
    auto controller = Controller::Create(options);
    ASSERT_TRUE(controller.ok()) << controller.status();
    controller_ = *std::move(controller);
    {
      // As the admin command does: directly in the database.
      auto store = store::Store::Open(options.db_path);
      ASSERT_TRUE(store.ok()) << store.status();
      auto token = [&](absl::string_view kind, const std::string& tenant) {
        auto issued = auth::CreateToken(**store, kind, tenant, 1);
        EXPECT_TRUE(issued.ok()) << issued.status();
        return issued.ok() ? *issued : auth::IssuedToken();
      };
      world_.acme_token = token(auth::kClientKind, "acme").secret;
      world_.beta_token = token(auth::kClientKind, "beta").secret;
      world_.worker_token = token(auth::kWorkerKind, "").secret;
      auth::IssuedToken revoked = token(auth::kClientKind, "acme");
      world_.revoked_token = revoked.secret;
      ASSERT_TRUE((*store)->RevokeToken(revoked.record.id, 2).ok());
      auto expired = auth::CreateToken(**store, auth::kClientKind, "acme", 1,
                                       std::nullopt, absl::Seconds(1));
      ASSERT_TRUE(expired.ok()) << expired.status();
      world_.expired_token = expired->secret;
    }
    auto access = auth::AccessControl::Open(options.db_path, {});
    ASSERT_TRUE(access.ok()) << access.status();
    access_ = *std::move(access);
    StartServer();

    v1::Dataset dataset;
    ASSERT_TRUE(UploadCsv(world_, kCsv, &dataset).ok());
    world_.dataset_id = dataset.id();
    v1::Experiment experiment;
    ASSERT_TRUE(CreateExperiment(world_, BaseSpec(world_), &experiment).ok());
    world_.experiment_id = experiment.id();
    ASSERT_TRUE(CreateExperiment(world_, BaseSpec(world_), &experiment).ok());
    world_.cancelled_experiment_id = experiment.id();
    {
      grpc::ClientContext context;
      SetDeadline(context);
      v1::CancelExperimentRequest request;
      request.set_experiment_id(world_.cancelled_experiment_id);
      ASSERT_TRUE(
          world_.client->CancelExperiment(&context, request, &experiment).ok());
    }
    for (auto [worker_id, lease] :
         {std::pair<std::string, v1::Lease*>{"worker-a", &world_.lease_a},
          {"worker-b", &world_.lease_b},
          {"worker-done", &world_.lease_done}}) {
      v1::LeaseWorkResponse response;
      ASSERT_TRUE(LeaseWork(world_, worker_id, &response).ok());
      ASSERT_TRUE(response.has_lease()) << worker_id;
      *lease = response.lease();
    }
    const std::string model = ModelOf(world_.lease_done);
    ASSERT_TRUE(SendReport(*world_.worker,
                           GoodResult(world_.lease_done, "worker-done", model),
                           {model})
                    .ok());
  }

  void TearDown() override { StopServer(); }

  void StartServer() {
    client_service_ = std::make_unique<EvonasServiceImpl>(controller_.get());
    worker_service_ = std::make_unique<WorkerServiceImpl>(controller_.get());
    authorized_client_ = std::make_unique<auth::AuthorizedEvonasService>(
        client_service_.get(), access_.get());
    authorized_worker_ = std::make_unique<auth::AuthorizedWorkerService>(
        worker_service_.get(), access_.get());
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(authorized_client_.get());
    builder.RegisterService(authorized_worker_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    const std::string address = absl::StrCat("127.0.0.1:", port);
    auto channel_with = [address](const std::string& token) {
      ChannelSecurity security;
      security.plaintext = true;
      security.token = token;
      return CreateControllerChannel(address, security).value();
    };
    world_.client_as = [channel_with](const std::string& token) {
      return v1::EvonasService::NewStub(channel_with(token));
    };
    world_.worker_as = [channel_with](const std::string& token) {
      return v1::WorkerService::NewStub(channel_with(token));
    };
    client_stub_ = world_.client_as(world_.acme_token);
    worker_stub_ = world_.worker_as(world_.worker_token);
    world_.client = client_stub_.get();
    world_.worker = worker_stub_.get();
  }

  // Returns once every handler has returned.
  void StopServer() {
    if (server_ == nullptr) return;
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(30));
    server_->Wait();
    server_.reset();
  }

  Snapshot Take() {
    Snapshot snapshot;
    auto rows = controller_->RowCounts();
    EXPECT_TRUE(rows.ok()) << rows.status();
    if (rows.ok()) snapshot.rows = *rows;
    const std::vector<v1::Dataset> datasets =
        controller_->ListDatasets().value();
    for (const v1::Dataset& d : datasets) {
      absl::StrAppend(&snapshot.objects, d.ShortDebugString(), "\n");
    }
    const std::vector<v1::Experiment> experiments =
        controller_->ListExperiments().value();
    for (const v1::Experiment& e : experiments) {
      absl::StrAppend(&snapshot.objects, e.ShortDebugString(), "\n");
      const std::vector<v1::Candidate> candidates =
          controller_->ListCandidates(e.id()).value();
      for (const v1::Candidate& c : candidates) {
        absl::StrAppend(&snapshot.objects, c.ShortDebugString(), "\n");
      }
    }
    const fs::path blobs = dir_ / "data" / "blobs";
    for (const auto& entry : fs::recursive_directory_iterator(blobs)) {
      if (entry.is_regular_file()) {
        snapshot.blobs.insert(fs::relative(entry.path(), blobs).string());
      }
    }
    return snapshot;
  }

  fs::path dir_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<EvonasServiceImpl> client_service_;
  std::unique_ptr<WorkerServiceImpl> worker_service_;
  std::unique_ptr<auth::AccessControl> access_;
  std::unique_ptr<auth::AuthorizedEvonasService> authorized_client_;
  std::unique_ptr<auth::AuthorizedWorkerService> authorized_worker_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::EvonasService::Stub> client_stub_;
  std::unique_ptr<v1::WorkerService::Stub> worker_stub_;
  World world_;
};

TEST_P(HostileInputTest, AnswersClearlyAndKeepsTheDatabase) {
  const Case& c = GetParam();
  ASSERT_TRUE(controller_->IntegrityCheck().ok());
  const Snapshot before = Take();

  const grpc::Status status = c.run(world_);
  StopServer();

  EXPECT_EQ(status.error_code(), c.code) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(c.message));
  // Messages quote client input only in part: they stay readable.
  EXPECT_LE(status.error_message().size(), 1000u) << status.error_message();

  const absl::Status integrity = controller_->IntegrityCheck();
  EXPECT_TRUE(integrity.ok()) << integrity;
  const Snapshot after = Take();
  std::map<std::string, int64_t> expected_rows = before.rows;
  expected_rows["datasets"] += c.new_datasets;
  expected_rows["dataset_owners"] += c.new_datasets;  // acme's view of it
  EXPECT_EQ(after.rows, expected_rows);
  EXPECT_EQ(after.blobs.size(), before.blobs.size() + c.new_datasets);
  if (c.new_datasets == 0) {
    EXPECT_EQ(after.objects, before.objects);
    EXPECT_EQ(after.blobs, before.blobs);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, HostileInputTest, ::testing::ValuesIn(Cases()),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(HostileInputTableTest, HasAtLeastFortyCases) {
  EXPECT_GE(Cases().size(), 40u);
  std::set<std::string> names;
  for (const Case& c : Cases()) {
    EXPECT_TRUE(names.insert(c.name).second) << "duplicate case " << c.name;
  }
}

}  // namespace
}  // namespace evonas
