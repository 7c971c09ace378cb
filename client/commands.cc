#include "client/commands.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <streambuf>
#include <system_error>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/csv.h"
#include "client/report.h"
#include "client/watch.h"
#include "common/gzip.h"
#include "common/idx.h"
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

// Prints `message` as JSON, `table` or `csv` as env.format says.
absl::Status Print(const CommandEnv& env,
                   const google::protobuf::Message& message,
                   const std::string& table, const std::string& csv) {
  if (env.format == OutputFormat::kJson) return PrintJson(env, message);
  *env.out << (env.format == OutputFormat::kCsv ? csv : table);
  return absl::OkStatus();
}

template <typename T>
std::vector<T> ToVector(const google::protobuf::RepeatedPtrField<T>& items) {
  return std::vector<T>(items.begin(), items.end());
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

// Reads a string in place as an istream (std::istringstream would copy it).
class MemoryStreamBuf : public std::streambuf {
 public:
  explicit MemoryStreamBuf(const std::string& bytes) {
    char* begin = const_cast<char*>(bytes.data());
    setg(begin, begin, begin + bytes.size());
  }
};

// Appends the file at `path` to *out, decompressed if it is gzip. The
// decompressed total may not exceed `max_bytes` (ResourceExhausted).
absl::Status AppendFile(const std::string& path, int64_t max_bytes,
                        std::string* out) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) {
    return FileError("cannot open", path,
                     std::error_code(errno, std::generic_category()));
  }
  const size_t size =
      static_cast<size_t>(std::max<std::streamoff>(file.tellg(), 0));
  file.seekg(0);
  char magic[2] = {0, 0};
  file.read(magic, 2);
  const bool gzip = IsGzip(absl::string_view(magic, file.gcount()));
  file.clear();
  file.seekg(0);
  // A raw file is read straight into *out, a gzip file into a buffer first.
  std::string compressed;
  if (!gzip && static_cast<int64_t>(out->size() + size) > max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, ": the data set would exceed ", max_bytes,
                     " bytes; raise ", kMaxGunzipBytesFlag,
                     " if the controller accepts more"));
  }
  std::string& target = gzip ? compressed : *out;
  const size_t offset = target.size();
  target.resize(offset + size);
  file.read(target.data() + offset, static_cast<std::streamsize>(size));
  if (!file) {
    return FileError("cannot read", path,
                     std::error_code(errno, std::generic_category()));
  }
  if (!gzip) return absl::OkStatus();
  const absl::Status status = GunzipAppend(compressed, max_bytes, out);
  if (status.code() == absl::StatusCode::kResourceExhausted) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, ": ", status.message(), "; raise ",
                     kMaxGunzipBytesFlag, " if you trust the file"));
  }
  if (!status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat(path, ": ", status.message()));
  }
  return absl::OkStatus();
}

// Uploads `data` with a progress bar on env.err when it is a terminal,
// redrawn at most every env.redraw_interval, replaced by a final line.
absl::StatusOr<v1::Dataset> UploadWithProgress(const CommandEnv& env,
                                               const std::string& name,
                                               int64_t size_bytes,
                                               std::istream& data,
                                               v1::DatasetFormat format) {
  if (!env.err_tty) {
    return env.client->UploadDataset(name, size_bytes, data, format);
  }
  std::ostream& err = *env.err;
  const absl::Time start = env.now();
  absl::Time last_draw = absl::InfinitePast();
  int64_t sent = 0;
  absl::StatusOr<v1::Dataset> dataset = env.client->UploadDataset(
      name, size_bytes, data, format,
      [&](int64_t sent_bytes, int64_t total_bytes) {
        sent = sent_bytes;
        const absl::Time now = env.now();
        if (now - last_draw < env.redraw_interval &&
            sent_bytes != total_bytes) {
          return;
        }
        last_draw = now;
        err << "\r\033[K"
            << UploadProgressLine(sent_bytes, total_bytes, now - start,
                                  env.color)
            << std::flush;
      });
  err << "\r\033[K";
  if (dataset.ok()) err << UploadDoneLine(sent, env.now() - start) << "\n";
  err << std::flush;
  return dataset;
}

}  // namespace

