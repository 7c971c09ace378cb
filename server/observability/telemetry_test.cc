#include "server/observability/telemetry.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/genome.h"
#include "common/log.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/controller.h"
#include "server/grpc_services.h"
#include "server/observability/metrics_server.h"
#include "server/store/sqlite.h"

namespace evonas::observability {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

constexpr char kCsv[] =
    "x1,x2,y\n"
    "0,0,0\n0,1,1\n1,0,1\n1,1,2\n2,0,2\n0,2,2\n2,2,4\n3,0,3\n0,3,3\n3,3,6\n"
    "4,0,4\n0,4,4\n4,4,8\n5,0,5\n0,5,5\n5,5,10\n6,0,6\n0,6,6\n6,6,12\n7,7,14\n";

// Samples of a text exposition by series ("name{label="value",...}"); the
// comment lines are left out.
std::map<std::string, double> ParseExposition(const std::string& text) {
  std::map<std::string, double> samples;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    EXPECT_TRUE(absl::SimpleAtod(line.substr(space + 1), &value)) << line;
    samples[std::string(line.substr(0, space))] = value;
  }
  return samples;
}

// The body of GET http://127.0.0.1:PORT/metrics, or "" on a network error.
std::string HttpGetMetrics(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) ==
      0) {
    const std::string request =
        "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (send(fd, request.data(), request.size(), 0) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t n;
      while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) {
        response.append(buffer, static_cast<size_t>(n));
      }
    }
  }
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

class TelemetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("telemetry_" + std::string(::testing::UnitTest::GetInstance()
                                           ->current_test_info()
                                           ->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    log::SetSinkForTesting(
        [this](absl::string_view line) { lines_.emplace_back(line); });

    TelemetryOptions telemetry_options;
    telemetry_options.clock = [this] { return now_; };
    telemetry_options.live_worker_window = absl::Seconds(60);
    telemetry_ = std::make_shared<ControllerTelemetry>(telemetry_options);

    ControllerOptions options;
    options.db_path = (dir_ / "evonas.db").string();
    options.data_dir = (dir_ / "data").string();
    options.lease_timeout = absl::Seconds(30);
    options.max_attempts = 2;
    options.clock = [this] { return now_; };
    options.observer = telemetry_.get();
    controller_ = Controller::Create(options).value();
    telemetry_->SetCensus(OpenCensus(options.db_path).value());
  }

  void TearDown() override {
    log::SetSinkForTesting(nullptr);
    std::filesystem::remove_all(dir_);
  }

  std::string CreateExperiment() {
    auto upload = controller_->BeginUpload("data.csv", sizeof(kCsv) - 1);
    EXPECT_TRUE((*upload)->Append(kCsv).ok());
    const v1::Dataset dataset = (*upload)->Finish().value();
    v1::ExperimentSpec spec;
    spec.set_name("pricing surface");
    spec.set_dataset_id(dataset.id());
    spec.add_input_columns("x1");
    spec.add_input_columns("x2");
    spec.add_output_columns("y");
    spec.mutable_budget()->set_max_candidates(3);
    ExperimentOwnership owner;
    owner.tenant = "acme";
    owner.max_running_experiments = 5;
    return controller_->CreateExperiment(spec, owner).value().id();
  }

  v1::Lease Lease(const std::string& worker) {
    std::optional<v1::Lease> lease = controller_->LeaseWork(worker).value();
    EXPECT_TRUE(lease.has_value());
    return *lease;
  }

  void ReportSuccess(const v1::Lease& lease, const std::string& worker) {
    const std::string model = "model-bytes-" + lease.candidate_id();
    v1::WorkResult result;
    result.set_worker_id(worker);
    result.set_lease_id(lease.lease_id());
    v1::Metrics* m = result.mutable_metrics();
    m->mutable_validation()->set_row_count(4);
    m->mutable_validation()->set_max_abs_error(0.05);
    m->set_parameter_count(ParameterCount(lease.genome(), 2, 1));
    m->set_model_bytes(model.size());
    result.set_model_size_bytes(model.size());
    result.set_model_sha256(Sha256Hex(model));
    ASSERT_TRUE(controller_->Report(result, model).ok());
  }

  void ReportFailure(const v1::Lease& lease, const std::string& worker,
                     const std::string& reason) {
    v1::WorkResult result;
    result.set_worker_id(worker);
    result.set_lease_id(lease.lease_id());
    result.set_failure_reason(reason);
    ASSERT_TRUE(controller_->Report(result, "").ok());
  }

  // The logged lines that contain `part`.
  std::vector<std::string> LinesWith(absl::string_view part) const {
    std::vector<std::string> found;
    for (const std::string& line : lines_) {
      if (absl::StrContains(line, part)) found.push_back(line);
    }
    return found;
  }

  std::filesystem::path dir_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  std::vector<std::string> lines_;
  std::shared_ptr<ControllerTelemetry> telemetry_;
  std::unique_ptr<Controller> controller_;
};

