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

}  // namespace evonas

#endif  // EVONAS_COMMON_METRICS_H_
