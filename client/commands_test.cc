#include "client/commands.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "client/fake_evonas_service.h"
#include "common/idx.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "zlib.h"

namespace evonas::client {
namespace {

namespace fs = std::filesystem;

class CommandsTest : public ::testing::Test {
 protected:
  CommandsTest() {
    env_.client = &client_;
    env_.out = &out_;
    env_.err = &err_;
    env_.now = [this] { return now_; };
    env_.time_zone = absl::UTCTimeZone();
    dir_ =
        fs::path(::testing::TempDir()) /
        ("client_test_" +
         std::string(
             ::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~CommandsTest() override { fs::remove_all(dir_); }

  std::string ReadFile(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    return content.str();
  }

  // Makes DownloadModel stream `data` in `chunk`-byte pieces, announcing
  // `sha256` and `total_bytes`.
  void ServeModel(const std::string& data, const std::string& sha256,
                  int64_t total_bytes, size_t chunk) {
    fake_.service.candidate.set_id("c-1");
    fake_.service.candidate.mutable_metrics()->set_model_bytes(total_bytes);
    for (size_t i = 0; i < data.size() || i == 0; i += chunk) {
      v1::DownloadModelResponse message;
      if (i == 0) {
        message.set_sha256(sha256);
        message.set_total_bytes(total_bytes);
      }
      message.set_chunk(data.substr(i, chunk));
      fake_.service.download.push_back(message);
      if (data.empty()) break;
    }
  }

  FakeController fake_;
  ControllerClient client_{fake_.channel, ClientOptions()};
  std::ostringstream out_;
  std::ostringstream err_;
  absl::Time now_ = absl::FromUnixSeconds(1000);
  CommandEnv env_;
  fs::path dir_;
};

TEST_F(CommandsTest, UploadNamesTheDatasetAfterTheFile) {
  const fs::path file = dir_ / "points.csv";
  std::ofstream(file) << "x,y\n1,2\n";
  fake_.service.dataset.set_id("abc123");
  fake_.service.dataset.set_row_count(1);
  fake_.service.dataset.add_columns("x");
  fake_.service.dataset.add_columns("y");

  ASSERT_TRUE(RunDatasetUpload(env_, {file.string()}).ok());
  const auto uploads = fake_.service.uploads();
  ASSERT_EQ(uploads.size(), 1u);
  EXPECT_EQ(uploads[0].metadata().name(), "points.csv");
  EXPECT_EQ(uploads[0].metadata().size_bytes(), 8);
  EXPECT_EQ(uploads[0].chunk(), "x,y\n1,2\n");
  EXPECT_NE(out_.str().find("id       abc123\n"), std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find("rows     1\n"), std::string::npos);
  EXPECT_NE(out_.str().find("columns  x, y\n"), std::string::npos);
}

TEST_F(CommandsTest, UploadDrawsProgressOnlyWhenStderrIsATerminal) {
  const fs::path file = dir_ / "points.csv";
  std::ofstream(file) << "x,y\n1,2\n";
  fake_.service.dataset.set_id("abc123");
  ASSERT_TRUE(RunDatasetUpload(env_, {file.string()}).ok());
  EXPECT_EQ(err_.str(), "");

  env_.err_tty = true;
  ASSERT_TRUE(RunDatasetUpload(env_, {file.string()}).ok());
  EXPECT_NE(err_.str().find("\r\033[Kuploading  ████████████████ 100%  8 B / 8 B"),
            std::string::npos)
      << err_.str();
  EXPECT_TRUE(absl::EndsWith(err_.str(), "\r\033[Kuploaded 8 B in 0s\n"))
      << err_.str();
}

TEST_F(CommandsTest, UploadUsesGivenNameAndPrintsJson) {
  const fs::path file = dir_ / "points.csv";
  std::ofstream(file) << "x,y\n";
  fake_.service.dataset.set_id("abc123");
  env_.format = OutputFormat::kJson;
  ASSERT_TRUE(RunDatasetUpload(env_, {file.string(), "beam data"}).ok());
  EXPECT_EQ(fake_.service.uploads()[0].metadata().name(), "beam data");
  EXPECT_NE(out_.str().find("\"id\": \"abc123\""), std::string::npos);
}

TEST_F(CommandsTest, UploadOfMissingFileIsNotFound) {
  EXPECT_EQ(RunDatasetUpload(env_, {(dir_ / "nope.csv").string()}).code(),
            absl::StatusCode::kNotFound);
}

// gzip-compresses `data` with zlib, as gzip(1) does.
std::string Gzip(const std::string& data) {
  z_stream stream{};
  deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
               Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&stream, data.size()) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

// An IDX images file of `count` images of 2x2 and a labels file of
// `label_count` labels.
std::string IdxImages(int count) {
  std::string out("\0\0\x08\x03\0\0\0", 7);
  out += static_cast<char>(count);
  out += std::string("\0\0\0\x02\0\0\0\x02", 8);
  for (int i = 0; i < 4 * count; ++i) out += static_cast<char>(i);
  return out;
}
std::string IdxLabels(int label_count) {
  std::string out("\0\0\x08\x01\0\0\0", 7);
  out += static_cast<char>(label_count);
  for (int i = 0; i < label_count; ++i) out += static_cast<char>(i % 10);
  return out;
}

// Everything the fake controller received, chunks joined.
std::string Received(const std::vector<v1::UploadDatasetRequest>& uploads) {
  std::string bytes;
  for (const auto& message : uploads) bytes += message.chunk();
  return bytes;
}

void WriteFile(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST_F(CommandsTest, UploadsAGzippedIdxPairDecompressedImagesFirst) {
  WriteFile(dir_ / "train-images-idx3-ubyte.gz", Gzip(IdxImages(3)));
  WriteFile(dir_ / "train-labels-idx1-ubyte.gz", Gzip(IdxLabels(3)));
  DatasetUploadOptions options;
  options.path = (dir_ / "train-images-idx3-ubyte.gz").string();
  options.labels_path = (dir_ / "train-labels-idx1-ubyte.gz").string();
  options.format = v1::DATASET_FORMAT_IDX;
  ASSERT_TRUE(RunDatasetUpload(env_, options).ok());
  const auto uploads = fake_.service.uploads();
  ASSERT_FALSE(uploads.empty());
  const v1::UploadDatasetRequest::Metadata& metadata = uploads[0].metadata();
  EXPECT_EQ(metadata.format(), v1::DATASET_FORMAT_IDX);
  EXPECT_EQ(metadata.name(), "train-images-idx3-ubyte.gz");
  const std::string stored = IdxImages(3) + IdxLabels(3);
  EXPECT_EQ(metadata.size_bytes(), static_cast<int64_t>(stored.size()));
  EXPECT_EQ(Received(uploads), stored);
}

TEST_F(CommandsTest, UploadsARawImagesFileWithGzippedLabels) {
  WriteFile(dir_ / "images", IdxImages(200));
  WriteFile(dir_ / "labels.gz", Gzip(IdxLabels(200)));
  DatasetUploadOptions options;
  options.path = (dir_ / "images").string();
  options.labels_path = (dir_ / "labels.gz").string();
  options.format = v1::DATASET_FORMAT_IDX;
  options.name = "fashion";
  ASSERT_TRUE(RunDatasetUpload(env_, options).ok());
  const auto uploads = fake_.service.uploads();
  ASSERT_FALSE(uploads.empty());
  EXPECT_EQ(uploads[0].metadata().name(), "fashion");
  EXPECT_EQ(Received(uploads), IdxImages(200) + IdxLabels(200));
}

TEST_F(CommandsTest, UploadsAGzippedCsvDecompressed) {
  WriteFile(dir_ / "points.csv.gz", Gzip("x,y\n1,2\n"));
  ASSERT_TRUE(RunDatasetUpload(env_, {(dir_ / "points.csv.gz").string()}).ok());
  const auto uploads = fake_.service.uploads();
  ASSERT_FALSE(uploads.empty());
  EXPECT_EQ(uploads[0].metadata().format(), v1::DATASET_FORMAT_CSV);
  EXPECT_EQ(uploads[0].metadata().size_bytes(), 8);
  EXPECT_EQ(Received(uploads), "x,y\n1,2\n");
}

TEST_F(CommandsTest, IdxNeedsLabelsAndLabelsNeedIdx) {
  WriteFile(dir_ / "images", IdxImages(3));
  DatasetUploadOptions options;
  options.path = (dir_ / "images").string();
  options.format = v1::DATASET_FORMAT_IDX;
  absl::Status status = RunDatasetUpload(env_, options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("--format idx needs --labels"),
            absl::string_view::npos);
  options.format = v1::DATASET_FORMAT_CSV;
  options.labels_path = options.path;
  status = RunDatasetUpload(env_, options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("--labels is only for --format idx"),
            absl::string_view::npos);
  EXPECT_TRUE(fake_.service.uploads().empty());
}

TEST_F(CommandsTest, MismatchedIdxPairIsRefusedBeforeUploading) {
  WriteFile(dir_ / "images", IdxImages(3));
  WriteFile(dir_ / "labels", IdxLabels(2));
  DatasetUploadOptions options;
  options.path = (dir_ / "images").string();
  options.labels_path = (dir_ / "labels").string();
  options.format = v1::DATASET_FORMAT_IDX;
  const absl::Status status = RunDatasetUpload(env_, options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  const std::string message(status.message());
  EXPECT_NE(message.find("labels " + options.labels_path), std::string::npos)
      << message;
  EXPECT_NE(message.find("holds 2 labels, but the images file 3 images"),
            std::string::npos)
      << message;
  EXPECT_TRUE(fake_.service.uploads().empty());
}

TEST_F(CommandsTest, GzipBombStopsAtTheBound) {
  WriteFile(dir_ / "bomb.csv.gz", Gzip(std::string(10 << 20, '0')));
  DatasetUploadOptions options;
  options.path = (dir_ / "bomb.csv.gz").string();
  options.max_decompressed_bytes = 1 << 20;
  const absl::Status status = RunDatasetUpload(env_, options);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(status.message().find("bomb.csv.gz: decompressed data exceed the "
                                  "limit of 1048576 bytes"),
            absl::string_view::npos)
      << status;
  // The message names the flag that raises the bound.
  EXPECT_NE(status.message().find("raise --max-gunzip-bytes"),
            absl::string_view::npos)
      << status;
  EXPECT_TRUE(fake_.service.uploads().empty());
}

TEST_F(CommandsTest, CorruptGzipIsRefused) {
  std::string gz = Gzip("x,y\n1,2\n");
  gz.resize(gz.size() - 4);
  WriteFile(dir_ / "cut.csv.gz", gz);
  EXPECT_EQ(RunDatasetUpload(env_, {(dir_ / "cut.csv.gz").string()}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(fake_.service.uploads().empty());
}

TEST_F(CommandsTest, ShowAndListPrintFormatAndImageShape) {
  v1::Dataset& d = fake_.service.dataset;
  d.set_id("img1");
  d.set_format(v1::DATASET_FORMAT_IDX);
  d.add_image_shape(28);
  d.add_image_shape(28);
  d.set_row_count(60000);
  for (int i = 0; i < 784; ++i) d.add_columns("pixel_" + std::to_string(i));
  d.add_columns("label");
  ASSERT_TRUE(RunDatasetShow(env_, "img1").ok());
  EXPECT_NE(out_.str().find("format   IDX 28x28\n"), std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find(
                "columns  pixel_0 .. pixel_783, label (785 columns)\n"),
            std::string::npos)
      << out_.str();

  out_.str("");
  *fake_.service.dataset_list.add_datasets() = d;
  v1::Dataset* csv = fake_.service.dataset_list.add_datasets();
  csv->set_id("tab1");
  csv->add_columns("x");
  ASSERT_TRUE(RunDatasetList(env_).ok());
  EXPECT_NE(out_.str().find("FORMAT"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("IDX 28x28"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("CSV"), std::string::npos) << out_.str();

  out_.str("");
  env_.format = OutputFormat::kCsv;
  ASSERT_TRUE(RunDatasetShow(env_, "img1").ok());
  EXPECT_NE(out_.str().find(",IDX,28x28\r\n"), std::string::npos)
      << out_.str().substr(out_.str().size() - 100);
}

TEST_F(CommandsTest, CreatePrintsTheNewId) {
  fake_.service.created_experiment.set_id("exp-42");
  v1::ExperimentSpec spec;
  spec.set_dataset_id("d1");
  ASSERT_TRUE(RunExperimentCreate(env_, spec).ok());
  EXPECT_EQ(fake_.service.created_spec().dataset_id(), "d1");
  EXPECT_EQ(out_.str().find("created experiment exp-42\n"), 0u) << out_.str();
}

TEST_F(CommandsTest, FrontPrintsTableOrJson) {
  fake_.service.front.set_experiment_id("exp-1");
  fake_.service.front.set_has_feasible(true);
  v1::Candidate* c = fake_.service.front.add_candidates();
  c->set_id("c-7");
  c->set_feasible(true);
  c->mutable_metrics()->mutable_validation()->set_max_abs_error(0.002);
  ASSERT_TRUE(RunExperimentFront(env_, "exp-1").ok());
  EXPECT_EQ(fake_.service.last_id(), "exp-1");
  EXPECT_EQ(out_.str().find("Requirements met: yes"), 0u) << out_.str();
  EXPECT_NE(out_.str().find("c-7"), std::string::npos);

  out_.str("");
  env_.format = OutputFormat::kJson;
  ASSERT_TRUE(RunExperimentFront(env_, "exp-1").ok());
  EXPECT_NE(out_.str().find("\"has_feasible\": true"), std::string::npos)
      << out_.str();
}

TEST_F(CommandsTest, CandidatesListsEveryCandidate) {
  for (const char* id : {"c-1", "c-2"}) {
    v1::Candidate* c = fake_.service.candidates.add_candidates();
    c->set_id(id);
    c->set_state(v1::CANDIDATE_STATE_RUNNING);
  }
  ASSERT_TRUE(RunExperimentCandidates(env_, "exp-1").ok());
  const std::vector<std::string> lines =
      absl::StrSplit(out_.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << out_.str();
  EXPECT_TRUE(absl::StartsWith(lines[1], "c-1  running"));
}

v1::Experiment WithCounts(v1::ExperimentState state, int64_t queued,
                          int64_t succeeded) {
  v1::Experiment e;
  e.set_id("exp-1");
  e.set_state(state);
  e.mutable_counts()->set_queued(queued);
  e.mutable_counts()->set_succeeded(succeeded);
  return e;
}

WaitOptions FastPolling() {
  WaitOptions options;
  options.poll_interval = absl::Milliseconds(1);
  return options;
}

TEST_F(CommandsTest, WaitPrintsALineOnlyWhenCountsChange) {
  fake_.service.experiments = {
      WithCounts(v1::EXPERIMENT_STATE_RUNNING, 2, 0),
      WithCounts(v1::EXPERIMENT_STATE_RUNNING, 2, 0),
      WithCounts(v1::EXPERIMENT_STATE_RUNNING, 1, 1),
      WithCounts(v1::EXPERIMENT_STATE_COMPLETED, 0, 2),
  };
  ASSERT_TRUE(RunExperimentWait(env_, "exp-1", FastPolling()).ok());
  const std::vector<std::string> lines =
      absl::StrSplit(out_.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << out_.str();
  EXPECT_TRUE(absl::StartsWith(lines[0], "exp-1: running, 2 queued"));
  EXPECT_TRUE(absl::StartsWith(lines[1], "exp-1: running, 1 queued"));
  EXPECT_TRUE(absl::StartsWith(lines[2], "exp-1: completed"));
}

TEST_F(CommandsTest, WaitInJsonModePrintsProgressToStderr) {
  fake_.service.experiments = {
      WithCounts(v1::EXPERIMENT_STATE_COMPLETED, 0, 2)};
  env_.format = OutputFormat::kJson;
  ASSERT_TRUE(RunExperimentWait(env_, "exp-1", FastPolling()).ok());
  EXPECT_TRUE(absl::StartsWith(err_.str(), "exp-1: completed"));
  EXPECT_TRUE(absl::StartsWith(out_.str(), "{"));
}

TEST_F(CommandsTest, WaitReportsCancellation) {
  fake_.service.experiments = {
      WithCounts(v1::EXPERIMENT_STATE_CANCELLED, 0, 1)};
  EXPECT_EQ(RunExperimentWait(env_, "exp-1", FastPolling()).code(),
            absl::StatusCode::kCancelled);
}

TEST_F(CommandsTest, WaitGivesUpAfterTimeout) {
  fake_.service.experiments = {WithCounts(v1::EXPERIMENT_STATE_RUNNING, 1, 0)};
  // Every reading of the clock advances it by one second.
  env_.now = [this] { return now_ += absl::Seconds(1); };
  WaitOptions options = FastPolling();
  options.timeout = absl::Seconds(5);
  const absl::Status status = RunExperimentWait(env_, "exp-1", options);
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(status.message().find("still running"), std::string::npos);
}

TEST_F(CommandsTest, WaitReturnsRpcErrors) {
  EXPECT_EQ(RunExperimentWait(env_, "exp-x", FastPolling()).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CommandsTest, DownloadWritesVerifiedModel) {
  std::string model(2500, '\0');
  for (size_t i = 0; i < model.size(); ++i) model[i] = static_cast<char>(i);
  ServeModel(model, Sha256Hex(model), static_cast<int64_t>(model.size()), 1000);
  const fs::path file = dir_ / "model.pt";

  const absl::Status status = RunModelDownload(env_, "c-1", file.string());
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(ReadFile(file), model);
  EXPECT_FALSE(fs::exists(dir_ / "model.pt.tmp"));
  EXPECT_NE(out_.str().find("2500 bytes"), std::string::npos);
  EXPECT_EQ(fake_.service.last_id(), "c-1");
}

TEST_F(CommandsTest, DownloadWithWrongHashLeavesNoFile) {
  const std::string model = "torchscript bytes";
  ServeModel(model, Sha256Hex("something else"),
             static_cast<int64_t>(model.size()), 5);
  const fs::path file = dir_ / "model.pt";
  const absl::Status status = RunModelDownload(env_, "c-1", file.string());
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("sha256"), std::string::npos);
  EXPECT_FALSE(fs::exists(file));
  EXPECT_FALSE(fs::exists(dir_ / "model.pt.tmp"));
}

TEST_F(CommandsTest, DownloadKeepsAnExistingFileOnError) {
  const std::string model = "torchscript bytes";
  ServeModel(model, Sha256Hex(model), static_cast<int64_t>(model.size()) + 10,
             5);
  const fs::path file = dir_ / "model.pt";
  std::ofstream(file) << "old";
  EXPECT_EQ(RunModelDownload(env_, "c-1", file.string()).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReadFile(file), "old");
  EXPECT_FALSE(fs::exists(dir_ / "model.pt.tmp"));
}

TEST_F(CommandsTest, DownloadRejectsMoreBytesThanAnnounced) {
  const std::string model = "torchscript bytes";
  ServeModel(model, Sha256Hex(model), 4, 5);
  EXPECT_EQ(RunModelDownload(env_, "c-1", (dir_ / "m.pt").string()).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_FALSE(fs::exists(dir_ / "m.pt.tmp"));
}

TEST_F(CommandsTest, DownloadPassesControllerErrorsOn) {
  ServeModel("", Sha256Hex(""), 0, 5);
  fake_.service.download.clear();
  fake_.service.download_status =
      grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "still running");
  EXPECT_EQ(RunModelDownload(env_, "c-1", (dir_ / "m.pt").string()).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(dir_ / "m.pt.tmp"));
}

TEST_F(CommandsTest, EmptyModelDownloads) {
  ServeModel("", Sha256Hex(""), 0, 5);
  const fs::path file = dir_ / "empty.pt";
  ASSERT_TRUE(RunModelDownload(env_, "c-1", file.string()).ok());
  EXPECT_TRUE(fs::exists(file));
  EXPECT_EQ(fs::file_size(file), 0u);
}

TEST_F(CommandsTest, CsvOutputHasAHeaderAndOneRowPerItem) {
  env_.format = OutputFormat::kCsv;
  for (const char* id : {"d1", "d2"}) {
    v1::Dataset* d = fake_.service.dataset_list.add_datasets();
    d->set_id(id);
    d->set_name("beam, \"v2\"");
    d->add_columns("x");
    d->add_columns("y");
  }
  ASSERT_TRUE(RunDatasetList(env_).ok());
  EXPECT_EQ(out_.str(),
            "id,name,row_count,column_count,columns,size_bytes,created_at,"
            "format,image_shape\r\n"
            "d1,\"beam, \"\"v2\"\"\",0,2,\"x,y\",0,,CSV,\r\n"
            "d2,\"beam, \"\"v2\"\"\",0,2,\"x,y\",0,,CSV,\r\n");

  out_.str("");
  *fake_.service.experiment_list.add_experiments() =
      WithCounts(v1::EXPERIMENT_STATE_RUNNING, 2, 3);
  ASSERT_TRUE(RunExperimentList(env_).ok());
  std::vector<std::string> lines =
      absl::StrSplit(out_.str(), "\r\n", absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << out_.str();
  EXPECT_TRUE(absl::StartsWith(lines[1], "exp-1,,running,")) << lines[1];

  out_.str("");
  fake_.service.experiments = {WithCounts(v1::EXPERIMENT_STATE_RUNNING, 2, 3)};
  ASSERT_TRUE(RunExperimentStatus(env_, "exp-1").ok());
  lines = absl::StrSplit(out_.str(), "\r\n", absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 2u) << out_.str();

  out_.str("");
  for (const char* id : {"c-1", "c-2", "c-3"}) {
    v1::Candidate* c = fake_.service.front.add_candidates();
    c->set_id(id);
    c->set_state(v1::CANDIDATE_STATE_SUCCEEDED);
    c->mutable_metrics()->mutable_validation()->set_max_abs_error(0.001);
  }
  ASSERT_TRUE(RunExperimentFront(env_, "exp-1").ok());
  lines = absl::StrSplit(out_.str(), "\r\n", absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << out_.str();
  EXPECT_TRUE(absl::StartsWith(lines[0], "id,sequence,state,"));
  EXPECT_NE(lines[1].find(",0.001,"), std::string::npos) << lines[1];

  out_.str("");
  *fake_.service.candidates.add_candidates() = fake_.service.front.candidates(0);
  ASSERT_TRUE(RunExperimentCandidates(env_, "exp-1").ok());
  lines = absl::StrSplit(out_.str(), "\r\n", absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 2u) << out_.str();
}

v1::Experiment Watched(v1::ExperimentState state, int64_t running,
                       int64_t succeeded) {
  v1::Experiment e = WithCounts(state, 0, succeeded);
  e.mutable_counts()->set_running(running);
  e.mutable_created_at()->set_seconds(900);
  e.mutable_spec()->mutable_budget()->set_max_candidates(4);
  return e;
}

void AddFeasible(v1::ParetoFront* front, double error) {
  front->set_has_feasible(true);
  v1::Candidate* c = front->add_candidates();
  c->set_feasible(true);
  c->mutable_metrics()->mutable_validation()->set_max_abs_error(error);
}

TEST_F(CommandsTest, WatchPrintsPlainLinesWhenPiped) {
  fake_.service.experiments = {
      Watched(v1::EXPERIMENT_STATE_RUNNING, 2, 0),
      Watched(v1::EXPERIMENT_STATE_RUNNING, 1, 1),
      Watched(v1::EXPERIMENT_STATE_COMPLETED, 0, 4),
  };
  AddFeasible(&fake_.service.front, 3.2e-4);
  const absl::Status status = RunExperimentWatch(env_, "exp-1", {});
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(fake_.service.last_id(), "exp-1");
  const std::vector<std::string> lines =
      absl::StrSplit(out_.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << out_.str();
  EXPECT_EQ(lines[0],
            "exp-1 running 0% | 0 done, 2 running, 0 queued, 0 failed | "
            "best feasible 3.20e-04 | front 1 | elapsed 1m40s, time left "
            "unknown");
  EXPECT_EQ(lines[1],
            "exp-1 running 25% | 1 done, 1 running, 0 queued, 0 failed | "
            "best feasible 3.20e-04 | front 1 | elapsed 1m40s, ~5m00s left");
  EXPECT_TRUE(absl::StartsWith(lines[2], "exp-1 completed 100% | 4 done"))
      << lines[2];
  EXPECT_EQ(out_.str().find('\033'), std::string::npos);
  EXPECT_EQ(out_.str().find('\r'), std::string::npos);
}

TEST_F(CommandsTest, WatchRedrawsOneColouredLineOnATerminal) {
  env_.tty = true;
  env_.color = true;
  fake_.service.experiments = {
      Watched(v1::EXPERIMENT_STATE_RUNNING, 2, 0),
      Watched(v1::EXPERIMENT_STATE_COMPLETED, 0, 4),
  };
  ASSERT_TRUE(RunExperimentWatch(env_, "exp-1", {}).ok());
  const std::string text = out_.str();
  EXPECT_TRUE(absl::StartsWith(text, "\r\033[K")) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_EQ(text.back(), '\n');
  EXPECT_NE(text.find("\033[32m"), std::string::npos);  // green
  EXPECT_NE(text.find("no feasible yet"), std::string::npos);
  EXPECT_NE(text.find("████████████████"), std::string::npos);  // full bar
}

TEST_F(CommandsTest, WatchPrintsJsonLinesAndCsvRows) {
  fake_.service.experiments = {
      Watched(v1::EXPERIMENT_STATE_RUNNING, 2, 0),
      Watched(v1::EXPERIMENT_STATE_COMPLETED, 0, 4),
  };
  env_.format = OutputFormat::kJson;
  ASSERT_TRUE(RunExperimentWatch(env_, "exp-1", {}).ok());
  std::vector<std::string> lines =
      absl::StrSplit(out_.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << out_.str();
  EXPECT_TRUE(absl::StartsWith(lines[1], "{\"id\":\"exp-1\"")) << lines[1];

  out_.str("");
  env_.format = OutputFormat::kCsv;
  ASSERT_TRUE(RunExperimentWatch(env_, "exp-1", {}).ok());
  lines = absl::StrSplit(out_.str(), "\r\n", absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << out_.str();
  EXPECT_TRUE(absl::StartsWith(lines[0], "time,experiment_id,state,"));
  EXPECT_NE(lines[2].find(",exp-1,completed,0,0,4,"), std::string::npos)
      << lines[2];
}

TEST_F(CommandsTest, WatchReportsCancellationAndErrors) {
  fake_.service.experiments = {Watched(v1::EXPERIMENT_STATE_CANCELLED, 0, 1)};
  EXPECT_EQ(RunExperimentWatch(env_, "exp-1", {}).code(),
            absl::StatusCode::kCancelled);

  fake_.service.experiments.clear();
  fake_.service.watch_status =
      grpc::Status(grpc::StatusCode::NOT_FOUND, "no experiment exp-9");
  const absl::Status status = RunExperimentWatch(env_, "exp-9", {});
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "no experiment exp-9");

  // A stream that ends while the experiment still runs is not success.
  fake_.service.watch_status = grpc::Status::OK;
  fake_.service.experiments = {Watched(v1::EXPERIMENT_STATE_RUNNING, 1, 0)};
  EXPECT_EQ(RunExperimentWatch(env_, "exp-1", {}).code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(CommandsTest, ReportWritesHtmlSvgOrPng) {
  fake_.service.experiments = {Watched(v1::EXPERIMENT_STATE_COMPLETED, 0, 1)};
  fake_.service.dataset.set_id("d1");
  fake_.service.dataset.set_name("train<1>.csv");
  AddFeasible(&fake_.service.front, 1e-3);
  fake_.service.front.mutable_candidates(0)->set_id("c-1");
  fake_.service.front.mutable_candidates(0)->set_state(
      v1::CANDIDATE_STATE_SUCCEEDED);
  *fake_.service.candidates.add_candidates() = fake_.service.front.candidates(0);

  const fs::path html = dir_ / "report.html";
  ReportOptions options;
  options.path = html.string();
  ASSERT_TRUE(RunExperimentReport(env_, "exp-1", options).ok());
  const std::string page = ReadFile(html);
  EXPECT_TRUE(absl::StartsWith(page, "<!DOCTYPE html>"));
  EXPECT_NE(page.find("train&lt;1&gt;.csv"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "report.html.tmp"));
  EXPECT_NE(out_.str().find("wrote the report of experiment exp-1 to"),
            std::string::npos)
      << out_.str();

  options.path = (dir_ / "front.svg").string();
  options.format = "svg";
  ASSERT_TRUE(RunExperimentReport(env_, "exp-1", options).ok());
  EXPECT_TRUE(absl::StartsWith(ReadFile(dir_ / "front.svg"), "<?xml"));

  out_.str("");
  options.path = "-";
  ASSERT_TRUE(RunExperimentReport(env_, "exp-1", options).ok());
  EXPECT_TRUE(absl::StartsWith(out_.str(), "<?xml")) << out_.str();

  // A PNG, binary-safe, also on standard output.
  out_.str("");
  options.path = (dir_ / "front.png").string();
  options.format = "png";
  ASSERT_TRUE(RunExperimentReport(env_, "exp-1", options).ok());
  const std::string png = ReadFile(dir_ / "front.png");
  EXPECT_TRUE(absl::StartsWith(png, std::string("\x89PNG\r\n\x1a\n", 8)));
  EXPECT_TRUE(absl::EndsWith(png, std::string("IEND\xae\x42\x60\x82", 8)));
  EXPECT_NE(out_.str().find("wrote the front plot of experiment exp-1 to"),
            std::string::npos)
      << out_.str();
  out_.str("");
  options.path = "-";
  ASSERT_TRUE(RunExperimentReport(env_, "exp-1", options).ok());
  EXPECT_EQ(out_.str(), png);

  options.format = "pdf";
  EXPECT_EQ(RunExperimentReport(env_, "exp-1", options).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CommandsTest, ReportOfUnknownExperimentWritesNothing) {
  ReportOptions options;
  options.path = (dir_ / "report.html").string();
  EXPECT_EQ(RunExperimentReport(env_, "exp-x", options).code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir_ / "report.html"));
}

TEST(ExitCodeTest, DocumentedCodes) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("")), 1);
  EXPECT_EQ(ExitCodeFor(absl::FailedPreconditionError("")), 1);
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError("")), 3);
  EXPECT_EQ(ExitCodeFor(absl::NotFoundError("")), 4);
  EXPECT_EQ(ExitCodeFor(absl::CancelledError("")), 5);
  EXPECT_EQ(ExitCodeFor(absl::DeadlineExceededError("")), 6);
  EXPECT_EQ(ExitCodeFor(absl::UnauthenticatedError("")), 7);
  EXPECT_EQ(ExitCodeFor(absl::PermissionDeniedError("")), 7);
}

}  // namespace
}  // namespace evonas::client
