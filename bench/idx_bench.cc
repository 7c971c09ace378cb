// Time and memory of reading Fashion-MNIST the way evonas does: gunzip the
// shipped files (the CLI), check the headers (the controller, on upload) and
// parse into a Table (the worker). Prints one line per step; peak RSS is the
// process's high-water mark after the step.
//   idx_bench [DIR] [SPLIT]   defaults /usr/share/datasets/fashion-mnist train

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "common/dataset.h"
#include "common/gzip.h"
#include "common/idx.h"

namespace {

long PeakRssMb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024;
}

template <typename F>
double Seconds(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                       start)
      .count();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir =
      argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
  const std::string split = argc > 2 ? argv[2] : "train";
  std::printf("start: peak RSS %ld MB\n", PeakRssMb());
  std::string bytes;
  const double gunzip = Seconds([&] {
    for (const char* part : {"-images-idx3-ubyte.gz", "-labels-idx1-ubyte.gz"}) {
      const absl::Status status = evonas::GunzipAppend(
          ReadFile(dir + "/" + split + part), int64_t{1} << 30, &bytes);
      if (!status.ok()) {
        std::fprintf(stderr, "%s\n", status.ToString().c_str());
        std::exit(1);
      }
    }
  });
  std::printf("read + gunzip: %.3f s, %zu bytes, peak RSS %ld MB\n", gunzip,
              bytes.size(), PeakRssMb());
  int64_t rows = 0;
  const double inspect = Seconds([&] {
    rows = evonas::InspectDataset(bytes, evonas::v1::DATASET_FORMAT_IDX)
               .value()
               .rows;
  });
  std::printf("InspectDataset (controller): %.6f s, %lld rows, peak RSS %ld MB\n",
              inspect, static_cast<long long>(rows), PeakRssMb());
  double best = 1e9;
  for (int i = 0; i < 3; ++i) {
    double seconds = Seconds([&] {
      evonas::Table table =
          evonas::ParseDataset(bytes, evonas::v1::DATASET_FORMAT_IDX).value();
      rows = table.rows;
    });
    if (seconds < best) best = seconds;
  }
  std::printf(
      "ParseDataset (worker): best of 3 %.3f s, %lld rows x %d columns, %.0f "
      "MB of values, peak RSS %ld MB\n",
      best, static_cast<long long>(rows), 785, rows * 785 * 8 / 1e6,
      PeakRssMb());
  return 0;
}
