#ifndef EVONAS_CLIENT_PLOT_H_
#define EVONAS_CLIENT_PLOT_H_

// The report's plots, independent of what draws them: axes and their ticks,
// the drawing primitives (Canvas) and a chart's layout (Chart), which the
// SVG of the report and the PNG of the front (raster.h) both draw.

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

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
// ten, else (over less than a decade, where even those are too few) at
// round linear steps.
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

// Colours of the report, shared by its CSS, its SVG plots and the PNG.
inline constexpr char kInk[] = "#1d2433";
inline constexpr char kMuted[] = "#5b6472";
inline constexpr char kFeasible[] = "#2a9d8f";
inline constexpr char kInfeasible[] = "#9aa3af";
inline constexpr char kFront[] = "#e4572e";
inline constexpr char kLimit[] = "#b42318";
inline constexpr char kBest[] = "#3d5a80";
inline constexpr char kVolume[] = "#6a4c93";
inline constexpr char kWhite[] = "#ffffff";
inline constexpr char kPlotArea[] = "#fbfcfd";
inline constexpr char kGrid[] = "#e3e7ec";
inline constexpr char kMinorGrid[] = "#f0f2f5";
inline constexpr char kFrame[] = "#c9ced6";

struct Vec2 {
  double x = 0;
  double y = 0;
};

// How a line or an outline is stroked; an empty colour strokes nothing.
// Colours are "#rrggbb".
struct Pen {
  std::string colour;
  double width = 1;
  // Dash and gap lengths, alternating; empty for a solid line.
  std::vector<double> dash;
  // Round ends, for markers drawn as strokes; flat ends otherwise.
  bool round = false;
};

// How an area is filled; an empty colour fills nothing.
struct Fill {
  std::string colour;
  double opacity = 1;
};

enum class Anchor { kStart, kMiddle, kEnd };

struct TextStyle {
  double size = 12;
  // 400 regular, 600 semibold, 700 bold.
  int weight = 400;
  // Empty for kInk.
  std::string colour;
  // Where (x, y) is on the baseline.
  Anchor anchor = Anchor::kStart;
  // A white outline under the letters, to read them over lines.
  bool halo = false;
  // Rotated a quarter turn anticlockwise about (x, y), reading upwards.
  bool vertical = false;
};

// Points joined by straight lines; a closed one is a polygon, which a Fill
// fills (even-odd).
struct Polyline {
  std::vector<Vec2> points;
  bool closed = false;
};

// What a plot is drawn with, in the chart's coordinates (pixels at scale 1,
// y downwards). Implementations: the SVG of a Chart, Drawing (a recording)
// and the raster of raster.h.
class Canvas {
 public:
  virtual ~Canvas() = default;
  virtual void Rect(double x, double y, double width, double height,
                    const Fill& fill, const Pen& pen) = 0;
  virtual void Line(Vec2 from, Vec2 to, const Pen& pen) = 0;
  virtual void Circle(Vec2 centre, double radius, const Fill& fill,
                      const Pen& pen) = 0;
  // The parts drawn as one shape.
  virtual void Path(const std::vector<Polyline>& parts, const Fill& fill,
                    const Pen& pen) = 0;
  // `text` is UTF-8.
  virtual void Text(Vec2 at, absl::string_view text,
                    const TextStyle& style) = 0;
  // What is drawn until EndGroup is one thing, with a tooltip where the
  // medium has tooltips.
  virtual void BeginGroup(absl::string_view tooltip) = 0;
  virtual void EndGroup() = 0;
  // What is drawn until EndClip is clipped to the rectangle. Not nested.
  virtual void BeginClip(double x, double y, double width, double height) = 0;
  virtual void EndClip() = 0;
};

// A canvas that records what is drawn on it, to draw it again on another
// canvas.
class Drawing : public Canvas {
 public:
  void Rect(double x, double y, double width, double height, const Fill& fill,
            const Pen& pen) override;
  void Line(Vec2 from, Vec2 to, const Pen& pen) override;
  void Circle(Vec2 centre, double radius, const Fill& fill,
              const Pen& pen) override;
  void Path(const std::vector<Polyline>& parts, const Fill& fill,
            const Pen& pen) override;
  void Text(Vec2 at, absl::string_view text, const TextStyle& style) override;
  void BeginGroup(absl::string_view tooltip) override;
  void EndGroup() override;
  void BeginClip(double x, double y, double width, double height) override;
  void EndClip() override;

  // Draws everything recorded onto `canvas`, moved by `offset`.
  void Replay(Canvas* canvas, Vec2 offset = {}) const;

 private:
  std::vector<std::function<void(Canvas*, Vec2)>> steps_;
};

// A plot with a title, a legend row, axes with grid lines and labels, and a
// clipped plot area that callers draw into (body()) in pixels, placing data
// with X() and Y(). Labels that would overlap are thinned (ThinLabels).
class Chart {
 public:
  Chart(double width, double height, std::string title, Axis x, Axis y,
        std::string id);

  double width() const { return width_; }
  double height() const { return height_; }
  double left() const { return 70; }
  double right() const { return width_ - 18; }
  double top() const { return 62; }
  double bottom() const { return height_ - 48; }

  double X(double value) const {
    return left() + x_.Fraction(value) * (right() - left());
  }
  double Y(double value) const {
    return bottom() - y_.Fraction(value) * (bottom() - top());
  }
  const Axis& x() const { return x_; }
  const Axis& y() const { return y_; }
  const std::string& title() const { return title_; }

  // The plot area, clipped.
  Canvas* body() { return &body_; }
  // A legend entry; `swatch` is drawn centred on (0, 0).
  void AddLegend(Drawing swatch, std::string label);
  // A centred note in the plot area (e.g. "no data yet").
  void Note(std::string text) { note_ = std::move(text); }

  // Draws the whole chart, from its white background up.
  void Paint(Canvas* canvas) const;
  // The chart as an <svg> element; `standalone` gives it a fixed width and
  // height, for a file of its own.
  std::string Render(bool standalone) const;

 private:
  struct LegendItem {
    Drawing swatch;
    std::string label;
  };

  double width_;
  double height_;
  std::string title_;
  Axis x_;
  Axis y_;
  std::string id_;
  Drawing body_;
  std::string note_;
  std::vector<LegendItem> legend_;
};

// Characters, not bytes, of UTF-8 `text`.
size_t CharCount(absl::string_view text);

}  // namespace evonas::client

#endif  // EVONAS_CLIENT_PLOT_H_
