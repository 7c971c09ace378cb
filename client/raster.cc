#include "client/raster.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

namespace evonas::client {
namespace {

// The font: each glyph is 9 rows of 5 dots, '#' inked, top to bottom. Rows
// 0 to 6 stand on the baseline (capitals and digits fill them, lower case
// letters rows 2 to 6); rows 7 and 8 hold descenders. A glyph advances 6
// dots.
struct GlyphArt {
  char32_t code;
  const char* rows;
};
constexpr GlyphArt kFont[] = {
    {0x0020, "..... ..... ..... ..... ..... ..... ..... ..... ....."},  // space
    {0x0021, "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#.. ..... ....."},  // !
    {0x0022, ".#.#. .#.#. .#.#. ..... ..... ..... ..... ..... ....."},  // "
    {0x0023, ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#. ..... ....."},  // #
    {0x0024, "..#.. .#### #.#.. .###. ..#.# ####. ..#.. ..... ....."},  // $
    {0x0025, "##... ##..# ...#. ..#.. .#... #..## ...## ..... ....."},  // %
    {0x0026, ".##.. #..#. #.#.. .#... #.#.# #..#. .##.# ..... ....."},  // &
    {0x0027, "..#.. ..#.. .#... ..... ..... ..... ..... ..... ....."},  // '
    {0x0028, "...#. ..#.. .#... .#... .#... ..#.. ...#. ..... ....."},  // (
    {0x0029, ".#... ..#.. ...#. ...#. ...#. ..#.. .#... ..... ....."},  // )
    {0x002A, "..... ..#.. #.#.# .###. #.#.# ..#.. ..... ..... ....."},  // *
    {0x002B, "..... ..#.. ..#.. ##### ..#.. ..#.. ..... ..... ....."},  // +
    {0x002C, "..... ..... ..... ..... ..... .##.. .##.. ..#.. .#..."},  // ,
    {0x002D, "..... ..... ..... ##### ..... ..... ..... ..... ....."},  // -
    {0x002E, "..... ..... ..... ..... ..... .##.. .##.. ..... ....."},  // .
    {0x002F, "....# ....# ...#. ..#.. .#... #.... #.... ..... ....."},  // /
    {0x0030, ".###. #...# #..## #.#.# ##..# #...# .###. ..... ....."},  // 0
    {0x0031, "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###. ..... ....."},  // 1
    {0x0032, ".###. #...# ....# ...#. ..#.. .#... ##### ..... ....."},  // 2
    {0x0033, "##### ...#. ..#.. ...#. ....# #...# .###. ..... ....."},  // 3
    {0x0034, "...#. ..##. .#.#. #..#. ##### ...#. ...#. ..... ....."},  // 4
    {0x0035, "##### #.... ####. ....# ....# #...# .###. ..... ....."},  // 5
    {0x0036, "..##. .#... #.... ####. #...# #...# .###. ..... ....."},  // 6
    {0x0037, "##### ....# ...#. ..#.. .#... .#... .#... ..... ....."},  // 7
    {0x0038, ".###. #...# #...# .###. #...# #...# .###. ..... ....."},  // 8
    {0x0039, ".###. #...# #...# .#### ....# ...#. .##.. ..... ....."},  // 9
    {0x003A, "..... .##.. .##.. ..... .##.. .##.. ..... ..... ....."},  // :
    {0x003B, "..... .##.. .##.. ..... .##.. .##.. ..#.. .#... ....."},  // ;
    {0x003C, "...#. ..#.. .#... #.... .#... ..#.. ...#. ..... ....."},  // <
    {0x003D, "..... ..... ##### ..... ##### ..... ..... ..... ....."},  // =
    {0x003E, ".#... ..#.. ...#. ....# ...#. ..#.. .#... ..... ....."},  // >
    {0x003F, ".###. #...# ....# ...#. ..#.. ..... ..#.. ..... ....."},  // ?
    {0x0040, ".###. #...# ....# .##.# #.#.# #.#.# .###. ..... ....."},  // @
    {0x0041, ".###. #...# #...# ##### #...# #...# #...# ..... ....."},  // A
    {0x0042, "####. #...# #...# ####. #...# #...# ####. ..... ....."},  // B
    {0x0043, ".###. #...# #.... #.... #.... #...# .###. ..... ....."},  // C
    {0x0044, "###.. #..#. #...# #...# #...# #..#. ###.. ..... ....."},  // D
    {0x0045, "##### #.... #.... ####. #.... #.... ##### ..... ....."},  // E
    {0x0046, "##### #.... #.... ####. #.... #.... #.... ..... ....."},  // F
    {0x0047, ".###. #...# #.... #.### #...# #...# .#### ..... ....."},  // G
    {0x0048, "#...# #...# #...# ##### #...# #...# #...# ..... ....."},  // H
    {0x0049, ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###. ..... ....."},  // I
    {0x004A, "..### ...#. ...#. ...#. ...#. #..#. .##.. ..... ....."},  // J
    {0x004B, "#...# #..#. #.#.. ##... #.#.. #..#. #...# ..... ....."},  // K
    {0x004C, "#.... #.... #.... #.... #.... #.... ##### ..... ....."},  // L
    {0x004D, "#...# ##.## #.#.# #.#.# #...# #...# #...# ..... ....."},  // M
    {0x004E, "#...# #...# ##..# #.#.# #..## #...# #...# ..... ....."},  // N
    {0x004F, ".###. #...# #...# #...# #...# #...# .###. ..... ....."},  // O
    {0x0050, "####. #...# #...# ####. #.... #.... #.... ..... ....."},  // P
    {0x0051, ".###. #...# #...# #...# #.#.# #..#. .##.# ..... ....."},  // Q
    {0x0052, "####. #...# #...# ####. #.#.. #..#. #...# ..... ....."},  // R
    {0x0053, ".#### #.... #.... .###. ....# ....# ####. ..... ....."},  // S
    {0x0054, "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..... ....."},  // T
    {0x0055, "#...# #...# #...# #...# #...# #...# .###. ..... ....."},  // U
    {0x0056, "#...# #...# #...# #...# #...# .#.#. ..#.. ..... ....."},  // V
    {0x0057, "#...# #...# #...# #.#.# #.#.# #.#.# .#.#. ..... ....."},  // W
    {0x0058, "#...# #...# .#.#. ..#.. .#.#. #...# #...# ..... ....."},  // X
    {0x0059, "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#.. ..... ....."},  // Y
    {0x005A, "##### ....# ...#. ..#.. .#... #.... ##### ..... ....."},  // Z
    {0x005B, ".###. .#... .#... .#... .#... .#... .###. ..... ....."},  // [
    {0x005C,
     "#.... #.... .#... ..#.. ...#. ....# ....# ..... ....."},  // backslash
    {0x005D, ".###. ...#. ...#. ...#. ...#. ...#. .###. ..... ....."},  // ]
    {0x005E, "..#.. .#.#. #...# ..... ..... ..... ..... ..... ....."},  // ^
    {0x005F, "..... ..... ..... ..... ..... ..... ..... ##### ....."},  // _
    {0x0060, ".#... ..#.. ...#. ..... ..... ..... ..... ..... ....."},  // `
    {0x0061, "..... ..... .###. ....# .#### #...# .#### ..... ....."},  // a
    {0x0062, "#.... #.... #.##. ##..# #...# #...# ####. ..... ....."},  // b
    {0x0063, "..... ..... .###. #.... #.... #...# .###. ..... ....."},  // c
    {0x0064, "....# ....# .##.# #..## #...# #...# .#### ..... ....."},  // d
    {0x0065, "..... ..... .###. #...# ##### #.... .###. ..... ....."},  // e
    {0x0066, "..##. .#..# .#... ###.. .#... .#... .#... ..... ....."},  // f
    {0x0067, "..... ..... .#### #...# #...# .#### ....# #...# .###."},  // g
    {0x0068, "#.... #.... #.##. ##..# #...# #...# #...# ..... ....."},  // h
    {0x0069, "..#.. ..... .##.. ..#.. ..#.. ..#.. .###. ..... ....."},  // i
    {0x006A, "...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##.."},  // j
    {0x006B, "#.... #.... #..#. #.#.. ##... #.#.. #..#. ..... ....."},  // k
    {0x006C, ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###. ..... ....."},  // l
    {0x006D, "..... ..... ##.#. #.#.# #.#.# #...# #...# ..... ....."},  // m
    {0x006E, "..... ..... #.##. ##..# #...# #...# #...# ..... ....."},  // n
    {0x006F, "..... ..... .###. #...# #...# #...# .###. ..... ....."},  // o
    {0x0070, "..... ..... ####. #...# #...# #...# ####. #.... #...."},  // p
    {0x0071, "..... ..... .#### #...# #...# #...# .#### ....# ....#"},  // q
    {0x0072, "..... ..... #.##. ##..# #.... #.... #.... ..... ....."},  // r
    {0x0073, "..... ..... .###. #.... .###. ....# ####. ..... ....."},  // s
    {0x0074, ".#... .#... ###.. .#... .#... .#..# ..##. ..... ....."},  // t
    {0x0075, "..... ..... #...# #...# #...# #..## .##.# ..... ....."},  // u
    {0x0076, "..... ..... #...# #...# #...# .#.#. ..#.. ..... ....."},  // v
    {0x0077, "..... ..... #...# #...# #.#.# #.#.# .#.#. ..... ....."},  // w
    {0x0078, "..... ..... #...# .#.#. ..#.. .#.#. #...# ..... ....."},  // x
    {0x0079, "..... ..... #...# #...# #...# #...# .#### ....# .###."},  // y
    {0x007A, "..... ..... ##### ...#. ..#.. .#... ##### ..... ....."},  // z
    {0x007B, "...#. ..#.. ..#.. .#... ..#.. ..#.. ...#. ..... ....."},  // {
    {0x007C, "..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..... ....."},  // |
    {0x007D, ".#... ..#.. ..#.. ...#. ..#.. ..#.. .#... ..... ....."},  // }
    {0x007E, "..... ..... .#... #.#.# ...#. ..... ..... ..... ....."},  // ~
    {0x00D7, "..... ..... ..... .#.#. ..#.. .#.#. ..... ..... ....."},  // ×
    {0x00B5, "..... ..... #...# #...# #...# #..## ###.# #.... #...."},  // µ
};
constexpr int kGlyphWidth = 5;
constexpr int kGlyphRows = 9;
constexpr int kCapRows = 7;
constexpr int kAdvance = 6;

using Glyph = std::array<uint8_t, kGlyphRows>;  // Bit 4 is the left dot.

const std::map<char32_t, Glyph>& Font() {
  static const auto* const kGlyphs = [] {
    auto* glyphs = new std::map<char32_t, Glyph>;
    for (const GlyphArt& art : kFont) {
      Glyph glyph{};
      const char* p = art.rows;
      for (int row = 0; row < kGlyphRows; ++row) {
        for (int column = 0; column < kGlyphWidth; ++column, ++p) {
          glyph[row] = static_cast<uint8_t>(glyph[row] << 1 | (*p == '#'));
        }
        if (*p == ' ') ++p;
      }
      (*glyphs)[art.code] = glyph;
    }
    return glyphs;
  }();
  return *kGlyphs;
}

// How a code point is set: with which glyph, raised or lowered and smaller.
enum class Place { kNormal, kSuperscript, kSubscript };
struct Setting {
  char32_t glyph;
  Place place;
};

Setting SettingOf(char32_t c) {
  if (Font().count(c) != 0) return {c, Place::kNormal};
  switch (c) {
    case 0x00A0:  // No-break space.
      return {' ', Place::kNormal};
    case 0x2010:  // Hyphen.
    case 0x2011:  // Non-breaking hyphen.
    case 0x2212:  // Minus sign.
      return {'-', Place::kNormal};
    case 0x03BC:  // Greek mu, for the micro sign.
      return {0x00B5, Place::kNormal};
    case 0x2070:
      return {'0', Place::kSuperscript};
    case 0x00B9:
      return {'1', Place::kSuperscript};
    case 0x00B2:
      return {'2', Place::kSuperscript};
    case 0x00B3:
      return {'3', Place::kSuperscript};
    case 0x207B:
      return {'-', Place::kSuperscript};
  }
  if (c >= 0x2074 && c <= 0x2079) {
    return {static_cast<char32_t>('4' + (c - 0x2074)), Place::kSuperscript};
  }
  if (c >= 0x2080 && c <= 0x2089) {
    return {static_cast<char32_t>('0' + (c - 0x2080)), Place::kSubscript};
  }
  return {'?', Place::kNormal};
}

// The code points of UTF-8 `text`; a malformed sequence is U+FFFD.
std::vector<char32_t> CodePoints(absl::string_view text) {
  std::vector<char32_t> points;
  size_t i = 0;
  while (i < text.size()) {
    const auto byte = [&](size_t k) {
      return static_cast<unsigned char>(text[k]);
    };
    const unsigned char lead = byte(i);
    int length = lead < 0x80           ? 1
                 : (lead >> 5) == 0x6  ? 2
                 : (lead >> 4) == 0xE  ? 3
                 : (lead >> 3) == 0x1E ? 4
                                       : 0;
    char32_t c = length == 1   ? lead
                 : length == 2 ? lead & 0x1F
                 : length == 3 ? lead & 0x0F
                               : lead & 0x07;
    bool ok = length > 0 && i + length <= text.size();
    for (int k = 1; ok && k < length; ++k) {
      ok = (byte(i + k) & 0xC0) == 0x80;
      c = c << 6 | (byte(i + k) & 0x3F);
    }
    points.push_back(ok ? c : 0xFFFD);
    i += ok ? length : 1;
  }
  return points;
}

std::array<uint8_t, 3> ParseColour(const std::string& colour) {
  auto hex = [&](size_t at, size_t digits) {
    return static_cast<uint8_t>(
        std::strtoul(colour.substr(at, digits).c_str(), nullptr, 16) *
        (digits == 1 ? 17 : 1));
  };
  if (colour.size() == 7 && colour[0] == '#') {
    return {hex(1, 2), hex(3, 2), hex(5, 2)};
  }
  if (colour.size() == 4 && colour[0] == '#') {
    return {hex(1, 1), hex(2, 1), hex(3, 1)};
  }
  return {0, 0, 0};
}

Vec2 Scaled(Vec2 p, double scale) { return {p.x * scale, p.y * scale}; }

}  // namespace

bool HasGlyph(char32_t c) { return SettingOf(c).glyph != '?' || c == '?'; }

RasterCanvas::RasterCanvas(double width, double height, int scale)
    : scale_(std::max(1, scale)) {
  image_.width = std::max(1, static_cast<int>(std::ceil(width * scale_)));
  image_.height = std::max(1, static_cast<int>(std::ceil(height * scale_)));
  image_.pixels.assign(3 * static_cast<size_t>(image_.width) * image_.height,
                       0xFF);
  EndClip();
}

void RasterCanvas::BeginClip(double x, double y, double width, double height) {
  clip_x0_ = std::max(0, static_cast<int>(std::lround(x * scale_)));
  clip_y0_ = std::max(0, static_cast<int>(std::lround(y * scale_)));
  clip_x1_ = std::min(image_.width,
                      static_cast<int>(std::lround((x + width) * scale_)));
  clip_y1_ = std::min(image_.height,
                      static_cast<int>(std::lround((y + height) * scale_)));
}

void RasterCanvas::EndClip() {
  clip_x0_ = 0;
  clip_y0_ = 0;
  clip_x1_ = image_.width;
  clip_y1_ = image_.height;
}

void RasterCanvas::Blend(int x, int y, const Rgb& colour, double alpha) {
  if (x < clip_x0_ || x >= clip_x1_ || y < clip_y0_ || y >= clip_y1_) return;
  uint8_t* pixel =
      &image_.pixels[3 * (static_cast<size_t>(y) * image_.width + x)];
  for (int k = 0; k < 3; ++k) {
    pixel[k] = alpha >= 1 ? colour[k]
                          : static_cast<uint8_t>(std::lround(
                                alpha * colour[k] + (1 - alpha) * pixel[k]));
  }
}

void RasterCanvas::FillBox(double x0, double y0, double x1, double y1,
                           const Rgb& colour, double alpha) {
  // Pixel i's centre i + 0.5 is in [x0, x1) when ceil(x0 - 0.5) <= i <
  // ceil(x1 - 0.5).
  const int i0 = std::max(clip_x0_, static_cast<int>(std::ceil(x0 - 0.5)));
  const int i1 = std::min(clip_x1_, static_cast<int>(std::ceil(x1 - 0.5)));
  const int j0 = std::max(clip_y0_, static_cast<int>(std::ceil(y0 - 0.5)));
  const int j1 = std::min(clip_y1_, static_cast<int>(std::ceil(y1 - 0.5)));
  for (int j = j0; j < j1; ++j) {
    for (int i = i0; i < i1; ++i) Blend(i, j, colour, alpha);
  }
}

void RasterCanvas::FillDisc(Vec2 centre, double radius, const Rgb& colour,
                            double alpha) {
  const int i0 = std::max(clip_x0_, static_cast<int>(centre.x - radius - 1));
  const int i1 = std::min(clip_x1_, static_cast<int>(centre.x + radius + 2));
  const int j0 = std::max(clip_y0_, static_cast<int>(centre.y - radius - 1));
  const int j1 = std::min(clip_y1_, static_cast<int>(centre.y + radius + 2));
  for (int j = j0; j < j1; ++j) {
    for (int i = i0; i < i1; ++i) {
      if (std::hypot(i + 0.5 - centre.x, j + 0.5 - centre.y) < radius) {
        Blend(i, j, colour, alpha);
      }
    }
  }
}

void RasterCanvas::StrokeSegment(Vec2 a, Vec2 b, double width,
                                 const std::vector<double>& dash, double phase,
                                 bool round, const Rgb& colour) {
  const double half = width / 2;
  const double length = std::hypot(b.x - a.x, b.y - a.y);
  if (length == 0) {
    if (round) FillDisc(a, half, colour, 1);
    return;
  }
  const Vec2 along{(b.x - a.x) / length, (b.y - a.y) / length};
  double period = 0;
  for (double d : dash) period += d;
  const int i0 = std::max(
      clip_x0_, static_cast<int>(std::floor(std::min(a.x, b.x) - half - 1)));
  const int i1 = std::min(
      clip_x1_, static_cast<int>(std::ceil(std::max(a.x, b.x) + half + 1)));
  const int j0 = std::max(
      clip_y0_, static_cast<int>(std::floor(std::min(a.y, b.y) - half - 1)));
  const int j1 = std::min(
      clip_y1_, static_cast<int>(std::ceil(std::max(a.y, b.y) + half + 1)));
  for (int j = j0; j < j1; ++j) {
    for (int i = i0; i < i1; ++i) {
      const double rx = i + 0.5 - a.x, ry = j + 0.5 - a.y;
      const double t = rx * along.x + ry * along.y;
      const double n = ry * along.x - rx * along.y;
      // Half-open across the line, so that a line on a pixel boundary
      // covers exactly `width` pixels.
      bool inked = t >= 0 && t < length && n >= -half && n < half;
      if (inked && period > 0) {
        double at = std::fmod(t + phase, period);
        for (size_t k = 0; k < dash.size(); ++k) {
          if (at < dash[k]) {
            inked = k % 2 == 0;
            break;
          }
          at -= dash[k];
        }
      }
      if (!inked && round) {
        inked = std::hypot(rx, ry) < half ||
                std::hypot(i + 0.5 - b.x, j + 0.5 - b.y) < half;
      }
      if (inked) Blend(i, j, colour, 1);
    }
  }
}

void RasterCanvas::Rect(double x, double y, double width, double height,
                        const Fill& fill, const Pen& pen) {
  if (!fill.colour.empty()) {
    FillBox(x * scale_, y * scale_, (x + width) * scale_, (y + height) * scale_,
            ParseColour(fill.colour), fill.opacity);
  }
  if (!pen.colour.empty()) {
    // Horizontal edges run over the corners, as a mitred outline would.
    const double half = pen.width / 2;
    Pen edge = pen;
    Line({x - half, y}, {x + width + half, y}, edge);
    Line({x - half, y + height}, {x + width + half, y + height}, edge);
    Line({x, y}, {x, y + height}, edge);
    Line({x + width, y}, {x + width, y + height}, edge);
  }
}

void RasterCanvas::Line(Vec2 from, Vec2 to, const Pen& pen) {
  if (pen.colour.empty()) return;
  std::vector<double> dash;
  for (double d : pen.dash) dash.push_back(d * scale_);
  StrokeSegment(Scaled(from, scale_), Scaled(to, scale_),
                std::max(1.0, pen.width * scale_), dash, 0, pen.round,
                ParseColour(pen.colour));
}

void RasterCanvas::Circle(Vec2 centre, double radius, const Fill& fill,
                          const Pen& pen) {
  const Vec2 c = Scaled(centre, scale_);
  const double r = radius * scale_;
  if (!fill.colour.empty()) {
    FillDisc(c, r, ParseColour(fill.colour), fill.opacity);
  }
  if (pen.colour.empty()) return;
  const double half = std::max(1.0, pen.width * scale_) / 2;
  const Rgb colour = ParseColour(pen.colour);
  const int i0 = std::max(clip_x0_, static_cast<int>(c.x - r - half - 1));
  const int i1 = std::min(clip_x1_, static_cast<int>(c.x + r + half + 2));
  const int j0 = std::max(clip_y0_, static_cast<int>(c.y - r - half - 1));
  const int j1 = std::min(clip_y1_, static_cast<int>(c.y + r + half + 2));
  for (int j = j0; j < j1; ++j) {
    for (int i = i0; i < i1; ++i) {
      const double d = std::hypot(i + 0.5 - c.x, j + 0.5 - c.y) - r;
      if (d >= -half && d < half) Blend(i, j, colour, 1);
    }
  }
}

void RasterCanvas::Path(const std::vector<Polyline>& parts, const Fill& fill,
                        const Pen& pen) {
  if (!fill.colour.empty()) {
    // Even-odd scanlines through the pixel centres, over every closed part.
    const Rgb colour = ParseColour(fill.colour);
    for (int j = clip_y0_; j < clip_y1_; ++j) {
      const double y = j + 0.5;
      std::vector<double> crossings;
      for (const Polyline& part : parts) {
        if (!part.closed) continue;
        const size_t n = part.points.size();
        for (size_t k = 0; k < n; ++k) {
          const Vec2 p = Scaled(part.points[k], scale_);
          const Vec2 q = Scaled(part.points[(k + 1) % n], scale_);
          if ((p.y <= y && y < q.y) || (q.y <= y && y < p.y)) {
            crossings.push_back(p.x + (y - p.y) * (q.x - p.x) / (q.y - p.y));
          }
        }
      }
      std::sort(crossings.begin(), crossings.end());
      for (size_t k = 0; k + 1 < crossings.size(); k += 2) {
        FillBox(crossings[k], j, crossings[k + 1], j + 1, colour, fill.opacity);
      }
    }
  }
  if (pen.colour.empty()) return;
  const double width = std::max(1.0, pen.width * scale_);
  std::vector<double> dash;
  for (double d : pen.dash) dash.push_back(d * scale_);
  const Rgb colour = ParseColour(pen.colour);
  for (const Polyline& part : parts) {
    std::vector<Vec2> points;
    for (const Vec2& p : part.points) points.push_back(Scaled(p, scale_));
    if (part.closed && !points.empty()) points.push_back(points.front());
    double phase = 0;
    for (size_t k = 0; k + 1 < points.size(); ++k) {
      StrokeSegment(points[k], points[k + 1], width, dash, phase, pen.round,
                    colour);
      phase += std::hypot(points[k + 1].x - points[k].x,
                          points[k + 1].y - points[k].y);
      // Solid corners are filled round; a dash pattern keeps its gaps.
      if (dash.empty() && k + 2 < points.size()) {
        FillDisc(points[k + 1], width / 2, colour, 1);
      }
    }
  }
}

int RasterCanvas::Dot(const TextStyle& style) const {
  // 12 px text in 5x7 capitals: one dot a pixel at scale 1, two at scale 2.
  return std::max(1, static_cast<int>(std::lround(style.size * scale_ / 10)));
}

namespace {

// Dots of a superscript or subscript glyph set among glyphs of `dot`.
int SmallDot(int dot) { return (dot + 1) / 2; }

// The advance in pixels of `text` in dot size `dot`, without the gap after
// its last glyph.
double Advance(absl::string_view text, int dot) {
  double width = 0;
  int last_dot = 0;
  for (char32_t c : CodePoints(text)) {
    const Setting s = SettingOf(c);
    last_dot = s.place == Place::kNormal ? dot : SmallDot(dot);
    width += kAdvance * last_dot;
  }
  return width - (kAdvance - kGlyphWidth) * last_dot;
}

}  // namespace

double RasterCanvas::TextWidth(absl::string_view text,
                               const TextStyle& style) const {
  return Advance(text, Dot(style)) / scale_;
}

void RasterCanvas::Glyphs(absl::string_view text, int dot, bool bold,
                          bool vertical, double grow, const Rgb& colour,
                          Vec2 origin) {
  const int bold_extra = bold ? std::max(1, dot / 2) : 0;
  double u = 0;  // Along the baseline from `origin`.
  for (char32_t c : CodePoints(text)) {
    const Setting setting = SettingOf(c);
    const Glyph& glyph = Font().at(setting.glyph);
    const int size = setting.place == Place::kNormal ? dot : SmallDot(dot);
    // Where the glyph's baseline is, across the text's (down positive).
    double v_base = 0;
    if (setting.place == Place::kSuperscript) {
      v_base = -std::max(8 * dot - kCapRows * size, 3 * dot + 1);
    } else if (setting.place == Place::kSubscript) {
      v_base = 2 * dot;
    }
    for (int row = 0; row < kGlyphRows; ++row) {
      for (int column = 0; column < kGlyphWidth; ++column) {
        if (!(glyph[row] >> (kGlyphWidth - 1 - column) & 1)) continue;
        // The dot as a box in text coordinates: u along, v across.
        const double u0 = u + column * size - grow;
        const double u1 = u + (column + 1) * size + bold_extra + grow;
        const double v0 = v_base + (row - kCapRows) * size - grow;
        const double v1 = v_base + (row - kCapRows + 1) * size + grow;
        if (vertical) {
          // A quarter turn anticlockwise: u runs up, v runs right.
          FillBox(origin.x + v0, origin.y - u1, origin.x + v1, origin.y - u0,
                  colour, 1);
        } else {
          FillBox(origin.x + u0, origin.y + v0, origin.x + u1, origin.y + v1,
                  colour, 1);
        }
      }
    }
    u += kAdvance * size;
  }
}

void RasterCanvas::Text(Vec2 at, absl::string_view text,
                        const TextStyle& style) {
  const int dot = Dot(style);
  const double width = Advance(text, dot);
  const double shift = style.anchor == Anchor::kStart    ? 0
                       : style.anchor == Anchor::kMiddle ? -width / 2
                                                         : -width;
  // Whole pixels, so that every dot is as wide as every other.
  Vec2 origin{std::round(at.x * scale_), std::round(at.y * scale_)};
  if (style.vertical) {
    origin.y -= std::round(shift);
  } else {
    origin.x += std::round(shift);
  }
  const bool bold = style.weight >= 600;
  if (style.halo) {
    Glyphs(text, dot, bold, style.vertical, std::round(1.5 * scale_),
           ParseColour(kWhite), origin);
  }
  Glyphs(text, dot, bold, style.vertical, 0,
         ParseColour(style.colour.empty() ? kInk : style.colour), origin);
}

}  // namespace evonas::client
