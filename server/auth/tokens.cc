#include "server/auth/tokens.h"

#include <openssl/rand.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace evonas::auth {
namespace {

constexpr size_t kMaxTenantLength = 64;

absl::StatusOr<std::string> RandomHex(int bytes) {
  std::string raw(static_cast<size_t>(bytes), '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), bytes) != 1) {
    return absl::InternalError("the system's random number generator failed");
  }
  return absl::BytesToHexString(raw);
}

absl::Status CheckTenant(absl::string_view kind, const std::string& tenant) {
  if (kind == kWorkerKind) {
    if (!tenant.empty()) {
      return absl::InvalidArgumentError(
          "worker tokens serve every tenant; drop --tenant");
    }
    return absl::OkStatus();
  }
  if (tenant.empty() || tenant.size() > kMaxTenantLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a client token needs --tenant, 1 to ", kMaxTenantLength,
        " characters"));
  }
  for (char c : tenant) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
        c != '_' && c != '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          "tenant \"", tenant, "\" may use only letters, digits, '.', '_', "
          "'-'"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSecret(const std::string& secret) {
  if (secret.size() < kMinSecretLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a token secret needs at least ", kMinSecretLength,
        " characters (e.g. `openssl rand -hex 32`)"));
  }
  for (char c : secret) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(
          "a token secret may use only printable ASCII without spaces");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckLifetime(absl::Duration lifetime) {
  if (lifetime == absl::InfiniteDuration()) return absl::OkStatus();
  if (lifetime <= absl::ZeroDuration() || lifetime > kMaxTokenLifetime) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a token's lifetime must be positive and at most ",
        kMaxTokenLifetime / absl::Hours(24), " days, not ",
        absl::FormatDuration(lifetime)));
  }
  return absl::OkStatus();
}

}  // namespace

std::string HashSecret(absl::string_view secret) { return Sha256Hex(secret); }

absl::StatusOr<absl::Duration> ParseTokenLifetime(absl::string_view text) {
  const absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  absl::Duration lifetime;
  absl::string_view days = trimmed;
  int64_t day_count = 0;
  if (absl::ConsumeSuffix(&days, "d") && absl::SimpleAtoi(days, &day_count)) {
    lifetime = absl::Hours(24) * day_count;
  } else if (!absl::ParseDuration(trimmed, &lifetime)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lifetime \"", text, "\": give days (\"30d\") or a duration such as "
        "\"12h\" or \"90m\""));
  }
  // Infinite ("inf", or days that overflow) means never to CreateToken:
  // here it is too long.
  EVONAS_RETURN_IF_ERROR(CheckLifetime(
      lifetime == absl::InfiniteDuration() ? kMaxTokenLifetime + absl::Hours(24)
                                           : lifetime));
  return lifetime;
}

bool TokenExpired(const store::TokenRecord& token, int64_t now_ms) {
  return token.expires_at_ms != 0 && now_ms >= token.expires_at_ms;
}

absl::StatusOr<IssuedToken> CreateToken(store::Store& store,
                                        absl::string_view kind,
                                        const std::string& tenant,
                                        int64_t now_ms,
                                        std::optional<std::string> secret,
                                        absl::Duration lifetime) {
  if (kind != kClientKind && kind != kWorkerKind) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token kind \"", kind, "\": use \"client\" or \"worker\""));
  }
  EVONAS_RETURN_IF_ERROR(CheckTenant(kind, tenant));
  EVONAS_RETURN_IF_ERROR(CheckLifetime(lifetime));
  IssuedToken issued;
  if (secret.has_value()) {
    EVONAS_RETURN_IF_ERROR(CheckSecret(*secret));
    issued.secret = *std::move(secret);
  } else {
    // The prefix tells a reader (and secret scanners) what the string is.
    EVONAS_ASSIGN_OR_RETURN(std::string random, RandomHex(32));
    issued.secret = absl::StrCat("evonas_", random);
  }
  EVONAS_ASSIGN_OR_RETURN(std::string id, RandomHex(6));
  issued.record.id = absl::StrCat("tok-", id);
  issued.record.sha256 = HashSecret(issued.secret);
  issued.record.kind = std::string(kind);
  issued.record.tenant = tenant;
  issued.record.created_at_ms = now_ms;
  if (lifetime != absl::InfiniteDuration()) {
    issued.record.expires_at_ms = now_ms + absl::ToInt64Milliseconds(lifetime);
  }
  EVONAS_RETURN_IF_ERROR(store.InsertToken(issued.record));
  return issued;
}

}  // namespace evonas::auth
