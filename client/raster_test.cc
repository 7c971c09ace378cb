#include "client/raster.h"

#include <set>
#include <string>
#include <vector>

#include "client/png_testing.h"
#include "gtest/gtest.h"

namespace evonas::client {
namespace {

using ::evonas::client::testing::PixelColour;

constexpr char kBlack[] = "#000000";
constexpr char kRed[] = "#ff0000";

// The pixels of `image` that are not white, as "x,y".
std::set<std::string> Inked(const RgbImage& image) {
  std::set<std::string> inked;
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      if (PixelColour(image, x, y) != "#ffffff") {
        inked.insert(std::to_string(x) + "," + std::to_string(y));
      }
    }
  }
  return inked;
}

// The bounding box [x0, x1) × [y0, y1) of the non-white pixels.
struct Bounds {
  int x0 = 1 << 30, y0 = 1 << 30, x1 = -1, y1 = -1;
};
Bounds InkBounds(const RgbImage& image) {
  Bounds b;
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      if (PixelColour(image, x, y) == "#ffffff") continue;
      b.x0 = std::min(b.x0, x);
      b.y0 = std::min(b.y0, y);
      b.x1 = std::max(b.x1, x + 1);
      b.y1 = std::max(b.y1, y + 1);
    }
  }
  return b;
}

TEST(RasterCanvasTest, WhiteImageOfTheScaledSize) {
  RasterCanvas canvas(10.5, 4, 2);
  EXPECT_EQ(canvas.image().width, 21);
  EXPECT_EQ(canvas.image().height, 8);
  EXPECT_TRUE(Inked(canvas.image()).empty());
}

TEST(RasterCanvasTest, RectCoversThePixelsItSpans) {
  RasterCanvas canvas(10, 10, 2);
  canvas.Rect(1, 2, 3, 1, {kRed}, {});
  EXPECT_EQ(Inked(canvas.image()).size(), 6u * 2u);
  const Bounds b = InkBounds(canvas.image());
  EXPECT_EQ(b.x0, 2);
  EXPECT_EQ(b.x1, 8);
  EXPECT_EQ(b.y0, 4);
  EXPECT_EQ(b.y1, 6);
  EXPECT_EQ(PixelColour(canvas.image(), 2, 4), kRed);
}

TEST(RasterCanvasTest, FillOpacityBlendsOverWhatIsThere) {
  RasterCanvas canvas(4, 4, 1);
  canvas.Rect(0, 0, 4, 4, {kBlack, 0.5}, {});
  EXPECT_EQ(PixelColour(canvas.image(), 1, 1), "#808080");
}

TEST(RasterCanvasTest, OneUnitLineIsScalePixelsWide) {
  RasterCanvas canvas(20, 20, 2);
  canvas.Line({5, 2}, {5, 12}, {kBlack});
  const Bounds b = InkBounds(canvas.image());
  EXPECT_EQ(b.x0, 9);
  EXPECT_EQ(b.x1, 11);
  EXPECT_EQ(b.y0, 4);
  EXPECT_EQ(b.y1, 24);
  EXPECT_EQ(Inked(canvas.image()).size(), 2u * 20u);
}

TEST(RasterCanvasTest, DashedLineHasItsGaps) {
  RasterCanvas canvas(40, 4, 1);
  // Dashes of 6, gaps of 4: ink in [0, 6), [10, 16), [20, 26), ...
  canvas.Line({0, 2}, {40, 2}, {kRed, 1, {6, 4}});
  for (int x = 0; x < 40; ++x) {
    EXPECT_EQ(PixelColour(canvas.image(), x, 1), x % 10 < 6 ? kRed : "#ffffff")
        << x;
  }
}

TEST(RasterCanvasTest, CircleFillAndRing) {
  RasterCanvas canvas(20, 20, 2);
  canvas.Circle({10, 10}, 4, {kRed}, {kBlack, 1});
  EXPECT_EQ(PixelColour(canvas.image(), 20, 20), kRed);    // Centre.
  EXPECT_EQ(PixelColour(canvas.image(), 28, 20), kBlack);  // On the ring.
  EXPECT_EQ(PixelColour(canvas.image(), 20, 11), kBlack);
  EXPECT_EQ(PixelColour(canvas.image(), 31, 20), "#ffffff");  // Outside.
  EXPECT_EQ(PixelColour(canvas.image(), 24, 24), kRed);  // Inside, diagonal.
  EXPECT_EQ(PixelColour(canvas.image(), 26, 26), "#ffffff");  // Outside.
}

TEST(RasterCanvasTest, ClosedPathIsFilledEvenOdd) {
  RasterCanvas canvas(10, 10, 1);
  Polyline outer{{{0, 0}, {10, 0}, {10, 10}, {0, 10}}, true};
  Polyline hole{{{3, 3}, {7, 3}, {7, 7}, {3, 7}}, true};
  canvas.Path({outer, hole}, {kRed}, {});
  EXPECT_EQ(PixelColour(canvas.image(), 1, 1), kRed);
  EXPECT_EQ(PixelColour(canvas.image(), 5, 5), "#ffffff");
  EXPECT_EQ(Inked(canvas.image()).size(), 100u - 16u);
}

