#ifndef EVONAS_COMMON_METRICS_H_
#define EVONAS_COMMON_METRICS_H_

#include <vector>

#include "evonas/v1/types.pb.h"

namespace evonas {

// Compares `predicted` with `target` element by element (same length;
// row-major rows x outputs) and fills max absolute error, fraction of
// elements with |error| <= within_tolerance, RMSE, MAE and R^2 (1 -
// SS_res / SS_tot, each output's SS_tot about its own mean; 0 when SS_tot
// is 0). `row_count` is target.size() / outputs. A NaN prediction counts as
// an infinite error (so max, RMSE and MAE become +inf, R^2 -inf, and it is
// not within). With no elements every field is 0.
v1::Evaluation EvaluatePredictions(const std::vector<double>& predicted,
                                   const std::vector<double>& target,
                                   int64_t outputs, double within_tolerance);

// Classification: `logits` is row-major [rows, classes], `labels` one class
// index per row (an integer in [0, classes), checked only by assert). Fills
// row_count, accuracy (the fraction of rows whose largest logit is the
// labelled class; ties go to the lowest index, as argmax) and the mean
// softmax cross-entropy in nats; the regression fields stay 0. A row with
// a NaN logit is misclassified and makes the cross-entropy NaN. With no rows
// every field is 0.
v1::Evaluation EvaluateClassification(const std::vector<double>& logits,
                                      const std::vector<double>& labels,
                                      int64_t classes);

}  // namespace evonas

#endif  // EVONAS_COMMON_METRICS_H_
