// Crash safety: a real evonas-controller and two evonas-worker processes run
// a small experiment while the controller is killed with SIGKILL three times
// at seeded random moments and restarted on the same database, data
// directory and port, after a random outage. The workers must ride it out.
//
// Training may take milliseconds, so the test paces the experiment itself:
// it first leases four candidates under its own worker ids and holds them
// (heartbeating them across the restarts). Before each kill it gives one
// back, waits until a worker has taken it, and kills at a random moment
// after that; the last one is given back after the third kill. So every
// kill falls inside the running experiment with work in flight, however
// fast training is.
//
// Afterwards the experiment is complete, every candidate is in exactly one
// final state and was leased to a worker exactly once (an acknowledged lease
// or result that had been lost would show as a second attempt), every model
// is downloadable and matches its metrics, the database passes
// integrity_check and no temporary blob is left.

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "evonas/v1/evonas_service.grpc.pb.h"
#include "evonas/v1/worker_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/store/store.h"
#include "tests/process.h"

namespace evonas {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using testutil::Process;
using testutil::ReadFile;
using testutil::WaitFor;

constexpr int kBudget = 8;
constexpr int kKills = 3;
// Candidates the test holds back: one released before each kill, one after.
constexpr int kHeld = kKills + 1;
// Seeds the moments of the kills and the outages; printed so that a failure
// can be rerun.
constexpr uint32_t kSeed = 20261122;
// A kill happens up to this long after a worker took the candidate released
// before it.
constexpr milliseconds kMaxKillDelay(150);
// The controller stays down for a random time of up to this, so that the
// workers' calls fail and must be retried.
constexpr milliseconds kMaxDowntime(1000);

int64_t MillisSince(Clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start)
      .count();
}

// y = sin(3 x1) + x2 * x3 on [0,1]^3.
std::string SmoothCsv(int rows) {
  std::ostringstream out;
  out.precision(17);
  out << "x1,x2,x3,y\n";
  for (int i = 0; i < rows; ++i) {
    double x1 = std::fmod(i * 0.6180339887, 1.0);
    double x2 = std::fmod(i * 0.7548776662, 1.0);
    double x3 = std::fmod(i * 0.5698402910, 1.0);
    out << x1 << "," << x2 << "," << x3 << "," << std::sin(3 * x1) + x2 * x3
        << "\n";
  }
  return out.str();
}

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / "evonas-crash";
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }

  // Starts the controller (run number `run`) listening on `listen`; returns
  // once it serves, or fails the test.
  void StartController(const std::string& listen) {
    const fs::path port_file = dir_ / "port";
    fs::remove(port_file);
    ++runs_;
    controller_ = std::make_unique<Process>(
        std::vector<std::string>{
            EVONAS_CONTROLLER_BIN, "--listen=" + listen,
            "--port-file=" + port_file.string(),
            "--db=" + (dir_ / "evonas.db").string(),
            "--data-dir=" + (dir_ / "data").string(), "--lease-seconds=20",
            "--heartbeat-seconds=1", "--plaintext", "--no-auth"},
        ControllerLog(runs_));
    ASSERT_TRUE(controller_->started());
    ASSERT_TRUE(WaitFor([&] { return fs::exists(port_file); },
                        std::chrono::seconds(20)))
        << ReadFile(ControllerLog(runs_));
    port_ = std::stoi(ReadFile(port_file));
  }

  fs::path ControllerLog(int run) const {
    return dir_ / absl::StrCat("controller-", run, ".log");
  }

  void Connect() {
    // Reconnect quickly after a restart, so that the test measures the
    // controller, not the channel's backoff.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
    auto channel = grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials(),
        args);
    client_ = v1::EvonasService::NewStub(channel);
    worker_ = v1::WorkerService::NewStub(channel);
  }

  static void SetDeadline(grpc::ClientContext& context) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(5));
  }

  // The experiment, or nullopt while the controller does not answer.
  std::optional<v1::Experiment> Poll() {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::GetExperimentRequest request;
    request.set_experiment_id(experiment_id_);
    v1::Experiment experiment;
    if (!client_->GetExperiment(&context, request, &experiment).ok()) {
      return std::nullopt;
    }
    return experiment;
  }

  static int64_t Finished(const v1::Experiment& e) {
    return e.counts().succeeded() + e.counts().failed() +
           e.counts().cancelled();
  }

  static std::string HolderId(int i) {
    return absl::StrCat("crash-test-holder-", i);
  }

  grpc::Status Release(const std::string& worker_id, const v1::Lease& lease) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::ReleaseLeaseRequest request;
    request.set_worker_id(worker_id);
    request.set_lease_id(lease.lease_id());
    v1::ReleaseLeaseResponse response;
    return worker_->ReleaseLease(&context, request, &response);
  }

  std::optional<v1::Candidate> GetCandidate(const std::string& id) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::GetCandidateRequest request;
    request.set_candidate_id(id);
    v1::Candidate candidate;
    if (!client_->GetCandidate(&context, request, &candidate).ok()) {
      return std::nullopt;
    }
    return candidate;
  }

  std::string WorkerLogs() const {
    return absl::StrCat("--- worker-1\n", ReadFile(dir_ / "worker-1.log"),
                        "--- worker-2\n", ReadFile(dir_ / "worker-2.log"));
  }

  fs::path dir_;
  int runs_ = 0;
  int port_ = 0;
  std::unique_ptr<Process> controller_;
  std::unique_ptr<v1::EvonasService::Stub> client_;
  std::unique_ptr<v1::WorkerService::Stub> worker_;
  std::string experiment_id_;
};

