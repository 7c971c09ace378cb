// ParseCsv on arbitrary bytes: every uploaded data set goes through it.
// Beyond "no crash, no sanitizer report" it checks the contract of an
// accepted table: rows x columns finite values, unique non-empty names.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "common/table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  evonas::CsvLimits limits;
  limits.max_columns = 1000;  // keeps a huge header from timing out the run
  absl::StatusOr<evonas::Table> table = evonas::ParseCsv(text, limits);
  if (!table.ok()) {
    if (table.status().code() != absl::StatusCode::kInvalidArgument ||
        table.status().message().empty()) {
      std::abort();  // bad input must be InvalidArgument with a message
    }
    return 0;
  }
  if (table->rows < 1 || table->cols() < 1 ||
      static_cast<int64_t>(table->values.size()) != table->rows * table->cols()) {
    std::abort();
  }
  for (double v : table->values) {
    if (!std::isfinite(v)) std::abort();
  }
  std::set<std::string> names;
  for (const std::string& name : table->columns) {
    if (name.empty() || !names.insert(name).second) std::abort();
  }
  absl::StatusOr<std::vector<int64_t>> indices =
      evonas::ColumnIndices(*table, table->columns);
  if (!indices.ok()) std::abort();
  std::vector<double> all = evonas::SelectColumns(*table, {0}, *indices);
  if (static_cast<int64_t>(all.size()) != table->cols()) std::abort();
  return 0;
}