TEST_F(TelemetryTest, ControllerEventsBecomeCountersGaugesAndLogLines) {
  const std::string id = CreateExperiment();
  const v1::Lease first = Lease("w1");
  ReportSuccess(first, "w1");
  const v1::Lease second = Lease("w2");
  ReportFailure(second, "w2", "loss is NaN at step \"7\"");
  const v1::Lease third = Lease("w3");

  std::map<std::string, double> samples =
      ParseExposition(telemetry_->Exposition());
  EXPECT_EQ(samples["evonas_experiments_created_total"], 1);
  EXPECT_EQ(samples["evonas_candidates_finished_total{state=\"succeeded\"}"],
            1);
  EXPECT_EQ(samples["evonas_candidates_finished_total{state=\"failed\"}"], 1);
  EXPECT_EQ(samples["evonas_candidates_finished_total{state=\"cancelled\"}"],
            0);
  EXPECT_EQ(samples["evonas_queue_depth"], 0);
  EXPECT_EQ(samples["evonas_active_leases"], 1);
  EXPECT_EQ(samples["evonas_live_workers"], 3);
  EXPECT_EQ(samples["evonas_experiments{state=\"running\"}"], 1);
  EXPECT_EQ(samples["evonas_experiments{state=\"finished\"}"], 0);

  // w3 goes silent: its lease expires and the candidate is queued again.
  now_ += absl::Seconds(31);
  ASSERT_TRUE(controller_->Maintain().ok());
  samples = ParseExposition(telemetry_->Exposition());
  EXPECT_EQ(samples["evonas_leases_expired_total{outcome=\"requeued\"}"], 1);
  EXPECT_EQ(samples["evonas_leases_expired_total{outcome=\"failed\"}"], 0);
  EXPECT_EQ(samples["evonas_queue_depth"], 1);
  EXPECT_EQ(samples["evonas_active_leases"], 0);

  // Long after, only w1 comes back (a join again) and takes the candidate.
  now_ += absl::Seconds(100);
  const v1::Lease again = Lease("w1");
  EXPECT_EQ(again.candidate_id(), third.candidate_id());
  ASSERT_TRUE(controller_->CancelExperiment(id).ok());
  samples = ParseExposition(telemetry_->Exposition());
  EXPECT_EQ(samples["evonas_live_workers"], 1);
  EXPECT_EQ(samples["evonas_queue_depth"], 0);
  // A cancelled experiment's running candidate may still report.
  EXPECT_EQ(samples["evonas_active_leases"], 1);
  EXPECT_EQ(samples["evonas_experiments{state=\"running\"}"], 0);
  EXPECT_EQ(samples["evonas_experiments{state=\"finished\"}"], 1);
  EXPECT_EQ(samples["evonas_experiments_finished_total{state=\"cancelled\"}"],
            1);
  EXPECT_EQ(samples["evonas_census_failures_total"], 0);

  ASSERT_EQ(LinesWith("event=experiment_created").size(), 1u);
  EXPECT_THAT(LinesWith("event=experiment_created")[0],
              HasSubstr(" level=info event=experiment_created experiment=" +
                        id + " tenant=acme name=\"pricing surface\""));
  ASSERT_EQ(LinesWith("event=candidate_failed").size(), 1u);
  EXPECT_THAT(LinesWith("event=candidate_failed")[0],
              HasSubstr(" level=warning event=candidate_failed candidate=" +
                        second.candidate_id() + " experiment=" + id +
                        " worker=w2 attempts=1 "
                        "reason=\"loss is NaN at step \\\"7\\\"\""));
  ASSERT_EQ(LinesWith("event=lease_expired").size(), 1u);
  EXPECT_THAT(LinesWith("event=lease_expired")[0],
              HasSubstr("candidate=" + third.candidate_id() + " experiment=" +
                        id + " worker=w3 attempts=1 outcome=requeued"));
  EXPECT_EQ(LinesWith("event=candidate_succeeded").size(), 1u);
  EXPECT_EQ(LinesWith("event=worker_joined worker=w1").size(), 2u);
  EXPECT_EQ(LinesWith("event=worker_joined worker=w2").size(), 1u);
  EXPECT_EQ(LinesWith("event=experiment_cancelled experiment=" + id).size(),
            1u);
}

