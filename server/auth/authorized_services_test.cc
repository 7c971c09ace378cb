// Tenant isolation across every RPC: each client RPC as the owning tenant,
// another tenant, without a token and with a worker token; each worker RPC
// with a worker token, a client token and none. The real services over a
// real Controller (temporary database) on a loopback port.

#include "server/auth/authorized_services.h"

#include <filesystem>
#include <functional>

#include "client/channel.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/auth/tokens.h"

namespace evonas::auth {
namespace {

namespace fs = std::filesystem;
using Code = grpc::StatusCode;

constexpr char kCsv[] = "x,y\n0,0\n1,1\n2,4\n3,9\n4,16\n5,25\n6,36\n7,49\n";

// Acme's objects, which the calls name.
struct Ids {
  std::string dataset;
  std::string experiment;
  std::string candidate;  // RUNNING, leased by "w1"
  std::string lease;
};

grpc::Status Create(v1::EvonasService::Stub& stub,
                             const std::string& dataset_id,
                             v1::Experiment* experiment) {
    grpc::ClientContext context;
    v1::CreateExperimentRequest request;
    v1::ExperimentSpec* spec = request.mutable_spec();
    spec->set_dataset_id(dataset_id);
    spec->add_input_columns("x");
    spec->add_output_columns("y");
    spec->mutable_budget()->set_max_candidates(5);
    return stub.CreateExperiment(&context, request, experiment);
  }


class AuthorizedServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One directory per test: ctest runs tests in parallel processes.
    dir_ = fs::path(::testing::TempDir()) /
           (std::string("evonas-authorized-") +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ControllerOptions options;
    options.db_path = (dir_ / "evonas.db").string();
    options.data_dir = (dir_ / "data").string();
    controller_ = Controller::Create(options).value();
    {
      auto store = store::Store::Open(options.db_path).value();
      acme_ = CreateToken(*store, kClientKind, "acme", 1).value().secret;
      beta_ = CreateToken(*store, kClientKind, "beta", 1).value().secret;
      worker_ = CreateToken(*store, kWorkerKind, "", 1).value().secret;
    }
    AccessOptions access_options;
    access_options.max_running_experiments = 3;
    access_ = AccessControl::Open(options.db_path, access_options).value();
    client_impl_ = std::make_unique<EvonasServiceImpl>(controller_.get());
    worker_impl_ = std::make_unique<WorkerServiceImpl>(controller_.get());
    client_service_ = std::make_unique<AuthorizedEvonasService>(
        client_impl_.get(), access_.get());
    worker_service_ = std::make_unique<AuthorizedWorkerService>(
        worker_impl_.get(), access_.get());
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(client_service_.get());
    builder.RegisterService(worker_service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = "127.0.0.1:" + std::to_string(port);

    v1::Dataset dataset;
    ASSERT_TRUE(Upload(*Client(acme_), "acme.csv", &dataset).ok());
    ids_.dataset = dataset.id();
    v1::Experiment experiment;
    ASSERT_TRUE(Create(*Client(acme_), ids_.dataset, &experiment).ok());
    ids_.experiment = experiment.id();
    grpc::ClientContext context;
    v1::LeaseWorkRequest request;
    request.set_worker_id("w1");
    v1::LeaseWorkResponse response;
    ASSERT_TRUE(
        Worker(worker_)->LeaseWork(&context, request, &response).ok());
    ASSERT_TRUE(response.has_lease());
    ids_.candidate = response.lease().candidate_id();
    ids_.lease = response.lease().lease_id();
  }

  void TearDown() override { server_->Shutdown(); }

  std::shared_ptr<grpc::Channel> Channel(const std::string& token) {
    ChannelSecurity security;
    security.plaintext = true;
    security.token = token;
    return CreateControllerChannel(address_, security).value();
  }
  std::unique_ptr<v1::EvonasService::Stub> Client(const std::string& token) {
    return v1::EvonasService::NewStub(Channel(token));
  }
  std::unique_ptr<v1::WorkerService::Stub> Worker(const std::string& token) {
    return v1::WorkerService::NewStub(Channel(token));
  }

  static grpc::Status Upload(v1::EvonasService::Stub& stub,
                             const std::string& name, v1::Dataset* dataset) {
    grpc::ClientContext context;
    auto writer = stub.UploadDataset(&context, dataset);
    v1::UploadDatasetRequest request;
    request.mutable_metadata()->set_name(name);
    request.set_chunk(kCsv);
    writer->Write(request);
    writer->WritesDone();
    return writer->Finish();
  }

  fs::path dir_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<AccessControl> access_;
  std::unique_ptr<EvonasServiceImpl> client_impl_;
  std::unique_ptr<WorkerServiceImpl> worker_impl_;
  std::unique_ptr<AuthorizedEvonasService> client_service_;
  std::unique_ptr<AuthorizedWorkerService> worker_service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::string acme_, beta_, worker_;
  Ids ids_;
};

template <typename Response, typename Reader>
grpc::Status Drain(std::unique_ptr<Reader> reader) {
  Response response;
  while (reader->Read(&response)) {
  }
  return reader->Finish();
}

struct ClientRpc {
  std::string name;
  std::function<grpc::Status(v1::EvonasService::Stub&, const Ids&)> call;
  Code own;    // as acme, the owner
  Code other;  // as beta
};

std::vector<ClientRpc> ClientRpcs() {
  using Stub = v1::EvonasService::Stub;
  return {
      {"UploadDataset",
       [](Stub& s, const Ids&) {
         v1::Dataset dataset;
         grpc::ClientContext context;
         auto writer = s.UploadDataset(&context, &dataset);
         v1::UploadDatasetRequest request;
         request.mutable_metadata()->set_name("other.csv");
         // Not acme's bytes: uploading those would make them beta's too.
         request.set_chunk("u,v\n1,2\n3,4\n5,6\n7,8\n");
         writer->Write(request);
         writer->WritesDone();
         return writer->Finish();
       },
       Code::OK, Code::OK},  // everyone may upload, into their own view
      {"GetDataset",
       [](Stub& s, const Ids& ids) {
         grpc::ClientContext context;
         v1::GetDatasetRequest request;
         request.set_dataset_id(ids.dataset);
         v1::Dataset response;
         return s.GetDataset(&context, request, &response);
       },
       Code::OK, Code::NOT_FOUND},
      {"ListDatasets",
       [](Stub& s, const Ids& ids) {
         grpc::ClientContext context;
         v1::ListDatasetsResponse response;
         grpc::Status status =
             s.ListDatasets(&context, v1::ListDatasetsRequest(), &response);
         if (!status.ok()) return status;
         for (const v1::Dataset& d : response.datasets()) {
           if (d.id() == ids.dataset) return status;
         }
         // NOT_FOUND stands for "acme's data set is not listed".
         return grpc::Status(Code::NOT_FOUND, "not listed");
       },
       Code::OK, Code::NOT_FOUND},
      {"CreateExperiment",
       [](Stub& s, const Ids& ids) {
         v1::Experiment experiment;
         return Create(s, ids.dataset, &experiment);
       },
       Code::OK, Code::NOT_FOUND},
      {"GetExperiment",
       [](Stub& s, const Ids& ids) {
         grpc::ClientContext context;
         v1::GetExperimentRequest request;
         request.set_experiment_id(ids.experiment);
         v1::Experiment response;
         return s.GetExperiment(&context, request, &response);
       },
       Code::OK, Code::NOT_FOUND},
      {"ListExperiments",
       [](Stub& s, const Ids& ids) {
         grpc::ClientContext context;
         v1::ListExperimentsResponse response;
         grpc::Status status = s.ListExperiments(
             &context, v1::ListExperimentsRequest(), &response);
         if (!status.ok()) return status;
         for (const v1::Experiment& e : response.experiments()) {
           if (e.id() == ids.experiment) return status;
         }
         return grpc::Status(Code::NOT_FOUND, "not listed");
       },
       Code::OK, Code::NOT_FOUND},
      {"ListCandidates",
       [](Stub& s, const Ids& ids) {
         grpc::ClientContext context;
         v1::ListCandidatesRequest request;
         request.set_experiment_id(ids.experiment);
         v1::ListCandidatesResponse response;
         return s.ListCandidates(&context, request, &response);
       },
       Code::OK, Code::NOT_FOUND},
      {"GetCandidate",
       [](Stub& s, const Ids& ids) {
         grpc::ClientContext context;
         v1::GetCandidateRequest request;
         request.set_candidate_id(ids.candidate);
         v1::Candidate response;
         return s.GetCandidate(&context, request, &response);
       },
       Code::OK, Code::NOT_FOUND},
      {"GetParetoFront",
       [](Stub& s, const Ids& ids) {
         grpc::ClientContext context;
         v1::GetParetoFrontRequest request;
         request.set_experiment_id(ids.experiment);
         v1::ParetoFront response;
         return s.GetParetoFront(&context, request, &response);
       },
       Code::OK, Code::NOT_FOUND},
      {"DownloadModel",
       [](Stub& s, const Ids& ids) {
         grpc::ClientContext context;
         v1::DownloadModelRequest request;
         request.set_candidate_id(ids.candidate);
         return Drain<v1::DownloadModelResponse>(
             s.DownloadModel(&context, request));
       },
       // The candidate is still training: the owner learns that.
       Code::FAILED_PRECONDITION, Code::NOT_FOUND},
      {"WatchExperiment",
       [](Stub& s, const Ids& ids) {
         grpc::ClientContext context;
         // The experiment runs on: the owner's watch ends at the deadline.
         context.set_deadline(std::chrono::system_clock::now() +
                              std::chrono::milliseconds(300));
         v1::WatchExperimentRequest request;
         request.set_experiment_id(ids.experiment);
         return Drain<v1::Experiment>(s.WatchExperiment(&context, request));
       },
       Code::DEADLINE_EXCEEDED, Code::NOT_FOUND},
      // Last: it ends the experiment.
      {"CancelExperiment",
       [](Stub& s, const Ids& ids) {
         grpc::ClientContext context;
         v1::CancelExperimentRequest request;
         request.set_experiment_id(ids.experiment);
         v1::Experiment response;
         return s.CancelExperiment(&context, request, &response);
       },
       Code::OK, Code::NOT_FOUND},
  };
}

TEST_F(AuthorizedServicesTest, EveryClientRpcByCaller) {
  for (const ClientRpc& rpc : ClientRpcs()) {
    SCOPED_TRACE(rpc.name);
    EXPECT_EQ(rpc.call(*Client(""), ids_).error_code(), Code::UNAUTHENTICATED);
    EXPECT_EQ(rpc.call(*Client(worker_), ids_).error_code(),
              Code::PERMISSION_DENIED);
    EXPECT_EQ(rpc.call(*Client(beta_), ids_).error_code(), rpc.other);
    grpc::Status own = rpc.call(*Client(acme_), ids_);
    EXPECT_EQ(own.error_code(), rpc.own) << own.error_message();
  }
}

TEST_F(AuthorizedServicesTest, EveryWorkerRpcByCaller) {
  using Stub = v1::WorkerService::Stub;
  const std::vector<std::pair<std::string,
                              std::function<grpc::Status(Stub&, const Ids&)>>>
      rpcs = {
          {"LeaseWork",
           [](Stub& s, const Ids&) {
             grpc::ClientContext context;
             v1::LeaseWorkRequest request;
             request.set_worker_id("w1");  // gets its lease back
             v1::LeaseWorkResponse response;
             return s.LeaseWork(&context, request, &response);
           }},
          {"Heartbeat",
           [](Stub& s, const Ids& ids) {
             grpc::ClientContext context;
             v1::HeartbeatRequest request;
             request.set_worker_id("w1");
             request.set_lease_id(ids.lease);
             v1::HeartbeatResponse response;
             return s.Heartbeat(&context, request, &response);
           }},
          {"FetchDataset",
           [](Stub& s, const Ids& ids) {
             grpc::ClientContext context;
             v1::FetchDatasetRequest request;
             request.set_dataset_id(ids.dataset);
             return Drain<v1::FetchDatasetResponse>(
                 s.FetchDataset(&context, request));
           }},
          {"ReportResult",
           [](Stub& s, const Ids&) {
             grpc::ClientContext context;
             v1::ReportResultResponse response;
             auto writer = s.ReportResult(&context, &response);
             writer->WritesDone();
             return writer->Finish();
           }},
          {"ReleaseLease",  // last: gives the lease back
           [](Stub& s, const Ids& ids) {
             grpc::ClientContext context;
             v1::ReleaseLeaseRequest request;
             request.set_worker_id("w1");
             request.set_lease_id(ids.lease);
             v1::ReleaseLeaseResponse response;
             return s.ReleaseLease(&context, request, &response);
           }},
      };
  for (const auto& [name, call] : rpcs) {
    SCOPED_TRACE(name);
    EXPECT_EQ(call(*Worker(""), ids_).error_code(), Code::UNAUTHENTICATED);
    EXPECT_EQ(call(*Worker(acme_), ids_).error_code(),
              Code::PERMISSION_DENIED);
    grpc::Status status = call(*Worker(worker_), ids_);
    // An empty report is refused for what it is, not for the token.
    EXPECT_EQ(status.error_code(),
              name == "ReportResult" ? Code::INVALID_ARGUMENT : Code::OK)
        << status.error_message();
  }
}

TEST_F(AuthorizedServicesTest, SameBytesUnderTwoTenantsLeakNothing) {
  v1::Dataset beta_view;
  ASSERT_TRUE(Upload(*Client(beta_), "beta.csv", &beta_view).ok());
  // The same content gives the same id (beta computed it anyway), but beta
  // sees its own name and its own upload time, not acme's.
  EXPECT_EQ(beta_view.id(), ids_.dataset);
  EXPECT_EQ(beta_view.name(), "beta.csv");
  grpc::ClientContext context;
  v1::GetDatasetRequest request;
  request.set_dataset_id(ids_.dataset);
  v1::Dataset acme_view;
  ASSERT_TRUE(Client(acme_)->GetDataset(&context, request, &acme_view).ok());
  EXPECT_EQ(acme_view.name(), "acme.csv");
  EXPECT_EQ(acme_view.row_count(), beta_view.row_count());
  grpc::ClientContext list_context;
  v1::ListDatasetsResponse listed;
  ASSERT_TRUE(Client(beta_)
                  ->ListDatasets(&list_context, v1::ListDatasetsRequest(),
                                 &listed)
                  .ok());
  ASSERT_EQ(listed.datasets_size(), 1);
  EXPECT_EQ(listed.datasets(0).name(), "beta.csv");
  // And beta may now use it.
  v1::Experiment experiment;
  EXPECT_TRUE(Create(*Client(beta_), ids_.dataset, &experiment).ok());
}

TEST_F(AuthorizedServicesTest, RunningExperimentsAreLimitedPerTenant) {
  v1::Experiment experiment;
  // acme runs one; the limit is three.
  ASSERT_TRUE(Create(*Client(acme_), ids_.dataset, &experiment).ok());
  ASSERT_TRUE(Create(*Client(acme_), ids_.dataset, &experiment).ok());
  grpc::Status refused = Create(*Client(acme_), ids_.dataset, &experiment);
  EXPECT_EQ(refused.error_code(), Code::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("tenant acme has 3 running"),
            std::string::npos)
      << refused.error_message();
  // Another tenant is not affected.
  v1::Dataset dataset;
  ASSERT_TRUE(Upload(*Client(beta_), "b.csv", &dataset).ok());
  EXPECT_TRUE(Create(*Client(beta_), dataset.id(), &experiment).ok());
}

}  // namespace
}  // namespace evonas::auth
