#include "server/grpc_services.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace evonas {
namespace {

constexpr char kCsv[] = "x,y\n0,0\n1,1\n2,2\n3,3\n4,4\n5,5\n6,6\n7,7\n";

// EvonasServiceImpl over a real Controller, served in process.
class WatchExperimentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("grpc_services_" + std::string(::testing::UnitTest::GetInstance()
                                               ->current_test_info()
                                               ->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    ControllerOptions options;
    options.db_path = (dir_ / "evonas.db").string();
    options.data_dir = (dir_ / "data").string();
    controller_ = Controller::Create(options).value();
    service_ = std::make_unique<EvonasServiceImpl>(controller_.get());
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    stub_ = v1::EvonasService::NewStub(
        server_->InProcessChannel(grpc::ChannelArguments()));
  }

  void TearDown() override {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(5));
    std::filesystem::remove_all(dir_);
  }

  std::string CreateExperiment() {
    auto upload = controller_->BeginUpload("data.csv", sizeof(kCsv) - 1);
    EXPECT_TRUE((*upload)->Append(kCsv).ok());
    const v1::Dataset dataset = (*upload)->Finish().value();
    v1::ExperimentSpec spec;
    spec.set_dataset_id(dataset.id());
    spec.add_input_columns("x");
    spec.add_output_columns("y");
    spec.mutable_budget()->set_max_candidates(3);
    return controller_->CreateExperiment(spec).value().id();
  }

  std::unique_ptr<grpc::ClientReader<v1::Experiment>> Watch(
      grpc::ClientContext* context, const std::string& id) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(30));
    v1::WatchExperimentRequest request;
    request.set_experiment_id(id);
    return stub_->WatchExperiment(context, request);
  }

  std::filesystem::path dir_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<EvonasServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::EvonasService::Stub> stub_;
};

TEST_F(WatchExperimentTest, SendsTheExperimentThenItsChangesUntilItEnds) {
  const std::string id = CreateExperiment();
  grpc::ClientContext context;
  auto reader = Watch(&context, id);
  v1::Experiment experiment;
  ASSERT_TRUE(reader->Read(&experiment));
  EXPECT_EQ(experiment.id(), id);
  EXPECT_EQ(experiment.state(), v1::EXPERIMENT_STATE_RUNNING);

  ASSERT_TRUE(controller_->CancelExperiment(id).ok());
  ASSERT_TRUE(reader->Read(&experiment));
  EXPECT_EQ(experiment.state(), v1::EXPERIMENT_STATE_CANCELLED);
  EXPECT_FALSE(reader->Read(&experiment));
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(WatchExperimentTest, AFinishedExperimentIsSentOnce) {
  const std::string id = CreateExperiment();
  ASSERT_TRUE(controller_->CancelExperiment(id).ok());
  grpc::ClientContext context;
  auto reader = Watch(&context, id);
  v1::Experiment experiment;
  ASSERT_TRUE(reader->Read(&experiment));
  EXPECT_EQ(experiment.state(), v1::EXPERIMENT_STATE_CANCELLED);
  EXPECT_FALSE(reader->Read(&experiment));
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(WatchExperimentTest, UnknownExperimentIsNotFound) {
  grpc::ClientContext context;
  auto reader = Watch(&context, "exp-nope");
  v1::Experiment experiment;
  EXPECT_FALSE(reader->Read(&experiment));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(WatchExperimentTest, ClientCancellationEndsTheStream) {
  const std::string id = CreateExperiment();
  grpc::ClientContext context;
  auto reader = Watch(&context, id);
  v1::Experiment experiment;
  ASSERT_TRUE(reader->Read(&experiment));
  context.TryCancel();
  while (reader->Read(&experiment)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // TearDown's Shutdown returns promptly: the handler noticed and left.
}

}  // namespace
}  // namespace evonas
