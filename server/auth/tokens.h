#ifndef EVONAS_SERVER_AUTH_TOKENS_H_
#define EVONAS_SERVER_AUTH_TOKENS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/store/store.h"

namespace evonas::auth {

// The two kinds of bearer token, as stored in tokens.kind.
inline constexpr absl::string_view kClientKind = "client";
inline constexpr absl::string_view kWorkerKind = "worker";

// Shortest secret `CreateToken` accepts from an operator: 128 bits of hex.
inline constexpr size_t kMinSecretLength = 32;

// A token just created: the record as stored and the secret, which is shown
// once and never stored.
struct IssuedToken {
  store::TokenRecord record;
  std::string secret;
};

// The SHA-256 (lower-case hex) under which a secret is stored and found.
std::string HashSecret(absl::string_view secret);

// Longest lifetime a token may be given.
inline constexpr absl::Duration kMaxTokenLifetime = absl::Hours(24 * 3650);

// Creates a token of `kind` ("client" or "worker"). A client token belongs
// to `tenant` (1-64 characters of [A-Za-z0-9._-]); a worker token to none.
// The secret is 256 random bits unless `secret` is given (e.g. read from a
// deployment's secret file; at least kMinSecretLength printable characters).
// The token expires `lifetime` after `now_ms`; an infinite lifetime never.
// InvalidArgument for a bad kind, tenant, secret or lifetime (not positive,
// or over kMaxTokenLifetime); AlreadyExists when the given secret is
// registered already.
absl::StatusOr<IssuedToken> CreateToken(
    store::Store& store, absl::string_view kind, const std::string& tenant,
    int64_t now_ms, std::optional<std::string> secret = std::nullopt,
    absl::Duration lifetime = absl::InfiniteDuration());

// Parses a lifetime as `token create --expires-in` takes it: a number of
// days ("30d") or any absl duration ("12h", "90m", "1h30m"). InvalidArgument
// for anything else, and for a lifetime that CreateToken would refuse.
absl::StatusOr<absl::Duration> ParseTokenLifetime(absl::string_view text);

// Whether `token` is past its expiry at `now_ms`.
bool TokenExpired(const store::TokenRecord& token, int64_t now_ms);

}  // namespace evonas::auth

#endif  // EVONAS_SERVER_AUTH_TOKENS_H_
