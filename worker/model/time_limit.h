#ifndef EVONAS_WORKER_MODEL_TIME_LIMIT_H_
#define EVONAS_WORKER_MODEL_TIME_LIMIT_H_

#include <algorithm>
#include <chrono>

namespace evonas::model {

// The wall-clock limit of one job's training (TrainJob.max_training_seconds),
// counted from the training's start. The trainer asks before every step
// whether it still fits: it does while the seconds used, plus the longest
// step of its kind so far, plus the longest selection so far (the
// evaluation on the selection rows that ends a stopped phase), plus a
// hundredth of the limit (restoring the best weights and what else follows
// the last selection) stay within the limit. Once a step does not fit, none
// does: training is over. Seconds 0 means no limit. Not thread-safe.
class TimeLimit {
 public:
  using Clock = std::chrono::steady_clock;

  TimeLimit() = default;  // no limit
  TimeLimit(double seconds, Clock::time_point start)
      : seconds_(seconds), start_(start) {}

  // Whether a step that may take `step_seconds` can start at `now`.
  bool Allows(double step_seconds, Clock::time_point now = Clock::now()) {
    if (reached_) return false;
    if (seconds_ <= 0) return true;
    const double used = Seconds(now - start_);
    reached_ =
        used + step_seconds + longest_selection_ + seconds_ / 100 > seconds_;
    return !reached_;
  }

  // Records how long one selection took.
  void RecordSelection(double seconds) {
    longest_selection_ = std::max(longest_selection_, seconds);
  }

  // Runs the selection `select` and records its time; returns its result.
  template <typename F>
  auto TimeSelection(F&& select) {
    const Clock::time_point start = Clock::now();
    auto result = select();
    RecordSelection(Seconds(Clock::now() - start));
    return result;
  }

  // Times one kind of step for Allows: Fits() before each step, Done() after
  // it.
  class Steps {
   public:
    explicit Steps(TimeLimit& limit) : limit_(limit) {}

    // Whether a step as long as the longest of its kind so far can start now.
    bool Fits() {
      start_ = Clock::now();
      return limit_.Allows(longest_, start_);
    }
    void Done() {
      longest_ = std::max(longest_, Seconds(Clock::now() - start_));
    }

   private:
    TimeLimit& limit_;
    Clock::time_point start_;
    double longest_ = 0;
  };

  // Whether a step was refused: training stopped at the limit.
  bool reached() const { return reached_; }

 private:
  static double Seconds(Clock::duration d) {
    return std::chrono::duration<double>(d).count();
  }

  double seconds_ = 0;
  Clock::time_point start_;
  double longest_selection_ = 0;
  bool reached_ = false;
};

}  // namespace evonas::model

#endif  // EVONAS_WORKER_MODEL_TIME_LIMIT_H_
