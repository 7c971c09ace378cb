#ifndef EVONAS_TESTS_PROCESS_H_
#define EVONAS_TESTS_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace evonas::testutil {

// A child process started with posix_spawn, its stderr written to a log
// file. SIGKILLed and reaped on destruction unless it has exited. Not
// thread-safe.
class Process {
 public:
  // Starts argv[0] (a path) with `argv`; stderr goes to `log` (truncated).
  // Check started() for failure.
  Process(std::vector<std::string> argv, const std::filesystem::path& log);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  bool started() const { return pid_ > 0 || exit_status_ >= 0; }
  pid_t pid() const { return pid_; }
  // True until the process has exited (reaps it if it has).
  bool Running();
  // Sends SIGKILL and waits for the process to die.
  void Kill();
  // Sends SIGTERM and returns the exit status (128 + signal if killed by
  // one), or -1 if it did not exit within `deadline`.
  int Terminate(std::chrono::milliseconds deadline);

 private:
  pid_t pid_ = -1;
  int exit_status_ = -1;
};

// Polls `condition` every 20 ms until it returns true (then true) or
// `deadline` passes (then false).
bool WaitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds deadline);

// The whole file, or "" if it cannot be read.
std::string ReadFile(const std::filesystem::path& path);

}  // namespace evonas::testutil

#endif  // EVONAS_TESTS_PROCESS_H_
