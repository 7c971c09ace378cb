#ifndef EVONAS_FUZZ_FUZZ_PROTO_H_
#define EVONAS_FUZZ_FUZZ_PROTO_H_

// Turning fuzz bytes into a proto message, shared by the fuzz targets.

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/message.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/text_format.h"

namespace evonas::fuzz {

// Parses `bytes` into `message` as protobuf text format, without printing
// the parser's complaints. False when it is not text format.
// Text format lets a string field hold bytes that are not UTF-8, which no
// gRPC peer can send (the binary parser refuses them), so such a message
// counts as unparsable too.
inline bool ParseText(absl::string_view bytes,
                      google::protobuf::Message* message) {
  // Protobuf's own complaints about such strings are expected here.
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  class Silent : public google::protobuf::io::ErrorCollector {
   public:
    void AddError(int, int, const std::string&) override {}
  } silent;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&silent);
  if (!parser.ParseFromString(std::string(bytes.data(), bytes.size()),
                              message)) {
    return false;
  }
  std::unique_ptr<google::protobuf::Message> copy(message->New());
  return copy->ParseFromString(message->SerializeAsString());
}

// Parses `bytes` into `message` as text format (what the hand-written seeds
// under tests/fuzz/ are) or, failing that, as the binary wire format (what
// mutations of them mostly become, and what controller and workers
// receive). False when neither parses.
inline bool ParseTextOrBinary(absl::string_view bytes,
                              google::protobuf::Message* message) {
  if (ParseText(bytes, message)) return true;
  message->Clear();
  return message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

}  // namespace evonas::fuzz

#endif  // EVONAS_FUZZ_FUZZ_PROTO_H_
