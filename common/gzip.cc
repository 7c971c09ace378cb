#include "common/gzip.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <new>

#include "absl/strings/str_cat.h"

namespace evonas {
namespace {

// Output grows by at least and at most this much per inflate call.
constexpr size_t kMinStepBytes = size_t{4} << 10;
constexpr size_t kStepBytes = size_t{1} << 20;
// Deflate cannot compress better than about 1032:1.
constexpr size_t kMaxDeflateRatio = 1032;
// zlib counts in uInt.
constexpr size_t kMaxInput = std::numeric_limits<uInt>::max();

// Frees the zlib stream on every return path.
class Inflater {
 public:
  Inflater() = default;
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  ~Inflater() {
    if (initialised_) inflateEnd(&stream_);
  }
  bool Init() {
    // 16 + MAX_WBITS: a gzip header and trailer, not raw zlib.
    initialised_ = inflateInit2(&stream_, 16 + MAX_WBITS) == Z_OK;
    return initialised_;
  }
  z_stream* get() { return &stream_; }

 private:
  z_stream stream_{};
  bool initialised_ = false;
};

}  // namespace

bool IsGzip(absl::string_view bytes) {
  return bytes.size() >= 2 && bytes[0] == '\x1f' && bytes[1] == '\x8b';
}

absl::Status GunzipAppend(absl::string_view compressed,
                          int64_t max_output_bytes, std::string* out) {
  if (!IsGzip(compressed)) {
    return absl::InvalidArgumentError(
        "not gzip data (it does not start with 1f 8b)");
  }
  const size_t limit = static_cast<size_t>(std::max<int64_t>(max_output_bytes, 0));
  if (out->size() > limit) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "decompressed data exceed the limit of ", max_output_bytes, " bytes"));
  }
  Inflater inflater;
  if (!inflater.Init()) {
    return absl::ResourceExhaustedError("cannot initialise zlib");
  }
  z_stream* stream = inflater.get();
  // The last member's trailer holds its size mod 2^32: a good first guess
  // for the whole output when there is one member. It is not trusted beyond
  // the limit, nor beyond deflate's largest ratio, so a forged trailer
  // cannot make a few bytes reserve gigabytes.
  if (compressed.size() >= 18) {
    const auto b = [&](size_t i) {
      return static_cast<uint32_t>(
          static_cast<unsigned char>(compressed[compressed.size() - 4 + i]));
    };
    const size_t hint = std::min<size_t>(
        b(0) | b(1) << 8 | b(2) << 16 | b(3) << 24,
        compressed.size() * kMaxDeflateRatio);
    try {
      out->reserve(std::min(out->size() + hint, limit));
    } catch (const std::bad_alloc&) {
      // Only a hint; growing on demand reports a real shortage below.
    }
  }
  size_t consumed = 0;
  int result = Z_OK;
  try {
    for (;;) {
      if (stream->avail_in == 0 && consumed < compressed.size()) {
        const size_t n = std::min(compressed.size() - consumed, kMaxInput);
        stream->next_in = reinterpret_cast<Bytef*>(
            const_cast<char*>(compressed.data() + consumed));
        stream->avail_in = static_cast<uInt>(n);
        consumed += n;
      }
      if (out->size() >= limit) {
        // Full: only fine if the data end exactly here. One more byte of
        // room tells.
        char probe;
        stream->next_out = reinterpret_cast<Bytef*>(&probe);
        stream->avail_out = 1;
        result = inflate(stream, Z_NO_FLUSH);
        if (stream->avail_out == 0) {
          return absl::ResourceExhaustedError(
              absl::StrCat("decompressed data exceed the limit of ",
                           max_output_bytes, " bytes"));
        }
      } else {
        const size_t old_size = out->size();
        // Small outputs take small steps; large ones 1 MiB at a time.
        const size_t step = std::min(
            std::clamp(old_size, kMinStepBytes, kStepBytes), limit - old_size);
        out->resize(old_size + step);
        stream->next_out = reinterpret_cast<Bytef*>(out->data() + old_size);
        stream->avail_out = static_cast<uInt>(step);
        result = inflate(stream, Z_NO_FLUSH);
        out->resize(old_size + step - stream->avail_out);
      }
      if (result == Z_STREAM_END) {
        const bool more_input =
            stream->avail_in > 0 || consumed < compressed.size();
        if (!more_input) return absl::OkStatus();
        // Another member follows (gzip(1) concatenates them).
        if (inflateReset(stream) != Z_OK) break;
        continue;
      }
      if (result == Z_BUF_ERROR && stream->avail_in == 0 &&
          consumed == compressed.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "gzip data are cut off after ", compressed.size(),
            " compressed bytes (", out->size(), " decompressed)"));
      }
      if (result != Z_OK && result != Z_BUF_ERROR) break;
    }
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "not enough memory to decompress after ", out->size(), " bytes"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "corrupt gzip data: ",
      stream->msg != nullptr ? stream->msg : zError(result)));
}

}  // namespace evonas
