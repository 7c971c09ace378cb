#include "client/commands.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <system_error>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "google/protobuf/struct.pb.h"

namespace evonas::client {
namespace {

TableContext MakeTableContext(const CommandEnv& env) {
  return TableContext{env.now(), env.time_zone};
}

absl::Status PrintJson(const CommandEnv& env,
                       const google::protobuf::Message& message) {
  EVONAS_ASSIGN_OR_RETURN(std::string json, ToJson(message));
  *env.out << json;
  return absl::OkStatus();
}

// Prints `message` as JSON or, in table mode, as `table`.
absl::Status Print(const CommandEnv& env,
                   const google::protobuf::Message& message,
                   const std::string& table) {
  if (env.format == OutputFormat::kJson) return PrintJson(env, message);
  *env.out << table;
  return absl::OkStatus();
}

absl::Status FileError(const std::string& what, const std::string& path,
                       const std::error_code& error) {
  absl::StatusCode code = absl::ErrnoToStatusCode(error.value());
  if (code == absl::StatusCode::kOk) code = absl::StatusCode::kUnknown;
  return absl::Status(code,
                      absl::StrCat(what, " ", path, ": ", error.message()));
}

// Writes DownloadModel's messages to a file and checks them against the size
// and SHA-256 announced in the first message.
class VerifyingFileWriter {
 public:
  explicit VerifyingFileWriter(std::string path) : path_(std::move(path)) {}

  absl::Status Open() {
    file_.open(path_, std::ios::binary | std::ios::trunc);
    if (!file_) {
      return FileError("cannot create", path_,
                       std::error_code(errno, std::generic_category()));
    }
    return absl::OkStatus();
  }

  absl::Status Consume(const v1::DownloadModelResponse& message) {
    if (!total_bytes_.has_value()) {
      if (message.sha256().empty()) {
        return absl::DataLossError(
            "the controller sent no sha256 in the first message");
      }
      total_bytes_ = message.total_bytes();
      expected_sha256_ = message.sha256();
    }
    received_bytes_ += static_cast<int64_t>(message.chunk().size());
    if (received_bytes_ > *total_bytes_) {
      return absl::DataLossError(
          absl::StrCat("the controller sent more than the announced ",
                       *total_bytes_, " bytes"));
    }
    sha256_.Update(message.chunk());
    file_.write(message.chunk().data(),
                static_cast<std::streamsize>(message.chunk().size()));
    if (!file_) {
      return FileError("cannot write", path_,
                       std::error_code(errno, std::generic_category()));
    }
    return absl::OkStatus();
  }

  // Closes the file and checks that everything announced arrived intact.
  absl::Status Finish() {
    file_.close();
    if (!file_) {
      return FileError("cannot write", path_,
                       std::error_code(errno, std::generic_category()));
    }
    if (!total_bytes_.has_value()) {
      return absl::DataLossError("the controller sent no model data");
    }
    if (received_bytes_ != *total_bytes_) {
      return absl::DataLossError(absl::StrCat("model truncated: received ",
                                              received_bytes_, " of ",
                                              *total_bytes_, " bytes"));
    }
    actual_sha256_ = sha256_.HexDigest();
    if (actual_sha256_ != expected_sha256_) {
      return absl::DataLossError(absl::StrCat("model corrupt: sha256 ",
                                              actual_sha256_, " != announced ",
                                              expected_sha256_));
    }
    return absl::OkStatus();
  }

  int64_t bytes() const { return received_bytes_; }
  const std::string& sha256() const { return actual_sha256_; }

 private:
  std::string path_;
  std::ofstream file_;
  Sha256 sha256_;
  std::optional<int64_t> total_bytes_;
  std::string expected_sha256_;
  std::string actual_sha256_;
  int64_t received_bytes_ = 0;
};

}  // namespace

absl::Status RunDatasetUpload(const CommandEnv& env, const std::string& path,
                              const std::string& name) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return FileError("cannot open", path,
                     std::error_code(errno, std::generic_category()));
  }
  std::error_code error;
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  const int64_t size_bytes = error ? 0 : static_cast<int64_t>(size);
  const std::string dataset_name =
      name.empty() ? std::filesystem::path(path).filename().string() : name;
  EVONAS_ASSIGN_OR_RETURN(
      v1::Dataset dataset,
      env.client->UploadDataset(dataset_name, size_bytes, file));
  return Print(env, dataset, DatasetTable(dataset, MakeTableContext(env)));
}

absl::Status RunDatasetList(const CommandEnv& env) {
  EVONAS_ASSIGN_OR_RETURN(v1::ListDatasetsResponse response,
                          env.client->ListDatasets());
  return Print(env, response,
               DatasetListTable(response, MakeTableContext(env)));
}

absl::Status RunDatasetShow(const CommandEnv& env,
                            const std::string& dataset_id) {
  EVONAS_ASSIGN_OR_RETURN(v1::Dataset dataset,
                          env.client->GetDataset(dataset_id));
  return Print(env, dataset, DatasetTable(dataset, MakeTableContext(env)));
}

absl::Status RunExperimentCreate(const CommandEnv& env,
                                 const v1::ExperimentSpec& spec) {
  EVONAS_ASSIGN_OR_RETURN(v1::Experiment experiment,
                          env.client->CreateExperiment(spec));
  return Print(
      env, experiment,
      absl::StrCat("created experiment ", experiment.id(), "\n",
                   ExperimentTable(experiment, MakeTableContext(env))));
}

