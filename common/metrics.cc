#include "common/metrics.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "evonas/v1/types.pb.h"

namespace evonas {
namespace {

// Neumaier's compensated sum of finite terms: accurate to a few ulps however
// many terms there are.
class CompensatedSum {
 public:
  void Add(double x) {
    const double t = sum_ + x;
    if (std::fabs(sum_) >= std::fabs(x)) {
      compensation_ += (sum_ - t) + x;
    } else {
      compensation_ += (x - t) + sum_;
    }
    sum_ = t;
  }
  double Sum() const { return sum_ + compensation_; }

 private:
  double sum_ = 0;
  double compensation_ = 0;
};

// Sum over outputs of the squared deviations of `target` (row-major, rows x
// outputs) from that output's mean; two passes for accuracy.
double TotalSumOfSquares(const std::vector<double>& target, int64_t outputs) {
  if (outputs <= 0) return 0;
  const size_t columns = static_cast<size_t>(outputs);
  const size_t rows = target.size() / columns;
  if (rows == 0) return 0;
  CompensatedSum total;
  for (size_t j = 0; j < columns; ++j) {
    CompensatedSum sum;
    for (size_t r = 0; r < rows; ++r) sum.Add(target[r * columns + j]);
    const double mean = sum.Sum() / static_cast<double>(rows);
    for (size_t r = 0; r < rows; ++r) {
      const double d = target[r * columns + j] - mean;
      total.Add(d * d);
    }
  }
  return total.Sum();
}

}  // namespace

v1::Evaluation EvaluatePredictions(const std::vector<double>& predicted,
                                   const std::vector<double>& target,
                                   int64_t outputs, double within_tolerance) {
  assert(predicted.size() == target.size());
  v1::Evaluation evaluation;
  const size_t n = std::min(predicted.size(), target.size());
  evaluation.set_row_count(
      outputs > 0 ? static_cast<int64_t>(target.size()) / outputs : 0);
  if (n == 0) return evaluation;

  constexpr double kInfinity = std::numeric_limits<double>::infinity();
  double max_error = 0;
  int64_t within = 0;
  bool infinite = false;
  CompensatedSum sum_abs, sum_sq;
  for (size_t i = 0; i < n; ++i) {
    const double error = std::fabs(predicted[i] - target[i]);
    if (error <= within_tolerance) ++within;
    if (!std::isfinite(error)) {  // NaN or infinite prediction
      infinite = true;
      continue;
    }
    max_error = std::max(max_error, error);
    sum_abs.Add(error);
    sum_sq.Add(error * error);
  }
  const double count = static_cast<double>(n);
  evaluation.set_fraction_within(static_cast<double>(within) / count);
  const double total = TotalSumOfSquares(target, outputs);
  if (infinite) {
    evaluation.set_max_abs_error(kInfinity);
    evaluation.set_rmse(kInfinity);
    evaluation.set_mae(kInfinity);
    if (total > 0) evaluation.set_r_squared(-kInfinity);
  } else {
    evaluation.set_max_abs_error(max_error);
    evaluation.set_rmse(std::sqrt(sum_sq.Sum() / count));
    evaluation.set_mae(sum_abs.Sum() / count);
    if (total > 0) evaluation.set_r_squared(1.0 - sum_sq.Sum() / total);
  }
  return evaluation;
}

v1::Evaluation EvaluateClassification(const std::vector<double>& logits,
                                      const std::vector<double>& labels,
                                      int64_t classes) {
  assert(classes > 0);
  assert(logits.size() == labels.size() * static_cast<size_t>(classes));
  v1::Evaluation e;
  const auto rows = static_cast<int64_t>(labels.size());
  e.set_row_count(rows);
  if (rows == 0) return e;
  int64_t correct = 0;
  CompensatedSum entropy;
  bool nan = false;
  for (int64_t r = 0; r < rows; ++r) {
    const double* row = logits.data() + r * classes;
    const auto label = static_cast<int64_t>(labels[r]);
    assert(label >= 0 && label < classes);
    int64_t best = 0;
    bool row_nan = std::isnan(row[0]);
    for (int64_t c = 1; c < classes; ++c) {
      row_nan = row_nan || std::isnan(row[c]);
      if (row[c] > row[best]) best = c;
    }
    if (row_nan) {
      nan = true;
      continue;
    }
    if (best == label) ++correct;
    // log-sum-exp shifted by the largest logit, so exp cannot overflow.
    double sum = 0;
    for (int64_t c = 0; c < classes; ++c) sum += std::exp(row[c] - row[best]);
    entropy.Add(std::log(sum) + row[best] - row[label]);
  }
  e.set_accuracy(static_cast<double>(correct) / static_cast<double>(rows));
  e.set_cross_entropy(nan ? std::numeric_limits<double>::quiet_NaN()
                          : entropy.Sum() / static_cast<double>(rows));
  return e;
}

}  // namespace evonas
