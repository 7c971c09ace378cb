#ifndef EVONAS_COMMON_GZIP_H_
#define EVONAS_COMMON_GZIP_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace evonas {

// True if `bytes` starts with the gzip magic number (1f 8b).
bool IsGzip(absl::string_view bytes);

// Decompresses the gzip data `compressed` (one or more concatenated members,
// as gzip(1) writes and reads them) and appends it to *out. Stops with
// ResourceExhausted as soon as *out would exceed `max_output_bytes` in total,
// so a small hostile file (a "zip bomb") cannot exhaust memory;
// InvalidArgument for data that is not gzip, corrupt (checksum) or cut off.
// On error *out holds an unspecified prefix.
absl::Status GunzipAppend(absl::string_view compressed,
                          int64_t max_output_bytes, std::string* out);

}  // namespace evonas

#endif  // EVONAS_COMMON_GZIP_H_