absl::Status RunExperimentStatus(const CommandEnv& env,
                                 const std::string& experiment_id) {
  EVONAS_ASSIGN_OR_RETURN(v1::Experiment experiment,
                          env.client->GetExperiment(experiment_id));
  return Print(env, experiment,
               ExperimentTable(experiment, MakeTableContext(env)));
}

absl::Status RunExperimentList(const CommandEnv& env) {
  EVONAS_ASSIGN_OR_RETURN(v1::ListExperimentsResponse response,
                          env.client->ListExperiments());
  return Print(env, response,
               ExperimentListTable(response, MakeTableContext(env)));
}

absl::Status RunExperimentCancel(const CommandEnv& env,
                                 const std::string& experiment_id) {
  EVONAS_ASSIGN_OR_RETURN(v1::Experiment experiment,
                          env.client->CancelExperiment(experiment_id));
  return Print(
      env, experiment,
      absl::StrCat("cancelled experiment ", experiment.id(), "\n",
                   ExperimentTable(experiment, MakeTableContext(env))));
}

absl::Status RunExperimentCandidates(const CommandEnv& env,
                                     const std::string& experiment_id) {
  EVONAS_ASSIGN_OR_RETURN(v1::ListCandidatesResponse response,
                          env.client->ListCandidates(experiment_id));
  return Print(env, response, CandidateListTable(response));
}

absl::Status RunExperimentFront(const CommandEnv& env,
                                const std::string& experiment_id) {
  EVONAS_ASSIGN_OR_RETURN(v1::ParetoFront front,
                          env.client->GetParetoFront(experiment_id));
  return Print(env, front, ParetoFrontTable(front));
}

absl::Status RunExperimentWait(const CommandEnv& env,
                               const std::string& experiment_id,
                               const WaitOptions& options) {
  const absl::Time start = env.now();
  std::ostream& progress =
      env.format == OutputFormat::kJson ? *env.err : *env.out;
  std::string last_line_key;
  for (;;) {
    EVONAS_ASSIGN_OR_RETURN(v1::Experiment experiment,
                            env.client->GetExperiment(experiment_id));
    // Print when the state or any count changes, not when only time passes.
    const std::string key = absl::StrCat(
        experiment.state(), "|", experiment.counts().SerializeAsString(), "|",
        experiment.feasible_count());
    if (key != last_line_key) {
      progress << ProgressLine(experiment, env.now()) << std::endl;
      last_line_key = key;
    }
    const bool finished =
        experiment.state() == v1::EXPERIMENT_STATE_COMPLETED ||
        experiment.state() == v1::EXPERIMENT_STATE_CANCELLED;
    if (finished && env.format == OutputFormat::kJson) {
      EVONAS_RETURN_IF_ERROR(PrintJson(env, experiment));
    }
    if (experiment.state() == v1::EXPERIMENT_STATE_COMPLETED) {
      return absl::OkStatus();
    }
    if (experiment.state() == v1::EXPERIMENT_STATE_CANCELLED) {
      return absl::CancelledError(
          absl::StrCat("experiment ", experiment_id, " was cancelled"));
    }
    absl::Duration sleep = options.poll_interval;
    if (options.timeout > absl::ZeroDuration()) {
      const absl::Duration remaining = start + options.timeout - env.now();
      if (remaining <= absl::ZeroDuration()) {
        return absl::DeadlineExceededError(
            absl::StrCat("experiment ", experiment_id, " still ",
                         ExperimentStateName(experiment.state()), " after ",
                         ShortDuration(options.timeout)));
      }
      sleep = std::min(sleep, remaining);
    }
    absl::SleepFor(sleep);
  }
}

absl::Status RunModelDownload(const CommandEnv& env,
                              const std::string& candidate_id,
                              const std::string& path) {
  // The candidate's model size sizes the stream's deadline.
  EVONAS_ASSIGN_OR_RETURN(v1::Candidate candidate,
                          env.client->GetCandidate(candidate_id));
  const std::string temp_path = path + ".tmp";
  VerifyingFileWriter writer(temp_path);
  absl::Status status = writer.Open();
  if (status.ok()) {
    status = env.client->DownloadModel(
        candidate_id, candidate.metrics().model_bytes(),
        [&writer](const v1::DownloadModelResponse& message) {
          return writer.Consume(message);
        });
  }
  if (status.ok()) status = writer.Finish();
  if (status.ok()) {
    std::error_code error;
    std::filesystem::rename(temp_path, path, error);
    if (error) status = FileError("cannot rename to", path, error);
  }
  if (!status.ok()) {
    std::error_code ignored;
    std::filesystem::remove(temp_path, ignored);
    return status;
  }

  if (env.format == OutputFormat::kJson) {
    google::protobuf::Struct result;
    auto& fields = *result.mutable_fields();
    fields["candidate_id"].set_string_value(candidate_id);
    fields["path"].set_string_value(path);
    fields["size_bytes"].set_number_value(static_cast<double>(writer.bytes()));
    fields["sha256"].set_string_value(writer.sha256());
    return PrintJson(env, result);
  }
  *env.out << "downloaded model of candidate " << candidate_id << " to " << path
           << " (" << writer.bytes() << " bytes, sha256 " << writer.sha256()
           << ")\n";
  return absl::OkStatus();
}

}  // namespace evonas::client