TEST_F(CrashTest, ExperimentSurvivesControllerKills) {
  const auto test_start = Clock::now();
  ASSERT_NO_FATAL_FAILURE(StartController("127.0.0.1:0"));
  Connect();

  // Upload the data set and create the experiment through the client API.
  const std::string csv = SmoothCsv(400);
  {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::Dataset dataset;
    auto writer = client_->UploadDataset(&context, &dataset);
    v1::UploadDatasetRequest request;
    request.mutable_metadata()->set_name("smooth.csv");
    request.mutable_metadata()->set_size_bytes(static_cast<int64_t>(csv.size()));
    request.set_chunk(csv);
    ASSERT_TRUE(writer->Write(request));
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    ASSERT_TRUE(status.ok()) << status.error_message();

    v1::CreateExperimentRequest create;
    v1::ExperimentSpec* spec = create.mutable_spec();
    spec->set_dataset_id(dataset.id());
    for (const char* column : {"x1", "x2", "x3"}) spec->add_input_columns(column);
    spec->add_output_columns("y");
    spec->mutable_budget()->set_max_candidates(kBudget);
    spec->set_seed(11);
    v1::SearchSpace* space = spec->mutable_search_space();
    space->set_min_depth(1);
    space->set_max_depth(2);
    space->set_min_width(4);
    space->set_max_width(8);
    space->set_min_adam_steps(300);
    space->set_max_adam_steps(600);
    space->set_lbfgs_steps(10);
    grpc::ClientContext create_context;
    SetDeadline(create_context);
    v1::Experiment experiment;
    status = client_->CreateExperiment(&create_context, create, &experiment);
    ASSERT_TRUE(status.ok()) << status.error_message();
    experiment_id_ = experiment.id();
  }

  // Hold candidates back, under worker ids of the test's own.
  std::vector<v1::Lease> held(kHeld);
  for (int i = 0; i < kHeld; ++i) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::LeaseWorkRequest request;
    request.set_worker_id(HolderId(i));
    v1::LeaseWorkResponse response;
    grpc::Status status = worker_->LeaseWork(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_TRUE(response.has_lease());
    held[i] = response.lease();
  }

  std::vector<std::unique_ptr<Process>> workers;
  for (int i = 1; i <= 2; ++i) {
    workers.push_back(std::make_unique<Process>(
        std::vector<std::string>{
            EVONAS_WORKER_BIN, absl::StrCat("--controller=127.0.0.1:", port_),
            "--plaintext",
            absl::StrCat("--worker-id=crash-worker-", i),
            "--cache-dir=" + (dir_ / absl::StrCat("cache-", i)).string()},
        dir_ / absl::StrCat("worker-", i, ".log")));
    ASSERT_TRUE(workers.back()->started());
  }

  std::mt19937 random(kSeed);
  std::uniform_int_distribution<int> delay_ms(
      0, static_cast<int>(kMaxKillDelay.count()));
  std::uniform_int_distribution<int> downtime_ms(
      0, static_cast<int>(kMaxDowntime.count()));
  std::cerr << "crash_test: seed " << kSeed << "\n";
  for (int k = 0; k < kKills; ++k) {
    // Give one candidate back and wait until a worker has taken it (after a
    // restart, this shows how soon idle workers are back).
    const auto released = Clock::now();
    ASSERT_TRUE(Release(HolderId(k), held[k]).ok());
    ASSERT_TRUE(WaitFor(
        [&] {
          std::optional<v1::Candidate> c = GetCandidate(held[k].candidate_id());
          return c && c->state() != v1::CANDIDATE_STATE_QUEUED;
        },
        std::chrono::seconds(40)))
        << "kill " << k + 1 << ": no worker took " << held[k].candidate_id()
        << "\n"
        << WorkerLogs();
    const int64_t taken_ms = MillisSince(released);
    const int delay = delay_ms(random);
    std::this_thread::sleep_for(milliseconds(delay));  // the random moment
    std::optional<v1::Experiment> seen = Poll();
    ASSERT_TRUE(seen.has_value());
    ASSERT_EQ(seen->state(), v1::EXPERIMENT_STATE_RUNNING);
    controller_->Kill();
    const int downtime = downtime_ms(random);
    std::this_thread::sleep_for(milliseconds(downtime));  // the outage

    const auto restart = Clock::now();
    ASSERT_NO_FATAL_FAILURE(
        StartController(absl::StrCat("127.0.0.1:", port_)));
    const int64_t serving_ms = MillisSince(restart);
    ASSERT_TRUE(WaitFor([&] { return Poll().has_value(); },
                        std::chrono::seconds(20)));
    const int64_t answering_ms = MillisSince(restart);
    // The leases still held survived the crash.
    for (int i = k + 1; i < kHeld; ++i) {
      grpc::ClientContext context;
      SetDeadline(context);
      v1::HeartbeatRequest request;
      request.set_worker_id(HolderId(i));
      request.set_lease_id(held[i].lease_id());
      v1::HeartbeatResponse response;
      grpc::Status status = worker_->Heartbeat(&context, request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
    // The candidate released before the kill is finished by a worker.
    ASSERT_TRUE(WaitFor(
        [&] {
          std::optional<v1::Candidate> c = GetCandidate(held[k].candidate_id());
          return c && c->state() == v1::CANDIDATE_STATE_SUCCEEDED;
        },
        std::chrono::seconds(40)))
        << WorkerLogs();
    const int64_t finished_ms = MillisSince(restart);
    std::cerr << "crash_test: kill " << k + 1 << " " << delay
              << " ms after a worker took " << held[k].candidate_id()
              << " (taken " << taken_ms << " ms after it was given back)"
              << " (then " << seen->counts().ShortDebugString()
              << "), down for " << downtime
              << " ms; restarted: serving after " << serving_ms
              << " ms, answering after " << answering_ms << " ms, "
              << held[k].candidate_id() << " succeeded after " << finished_ms
              << " ms\n";
  }
  ASSERT_TRUE(Release(HolderId(kKills), held[kKills]).ok());

  std::optional<v1::Experiment> final_state;
  ASSERT_TRUE(WaitFor(
      [&] {
        final_state = Poll();
        return final_state &&
               final_state->state() == v1::EXPERIMENT_STATE_COMPLETED;
      },
      std::chrono::seconds(40)))
      << (final_state ? final_state->ShortDebugString() : "no answer") << "\n"
      << WorkerLogs();

  // Every candidate exactly once, in a final state, leased once.
  v1::ListCandidatesResponse candidates;
  {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::ListCandidatesRequest request;
    request.set_experiment_id(experiment_id_);
    ASSERT_TRUE(client_->ListCandidates(&context, request, &candidates).ok());
  }
  ASSERT_EQ(candidates.candidates_size(), kBudget);
  std::set<std::string> ids;
  std::set<int64_t> sequences;
  int succeeded = 0;
  for (const v1::Candidate& c : candidates.candidates()) {
    EXPECT_TRUE(ids.insert(c.id()).second) << c.id();
    EXPECT_TRUE(sequences.insert(c.sequence()).second) << c.id();
    EXPECT_EQ(c.state(), v1::CANDIDATE_STATE_SUCCEEDED)
        << c.ShortDebugString() << "\n"
        << WorkerLogs();
    EXPECT_EQ(c.attempts(), 1) << c.ShortDebugString();
    if (c.state() != v1::CANDIDATE_STATE_SUCCEEDED) continue;
    ++succeeded;
    // The accepted model survived: same size and hash as reported.
    grpc::ClientContext context;
    SetDeadline(context);
    v1::DownloadModelRequest request;
    request.set_candidate_id(c.id());
    auto reader = client_->DownloadModel(&context, request);
    v1::DownloadModelResponse chunk;
    std::string model, sha256;
    while (reader->Read(&chunk)) {
      if (model.empty() && !chunk.sha256().empty()) sha256 = chunk.sha256();
      model += chunk.chunk();
    }
    ASSERT_TRUE(reader->Finish().ok()) << c.id();
    EXPECT_EQ(static_cast<int64_t>(model.size()), c.metrics().model_bytes())
        << c.id();
    EXPECT_EQ(Sha256Hex(model), sha256) << c.id();
  }
  EXPECT_EQ(*sequences.begin(), 0);
  EXPECT_EQ(*sequences.rbegin(), kBudget - 1);
  EXPECT_EQ(final_state->counts().succeeded(), succeeded);
  EXPECT_EQ(Finished(*final_state), kBudget);
  EXPECT_EQ(final_state->counts().queued() + final_state->counts().running(),
            0);

  for (auto& worker : workers) {
    EXPECT_EQ(worker->Terminate(std::chrono::seconds(20)), 0);
  }
  // Close the test's connection first: the controller's graceful shutdown
  // waits for its clients to go.
  client_.reset();
  worker_.reset();
  EXPECT_EQ(controller_->Terminate(std::chrono::seconds(20)), 0);

  // The database on disk, through the store: intact, one row per candidate.
  auto store = store::Store::Open((dir_ / "evonas.db").string());
  ASSERT_TRUE(store.ok()) << store.status();
  const absl::Status integrity = (*store)->IntegrityCheck();
  EXPECT_TRUE(integrity.ok()) << integrity;
  auto rows = (*store)->RowCounts();
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ((*rows)["candidates"], kBudget);
  EXPECT_EQ((*rows)["experiments"], 1);
  EXPECT_EQ((*rows)["datasets"], 1);

  // No temporary blob is left behind.
  const fs::path tmp = dir_ / "data" / "blobs" / "tmp";
  ASSERT_TRUE(fs::exists(tmp));
  EXPECT_TRUE(fs::is_empty(tmp));
  std::cerr << "crash_test: " << runs_ << " controller runs, " << succeeded
            << " candidates succeeded, " << MillisSince(test_start)
            << " ms in all\n";
}

}  // namespace
}  // namespace evonas
