#include "worker/dataset_cache.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/dataset.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "grpcpp/grpcpp.h"

namespace evonas::worker {
namespace fs = std::filesystem;

DatasetCache::DatasetCache(v1::WorkerService::StubInterface* stub,
                           std::string dir, int64_t max_bytes,
                           int64_t max_parsed_bytes, DatasetLimits limits)
    : stub_(stub),
      dir_(std::move(dir)),
      max_bytes_(max_bytes),
      max_parsed_bytes_(max_parsed_bytes),
      limits_(limits) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
}

absl::StatusOr<std::string> DatasetCache::Fetch(const std::string& id) {
  const fs::path path = fs::path(dir_) / id;
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (in) {
    // Read straight into one string: a stringstream would copy the data
    // (tens of MB for an image set) twice more.
    std::string bytes(static_cast<size_t>(std::max<std::streamoff>(in.tellg(), 0)),
                      '\0');
    in.seekg(0);
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (in && Sha256Hex(bytes) == id) {
      std::error_code ec;
      fs::last_write_time(path, fs::file_time_type::clock::now(), ec);
      return bytes;
    }
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::minutes(10));
  v1::FetchDatasetRequest request;
  request.set_dataset_id(id);
  auto reader = stub_->FetchDataset(&context, request);
  std::string bytes;
  v1::FetchDatasetResponse response;
  while (reader->Read(&response)) {
    if (response.total_bytes() > 0) bytes.reserve(response.total_bytes());
    bytes.append(response.chunk());
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("fetching data set ", id, ": ",
                                     status.error_message()));
  }
  if (Sha256Hex(bytes) != id) {
    return absl::DataLossError(
        absl::StrCat("data set ", id, " arrived corrupted (hash mismatch)"));
  }
  // Written under a temporary name and renamed: a reader never sees half.
  const fs::path tmp = fs::path(dir_) / (id + ".tmp");
  std::ofstream(tmp, std::ios::binary) << bytes;
  std::error_code ec;
  fs::rename(tmp, path, ec);
  Evict(id);
  return bytes;
}

void DatasetCache::Evict(const std::string& keep) {
  std::error_code ec;
  std::vector<fs::directory_entry> files;
  int64_t total = 0;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    if (!entry.is_regular_file()) continue;
    files.push_back(entry);
    total += static_cast<int64_t>(entry.file_size(ec));
  }
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) {
    return a.last_write_time() < b.last_write_time();
  });
  for (const auto& entry : files) {
    if (total <= max_bytes_) break;
    if (entry.path().filename() == keep) continue;
    total -= static_cast<int64_t>(entry.file_size(ec));
    fs::remove(entry.path(), ec);
  }
}

absl::StatusOr<std::shared_ptr<const Dataset>> DatasetCache::Get(
    const std::string& id, v1::DatasetFormat format) {
  absl::MutexLock lock(&mu_);
  constexpr size_t kParsedKept = 4;
  const std::pair<std::string, int> key(id, format);
  for (auto it = parsed_.begin(); it != parsed_.end(); ++it) {
    if (it->first == key) {
      parsed_.splice(parsed_.begin(), parsed_, it);
      return parsed_.front().second;
    }
  }
  EVONAS_ASSIGN_OR_RETURN(std::string bytes, Fetch(id));
  // An IDX data set keeps `bytes` as its values; a CSV's are freed once
  // parsed.
  absl::StatusOr<Dataset> dataset =
      Dataset::Load(std::move(bytes), format, limits_);
  if (!dataset.ok()) {
    return absl::Status(dataset.status().code(),
                        absl::StrCat("data set ", id, " (",
                                     DatasetFormatName(format),
                                     "): ", dataset.status().message()));
  }
  auto parsed = std::make_shared<const Dataset>(*std::move(dataset));
  parsed_.emplace_front(key, parsed);
  int64_t kept_bytes = 0;
  auto it = parsed_.begin();
  for (size_t n = 0; it != parsed_.end(); ++it, ++n) {
    kept_bytes += it->second->value_bytes();
    if (n > 0 && (n >= kParsedKept || kept_bytes > max_parsed_bytes_)) break;
  }
  parsed_.erase(it, parsed_.end());
  return parsed;
}

}  // namespace evonas::worker
