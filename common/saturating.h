#ifndef EVONAS_COMMON_SATURATING_H_
#define EVONAS_COMMON_SATURATING_H_

// int64 arithmetic that sticks at the limits instead of overflowing: counts
// computed from unvalidated genomes (widths up to INT32_MAX, many layers)
// must not be undefined behaviour, and "too big" is the honest answer.

#include <cstdint>
#include <limits>

namespace evonas {

inline int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t sum;
  if (!__builtin_add_overflow(a, b, &sum)) return sum;
  return b > 0 ? std::numeric_limits<int64_t>::max()
               : std::numeric_limits<int64_t>::min();
}

inline int64_t SaturatingMul(int64_t a, int64_t b) {
  int64_t product;
  if (!__builtin_mul_overflow(a, b, &product)) return product;
  return (a < 0) != (b < 0) ? std::numeric_limits<int64_t>::min()
                            : std::numeric_limits<int64_t>::max();
}

}  // namespace evonas

#endif  // EVONAS_COMMON_SATURATING_H_