absl::Status RunDatasetUpload(const CommandEnv& env,
                              const DatasetUploadOptions& options) {
  const bool idx = options.format == v1::DATASET_FORMAT_IDX;
  if (idx && options.labels_path.empty()) {
    return absl::InvalidArgumentError(
        "--format idx needs --labels FILE: the labels file that goes with "
        "the images file");
  }
  if (!idx && !options.labels_path.empty()) {
    return absl::InvalidArgumentError(
        "--labels is only for --format idx (images and labels)");
  }
  const std::string& path = options.path;
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return FileError("cannot open", path,
                     std::error_code(errno, std::generic_category()));
  }
  const std::string name =
      options.name.empty() ? std::filesystem::path(path).filename().string()
                           : options.name;
  const auto print = [&](const v1::Dataset& dataset) {
    return Print(env, dataset, DatasetTable(dataset, MakeTableContext(env)),
                 DatasetsCsv({dataset}));
  };
  char magic[2] = {0, 0};
  file.read(magic, 2);
  const bool gzip = IsGzip(absl::string_view(magic, file.gcount()));
  file.clear();
  file.seekg(0);
  if (!idx && !gzip) {
    // Streamed from disk: a large CSV is never held in memory.
    std::error_code error;
    const std::uintmax_t size = std::filesystem::file_size(path, error);
    const int64_t size_bytes = error ? 0 : static_cast<int64_t>(size);
    EVONAS_ASSIGN_OR_RETURN(
        v1::Dataset dataset,
        UploadWithProgress(env, name, size_bytes, file, options.format));
    return print(dataset);
  }
  file.close();
  std::string bytes;
  EVONAS_RETURN_IF_ERROR(
      AppendFile(path, options.max_decompressed_bytes, &bytes));
  if (idx) {
    EVONAS_RETURN_IF_ERROR(
        AppendFile(options.labels_path, options.max_decompressed_bytes, &bytes));
    // The controller checks the same; locally the mistake shows before a
    // long upload, naming the files.
    IdxLimits limits;
    limits.max_bytes = options.max_decompressed_bytes;
    // The number of values is the controller's to limit (its
    // --max-dataset-values, unknown here).
    limits.max_values = std::numeric_limits<int64_t>::max();
    const absl::Status layout = ReadIdxLayout(bytes, limits).status();
    if (!layout.ok()) {
      return absl::Status(layout.code(),
                          absl::StrCat("images ", path, " and labels ",
                                       options.labels_path, ": ",
                                       layout.message()));
    }
  }
  MemoryStreamBuf buffer(bytes);
  std::istream in(&buffer);
  EVONAS_ASSIGN_OR_RETURN(
      v1::Dataset dataset,
      UploadWithProgress(env, name, static_cast<int64_t>(bytes.size()), in,
                         options.format));
  return print(dataset);
}

absl::Status RunDatasetList(const CommandEnv& env) {
  EVONAS_ASSIGN_OR_RETURN(v1::ListDatasetsResponse response,
                          env.client->ListDatasets());
  return Print(env, response,
               DatasetListTable(response, MakeTableContext(env)),
               DatasetsCsv(ToVector(response.datasets())));
}

absl::Status RunDatasetShow(const CommandEnv& env,
                            const std::string& dataset_id) {
  EVONAS_ASSIGN_OR_RETURN(v1::Dataset dataset,
                          env.client->GetDataset(dataset_id));
  return Print(env, dataset, DatasetTable(dataset, MakeTableContext(env)),
               DatasetsCsv({dataset}));
}

