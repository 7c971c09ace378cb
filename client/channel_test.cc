#include "client/channel.h"

#include "evonas/v1/worker_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace evonas {
namespace {

// Records the authorization metadata of the last LeaseWork call.
class RecordingService final : public v1::WorkerService::Service {
 public:
  grpc::Status LeaseWork(grpc::ServerContext* context,
                         const v1::LeaseWorkRequest*,
                         v1::LeaseWorkResponse*) override {
    auto it = context->client_metadata().find("authorization");
    authorization_ = it == context->client_metadata().end()
                         ? "(none)"
                         : std::string(it->second.data(), it->second.size());
    return grpc::Status::OK;
  }
  std::string authorization_;
};

TEST(ChannelTest, SendsTheTokenOnEveryCallOfAPlaintextChannel) {
  RecordingService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  const std::string address = "127.0.0.1:" + std::to_string(port);

  for (const std::string token : {"evonas_abc", ""}) {
    ChannelSecurity security;
    security.plaintext = true;
    security.token = token;
    auto channel = CreateControllerChannel(address, security);
    ASSERT_TRUE(channel.ok()) << channel.status();
    auto stub = v1::WorkerService::NewStub(*channel);
    for (int call = 0; call < 2; ++call) {
      grpc::ClientContext context;
      v1::LeaseWorkResponse response;
      ASSERT_TRUE(
          stub->LeaseWork(&context, v1::LeaseWorkRequest(), &response).ok());
      EXPECT_EQ(service.authorization_,
                token.empty() ? "(none)" : "Bearer " + token);
    }
  }
  server->Shutdown();
}

TEST(ChannelTest, RefusesAnUnreadableCaAndABadToken) {
  ChannelSecurity security;
  security.tls_ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(CreateControllerChannel("localhost:1", security).status().code(),
            absl::StatusCode::kInvalidArgument);
  security.tls_ca_file.clear();
  security.token = "two words";
  EXPECT_EQ(CreateControllerChannel("localhost:1", security).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace evonas
