#ifndef EVONAS_FUZZ_CONTROLLER_FIXTURE_H_
#define EVONAS_FUZZ_CONTROLLER_FIXTURE_H_

// One in-process Controller per fuzz process, on a temporary directory (a
// real SQLite database and blob store), with a training and a test data set
// of columns x1, x2, y. The checks the fuzz targets reach through it are
// private to server/controller.cc, so they are fuzzed through its public
// API, as the gRPC handlers call them.

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/controller.h"

namespace evonas::fuzz {

// Stops the process with `what` and the status on stderr: libFuzzer then
// saves the input as a crash.
[[noreturn]] inline void Fail(const std::string& what,
                              const absl::Status& status) {
  std::fprintf(stderr, "%s: %s\n", what.c_str(), status.ToString().c_str());
  std::abort();
}

template <typename T>
T OrFail(absl::StatusOr<T> value, const std::string& what) {
  if (!value.ok()) Fail(what, value.status());
  return *std::move(value);
}

class ControllerFixture {
 public:
  // `make_strategy` replaces the search strategy (null keeps the real ones).
  explicit ControllerFixture(
      std::function<absl::StatusOr<std::unique_ptr<search::Strategy>>(
          const v1::ExperimentSpec&, absl::Span<const v1::LatencyTable>,
          int64_t, const ImageShape&)>
          make_strategy = nullptr) {
    std::string templ =
        (std::filesystem::temp_directory_path() / "evonas-fuzz-XXXXXX")
            .string();
    if (::mkdtemp(templ.data()) == nullptr) std::abort();
    dir_ = templ;
    // The fuzz targets never destroy their fixture; libFuzzer ends with
    // exit(), so the directory goes then.
    static std::string* const to_remove = new std::string(dir_);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(*to_remove, ec);
    });
    ControllerOptions options;
    // In memory: the checks are what is fuzzed here, and fsyncs would
    // slow every input down a hundredfold.
    options.db_path = ":memory:";
    options.data_dir = dir_ + "/data";
    // A small limit, so that size checks are reachable by fuzz inputs.
    options.max_model_bytes = 4096;
    // Time stands still: leases never expire under a slow input.
    options.clock = [] { return absl::FromUnixSeconds(1700000000); };
    if (make_strategy) options.make_strategy = std::move(make_strategy);
    controller_ = OrFail(Controller::Create(std::move(options)), "Create");
    train_ = Upload("x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,2\n2,0,2\n0,2,2\n"
                    "2,2,4\n3,0,3\n0,3,3\n3,3,6\n");
    test_ = Upload("x1,x2,y\n4,0,4\n0,4,4\n4,4,8\n");
  }
  ~ControllerFixture() {
    controller_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  Controller& controller() { return *controller_; }
  const std::string& train_id() const { return train_; }
  const std::string& test_id() const { return test_; }

  // Rows per table; a refused request must leave them as they were.
  std::map<std::string, int64_t> RowCounts() {
    return OrFail(controller_->RowCounts(), "RowCounts");
  }

 private:
  std::string Upload(const std::string& csv) {
    auto upload = OrFail(controller_->BeginUpload("fuzz.csv", csv.size()),
                         "BeginUpload");
    absl::Status appended = upload->Append(csv);
    if (!appended.ok()) Fail("Append", appended);
    return OrFail(upload->Finish(), "Finish").id();
  }

  std::string dir_;
  std::unique_ptr<Controller> controller_;
  std::string train_, test_;
};

}  // namespace evonas::fuzz

#endif  // EVONAS_FUZZ_CONTROLLER_FIXTURE_H_
