#ifndef EVONAS_COMMON_STATUS_MACROS_H_
#define EVONAS_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Abseil 20220623 ships no status macros; these are the only two we use.

// Evaluates `expr` (an absl::Status) and returns it from the enclosing
// function unless it is OK.
#define EVONAS_RETURN_IF_ERROR(expr)                  \
  do {                                                \
    ::absl::Status evonas_status_ = (expr);           \
    if (!evonas_status_.ok()) return evonas_status_;  \
  } while (false)

#define EVONAS_STATUS_CONCAT_INNER_(a, b) a##b
#define EVONAS_STATUS_CONCAT_(a, b) EVONAS_STATUS_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status from the
// enclosing function on error, otherwise moves the value into `lhs`, which
// may be a declaration (`auto x`) or an existing variable.
#define EVONAS_ASSIGN_OR_RETURN(lhs, rexpr)                                 \
  EVONAS_ASSIGN_OR_RETURN_IMPL_(                                            \
      EVONAS_STATUS_CONCAT_(evonas_statusor_, __LINE__), lhs, rexpr)

#define EVONAS_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                  \
  if (!statusor.ok()) return std::move(statusor).status();  \
  lhs = std::move(statusor).value()

#endif  // EVONAS_COMMON_STATUS_MACROS_H_
