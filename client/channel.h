#ifndef EVONAS_CLIENT_CHANNEL_H_
#define EVONAS_CLIENT_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/channel.h"
#include "grpcpp/support/channel_arguments.h"

namespace evonas {

// How the CLI and the worker reach the controller.
struct ChannelSecurity {
  // No TLS: only when the user asks for it (--plaintext).
  bool plaintext = false;
  // PEM file of the certificate authority (or the self-signed certificate)
  // to trust; empty: the system's roots.
  std::string tls_ca_file;
  // Bearer token sent as "authorization: Bearer TOKEN" on every call;
  // empty: none.
  std::string token;
};

// A channel to `address` (host:port) with `security` and `args`. Does not
// connect until the first call. InvalidArgument when the CA file cannot be
// read or the token has characters metadata cannot carry.
absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateControllerChannel(
    const std::string& address, const ChannelSecurity& security,
    const grpc::ChannelArguments& args = grpc::ChannelArguments());

}  // namespace evonas

#endif  // EVONAS_CLIENT_CHANNEL_H_