TEST_F(TelemetryTest, CompletedExperimentIsLoggedAndCounted) {
  const std::string id = CreateExperiment();
  for (int i = 0; i < 3; ++i) ReportSuccess(Lease("w1"), "w1");
  EXPECT_EQ(controller_->GetExperiment(id).value().state(),
            v1::EXPERIMENT_STATE_COMPLETED);
  std::map<std::string, double> samples =
      ParseExposition(telemetry_->Exposition());
  EXPECT_EQ(samples["evonas_candidates_finished_total{state=\"succeeded\"}"],
            3);
  EXPECT_EQ(samples["evonas_experiments_finished_total{state=\"completed\"}"],
            1);
  EXPECT_EQ(samples["evonas_experiments{state=\"finished\"}"], 1);
  EXPECT_EQ(LinesWith("event=experiment_completed experiment=" + id).size(),
            1u);
  // One worker, however often it calls.
  EXPECT_EQ(samples["evonas_live_workers"], 1);
  EXPECT_EQ(LinesWith("event=worker_joined").size(), 1u);
}

// The candidate's final state is written before its artifact: a failure in
// between rolls the batch back, and what it wrote is neither logged nor
// counted.
TEST_F(TelemetryTest, RolledBackWorkIsNeitherLoggedNorCounted) {
  CreateExperiment();
  const v1::Lease lease = Lease("w1");
  const std::string model = "model-bytes";
  const std::string onnx = "onnx-bytes";
  v1::WorkResult result;
  result.set_worker_id("w1");
  result.set_lease_id(lease.lease_id());
  v1::Metrics* m = result.mutable_metrics();
  m->mutable_validation()->set_row_count(4);
  m->set_parameter_count(ParameterCount(lease.genome(), 2, 1));
  m->set_model_bytes(model.size());
  result.set_model_size_bytes(model.size());
  result.set_model_sha256(Sha256Hex(model));
  v1::Artifact* artifact = result.add_artifacts();
  artifact->set_format(v1::MODEL_FORMAT_ONNX);
  artifact->set_size_bytes(onnx.size());
  artifact->set_sha256(Sha256Hex(onnx));

  auto db = store::Database::Open((dir_ / "evonas.db").string()).value();
  ASSERT_TRUE(db->Exec("CREATE TRIGGER fail_artifact BEFORE INSERT ON "
                       "artifacts BEGIN SELECT RAISE(ABORT, 'injected "
                       "failure'); END")
                  .ok());
  EXPECT_EQ(controller_->Report(result, model, {onnx}).status().code(),
            absl::StatusCode::kUnavailable);
  std::map<std::string, double> samples =
      ParseExposition(telemetry_->Exposition());
  EXPECT_EQ(samples["evonas_candidates_finished_total{state=\"succeeded\"}"],
            0);
  EXPECT_EQ(samples["evonas_active_leases"], 1);
  EXPECT_TRUE(LinesWith("event=candidate_succeeded").empty());

  ASSERT_TRUE(db->Exec("DROP TRIGGER fail_artifact").ok());
  ASSERT_TRUE(controller_->Report(result, model, {onnx}).ok());
  samples = ParseExposition(telemetry_->Exposition());
  EXPECT_EQ(samples["evonas_candidates_finished_total{state=\"succeeded\"}"],
            1);
  EXPECT_EQ(samples["evonas_active_leases"], 0);
  EXPECT_EQ(LinesWith("event=candidate_succeeded").size(), 1u);
}