absl::Status RunExperimentCreate(const CommandEnv& env,
                                 const v1::ExperimentSpec& spec) {
  EVONAS_ASSIGN_OR_RETURN(v1::Experiment experiment,
                          env.client->CreateExperiment(spec));
  return Print(
      env, experiment,
      absl::StrCat("created experiment ", experiment.id(), "\n",
                   ExperimentTable(experiment, MakeTableContext(env))),
      ExperimentsCsv({experiment}, env.now()));
}

absl::Status RunExperimentStatus(const CommandEnv& env,
                                 const std::string& experiment_id) {
  EVONAS_ASSIGN_OR_RETURN(v1::Experiment experiment,
                          env.client->GetExperiment(experiment_id));
  return Print(env, experiment,
               ExperimentTable(experiment, MakeTableContext(env)),
               ExperimentsCsv({experiment}, env.now()));
}

absl::Status RunExperimentList(const CommandEnv& env) {
  EVONAS_ASSIGN_OR_RETURN(v1::ListExperimentsResponse response,
                          env.client->ListExperiments());
  return Print(env, response,
               ExperimentListTable(response, MakeTableContext(env)),
               ExperimentsCsv(ToVector(response.experiments()), env.now()));
}

absl::Status RunExperimentCancel(const CommandEnv& env,
                                 const std::string& experiment_id) {
  EVONAS_ASSIGN_OR_RETURN(v1::Experiment experiment,
                          env.client->CancelExperiment(experiment_id));
  return Print(
      env, experiment,
      absl::StrCat("cancelled experiment ", experiment.id(), "\n",
                   ExperimentTable(experiment, MakeTableContext(env))),
      ExperimentsCsv({experiment}, env.now()));
}

absl::Status RunExperimentCandidates(const CommandEnv& env,
                                     const std::string& experiment_id) {
  EVONAS_ASSIGN_OR_RETURN(v1::ListCandidatesResponse response,
                          env.client->ListCandidates(experiment_id));
  return Print(env, response, CandidateListTable(response),
               CandidatesCsv(ToVector(response.candidates())));
}

absl::Status RunExperimentFront(const CommandEnv& env,
                                const std::string& experiment_id) {
  EVONAS_ASSIGN_OR_RETURN(v1::ParetoFront front,
                          env.client->GetParetoFront(experiment_id));
  std::vector<v1::Candidate> rows = ToVector(front.candidates());
  for (const v1::Candidate& refit : front.refits()) rows.push_back(refit);
  return Print(env, front, ParetoFrontTable(front), CandidatesCsv(rows));
}

