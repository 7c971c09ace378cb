// A v1::Genome from the fuzz bytes (text or binary protobuf) through
// ValidateGenome, GenomeKey, DescribeGenome, ParameterCount and
// ComputeGenomeCost: genomes arrive in leases, stored candidates and
// text-format files. Checks that the key survives a serialisation round trip
// and that cost and parameter count agree on a valid genome.

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/genome.h"
#include "common/genome_cost.h"
#include "fuzz/fuzz_proto.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  evonas::v1::Genome genome;
  if (!evonas::fuzz::ParseTextOrBinary(
          absl::string_view(reinterpret_cast<const char*>(data), size),
          &genome)) {
    return 0;
  }
  const absl::Status valid = evonas::ValidateGenome(genome);
  if (!valid.ok() && (valid.code() != absl::StatusCode::kInvalidArgument ||
                      valid.message().empty())) {
    std::abort();
  }
  const std::string key = evonas::GenomeKey(genome);
  evonas::v1::Genome copy;
  if (!copy.ParseFromString(genome.SerializeAsString()) ||
      evonas::GenomeKey(copy) != key) {
    std::abort();
  }
  if (evonas::DescribeGenome(genome).empty()) std::abort();
  evonas::StageCount(genome);
  // On any genome: widths near INT32_MAX once overflowed int64 here (found
  // by this target); the counts now saturate.
  const evonas::v1::GenomeCost cost = evonas::ComputeGenomeCost(genome, 3, 2);
  if (valid.ok() &&
      (cost.parameter_count() != evonas::ParameterCount(genome, 3, 2) ||
       cost.parameter_count() <= 0)) {
    std::abort();
  }
  return 0;
}
