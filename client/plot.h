#ifndef EVONAS_CLIENT_PLOT_H_
#define EVONAS_CLIENT_PLOT_H_

// The report's plots, independent of what draws them: axes and their ticks.

#include <cmath>
#include <string>
#include <vector>

namespace evonas::client {

struct Tick {
  double value = 0;
  // Empty for a grid line without a label.
  std::string label;
};

struct Axis {
  bool log = false;
  double lo = 0;
  double hi = 1;
  std::string title;
  std::vector<Tick> ticks;

  // Position of `value` from 0 (lo) to 1 (hi).
  double Fraction(double value) const {
    if (log) {
      return (std::log10(value) - std::log10(lo)) /
             (std::log10(hi) - std::log10(lo));
    }
    return (value - lo) / (hi - lo);
  }
};

// A logarithmic axis over [min, max] with a little room around; a min or
// max that is not positive and finite is replaced by a default. At least
// three ticks are labelled with `format`, whatever the span: at decades (every
// k-th labelled when there are many), else at 1-2-5 multiples of powers of
// ten, else (less than about half a decade) at round linear steps.
// Unlabelled grid lines mark the multiples of a decade when few decades
// show. Labels may still need thinning for the space (ThinLabels).
Axis LogAxis(double min, double max, std::string title,
             std::string (*format)(double));

// A linear axis from 0 to just past `max`, ticks at round steps (at steps of
// seconds, minutes and hours when `durations`).
Axis LinearAxis(double max, std::string title, std::string (*format)(double),
                bool durations);

// Clears the labels of `axis`'s ticks that would come closer than `gap`
// pixels to a label kept before them, on an axis `length` pixels long where
// a label takes `extent(label)` pixels. Rounder values are kept first (1,
// then 2 and 5, then other digits times a power of ten). Grid lines stay.
void ThinLabels(Axis* axis, double length, double gap,
                double (*extent)(const std::string& label));

}  // namespace evonas::client

#endif  // EVONAS_CLIENT_PLOT_H_