absl::Status RunExperimentWait(const CommandEnv& env,
                               const std::string& experiment_id,
                               const WaitOptions& options) {
  const absl::Time start = env.now();
  std::ostream& progress =
      env.format == OutputFormat::kTable ? *env.out : *env.err;
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
    if (finished && env.format != OutputFormat::kTable) {
      EVONAS_RETURN_IF_ERROR(
          Print(env, experiment, "", ExperimentsCsv({experiment}, env.now())));
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
                              const std::string& path,
                              v1::ModelFormat format) {
  // The candidate's model size sizes the stream's deadline.
  EVONAS_ASSIGN_OR_RETURN(v1::Candidate candidate,
                          env.client->GetCandidate(candidate_id));
  const std::string temp_path = path + ".tmp";
  VerifyingFileWriter writer(temp_path);
  absl::Status status = writer.Open();
  if (status.ok()) {
    // Only the TorchScript file's size is known beforehand; the others are
    // of the same order.
    status = env.client->DownloadModel(
        candidate_id, candidate.metrics().model_bytes(),
        [&writer](const v1::DownloadModelResponse& message) {
          return writer.Consume(message);
        },
        format);
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
  if (env.format == OutputFormat::kCsv) {
    *env.out << CsvRecord({"candidate_id", "path", "size_bytes", "sha256"})
             << CsvRecord({candidate_id, path, absl::StrCat(writer.bytes()),
                           writer.sha256()});
    return absl::OkStatus();
  }
  *env.out << "downloaded model of candidate " << candidate_id << " to " << path
           << " (" << writer.bytes() << " bytes, sha256 " << writer.sha256()
           << ")\n";
  return absl::OkStatus();
}

absl::Status RunExperimentReport(const CommandEnv& env,
                                 const std::string& experiment_id,
                                 const ReportOptions& options) {
  if (options.format != "html" && options.format != "svg" &&
      options.format != "png") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown report format \"", options.format, "\" (html, svg or png)"));
  }
  ReportInput input;
  EVONAS_ASSIGN_OR_RETURN(input.experiment,
                          env.client->GetExperiment(experiment_id));
  const v1::ExperimentSpec& spec = input.experiment.spec();
  EVONAS_ASSIGN_OR_RETURN(input.dataset,
                          env.client->GetDataset(spec.dataset_id()));
  if (!spec.test_dataset_id().empty()) {
    EVONAS_ASSIGN_OR_RETURN(input.test_dataset,
                            env.client->GetDataset(spec.test_dataset_id()));
  }
  EVONAS_ASSIGN_OR_RETURN(v1::ListCandidatesResponse candidates,
                          env.client->ListCandidates(experiment_id));
  // The search's candidates: refits come with the front.
  for (const v1::Candidate& c : candidates.candidates()) {
    if (c.evaluation_level() != v1::EVALUATION_LEVEL_REFIT) {
      input.candidates.push_back(c);
    }
  }
  EVONAS_ASSIGN_OR_RETURN(input.front,
                          env.client->GetParetoFront(experiment_id));
  input.generated_at = env.now();
  input.time_zone = env.time_zone;
  std::string text;
  if (options.format == "png") {
    EVONAS_ASSIGN_OR_RETURN(text, RenderFrontPng(input));
  } else {
    text = options.format == "svg" ? RenderFrontSvg(input)
                                   : RenderReportHtml(input);
  }
  if (options.path == "-") {
    *env.out << text;
    return absl::OkStatus();
  }

  const std::string temp_path = options.path + ".tmp";
  {
    std::ofstream file(temp_path, std::ios::binary | std::ios::trunc);
    if (!file) {
      return FileError("cannot create", temp_path,
                       std::error_code(errno, std::generic_category()));
    }
    file.write(text.data(), static_cast<std::streamsize>(text.size()));
    file.close();
    if (!file) {
      const std::error_code error(errno, std::generic_category());
      std::error_code ignored;
      std::filesystem::remove(temp_path, ignored);
      return FileError("cannot write", temp_path, error);
    }
  }
  std::error_code error;
  std::filesystem::rename(temp_path, options.path, error);
  if (error) {
    std::error_code ignored;
    std::filesystem::remove(temp_path, ignored);
    return FileError("cannot rename to", options.path, error);
  }

  const int64_t bytes = static_cast<int64_t>(text.size());
  if (env.format == OutputFormat::kJson) {
    google::protobuf::Struct result;
    auto& fields = *result.mutable_fields();
    fields["experiment_id"].set_string_value(experiment_id);
    fields["path"].set_string_value(options.path);
    fields["format"].set_string_value(options.format);
    fields["size_bytes"].set_number_value(static_cast<double>(bytes));
    return PrintJson(env, result);
  }
  if (env.format == OutputFormat::kCsv) {
    *env.out << CsvRecord({"experiment_id", "path", "format", "size_bytes"})
             << CsvRecord({experiment_id, options.path, options.format,
                           absl::StrCat(bytes)});
    return absl::OkStatus();
  }
  *env.out << "wrote the "
           << (options.format == "html" ? "report" : "front plot")
           << " of experiment " << experiment_id << " to " << options.path
           << " (" << bytes << " bytes; " << input.candidates.size()
           << " candidates, " << input.front.candidates_size()
           << " on the front)\n";
  return absl::OkStatus();
}

