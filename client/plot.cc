#include "client/plot.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/report.h"

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

constexpr char kFontStack[] =
    "system-ui, 'Segoe UI', 'Helvetica Neue', Arial, 'Liberation Sans', "
    "'DejaVu Sans', sans-serif";

// SVG coordinates.
std::string Px(double value) { return absl::StrFormat("%.1f", value); }

Vec2 Shift(Vec2 p, Vec2 offset) { return {p.x + offset.x, p.y + offset.y}; }

// The canvas of Chart::Render: SVG elements appended to a string.
class SvgCanvas : public Canvas {
 public:
  // `id` names the clip path, unique in the page.
  SvgCanvas(std::string* svg, std::string id) : svg_(svg), id_(std::move(id)) {}

  void Rect(double x, double y, double width, double height, const Fill& fill,
            const Pen& pen) override {
    absl::StrAppend(svg_, "<rect x=\"", Px(x), "\" y=\"", Px(y), "\" width=\"",
                    Px(width), "\" height=\"", Px(height), "\"",
                    FillAttributes(fill), PenAttributes(pen), "/>");
  }
  void Line(Vec2 from, Vec2 to, const Pen& pen) override {
    absl::StrAppend(svg_, "<line x1=\"", Px(from.x), "\" y1=\"", Px(from.y),
                    "\" x2=\"", Px(to.x), "\" y2=\"", Px(to.y), "\"",
                    PenAttributes(pen), "/>");
  }
  void Circle(Vec2 centre, double radius, const Fill& fill,
              const Pen& pen) override {
    absl::StrAppend(svg_, "<circle cx=\"", Px(centre.x), "\" cy=\"",
                    Px(centre.y), "\" r=\"", Px(radius), "\"",
                    FillAttributes(fill), PenAttributes(pen), "/>");
  }
  void Path(const std::vector<Polyline>& parts, const Fill& fill,
            const Pen& pen) override {
    std::string d;
    for (const Polyline& part : parts) {
      for (size_t i = 0; i < part.points.size(); ++i) {
        absl::StrAppend(&d, i == 0 ? "M" : "L", Px(part.points[i].x), " ",
                        Px(part.points[i].y));
      }
      if (part.closed && !part.points.empty()) d += "Z";
    }
    if (d.empty()) return;
    absl::StrAppend(svg_, "<path d=\"", d, "\"", FillAttributes(fill),
                    PenAttributes(pen), "/>");
  }
  void Text(Vec2 at, absl::string_view text, const TextStyle& style) override {
    std::string attributes =
        style.vertical
            ? absl::StrCat(" transform=\"translate(", Px(at.x), " ", Px(at.y),
                           ") rotate(-90)\"")
            : absl::StrCat(" x=\"", Px(at.x), "\" y=\"", Px(at.y), "\"");
    if (style.anchor != Anchor::kStart) {
      absl::StrAppend(&attributes, " text-anchor=\"",
                      style.anchor == Anchor::kMiddle ? "middle" : "end", "\"");
    }
    if (style.size != 12) {
      absl::StrAppend(&attributes, " font-size=\"",
                      absl::StrFormat("%g", style.size), "\"");
    }
    if (style.weight != 400) {
      absl::StrAppend(&attributes, " font-weight=\"", style.weight, "\"");
    }
    if (!style.colour.empty()) {
      absl::StrAppend(&attributes, " fill=\"", style.colour, "\"");
    }
    if (style.halo) {
      absl::StrAppend(&attributes,
                      " stroke=\"#fff\" stroke-width=\"3\" "
                      "paint-order=\"stroke\"");
    }
    absl::StrAppend(svg_, "<text", attributes, ">", HtmlEscape(text),
                    "</text>");
  }
  void BeginGroup(absl::string_view tooltip) override {
    absl::StrAppend(svg_, "<g><title>", HtmlEscape(tooltip), "</title>");
  }
  void EndGroup() override { absl::StrAppend(svg_, "</g>"); }
  void BeginClip(double x, double y, double width, double height) override {
    absl::StrAppend(svg_, "<defs><clipPath id=\"", id_, "-clip\"><rect x=\"",
                    Px(x), "\" y=\"", Px(y), "\" width=\"", Px(width),
                    "\" height=\"", Px(height), "\"/></clipPath></defs>",
                    "<g clip-path=\"url(#", id_, "-clip)\">");
  }
  void EndClip() override { absl::StrAppend(svg_, "</g>"); }

