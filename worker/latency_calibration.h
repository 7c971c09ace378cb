#ifndef EVONAS_WORKER_LATENCY_CALIBRATION_H_
#define EVONAS_WORKER_LATENCY_CALIBRATION_H_

// A worker's latency calibration at start-up: it times small networks on its
// hardware, exactly as it times every trained candidate's
// Metrics.inference_latency_seconds, and fits the LatencyTable the controller
// estimates untrained genomes' latency with (common/latency_table.h).

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/genome.h"
#include "evonas/v1/types.pb.h"
#include "worker/model/mlp.h"

namespace evonas::worker {

// "<CPU model name> x<threads>", the model name taken from `cpuinfo` (the
// text of /proc/cpuinfo); "unknown CPU x<threads>" when it has none.
// Workers with equal strings share one table in the controller.
std::string HardwareClass(absl::string_view cpuinfo, int threads);
// HardwareClass of this machine's /proc/cpuinfo.
std::string LocalHardwareClass(int threads);

// The network of `genome` (ZeroWeights' shape: every stage, residual
// layers and the convolutional trunk on `image` included) with small,
// fixed, non-zero weights and identity standardisation, computing in float32
// for a FLOAT32 dense genome: what a latency measurement needs (weight
// values do not change the time; zeros or denormals might). InvalidArgument for
// a genome that makes no valid network (a width below 1, a misplaced residual).
absl::StatusOr<model::NetworkParameters> PlaceholderNetwork(
    const v1::Genome& genome, int64_t inputs, int64_t outputs,
    const ImageShape& image = {});

// Times chains of every activation (depths 1 and 3, widths 8 to 256, 1 and
// 8 outputs: 60 networks, in float64 and again in float32), tanh chains of
// those shapes layer-normalised (12) and convolutional trunks of every
// activation on
// 12 x 12 and 24 x 24 images (depths 1 and 2, 4 and 16 channels, kernel 3,
// the first layer pooling, before a dense layer of 8: 40 networks) on `threads`
// intra-op threads, in three rounds keeping each network's smallest median
// (a few seconds in all), and fits the table. Errors of the measurement or
// the fit are returned.
absl::StatusOr<v1::LatencyTable> CalibrateLatency(
    const std::string& hardware_class, int threads);

}  // namespace evonas::worker

#endif  // EVONAS_WORKER_LATENCY_CALIBRATION_H_
