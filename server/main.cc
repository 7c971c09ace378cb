// evonas-controller: the gRPC service that stores data sets, runs searches
// and hands out work to evonas-worker processes. This file only parses flags
// into options and serves, or runs one of the admin commands (tokens, a
// development certificate) on the controller's host.

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/idx.h"
#include "common/log.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/auth/access_control.h"
#include "server/auth/authorized_services.h"
#include "server/auth/dev_cert.h"
#include "server/auth/tokens.h"
#include "server/controller.h"
#include "server/grpc_services.h"
#include "server/observability/metrics_server.h"
#include "server/observability/telemetry.h"

namespace {

// Set by the signal handler, polled by the main loop: a handler may do no
// more than that.
volatile std::sig_atomic_t stop_signal = 0;
void RecordSignal(int sig) { stop_signal = sig; }

struct Flags {
  std::string listen = "127.0.0.1:50051";
  std::string port_file;
  int lease_seconds = 60;
  int heartbeat_seconds = 10;
  std::string tls_cert;
  std::string tls_key;
  bool plaintext = false;
  bool no_auth = false;
  std::string metrics_address;  // empty: no metrics endpoint
  std::string log_level = "info";
};

struct TokenFlags {
  std::string kind = "client";
  std::string tenant;
  std::string secret_file;
  std::string expires_in;  // empty: never
  std::string id;
};

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string FormatMs(int64_t ms) {
  if (ms == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMillis(ms),
                          absl::UTCTimeZone());
}

int Fail(const absl::Status& status) {
  std::cerr << "evonas-controller: " << status << "\n";
  return 1;
}

// `token create`: prints the secret alone on stdout, so that scripts can
// capture it; it is shown this once.
int CreateToken(const std::string& db_path, const TokenFlags& flags) {
  absl::Duration lifetime = absl::InfiniteDuration();
  if (!flags.expires_in.empty()) {
    absl::StatusOr<absl::Duration> parsed =
        evonas::auth::ParseTokenLifetime(flags.expires_in);
    if (!parsed.ok()) return Fail(parsed.status());
    lifetime = *parsed;
  }
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  auto store = evonas::store::Store::Open(db_path);
  if (!store.ok()) return Fail(store.status());
  std::optional<std::string> secret;
  if (!flags.secret_file.empty()) {
    absl::StatusOr<std::string> bytes = ReadWholeFile(flags.secret_file);
    if (!bytes.ok()) return Fail(bytes.status());
    secret = std::string(absl::StripAsciiWhitespace(*bytes));
    // Registering a deployment's secret again (every container start) is a
    // no-op, unless it was revoked or belongs to another kind or tenant.
    auto existing = (*store)->FindToken(evonas::auth::HashSecret(*secret));
    if (!existing.ok()) return Fail(existing.status());
    if (existing->has_value()) {
      const evonas::store::TokenRecord& t = **existing;
      const bool expired = evonas::auth::TokenExpired(t, now_ms);
      if (t.revoked_at_ms != 0 || expired || t.kind != flags.kind ||
          t.tenant != flags.tenant) {
        return Fail(absl::AlreadyExistsError(absl::StrCat(
            "the secret in ", flags.secret_file, " is token ", t.id,
            t.revoked_at_ms != 0 ? ", which was revoked"
            : expired            ? ", which expired"
                                 : " of another kind or tenant",
            "; use a new secret")));
      }
      std::cerr << "evonas-controller: token " << t.id << " from "
                << flags.secret_file << " is registered already\n";
      return 0;
    }
  }
  auto issued = evonas::auth::CreateToken(**store, flags.kind, flags.tenant,
                                          now_ms, std::move(secret), lifetime);
  if (!issued.ok()) return Fail(issued.status());
  std::cerr << "evonas-controller: created " << issued->record.kind
            << " token " << issued->record.id;
  if (!issued->record.tenant.empty()) {
    std::cerr << " for tenant " << issued->record.tenant;
  }
  if (issued->record.expires_at_ms != 0) {
    std::cerr << ", valid until " << FormatMs(issued->record.expires_at_ms);
  }
  if (flags.secret_file.empty()) {
    std::cerr << "; keep the secret now, it is not stored and not shown again";
    std::cout << issued->secret << "\n";
  } else {
    std::cerr << " from " << flags.secret_file;
  }
  std::cerr << "\n";
  return 0;
}

int ListTokens(const std::string& db_path) {
  auto store = evonas::store::Store::Open(db_path);
  if (!store.ok()) return Fail(store.status());
  auto tokens = (*store)->ListTokens();
  if (!tokens.ok()) return Fail(tokens.status());
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  std::printf("%-16s %-7s %-20s %-21s %-30s %s\n", "ID", "KIND", "TENANT",
              "CREATED", "EXPIRES", "REVOKED");
  for (const evonas::store::TokenRecord& t : *tokens) {
    const std::string expires =
        t.expires_at_ms == 0
            ? "never"
            : absl::StrCat(FormatMs(t.expires_at_ms),
                           evonas::auth::TokenExpired(t, now_ms) ? " (expired)"
                                                                 : "");
    std::printf("%-16s %-7s %-20s %-21s %-30s %s\n", t.id.c_str(),
                t.kind.c_str(), t.tenant.empty() ? "-" : t.tenant.c_str(),
                FormatMs(t.created_at_ms).c_str(), expires.c_str(),
                FormatMs(t.revoked_at_ms).c_str());
  }
  return 0;
}

int RevokeToken(const std::string& db_path, const std::string& id) {
  auto store = evonas::store::Store::Open(db_path);
  if (!store.ok()) return Fail(store.status());
  absl::Status status =
      (*store)->RevokeToken(id, absl::ToUnixMillis(absl::Now()));
  if (!status.ok()) return Fail(status);
  std::cerr << "evonas-controller: token " << id
            << " revoked; calls with it are refused from now on\n";
  return 0;
}

// `tenant adopt`: data made before tokens (or with --no-auth) belongs to no
// tenant and so is invisible to every client token; this hands it to one.
int AdoptOwnerless(const std::string& db_path, const std::string& tenant) {
  if (tenant.empty()) {
    return Fail(absl::InvalidArgumentError("give --tenant"));
  }
  auto store = evonas::store::Store::Open(db_path);
  if (!store.ok()) return Fail(store.status());
  auto adopted = (*store)->AdoptOwnerless(tenant);
  if (!adopted.ok()) return Fail(adopted.status());
  std::cerr << "evonas-controller: tenant " << tenant << " adopted "
            << adopted->first << " data sets and " << adopted->second
            << " experiments that belonged to no tenant\n";
  return 0;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const Flags& flags) {
  if (flags.plaintext) {
    if (!flags.tls_cert.empty() || !flags.tls_key.empty()) {
      return absl::InvalidArgumentError(
          "--plaintext and --tls-cert/--tls-key contradict each other");
    }
    return grpc::InsecureServerCredentials();
  }
  if (flags.tls_cert.empty() || flags.tls_key.empty()) {
    return absl::InvalidArgumentError(
        "give --tls-cert and --tls-key (for development: `evonas-controller "
        "dev-cert --out DIR`), or --plaintext to serve without TLS, e.g. on "
        "loopback or behind a TLS-terminating proxy");
  }
  grpc::SslServerCredentialsOptions options;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  auto key = ReadWholeFile(flags.tls_key);
  if (!key.ok()) return key.status();
  auto cert = ReadWholeFile(flags.tls_cert);
  if (!cert.ok()) return cert.status();
  options.pem_key_cert_pairs.push_back({*key, *cert});
  return grpc::SslServerCredentials(options);
}

int Serve(evonas::ControllerOptions options, const Flags& flags,
          const evonas::auth::AccessOptions& access_options) {
  options.lease_timeout = absl::Seconds(flags.lease_seconds);
  options.heartbeat_interval = absl::Seconds(flags.heartbeat_seconds);
  auto credentials = ServerCredentials(flags);
  if (!credentials.ok()) return Fail(credentials.status());

  // Event logs and metrics. A worker silent for a lease timeout has lost
  // its lease, so that is also how long it counts as live.
  evonas::observability::TelemetryOptions telemetry_options;
  telemetry_options.live_worker_window = options.lease_timeout;
  auto telemetry = std::make_shared<evonas::observability::ControllerTelemetry>(
      telemetry_options);
  options.observer = telemetry.get();
  auto controller = evonas::Controller::Create(options);
  if (!controller.ok()) return Fail(controller.status());
  std::unique_ptr<evonas::observability::MetricsServer> metrics;
  if (!flags.metrics_address.empty()) {
    // The gauges count rows through a database connection of their own, so
    // a scrape never waits for the controller.
    auto census = evonas::observability::OpenCensus(options.db_path);
    if (!census.ok()) return Fail(census.status());
    telemetry->SetCensus(*std::move(census));
    auto started =
        evonas::observability::MetricsServer::Start(flags.metrics_address,
                                                    telemetry);
    if (!started.ok()) return Fail(started.status());
    metrics = *std::move(started);
  }
  evonas::EvonasServiceImpl client_service(controller->get());
  evonas::WorkerServiceImpl worker_service(controller->get());
  // With authentication (the default) the services are reached only through
  // the wrappers that check tokens and tenants.
  std::unique_ptr<evonas::auth::AccessControl> access;
  std::unique_ptr<evonas::auth::AuthorizedEvonasService> authorized_client;
  std::unique_ptr<evonas::auth::AuthorizedWorkerService> authorized_worker;
  if (!flags.no_auth) {
    auto opened =
        evonas::auth::AccessControl::Open(options.db_path, access_options);
    if (!opened.ok()) return Fail(opened.status());
    access = *std::move(opened);
    authorized_client = std::make_unique<evonas::auth::AuthorizedEvonasService>(
        &client_service, access.get());
    authorized_worker = std::make_unique<evonas::auth::AuthorizedWorkerService>(
        &worker_service, access.get());
  }

  // Standard health (grpc.health.v1) and reflection services, so generic
  // tools (grpcurl, grpc_health_probe, load balancers) work with evonas.
  // They stay open: they reveal nothing about tenants.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(flags.listen, *credentials, &port);
  if (metrics != nullptr) {
    std::vector<std::unique_ptr<
        grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(telemetry->NewRpcInterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  if (flags.no_auth) {
    builder.RegisterService(&client_service);
    builder.RegisterService(&worker_service);
  } else {
    builder.RegisterService(authorized_client.get());
    builder.RegisterService(authorized_worker.get());
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "evonas-controller: cannot listen on " << flags.listen
              << "\n";
    return 1;
  }
  evonas::log::Info(
      "serving",
      {{"port", port},
       {"db", options.db_path},
       {"transport", flags.plaintext ? "plaintext" : "tls"},
       {"auth", flags.no_auth ? "none" : "tokens"},
       {"metrics", metrics == nullptr
                       ? std::string("off")
                       : absl::StrCat("http://", flags.metrics_address,
                                      "/metrics (port ", metrics->port(),
                                      ")")}});
  if (flags.no_auth) {
    evonas::log::Warning(
        "authentication_disabled",
        {{"detail", "--no-auth: every caller sees every tenant's data"}});
  }
  if (!flags.port_file.empty()) {
    // Written to a temporary and renamed, so a reader never sees half a port.
    std::string tmp = flags.port_file + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), flags.port_file.c_str());
  }

  std::signal(SIGINT, RecordSignal);
  std::signal(SIGTERM, RecordSignal);
  while (stop_signal == 0) {
    absl::Status status = (*controller)->Maintain();
    if (!status.ok()) {
      evonas::log::Error("maintenance_failed", {{"error", status.ToString()}});
    }
    absl::SleepFor(absl::Milliseconds(500));
  }
  evonas::log::Info("shutting_down", {{"signal", stop_signal}});
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  evonas::ControllerOptions options;
  evonas::auth::AccessOptions access_options;
  Flags flags;
  CLI::App app{"evonas-controller: stores data sets and experiments, runs the "
               "search and leases work to evonas-worker processes. Without a "
               "command it serves; `token`, `tenant` and `dev-cert` are admin "
               "commands run on the controller's host."};
  app.add_option("--listen", flags.listen,
                 "Address to serve on, e.g. 0.0.0.0:50051; port 0 picks a "
                 "free port")
      ->capture_default_str();
  app.add_option("--db", options.db_path, "SQLite database file")
      ->capture_default_str();
  app.add_option("--data-dir", options.data_dir,
                 "Directory for blobs: data sets and trained models")
      ->capture_default_str();
  app.add_option("--port-file", flags.port_file,
                 "Write the chosen port here once serving (for scripts that "
                 "listen on port 0)");
  app.add_option("--lease-seconds", flags.lease_seconds,
                 "A lease not heartbeated for this long expires")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--heartbeat-seconds", flags.heartbeat_seconds,
                 "How often workers heartbeat")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-attempts", options.max_attempts,
                 "Leases per candidate before it is marked failed")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-upload-bytes", options.max_upload_bytes,
                 "Largest data set upload accepted (from any tenant), in "
                 "bytes")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option(evonas::kMaxDatasetValuesFlag, options.max_dataset_values,
                 "Most values (images x (pixels + 1)) an IDX data set may "
                 "hold; a worker needs 8 bytes per value to train on it, so "
                 "raise it together with the workers' flag of the same name")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--inline-blob-max-bytes", options.inline_blob_max_bytes,
                 "Reported models, checkpoints and artifacts up to this size "
                 "are stored in the database with the report instead of as "
                 "files of their own (0: always files)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-running-experiments",
                 access_options.max_running_experiments,
                 "Running experiments each tenant may have at once")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--tls-cert", flags.tls_cert,
                 "PEM certificate (chain) of the controller")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", flags.tls_key, "PEM private key of --tls-cert")
      ->check(CLI::ExistingFile);
  app.add_flag("--plaintext", flags.plaintext,
               "Serve without TLS (tokens then cross the network in clear): "
               "only on loopback, a trusted network or behind a TLS proxy");
  app.add_option("--metrics-address", flags.metrics_address,
                 "Serve Prometheus metrics at http://ADDRESS/metrics, e.g. "
                 "0.0.0.0:9464; empty (the default) serves none");
  app.add_option("--log-level", flags.log_level,
                 "Least severe event logged on stderr: debug, info, warning "
                 "or error")
      ->capture_default_str()
      ->check(CLI::IsMember({"debug", "info", "warning", "error"}));
  app.add_flag("--no-auth", flags.no_auth,
               "Accept calls without tokens; every caller sees every tenant's "
               "data. For local development only");

  CLI::App* token = app.add_subcommand(
      "token", "Create, list and revoke bearer tokens in --db (run on the "
               "controller's host; a running controller sees changes at once)");
  token->require_subcommand(1);
  TokenFlags token_flags;
  CLI::App* create = token->add_subcommand(
      "create", "Create a token and print its secret (once) on stdout");
  create->add_option("--kind", token_flags.kind,
                     "client (bound to --tenant) or worker")
      ->capture_default_str()
      ->check(CLI::IsMember({"client", "worker"}));
  create->add_option("--tenant", token_flags.tenant,
                     "Tenant of a client token: it sees only its tenant's "
                     "data sets, experiments and models");
  create->add_option("--secret-file", token_flags.secret_file,
                     "Register the secret in this file (e.g. a deployment's "
                     "secret) instead of generating one")
      ->check(CLI::ExistingFile);
  create->add_option("--expires-in", token_flags.expires_in,
                     "Lifetime, e.g. 30d, 12h or 90m; calls with the token "
                     "are refused afterwards (default: never expires)");
  CLI::App* list = token->add_subcommand("list", "List tokens (never secrets)");
  CLI::App* revoke = token->add_subcommand("revoke", "Revoke a token by id");
  revoke->add_option("ID", token_flags.id, "Token id, as `token list` shows")
      ->required();
  std::string adopt_tenant;
  CLI::App* tenant = app.add_subcommand(
      "tenant", "Manage tenants' data in --db (on the controller's host)");
  tenant->require_subcommand(1);
  CLI::App* adopt = tenant->add_subcommand(
      "adopt",
      "Give --tenant every data set and experiment that belongs to no tenant "
      "(made before tokens existed, or with --no-auth)");
  adopt->add_option("--tenant", adopt_tenant, "The tenant to give them to")
      ->required();
  for (CLI::App* command : {create, list, revoke, adopt}) {
    command->add_option("--db", options.db_path, "SQLite database file")
        ->capture_default_str();
  }

  std::string cert_dir;
  std::vector<std::string> cert_hosts;
  CLI::App* dev_cert = app.add_subcommand(
      "dev-cert",
      "Write a self-signed certificate and key (DIR/cert.pem, DIR/key.pem) "
      "for development; clients trust it with --tls-ca DIR/cert.pem");
  dev_cert->add_option("--out", cert_dir, "Directory to write to")
      ->required();
  dev_cert->add_option("--host", cert_hosts,
                       "A further host name or IP address clients use "
                       "(localhost, 127.0.0.1 and ::1 are always included)");
  CLI11_PARSE(app, argc, argv);

  if (create->parsed()) return CreateToken(options.db_path, token_flags);
  if (list->parsed()) return ListTokens(options.db_path);
  if (revoke->parsed()) return RevokeToken(options.db_path, token_flags.id);
  if (adopt->parsed()) return AdoptOwnerless(options.db_path, adopt_tenant);
  if (dev_cert->parsed()) {
    absl::Status status = evonas::auth::WriteDevCertificate(cert_dir,
                                                            cert_hosts);
    if (!status.ok()) return Fail(status);
    std::cerr << "evonas-controller: wrote " << cert_dir << "/cert.pem and "
              << cert_dir << "/key.pem\n";
    return 0;
  }
  absl::StatusOr<evonas::log::Level> level =
      evonas::log::ParseLevel(flags.log_level);
  if (!level.ok()) return Fail(level.status());
  evonas::log::SetMinLevel(*level);
  return Serve(options, flags, access_options);
}
