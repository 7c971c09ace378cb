#include "client/plot.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <numeric>
#include <utility>

namespace evonas::client {
namespace {

// At least this many labelled ticks on a logarithmic axis.
constexpr size_t kMinLogTicks = 3;

bool InRange(const Axis& axis, double value) {
  return value >= axis.lo * (1 - 1e-9) && value <= axis.hi * (1 + 1e-9);
}

// Every m × 10^e in the axis for m in `mantissas` (ascending, in [1, 10)),
// ascending.
std::vector<double> Multiples(const Axis& axis,
                              std::initializer_list<double> mantissas) {
  const int first = static_cast<int>(std::floor(std::log10(axis.lo)));
  const int last = static_cast<int>(std::ceil(std::log10(axis.hi)));
  std::vector<double> values;
  for (int e = first; e <= last; ++e) {
    for (double m : mantissas) {
      const double v = m * std::pow(10.0, e);
      if (InRange(axis, v)) values.push_back(v);
    }
  }
  return values;
}

// The multiples in [lo, hi] of a round step (1, 2, 2.5 or 5 times a power of
// ten) no larger than a third of hi - lo, so at least three of them.
std::vector<double> RoundSteps(double lo, double hi) {
  const double raw = (hi - lo) / 6;
  const int exponent = static_cast<int>(std::floor(std::log10(raw)));
  const double magnitude = std::pow(10.0, exponent);
  double step = 10 * magnitude;
  for (double m : {1.0, 2.0, 2.5, 5.0}) {
    if (m * magnitude >= raw * (1 - 1e-9)) {
      step = m * magnitude;
      break;
    }
  }
  std::vector<double> values;
  for (double i = std::ceil(lo / step - 1e-9); i * step <= hi * (1 + 1e-9);
       ++i) {
    // An integer number of tenths of the magnitude, divided by a power of
    // ten when below one (both exact): 3 × 0.05 is 0.15000000000000002.
    const double tenths = std::round(i * step / magnitude * 10);
    values.push_back(exponent >= 1 ? tenths * std::pow(10.0, exponent - 1)
                                   : tenths / std::pow(10.0, 1 - exponent));
  }
  return values;
}

}  // namespace

Axis LogAxis(double min, double max, std::string title,
             std::string (*format)(double)) {
  Axis axis;
  axis.log = true;
  axis.title = std::move(title);
  if (!(min > 0) || !std::isfinite(min)) min = 1e-3;
  if (!(max >= min) || !std::isfinite(max)) max = min * 10;
  const double span = std::log10(max) - std::log10(min);
  const double pad = span == 0 ? 0.5 : std::max(0.06 * span, 0.12);
  axis.lo = std::pow(10.0, std::log10(min) - pad);
  axis.hi = std::pow(10.0, std::log10(max) + pad);

  // The coarsest of decades, 1-2-5 and round steps that gives enough ticks;
  // round steps only over less than about half a decade, where a
  // logarithmic axis is nearly linear.
  std::vector<double> values = Multiples(axis, {1});
  const bool decades = values.size() >= kMinLogTicks;
  if (!decades) values = Multiples(axis, {1, 2, 5});
  if (values.size() < kMinLogTicks) values = RoundSteps(axis.lo, axis.hi);
  for (double v : values) axis.ticks.push_back({v, format(v)});
  if (!decades) return axis;

  // Many decades: label every k-th, keep the others as grid lines.
  const size_t k = (axis.ticks.size() + 6) / 7;
  if (k > 1) {
    for (size_t i = 0; i < axis.ticks.size(); ++i) {
      if (i % k != 0) axis.ticks[i].label.clear();
    }
  }
  // Few decades: unlabelled grid lines at their multiples, as on log paper.
  if (axis.ticks.size() <= 4) {
    for (double v : Multiples(axis, {2, 3, 4, 5, 6, 7, 8, 9})) {
      axis.ticks.push_back({v, ""});
    }
  }
  return axis;
}

Axis LinearAxis(double max, std::string title, std::string (*format)(double),
                bool durations) {
  Axis axis;
  axis.title = std::move(title);
  if (!(max > 0) || !std::isfinite(max)) max = 1;
  const double raw = max / 5;
  double step = 0;
  if (durations) {
    static const double kSteps[] = {1,    2,    5,     10,    15,    30,
                                    60,   120,  300,   600,   900,   1800,
                                    3600, 7200, 10800, 21600, 43200, 86400};
    for (double s : kSteps) {
      if (s >= raw) {
        step = s;
        break;
      }
    }
  }
  if (step == 0) {
    const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
      if (m * magnitude >= raw * (1 - 1e-9)) {
        step = m * magnitude;
        break;
      }
    }
  }
  // Ends just past the data rather than at the next round value, which
  // could waste most of a step.
  axis.lo = 0;
  axis.hi = max * 1.03;
  for (int i = 0; i * step <= axis.hi * (1 + 1e-9); ++i) {
    axis.ticks.push_back({i * step, format(i * step)});
  }
  return axis;
}

void ThinLabels(Axis* axis, double length, double gap,
                double (*extent)(const std::string& label)) {
  // Rounder values first (1 × 10^e, then 2 and 5, then other digits), so
  // that a decade keeps its label rather than the 9 × 10^e just below it;
  // ascending among equals.
  auto roundness = [](double value) {
    if (!(value > 0)) return value == 0 ? 0 : 3;
    const double m = value / std::pow(10.0, std::floor(std::log10(value)));
    auto is = [m](double d) { return std::abs(m - d) < 1e-6 * d; };
    if (is(1) || is(10)) return 0;
    if (is(2) || is(5)) return 1;
    return is(std::round(m)) ? 2 : 3;
  };
  std::vector<size_t> order;
  for (size_t i = 0; i < axis->ticks.size(); ++i) {
    if (!axis->ticks[i].label.empty()) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const Tick& ta = axis->ticks[a];
    const Tick& tb = axis->ticks[b];
    const int ra = roundness(ta.value), rb = roundness(tb.value);
    return ra != rb ? ra < rb : ta.value < tb.value;
  });
  std::vector<std::pair<double, double>> kept;  // Pixel spans of labels.
  for (size_t i : order) {
    Tick& tick = axis->ticks[i];
    const double centre = axis->Fraction(tick.value) * length;
    const double half = extent(tick.label) / 2;
    const bool overlaps =
        std::any_of(kept.begin(), kept.end(), [&](const auto& span) {
          return centre - half < span.second + gap &&
                 span.first < centre + half + gap;
        });
    if (overlaps) {
      tick.label.clear();
    } else {
      kept.push_back({centre - half, centre + half});
    }
  }
}

}  // namespace evonas::client
