#ifndef EVONAS_WORKER_DATASET_CACHE_H_
#define EVONAS_WORKER_DATASET_CACHE_H_

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/dataset.h"
#include "evonas/v1/worker_service.grpc.pb.h"

namespace evonas::worker {

// Data sets by content hash: on disk under `dir` (bounded by `max_bytes`,
// least recently used evicted first) and the most recently used ones parsed
// in memory (a training and a test set alternate on every lease), at most
// four and at most `max_parsed_bytes` of values (the last one parsed is kept
// whatever its size). A parsed CSV holds 8 bytes per value, an IDX data set
// 1 (its own bytes, see Dataset): Fashion-MNIST's training set takes 47 MB.
// A data set handed out stays alive while its holder keeps it, evicted or
// not. A fetched file is checked against its hash before use, and parsed
// within `limits`. Thread-safe.
class DatasetCache {
 public:
  DatasetCache(v1::WorkerService::StubInterface* stub, std::string dir,
               int64_t max_bytes,
               int64_t max_parsed_bytes = int64_t{1} << 30,
               DatasetLimits limits = {});

  // The data set parsed as `format` says (the lease's dataset_format; see
  // common/dataset.h), fetched from the controller on a miss.
  absl::StatusOr<std::shared_ptr<const Dataset>> Get(const std::string& id,
                                                     v1::DatasetFormat format);

 private:
  absl::StatusOr<std::string> Fetch(const std::string& id);
  void Evict(const std::string& keep);

  v1::WorkerService::StubInterface* const stub_;
  const std::string dir_;
  const int64_t max_bytes_;
  const int64_t max_parsed_bytes_;
  const DatasetLimits limits_;
  absl::Mutex mu_;
  // By id and format; most recently used first.
  std::list<
      std::pair<std::pair<std::string, int>, std::shared_ptr<const Dataset>>>
      parsed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace evonas::worker

#endif  // EVONAS_WORKER_DATASET_CACHE_H_
