#ifndef EVONAS_COMMON_SHA256_H_
#define EVONAS_COMMON_SHA256_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace evonas {

// Incremental SHA-256 (OpenSSL). Not thread-safe; one per stream.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  // Appends `bytes` to the stream; ignored after HexDigest.
  void Update(absl::string_view bytes);
  // Returns the lower-case hex digest (64 characters) of everything passed
  // to Update. Later calls return the same digest.
  std::string HexDigest();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Lower-case hex SHA-256 of `bytes`.
std::string Sha256Hex(absl::string_view bytes);

}  // namespace evonas

#endif  // EVONAS_COMMON_SHA256_H_
