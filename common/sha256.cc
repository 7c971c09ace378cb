#include "common/sha256.h"

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace evonas {
namespace {

// OpenSSL fails here only when it is broken or out of memory; there is no
// sensible way to continue.
void CheckOpenSsl(int ok, const char* what) {
  if (ok != 1) {
    std::fprintf(stderr, "evonas: OpenSSL %s failed\n", what);
    std::abort();
  }
}

}  // namespace

struct Sha256::State {
  struct CtxDeleter {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
  };
  std::unique_ptr<EVP_MD_CTX, CtxDeleter> ctx;
  bool finished = false;
  std::string digest;
};

Sha256::Sha256() : state_(std::make_unique<State>()) {
  state_->ctx.reset(EVP_MD_CTX_new());
  CheckOpenSsl(state_->ctx != nullptr, "EVP_MD_CTX_new");
  CheckOpenSsl(EVP_DigestInit_ex(state_->ctx.get(), EVP_sha256(), nullptr),
               "EVP_DigestInit_ex");
}

Sha256::~Sha256() = default;

void Sha256::Update(absl::string_view bytes) {
  if (state_->finished || bytes.empty()) return;
  CheckOpenSsl(EVP_DigestUpdate(state_->ctx.get(), bytes.data(), bytes.size()),
               "EVP_DigestUpdate");
}

std::string Sha256::HexDigest() {
  if (!state_->finished) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    CheckOpenSsl(EVP_DigestFinal_ex(state_->ctx.get(), md, &length),
                 "EVP_DigestFinal_ex");
    static constexpr char kHex[] = "0123456789abcdef";
    state_->digest.reserve(2 * length);
    for (unsigned int i = 0; i < length; ++i) {
      state_->digest += kHex[md[i] >> 4];
      state_->digest += kHex[md[i] & 0xF];
    }
    state_->finished = true;
  }
  return state_->digest;
}

std::string Sha256Hex(absl::string_view bytes) {
  Sha256 sha;
  sha.Update(bytes);
  return sha.HexDigest();
}

}  // namespace evonas
