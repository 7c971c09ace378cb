#ifndef EVONAS_SERVER_AUTH_DEV_CERT_H_
#define EVONAS_SERVER_AUTH_DEV_CERT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace evonas::auth {

// Writes a self-signed certificate (`dir`/cert.pem) and its private key
// (`dir`/key.pem, mode 0600) for development: ECDSA P-256, valid for
// `days`, for "localhost", 127.0.0.1, ::1 and every name or IP address in
// `hosts`. Clients trust it with --tls-ca DIR/cert.pem. Creates `dir`;
// AlreadyExists rather than overwriting a key.
absl::Status WriteDevCertificate(const std::string& dir,
                                 const std::vector<std::string>& hosts,
                                 int days = 365);

}  // namespace evonas::auth

#endif  // EVONAS_SERVER_AUTH_DEV_CERT_H_
