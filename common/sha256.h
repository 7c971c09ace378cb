#ifndef EVONAS_COMMON_SHA256_H_
#define EVONAS_COMMON_SHA256_H_

#include <memory>
#include <string>
#include <string_view>

namespace evonas {

// Incremental SHA-256 (OpenSSL). Not thread-safe; one per stream.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view bytes);
  // Returns the lower-case hex digest. Call once.
  std::string HexDigest();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Lower-case hex SHA-256 of `bytes`.
std::string Sha256Hex(std::string_view bytes);

}  // namespace evonas

#endif  // EVONAS_COMMON_SHA256_H_