TEST_F(TelemetryTest, LogLevelFiltersEvents) {
  log::SetMinLevel(log::Level::kWarning);
  CreateExperiment();
  ReportFailure(Lease("w1"), "w1", "out of memory");
  log::SetMinLevel(log::Level::kInfo);
  EXPECT_TRUE(LinesWith("event=experiment_created").empty());
  EXPECT_TRUE(LinesWith("event=worker_joined").empty());
  EXPECT_EQ(LinesWith("event=candidate_failed").size(), 1u);
}

TEST_F(TelemetryTest, FailedCensusLeavesItsGaugesOutAndIsCounted) {
  telemetry_->SetCensus([]() -> absl::StatusOr<Census> {
    return absl::UnavailableError("database is locked");
  });
  std::map<std::string, double> samples =
      ParseExposition(telemetry_->Exposition());
  EXPECT_EQ(samples.count("evonas_queue_depth"), 0u);
  EXPECT_EQ(samples["evonas_census_failures_total"], 1);
  EXPECT_EQ(samples.count("evonas_live_workers"), 1u);
  EXPECT_EQ(LinesWith("event=census_failed").size(), 1u);
}

// The interceptor times real calls through gRPC, and the exposer serves the
// result over HTTP.
TEST_F(TelemetryTest, RpcLatenciesAreServedOverHttp) {
  EvonasServiceImpl service(controller_.get());
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(telemetry_->NewRpcInterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  auto stub = v1::EvonasService::NewStub(
      server->InProcessChannel(grpc::ChannelArguments()));
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext context;
    v1::ListDatasetsResponse response;
    ASSERT_TRUE(
        stub->ListDatasets(&context, v1::ListDatasetsRequest(), &response)
            .ok());
  }
  {
    grpc::ClientContext context;
    v1::GetExperimentRequest request;
    request.set_experiment_id("exp-missing");
    v1::Experiment response;
    EXPECT_EQ(stub->GetExperiment(&context, request, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));

  auto metrics = MetricsServer::Start("127.0.0.1:0", telemetry_).value();
  ASSERT_GT(metrics->port(), 0);
  const std::string body = HttpGetMetrics(metrics->port());
  EXPECT_THAT(body, HasSubstr("# TYPE grpc_server_handling_seconds histogram"));
  std::map<std::string, double> samples = ParseExposition(body);
  EXPECT_EQ(samples["grpc_server_handling_seconds_count{grpc_code=\"OK\","
                    "grpc_method=\"ListDatasets\",grpc_service=\"evonas.v1."
                    "EvonasService\"}"],
            2);
  EXPECT_EQ(samples["grpc_server_handling_seconds_count{grpc_code=\"NOT_"
                    "FOUND\",grpc_method=\"GetExperiment\",grpc_service="
                    "\"evonas.v1.EvonasService\"}"],
            1);
  // Every call is in the +Inf bucket.
  EXPECT_EQ(samples["grpc_server_handling_seconds_bucket{grpc_code=\"OK\","
                    "grpc_method=\"ListDatasets\",grpc_service=\"evonas.v1."
                    "EvonasService\",le=\"+Inf\"}"],
            2);
  EXPECT_EQ(samples["evonas_queue_depth"], 0);
}

TEST(MetricsServerTest, BadOrTakenAddressesAreRefused) {
  auto telemetry = std::make_shared<ControllerTelemetry>();
  EXPECT_EQ(MetricsServer::Start("localhost", telemetry).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsServer::Start("127.0.0.1:99999", telemetry).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto first = MetricsServer::Start("127.0.0.1:0", telemetry).value();
  const std::string taken = "127.0.0.1:" + std::to_string(first->port());
  absl::StatusOr<std::unique_ptr<MetricsServer>> second =
      MetricsServer::Start(taken, telemetry);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr(taken));
}

}  // namespace
}  // namespace evonas::observability
