#ifndef EVONAS_SERVER_STORE_BLOB_STORE_H_
#define EVONAS_SERVER_STORE_BLOB_STORE_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace evonas::store {

// Content-addressed files (data sets, models) under one directory, named by
// their SHA-256. Writes are atomic: a blob is written to a temporary file,
// fsynced and renamed into place, so a crash leaves either the whole blob or
// nothing but a temporary that Open() sweeps. Thread-safe.
class BlobStore {
 public:
  // Creates `dir` if needed and removes temporaries left by a crash.
  static absl::StatusOr<std::unique_ptr<BlobStore>> Open(const std::string& dir);

  // A blob being written. Nothing is visible until Commit(); destroying an
  // uncommitted writer deletes its temporary file.
  class Writer {
   public:
    ~Writer();
    absl::Status Append(absl::string_view bytes);
    int64_t size() const { return size_; }
    // Makes the blob durable and visible; returns its hex SHA-256.
    absl::StatusOr<std::string> Commit();

   private:
    friend class BlobStore;
    Writer(const BlobStore* store, std::string temp_path, int fd);
    const BlobStore* store_;
    std::string temp_path_;
    int fd_;
    int64_t size_ = 0;
    struct Hasher;
    std::unique_ptr<Hasher> hasher_;
  };

  absl::StatusOr<std::unique_ptr<Writer>> NewWriter() const;
  // Stores `bytes` at once; returns the hex SHA-256.
  absl::StatusOr<std::string> Put(absl::string_view bytes) const;
  // Returns the whole blob, or NotFound.
  absl::StatusOr<std::string> Read(const std::string& sha256) const;
  bool Contains(const std::string& sha256) const;

  // Deletes every committed blob that is not in `referenced` and was last
  // written before `cutoff`; returns how many it deleted. Writers put a blob
  // before the row referring to it commits, so only a caller that knows no
  // such commit is in flight (the controller at start-up, before it serves)
  // may call this; `cutoff` spares blobs written in the last moments anyway.
  // Internal when a directory cannot be read or a file removed.
  absl::StatusOr<int64_t> RemoveUnreferenced(
      const std::set<std::string>& referenced,
      std::filesystem::file_time_type cutoff) const;

 private:
  explicit BlobStore(std::string dir) : dir_(std::move(dir)) {}
  std::string PathOf(const std::string& sha256) const;
  std::string dir_;
};

}  // namespace evonas::store

#endif  // EVONAS_SERVER_STORE_BLOB_STORE_H_
