#include "server/store/blob_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"

namespace evonas::store {
namespace fs = std::filesystem;
namespace {

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status FsyncDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return ErrnoError("open directory", dir);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoError("fsync directory", dir);
  return absl::OkStatus();
}

bool IsHexSha256(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

struct BlobStore::Writer::Hasher {
  Sha256 sha;
};

absl::StatusOr<std::unique_ptr<BlobStore>> BlobStore::Open(
    const std::string& dir) {
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "tmp", ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create blob directory ", dir, ": ", ec.message()));
  }
  for (const auto& entry : fs::directory_iterator(fs::path(dir) / "tmp", ec)) {
    fs::remove(entry.path(), ec);
  }
  return std::unique_ptr<BlobStore>(new BlobStore(dir));
}

std::string BlobStore::PathOf(const std::string& sha256) const {
  return (fs::path(dir_) / sha256.substr(0, 2) / sha256).string();
}

absl::StatusOr<std::unique_ptr<BlobStore::Writer>> BlobStore::NewWriter()
    const {
  std::string templ = (fs::path(dir_) / "tmp" / "blob-XXXXXX").string();
  int fd = ::mkstemp(templ.data());
  if (fd < 0) return ErrnoError("create temporary", templ);
  return std::unique_ptr<Writer>(new Writer(this, templ, fd));
}

BlobStore::Writer::Writer(const BlobStore* store, std::string temp_path, int fd)
    : store_(store),
      temp_path_(std::move(temp_path)),
      fd_(fd),
      hasher_(std::make_unique<Hasher>()) {}

BlobStore::Writer::~Writer() {
  if (fd_ >= 0) ::close(fd_);
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
}

absl::Status BlobStore::Writer::Append(absl::string_view bytes) {
  if (fd_ < 0) return absl::FailedPreconditionError("blob already committed");
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", temp_path_);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  hasher_->sha.Update(bytes);
  size_ += static_cast<int64_t>(bytes.size());
  return absl::OkStatus();
}

absl::StatusOr<std::string> BlobStore::Writer::Commit() {
  if (fd_ < 0) return absl::FailedPreconditionError("blob already committed");
  if (::fsync(fd_) != 0) return ErrnoError("fsync", temp_path_);
  ::close(fd_);
  fd_ = -1;
  std::string sha = hasher_->sha.HexDigest();
  std::string final_path = store_->PathOf(sha);
  std::string parent = fs::path(final_path).parent_path().string();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", parent, ": ", ec.message()));
  }
  if (::rename(temp_path_.c_str(), final_path.c_str()) != 0) {
    return ErrnoError("rename", temp_path_);
  }
  temp_path_.clear();
  absl::Status status = FsyncDirectory(parent);
  if (!status.ok()) return status;
  return sha;
}

absl::StatusOr<std::string> BlobStore::Put(absl::string_view bytes) const {
  auto writer = NewWriter();
  if (!writer.ok()) return writer.status();
  absl::Status status = (*writer)->Append(bytes);
  if (!status.ok()) return status;
  return (*writer)->Commit();
}

bool BlobStore::Contains(const std::string& sha256) const {
  if (!IsHexSha256(sha256)) return false;
  std::error_code ec;
  return fs::exists(PathOf(sha256), ec);
}

absl::StatusOr<int64_t> BlobStore::RemoveUnreferenced(
    const std::set<std::string>& referenced,
    fs::file_time_type cutoff) const {
  // Blobs live in <dir>/<first two hex digits>/<sha256> (PathOf); anything
  // else, such as tmp/, is not a blob and is left alone.
  auto list_error = [](const fs::path& dir, const std::error_code& ec) {
    return absl::InternalError(absl::StrCat(
        "cannot list blob directory ", dir.string(), ": ", ec.message()));
  };
  int64_t removed = 0;
  std::error_code ec;
  for (fs::directory_iterator prefix(dir_, ec), end; !ec && prefix != end;
       prefix.increment(ec)) {
    const std::string prefix_name = prefix->path().filename().string();
    std::error_code type_ec;
    if (prefix_name.size() != 2 || !prefix->is_directory(type_ec)) continue;
    std::error_code blob_ec;
    for (fs::directory_iterator blob(prefix->path(), blob_ec);
         !blob_ec && blob != end; blob.increment(blob_ec)) {
      const std::string sha = blob->path().filename().string();
      if (!IsHexSha256(sha) || sha.compare(0, 2, prefix_name) != 0 ||
          referenced.count(sha) > 0) {
        continue;
      }
      std::error_code time_ec;
      const fs::file_time_type written =
          fs::last_write_time(blob->path(), time_ec);
      if (time_ec || written >= cutoff) continue;
      std::error_code remove_ec;
      fs::remove(blob->path(), remove_ec);
      if (remove_ec) {
        return absl::InternalError(
            absl::StrCat("cannot remove orphan blob ", blob->path().string(),
                         ": ", remove_ec.message()));
      }
      ++removed;
    }
    if (blob_ec) return list_error(prefix->path(), blob_ec);
  }
  if (ec) return list_error(dir_, ec);
  return removed;
}

absl::StatusOr<std::string> BlobStore::Read(const std::string& sha256) const {
  if (!IsHexSha256(sha256)) {
    return absl::NotFoundError(absl::StrCat("no blob ", sha256));
  }
  std::ifstream in(PathOf(sha256), std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("no blob ", sha256));
  std::ostringstream out;
  out << in.rdbuf();
  return std::move(out).str();
}

}  // namespace evonas::store
