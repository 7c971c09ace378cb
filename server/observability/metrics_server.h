#ifndef EVONAS_SERVER_OBSERVABILITY_METRICS_SERVER_H_
#define EVONAS_SERVER_OBSERVABILITY_METRICS_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"

namespace evonas::observability {

// Serves a collectable's metrics over HTTP at /metrics, in Prometheus's text
// format, until destroyed (prometheus-cpp's Exposer, two threads).
class MetricsServer {
 public:
  // Listens on `address` ("0.0.0.0:9464", "127.0.0.1:0" for a free port,
  // "[::]:9464"). InvalidArgument for an address without a port; Unavailable
  // when it cannot listen there (in use, not permitted). `collectable` must
  // stay alive while the server runs (it is held weakly).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address,
      std::weak_ptr<prometheus::Collectable> collectable);

  // The port it listens on (the chosen one for port 0).
  int port() const { return port_; }

 private:
  MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, int port)
      : exposer_(std::move(exposer)), port_(port) {}
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_;
};

}  // namespace evonas::observability

#endif  // EVONAS_SERVER_OBSERVABILITY_METRICS_SERVER_H_
