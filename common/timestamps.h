#ifndef EVONAS_COMMON_TIMESTAMPS_H_
#define EVONAS_COMMON_TIMESTAMPS_H_

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace evonas {

// False for the unset (all-zero) Timestamp, which the API uses for "never".
inline bool IsSet(const google::protobuf::Timestamp& t) {
  return t.seconds() != 0 || t.nanos() != 0;
}

inline absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

}  // namespace evonas

#endif  // EVONAS_COMMON_TIMESTAMPS_H_
