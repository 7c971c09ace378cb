#ifndef EVONAS_CLIENT_RASTER_H_
#define EVONAS_CLIENT_RASTER_H_

// A Canvas that paints pixels, for the front plot as a PNG. No
// anti-aliasing: a pixel takes a shape's colour when its centre lies in the
// shape. Text is set in a built-in 5x7 bitmap font (ASCII, plus ×, µ, the
// minus sign and superscript and subscript digits; anything else is drawn
// as '?').

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "client/plot.h"
#include "client/png.h"

namespace evonas::client {

class RasterCanvas : public Canvas {
 public:
  // A white image of width × height canvas units, `scale` (≥ 1) pixels a
  // unit (2 for slides).
  RasterCanvas(double width, double height, int scale);

  void Rect(double x, double y, double width, double height, const Fill& fill,
            const Pen& pen) override;
  void Line(Vec2 from, Vec2 to, const Pen& pen) override;
  void Circle(Vec2 centre, double radius, const Fill& fill,
              const Pen& pen) override;
  void Path(const std::vector<Polyline>& parts, const Fill& fill,
            const Pen& pen) override;
  void Text(Vec2 at, absl::string_view text, const TextStyle& style) override;
  // No tooltips in a picture.
  void BeginGroup(absl::string_view) override {}
  void EndGroup() override {}
  void BeginClip(double x, double y, double width, double height) override;
  void EndClip() override;

  const RgbImage& image() const { return image_; }

  // The width in canvas units of `text` as Text sets it in `style`.
  double TextWidth(absl::string_view text, const TextStyle& style) const;

 private:
  using Rgb = std::array<uint8_t, 3>;

  // Blends `colour` over pixel (x, y) with `alpha`, inside the clip.
  void Blend(int x, int y, const Rgb& colour, double alpha);
  // The pixels whose centres are in [x0, x1) × [y0, y1), pixel coordinates.
  void FillBox(double x0, double y0, double x1, double y1, const Rgb& colour,
               double alpha);
  // A stroke of width `width` pixels from a to b (pixel coordinates), its
  // dashes starting `phase` pixels into `dash`; round ends when `round`.
  void StrokeSegment(Vec2 a, Vec2 b, double width,
                     const std::vector<double>& dash, double phase, bool round,
                     const Rgb& colour);
  void FillDisc(Vec2 centre, double radius, const Rgb& colour, double alpha);
  // One line of text, `dot` pixels a font dot, its baseline starting at
  // `origin` (pixels); every dot grown by `grow` pixels on each side (for a
  // halo).
  void Glyphs(absl::string_view text, int dot, bool bold, bool vertical,
              double grow, const Rgb& colour, Vec2 origin);
  int Dot(const TextStyle& style) const;

  int scale_;
  RgbImage image_;
  // The clip, in pixels: [x0, x1) × [y0, y1).
  int clip_x0_, clip_y0_, clip_x1_, clip_y1_;
};

// Whether the font has a glyph of its own for code point `c` (else '?').
bool HasGlyph(char32_t c);

}  // namespace evonas::client

#endif  // EVONAS_CLIENT_RASTER_H_