absl::Status RunExperimentWatch(const CommandEnv& env,
                                const std::string& experiment_id,
                                const WatchOptions& options) {
  // The stream is read on its own thread, so that a terminal's line keeps
  // ticking (elapsed and remaining time) between the controller's updates.
  struct Shared {
    absl::Mutex mu;
    std::vector<WatchSnapshot> pending ABSL_GUARDED_BY(mu);
    bool done ABSL_GUARDED_BY(mu) = false;
    absl::Status status ABSL_GUARDED_BY(mu);
  } shared;
  std::thread reader([&env, &experiment_id, &options, &shared] {
    WatchSnapshot snapshot;
    const absl::Status status = env.client->WatchExperiment(
        experiment_id, options.timeout, [&](const v1::Experiment& e) {
          snapshot.experiment = e;
          // Each message is a change of counts: the front may have moved.
          absl::StatusOr<v1::ParetoFront> front =
              env.client->GetParetoFront(experiment_id);
          if (!front.ok()) return front.status();
          SummarizeFront(*front, &snapshot);
          absl::MutexLock lock(&shared.mu);
          shared.pending.push_back(snapshot);
          return absl::OkStatus();
        });
    absl::MutexLock lock(&shared.mu);
    shared.done = true;
    shared.status = status;
  });

  const bool live = env.tty && env.format == OutputFormat::kTable;
  std::ostream& out = *env.out;
  bool line_open = false;
  bool header_printed = false;
  absl::Status print_status;
  std::optional<WatchSnapshot> latest;
  absl::Status status;
  for (bool done = false; !done;) {
    std::vector<WatchSnapshot> updates;
    {
      absl::MutexLock lock(&shared.mu);
      auto ready = [&shared]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared.mu) {
        return shared.done || !shared.pending.empty();
      };
      shared.mu.AwaitWithTimeout(absl::Condition(&ready),
                                 live ? env.redraw_interval
                                      : absl::InfiniteDuration());
      updates.swap(shared.pending);
      done = shared.done;
      status = shared.status;
    }
    if (!updates.empty()) latest = updates.back();
    const absl::Time now = env.now();
    if (live) {
      // Redrawn on every tick, so that the times move on.
      if (!latest.has_value()) continue;
      out << "\r\033[K" << WatchLine(*latest, now, true, env.color)
          << std::flush;
      line_open = true;
      continue;
    }
    for (const WatchSnapshot& update : updates) {
      if (env.format == OutputFormat::kTable) {
        out << WatchLine(update, now, false, false) << std::endl;
      } else if (env.format == OutputFormat::kJson) {
        // No early return: the reader thread must be joined first.
        absl::StatusOr<std::string> json = ToJsonLine(update.experiment);
        if (json.ok()) {
          out << *json << std::flush;
        } else {
          print_status.Update(json.status());
        }
      } else {
        if (!header_printed) out << WatchCsvHeader();
        header_printed = true;
        out << WatchCsvRow(update, now) << std::flush;
      }
    }
  }
  reader.join();
  if (line_open) out << "\n";
  if (!status.ok()) return status;
  if (!print_status.ok()) return print_status;
  const v1::ExperimentState state = latest.has_value()
                                       ? latest->experiment.state()
                                       : v1::EXPERIMENT_STATE_UNSPECIFIED;
  if (state == v1::EXPERIMENT_STATE_COMPLETED) return absl::OkStatus();
  if (state == v1::EXPERIMENT_STATE_CANCELLED) {
    return absl::CancelledError(
        absl::StrCat("experiment ", experiment_id, " was cancelled"));
  }
  return absl::UnavailableError(
      "the controller ended the watch before the experiment finished");
}

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kUnavailable:
      return kExitUnavailable;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kCancelled:
      return kExitCancelled;
    case absl::StatusCode::kDeadlineExceeded:
      return kExitTimeout;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return kExitUnauthorized;
    default:
      return kExitError;
  }
}

}  // namespace evonas::client
