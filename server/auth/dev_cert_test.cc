#include "server/auth/dev_cert.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "evonas/v1/worker_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace evonas::auth {
namespace {

std::string Read(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

TEST(DevCertTest, PairServesTlsThatTrustsOnlyIt) {
  const std::string dir = ::testing::TempDir() + "/dev-cert";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WriteDevCertificate(dir, {"controller"}).ok());
  struct stat key_stat;
  ASSERT_EQ(stat((dir + "/key.pem").c_str(), &key_stat), 0);
  EXPECT_EQ(key_stat.st_mode & 0777, 0600);
  EXPECT_EQ(WriteDevCertificate(dir, {}).code(),
            absl::StatusCode::kAlreadyExists);

  grpc::SslServerCredentialsOptions server_options;
  server_options.pem_key_cert_pairs.push_back(
      {Read(dir + "/key.pem"), Read(dir + "/cert.pem")});
  v1::WorkerService::Service unimplemented;  // a server needs a service
  int port = 0;
  grpc::ServerBuilder builder;
  builder.RegisterService(&unimplemented);
  builder.AddListeningPort("127.0.0.1:0",
                           grpc::SslServerCredentials(server_options), &port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);

  const auto deadline = [] {
    return std::chrono::system_clock::now() + std::chrono::seconds(10);
  };
  grpc::SslCredentialsOptions trusting;
  trusting.pem_root_certs = Read(dir + "/cert.pem");
  auto channel = grpc::CreateChannel(
      "localhost:" + std::to_string(port), grpc::SslCredentials(trusting));
  EXPECT_TRUE(channel->WaitForConnected(deadline()));

  // Another development pair is not trusted.
  const std::string other = ::testing::TempDir() + "/dev-cert-other";
  std::filesystem::remove_all(other);
  ASSERT_TRUE(WriteDevCertificate(other, {}).ok());
  grpc::SslCredentialsOptions stranger;
  stranger.pem_root_certs = Read(other + "/cert.pem");
  auto refused = grpc::CreateChannel("localhost:" + std::to_string(port),
                                     grpc::SslCredentials(stranger));
  EXPECT_FALSE(refused->WaitForConnected(
      std::chrono::system_clock::now() + std::chrono::seconds(2)));
  server->Shutdown();
}

}  // namespace
}  // namespace evonas::auth
