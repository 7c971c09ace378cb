#include "server/auth/dev_cert.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace evonas::auth {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(std::FILE* f) const { std::fclose(f); }
};

absl::Status OpenSslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat("openssl: ", what, " failed"));
}

bool LooksLikeIp(const std::string& host) {
  return host.find_first_not_of("0123456789.") == std::string::npos ||
         absl::StrContains(host, ":");
}

absl::Status AddExtension(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, Free> ext(
      X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslError(absl::StrCat("extension ", value));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteDevCertificate(const std::string& dir,
                                 const std::vector<std::string>& hosts,
                                 int days) {
  namespace fs = std::filesystem;
  const fs::path cert_path = fs::path(dir) / "cert.pem";
  const fs::path key_path = fs::path(dir) / "key.pem";
  if (fs::exists(key_path) || fs::exists(cert_path)) {
    return absl::AlreadyExistsError(absl::StrCat(
        key_path.string(), " or cert.pem exists; remove them or pick another "
        "--out directory"));
  }
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", dir, ": ", error.message()));
  }

  std::unique_ptr<EVP_PKEY, Free> key(EVP_EC_gen("P-256"));
  if (key == nullptr) return OpenSslError("EC key generation");
  std::unique_ptr<X509, Free> cert(X509_new());
  if (cert == nullptr) return OpenSslError("X509_new");
  X509_set_version(cert.get(), 2);  // v3
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()),
                   static_cast<long>(std::time(nullptr)));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400L * days);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(
      name, "CN", MBSTRING_ASC,
      reinterpret_cast<const unsigned char*>("evonas development"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);

  std::vector<std::string> names = {"DNS:localhost", "IP:127.0.0.1",
                                    "IP:::1"};
  for (const std::string& host : hosts) {
    if (host.empty()) continue;
    names.push_back(absl::StrCat(LooksLikeIp(host) ? "IP:" : "DNS:", host));
  }
  // Its own CA, so that clients can trust exactly this certificate.
  for (auto [nid, value] :
       {std::pair<int, std::string>{NID_basic_constraints, "critical,CA:TRUE"},
        {NID_key_usage, "critical,digitalSignature,keyCertSign"},
        {NID_ext_key_usage, "serverAuth"},
        {NID_subject_alt_name, absl::StrJoin(names, ",")}}) {
    absl::Status status = AddExtension(cert.get(), nid, value);
    if (!status.ok()) return status;
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    return OpenSslError("signing the certificate");
  }

  // The key is created with mode 0600 before a byte is written.
  const mode_t old_mask = umask(077);
  std::unique_ptr<std::FILE, Free> key_file(
      std::fopen(key_path.c_str(), "wx"));
  umask(old_mask);
  if (key_file == nullptr ||
      PEM_write_PrivateKey(key_file.get(), key.get(), nullptr, nullptr, 0,
                           nullptr, nullptr) != 1) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write ", key_path.string()));
  }
  std::unique_ptr<std::FILE, Free> cert_file(
      std::fopen(cert_path.c_str(), "wx"));
  if (cert_file == nullptr || PEM_write_X509(cert_file.get(), cert.get()) != 1) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write ", cert_path.string()));
  }
  return absl::OkStatus();
}

}  // namespace evonas::auth