 private:
  static std::string FillAttributes(const Fill& fill) {
    if (fill.colour.empty()) return " fill=\"none\"";
    std::string text = absl::StrCat(" fill=\"", fill.colour, "\"");
    if (fill.opacity != 1) {
      absl::StrAppend(&text, " fill-opacity=\"",
                      absl::StrFormat("%g", fill.opacity), "\"");
    }
    return text;
  }
  static std::string PenAttributes(const Pen& pen) {
    if (pen.colour.empty()) return "";
    std::string text = absl::StrCat(" stroke=\"", pen.colour, "\"");
    if (pen.width != 1) {
      absl::StrAppend(&text, " stroke-width=\"", Px(pen.width), "\"");
    }
    if (!pen.dash.empty()) {
      absl::StrAppend(&text, " stroke-dasharray=\"",
                      absl::StrJoin(pen.dash, " ",
                                    [](std::string* out, double v) {
                                      absl::StrAppend(out,
                                                      absl::StrFormat("%g", v));
                                    }),
                      "\"");
    }
    if (pen.round) absl::StrAppend(&text, " stroke-linecap=\"round\"");
    return text;
  }

  std::string* svg_;
  std::string id_;
};

}  // namespace

size_t CharCount(absl::string_view text) {
  size_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

void Drawing::Rect(double x, double y, double width, double height,
                   const Fill& fill, const Pen& pen) {
  steps_.push_back([=](Canvas* c, Vec2 o) {
    c->Rect(x + o.x, y + o.y, width, height, fill, pen);
  });
}

void Drawing::Line(Vec2 from, Vec2 to, const Pen& pen) {
  steps_.push_back(
      [=](Canvas* c, Vec2 o) { c->Line(Shift(from, o), Shift(to, o), pen); });
}

void Drawing::Circle(Vec2 centre, double radius, const Fill& fill,
                     const Pen& pen) {
  steps_.push_back([=](Canvas* c, Vec2 o) {
    c->Circle(Shift(centre, o), radius, fill, pen);
  });
}

void Drawing::Path(const std::vector<Polyline>& parts, const Fill& fill,
                   const Pen& pen) {
  steps_.push_back([=](Canvas* c, Vec2 o) {
    std::vector<Polyline> moved = parts;
    for (Polyline& part : moved) {
      for (Vec2& p : part.points) p = Shift(p, o);
    }
    c->Path(moved, fill, pen);
  });
}

void Drawing::Text(Vec2 at, absl::string_view text, const TextStyle& style) {
  steps_.push_back([at, text = std::string(text), style](Canvas* c, Vec2 o) {
    c->Text(Shift(at, o), text, style);
  });
}

void Drawing::BeginGroup(absl::string_view tooltip) {
  steps_.push_back([tooltip = std::string(tooltip)](Canvas* c, Vec2) {
    c->BeginGroup(tooltip);
  });
}

void Drawing::EndGroup() {
  steps_.push_back([](Canvas* c, Vec2) { c->EndGroup(); });
}

void Drawing::BeginClip(double x, double y, double width, double height) {
  steps_.push_back([=](Canvas* c, Vec2 o) {
    c->BeginClip(x + o.x, y + o.y, width, height);
  });
}

void Drawing::EndClip() {
  steps_.push_back([](Canvas* c, Vec2) { c->EndClip(); });
}

void Drawing::Replay(Canvas* canvas, Vec2 offset) const {
  for (const auto& step : steps_) step(canvas, offset);
}

Chart::Chart(double width, double height, std::string title, Axis x, Axis y,
             std::string id)
    : width_(width),
      height_(height),
      title_(std::move(title)),
      x_(std::move(x)),
      y_(std::move(y)),
      id_(std::move(id)) {
  // Labels 12 px high; x labels about 6.8 px a character wide.
  ThinLabels(&x_, right() - left(), 8, [](const std::string& label) {
    return 6.8 * static_cast<double>(CharCount(label));
  });
  ThinLabels(&y_, bottom() - top(), 3, [](const std::string&) { return 12.0; });
}

void Chart::AddLegend(Drawing swatch, std::string label) {
  legend_.push_back({std::move(swatch), std::move(label)});
}

void Chart::Paint(Canvas* canvas) const {
  TextStyle muted;
  muted.colour = kMuted;
  canvas->Rect(0, 0, width_, height_, {kWhite}, {});
  TextStyle heading;
  heading.size = 15;
  heading.weight = 600;
  canvas->Text({left() - 58, 22}, title_, heading);
  // Legend, left to right under the title.
  double lx = left() - 58 + 10;
  for (const LegendItem& item : legend_) {
    item.swatch.Replay(canvas, {lx, 42});
    canvas->Text({lx + 14, 46}, item.label, muted);
    lx += 14 + 6.8 * static_cast<double>(CharCount(item.label)) + 22;
  }
  // Plot area and grid.
  canvas->Rect(left(), top(), right() - left(), bottom() - top(), {kPlotArea},
               {});
  TextStyle x_label = muted;
  x_label.anchor = Anchor::kMiddle;
  for (const Tick& t : x_.ticks) {
    const double px = X(t.value);
    canvas->Line({px, top()}, {px, bottom()},
                 {t.label.empty() ? kMinorGrid : kGrid});
    if (!t.label.empty()) canvas->Text({px, bottom() + 17}, t.label, x_label);
  }
  TextStyle y_label = muted;
  y_label.anchor = Anchor::kEnd;
  for (const Tick& t : y_.ticks) {
    const double py = Y(t.value);
    canvas->Line({left(), py}, {right(), py},
                 {t.label.empty() ? kMinorGrid : kGrid});
    if (!t.label.empty()) canvas->Text({left() - 8, py + 4}, t.label, y_label);
  }
  canvas->Rect(left(), top(), right() - left(), bottom() - top(), {}, {kFrame});
  TextStyle axis_title;
  axis_title.anchor = Anchor::kMiddle;
  canvas->Text({(left() + right()) / 2, height_ - 10}, x_.title, axis_title);
  axis_title.vertical = true;
  canvas->Text({16, (top() + bottom()) / 2}, y_.title, axis_title);
  canvas->BeginClip(left(), top(), right() - left(), bottom() - top());
  body_.Replay(canvas);
  canvas->EndClip();
  if (!note_.empty()) {
    TextStyle note = muted;
    note.anchor = Anchor::kMiddle;
    note.size = 14;
    canvas->Text({(left() + right()) / 2, (top() + bottom()) / 2}, note_, note);
  }
}

std::string Chart::Render(bool standalone) const {
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %s %s\" "
      "%s role=\"img\" aria-labelledby=\"%s-title\" font-family=\"%s\" "
      "font-size=\"12\" fill=\"%s\" class=\"chart\">",
      Px(width_), Px(height_),
      standalone ? absl::StrFormat("width=\"%s\" height=\"%s\"", Px(width_),
                                   Px(height_))
                 : "",
      id_, kFontStack, kInk);
  absl::StrAppend(&svg, "<title id=\"", id_, "-title\">", HtmlEscape(title_),
                  "</title>");
  SvgCanvas canvas(&svg, id_);
  Paint(&canvas);
  svg += "</svg>";
  return svg;
}

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
  // round steps are reached only over less than a decade, where a
  // logarithmic axis is close enough to linear for them to look even.
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