TEST(RasterCanvasTest, ClipKeepsDrawingInside) {
  RasterCanvas canvas(10, 10, 1);
  canvas.BeginClip(2, 2, 4, 4);
  canvas.Rect(0, 0, 10, 10, {kRed}, {});
  canvas.EndClip();
  EXPECT_EQ(Inked(canvas.image()).size(), 16u);
  canvas.Rect(8, 8, 1, 1, {kRed}, {});
  EXPECT_EQ(Inked(canvas.image()).size(), 17u);
}

// The inked pixels of `text` alone on a canvas, as a string.
std::string TextPixels(const std::string& text, TextStyle style = {},
                       int scale = 1) {
  RasterCanvas canvas(60, 30, scale);
  canvas.Text({5, 15}, text, style);
  std::string pixels;
  for (const std::string& p : Inked(canvas.image())) pixels += p + " ";
  return pixels;
}

TEST(RasterTextTest, EveryPrintableAsciiCharacterHasItsOwnGlyph) {
  std::set<std::string> seen;
  for (char c = 33; c <= 126; ++c) {
    EXPECT_TRUE(HasGlyph(static_cast<char32_t>(c))) << c;
    const std::string pixels = TextPixels(std::string(1, c));
    EXPECT_FALSE(pixels.empty()) << c;
    EXPECT_TRUE(seen.insert(pixels).second) << c << " looks like another";
  }
  EXPECT_TRUE(TextPixels(" ").empty());
}

TEST(RasterTextTest, OtherCharactersAreQuestionMarks) {
  EXPECT_FALSE(HasGlyph(U'é'));
  EXPECT_EQ(TextPixels("é"), TextPixels("?"));
  EXPECT_EQ(TextPixels("\xff"), TextPixels("?"));  // Not UTF-8.
  // Those of the plots' labels are drawn.
  EXPECT_TRUE(HasGlyph(U'×'));
  EXPECT_TRUE(HasGlyph(U'µ'));
  EXPECT_EQ(TextPixels("1\u2212x"), TextPixels("1-x"));  // Minus sign.
  EXPECT_EQ(TextPixels("20\u00a0µs"), TextPixels("20 µs"));
  EXPECT_NE(TextPixels("10⁻³"), TextPixels("10??"));
}

TEST(RasterTextTest, SuperscriptsAreRaisedAndSmaller) {
  RasterCanvas base(60, 30, 2), sup(60, 30, 2);
  base.Text({5, 15}, "3", {});
  sup.Text({5, 15}, "³", {});
  const Bounds b = InkBounds(base.image()), s = InkBounds(sup.image());
  EXPECT_EQ(b.y1, 30);  // On the baseline, 7 dots of 2 pixels high.
  EXPECT_EQ(b.y0, 30 - 14);
  EXPECT_LT(s.y1, b.y1 - 5);
  EXPECT_EQ(s.y1 - s.y0, 7);  // One pixel a dot.
}

TEST(RasterTextTest, AnchorsAndWidth) {
  RasterCanvas canvas(100, 30, 2);
  TextStyle style;
  EXPECT_DOUBLE_EQ(canvas.TextWidth("abc", style), (3 * 6 - 1) * 2 / 2.0);
  style.anchor = Anchor::kEnd;
  canvas.Text({50, 20}, "H", style);  // H fills its 5 columns.
  EXPECT_EQ(InkBounds(canvas.image()).x1, 100);
  RasterCanvas middle(100, 30, 2);
  style.anchor = Anchor::kMiddle;
  middle.Text({50, 20}, "HH", style);
  const Bounds m = InkBounds(middle.image());
  EXPECT_EQ(m.x0 + m.x1, 200);
}

TEST(RasterTextTest, VerticalTextReadsUpwards) {
  RasterCanvas canvas(40, 100, 1);
  TextStyle style;
  style.vertical = true;
  canvas.Text({20, 80}, "LLLL", style);
  const Bounds b = InkBounds(canvas.image());
  // 7 dots across (x), 23 along (y), ending at the origin.
  EXPECT_EQ(b.x1 - b.x0, 7);
  EXPECT_EQ(b.y1 - b.y0, 23);
  EXPECT_EQ(b.y1, 80);
  EXPECT_EQ(b.x1, 20);
  // L's foot is at the baseline side (x just left of 20), along its run.
  EXPECT_EQ(PixelColour(canvas.image(), 19, 79), kInk);
}

TEST(RasterTextTest, HaloIsWhiteUnderTheText) {
  RasterCanvas canvas(40, 20, 1);
  canvas.Rect(0, 0, 40, 20, {kBlack}, {});
  TextStyle style;
  style.colour = kRed;
  style.halo = true;
  canvas.Text({5, 12}, "I", style);
  EXPECT_EQ(PixelColour(canvas.image(), 7, 8), kRed);  // I's stem.
  EXPECT_EQ(PixelColour(canvas.image(), 5, 8), "#ffffff");
  EXPECT_EQ(PixelColour(canvas.image(), 30, 8), kBlack);
}

}  // namespace
}  // namespace evonas::client
