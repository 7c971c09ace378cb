#include "common/idx.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/dataset.h"
#include "common/gzip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace evonas {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

void AppendBigEndian32(uint32_t value, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((value >> shift) & 0xFF));
  }
}

// An images file of `count` images of height x width whose pixel i of image
// n is (n * 31 + i) % 256, followed by a labels file (label n % 10). Sizes
// in the headers may lie: `label_count` and the magic numbers are separate.
struct IdxBuilder {
  uint32_t count = 3;
  uint32_t height = 2;
  uint32_t width = 3;
  uint32_t label_count = 3;
  uint32_t images_magic = 0x00000803;
  uint32_t labels_magic = 0x00000801;

  std::string Images() const {
    std::string out;
    AppendBigEndian32(images_magic, &out);
    AppendBigEndian32(count, &out);
    AppendBigEndian32(height, &out);
    AppendBigEndian32(width, &out);
    for (uint32_t n = 0; n < count; ++n) {
      for (uint32_t i = 0; i < height * width; ++i) {
        out.push_back(static_cast<char>((n * 31 + i) % 256));
      }
    }
    return out;
  }
  std::string Labels() const {
    std::string out;
    AppendBigEndian32(labels_magic, &out);
    AppendBigEndian32(label_count, &out);
    for (uint32_t n = 0; n < label_count; ++n) {
      out.push_back(static_cast<char>(n % 10));
    }
    return out;
  }
  std::string Bytes() const { return Images() + Labels(); }
};

void ExpectInvalid(const std::string& bytes,
                   const std::vector<std::string>& parts,
                   const IdxLimits& limits = IdxLimits()) {
  const absl::StatusOr<Table> table = ParseIdx(bytes, limits);
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  for (const std::string& part : parts) {
    EXPECT_THAT(std::string(table.status().message()), HasSubstr(part));
  }
  // The header check alone refuses exactly the same data.
  EXPECT_EQ(ReadIdxLayout(bytes, limits).status(), table.status());
}

TEST(ParseIdxTest, ImagesBecomeRowsOfPixelsAndALabel) {
  const IdxBuilder idx;
  IdxLayout layout;
  const absl::StatusOr<Table> table = ParseIdx(idx.Bytes(), IdxLimits(), &layout);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_THAT(table->columns, ElementsAre("pixel_0", "pixel_1", "pixel_2",
                                          "pixel_3", "pixel_4", "pixel_5",
                                          "label"));
  EXPECT_EQ(table->rows, 3);
  ASSERT_EQ(table->values.size(), 21u);
  for (int64_t n = 0; n < 3; ++n) {
    for (int64_t i = 0; i < 6; ++i) {
      EXPECT_EQ(table->at(n, i), (n * 31 + i) % 256) << n << "," << i;
    }
    EXPECT_EQ(table->at(n, 6), n);
  }
  EXPECT_EQ(layout.count, 3);
  EXPECT_EQ(layout.height, 2);
  EXPECT_EQ(layout.width, 3);
  EXPECT_EQ(layout.pixels_offset, 16);
  EXPECT_EQ(layout.labels_offset, 16 + 18 + 8);
}

TEST(ParseIdxTest, ByteValuesAreUnsigned) {
  IdxBuilder idx;
  idx.count = idx.label_count = 9;  // pixels reach 8 * 31 + 5 = 253
  const absl::StatusOr<Table> table = ParseIdx(idx.Bytes());
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->at(8, 5), 253);
}

TEST(ParseIdxTest, OneImageOfOnePixel) {
  IdxBuilder idx;
  idx.count = idx.label_count = 1;
  idx.height = idx.width = 1;
  const absl::StatusOr<Table> table = ParseIdx(idx.Bytes());
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_THAT(table->columns, ElementsAre("pixel_0", "label"));
  EXPECT_THAT(table->values, ElementsAre(0, 0));
}

TEST(ParseIdxTest, Empty) { ExpectInvalid("", {"IDX data set is empty"}); }

TEST(ParseIdxTest, ShorterThanAMagicNumber) {
  ExpectInvalid(std::string("\0\0\x08", 3),
                {"images file is missing or cut off", "magic number"});
}

TEST(ParseIdxTest, GzipIsRefusedWithAHint) {
  ExpectInvalid(std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00", 8),
                {"images file is gzip-compressed", "decompressed"});
}

TEST(ParseIdxTest, CsvIsNotIdx) {
  ExpectInvalid("x,y\n1,2\n", {"images file does not start with an IDX magic "
                               "number (got 0x782c790a, expected 0x00000803)"});
}

TEST(ParseIdxTest, WrongDataType) {
  IdxBuilder idx;
  idx.images_magic = 0x00000D03;
  ExpectInvalid(idx.Bytes(),
                {"images file holds data type 0x0d (float)", "unsigned bytes"});
  idx = IdxBuilder();
  idx.labels_magic = 0x00000C01;
  ExpectInvalid(idx.Bytes(), {"labels file holds data type 0x0c (32-bit"});
}

TEST(ParseIdxTest, WrongDimensions) {
  IdxBuilder idx;
  idx.images_magic = 0x00000804;
  ExpectInvalid(idx.Bytes(),
                {"images file has 4 dimensions (magic 0x00000804); expected 3 "
                 "(count x height x width)"});
  idx = IdxBuilder();
  idx.labels_magic = 0x00000803;
  ExpectInvalid(idx.Bytes(), {"labels file has 3 dimensions", "expected 1"});
}

TEST(ParseIdxTest, LabelsFirstIsExplained) {
  const IdxBuilder idx;
  ExpectInvalid(idx.Labels() + idx.Images(),
                {"images file is a labels file", "images file must come first"});
}

TEST(ParseIdxTest, ZeroSizes) {
  for (int which = 0; which < 3; ++which) {
    IdxBuilder idx;
    (which == 0 ? idx.count : which == 1 ? idx.height : idx.width) = 0;
    if (which == 0) idx.label_count = 0;
    ExpectInvalid(idx.Bytes(), {"at least one image of at least 1x1"});
  }
}

TEST(ParseIdxTest, CountMismatch) {
  IdxBuilder idx;
  idx.label_count = 2;
  ExpectInvalid(idx.Bytes(),
                {"the labels file holds 2 labels, but the images file 3 "
                 "images"});
}

TEST(ParseIdxTest, TruncatedImages) {
  const std::string images = IdxBuilder().Images();
  ExpectInvalid(images.substr(0, 20),
                {"images file is truncated", "announces 3 images of 2x3 (18 "
                                             "bytes of pixels), but only 4"});
  ExpectInvalid(images.substr(0, 10),
                {"images file is truncated: its header is 16 bytes, but only "
                 "10 are left"});
}

TEST(ParseIdxTest, MissingLabels) {
  ExpectInvalid(IdxBuilder().Images(),
                {"ends after the images file; the labels file"});
}

TEST(ParseIdxTest, TruncatedLabels) {
  const std::string bytes = IdxBuilder().Bytes();
  ExpectInvalid(bytes.substr(0, bytes.size() - 1),
                {"labels file is truncated", "announces 3 labels, but only 2"});
  ExpectInvalid(bytes.substr(0, bytes.size() - 5),
                {"labels file is truncated: its header is 8 bytes"});
}

TEST(ParseIdxTest, TrailingBytes) {
  ExpectInvalid(IdxBuilder().Bytes() + "xy",
                {"2 bytes follow the end of the labels file"});
  // Two data sets back to back are not one.
  const std::string bytes = IdxBuilder().Bytes();
  ExpectInvalid(bytes + bytes, {"follow the end of the labels file"});
}

TEST(ParseIdxTest, HugeSizesDoNotOverflow) {
  // Headers only: the data would take exabytes.
  const auto header = [](uint32_t count, uint32_t height, uint32_t width) {
    IdxBuilder idx;
    idx.count = count;
    idx.height = height;
    idx.width = width;
    idx.count = 0;  // no pixels written
    std::string bytes = idx.Images();
    std::string sizes;
    AppendBigEndian32(count, &sizes);
    return bytes.replace(4, 4, sizes);
  };
  constexpr uint32_t kMax = 0xFFFFFFFF;
  IdxLimits unlimited;
  unlimited.max_columns = INT64_MAX;
  unlimited.max_values = INT64_MAX;
  ExpectInvalid(header(kMax, kMax, kMax),
                {"are 18446744065119617025 pixels"}, unlimited);
  ExpectInvalid(header(kMax, kMax, kMax), {"the limit is 10000 columns"});
  ExpectInvalid(header(kMax, 0xFFFF, 0xFFFF), {"values"}, unlimited);
  ExpectInvalid(header(kMax, 28, 28),
                {"more than the limit of 134217728", "--max-dataset-values"});
  ExpectInvalid(header(kMax, 1, 1), {"images file is truncated"}, unlimited);
}

TEST(ParseIdxTest, Limits) {
  const IdxBuilder idx;  // 3 images of 2x3: 7 columns, 21 values
  IdxLimits limits;
  limits.max_columns = 6;
  ExpectInvalid(idx.Bytes(), {"images of 2x3 are 6 pixels, 7 columns with "
                              "the label; the limit is 6 columns"},
                limits);
  limits.max_columns = 7;
  EXPECT_TRUE(ParseIdx(idx.Bytes(), limits).ok());
  limits.max_values = 20;
  ExpectInvalid(idx.Bytes(),
                {"are 21 values, more than the limit of 20",
                 "raise --max-dataset-values of evonas-controller and "
                 "evonas-worker"},
                limits);
  limits.max_values = 21;
  EXPECT_TRUE(ParseIdx(idx.Bytes(), limits).ok());
  limits.max_bytes = static_cast<int64_t>(idx.Bytes().size()) - 1;
  ExpectInvalid(idx.Bytes(), {"the limit is"}, limits);
}

TEST(ParseIdxTest, InspectDatasetAppliesTheValueLimit) {
  const IdxBuilder idx;  // 21 values
  DatasetLimits limits;
  limits.idx.max_values = 20;
  EXPECT_FALSE(InspectDataset(idx.Bytes(), v1::DATASET_FORMAT_IDX, limits).ok());
  limits.idx.max_values = 21;
  EXPECT_TRUE(InspectDataset(idx.Bytes(), v1::DATASET_FORMAT_IDX, limits).ok());
}

// Dataset::SelectColumns of every row and column, and its ColumnIndices,
// equal those of ParseDataset's table.
void ExpectSameAsTable(const Dataset& dataset, const Table& table) {
  EXPECT_EQ(dataset.columns(), table.columns);
  ASSERT_EQ(dataset.rows(), table.rows);
  ASSERT_EQ(dataset.cols(), table.cols());
  std::vector<int64_t> rows(table.rows), cols(table.cols());
  for (int64_t r = 0; r < table.rows; ++r) rows[r] = r;
  for (int64_t c = 0; c < table.cols(); ++c) cols[c] = c;
  EXPECT_EQ(dataset.SelectColumns(rows, cols), table.values);
  EXPECT_EQ(dataset.ColumnIndices(table.columns).value(), cols);
}

TEST(DatasetTest, LoadedIdxKeepsItsBytesAndReadsAsTheTable) {
  const std::string bytes = IdxBuilder().Bytes();
  const Table table = ParseDataset(bytes, v1::DATASET_FORMAT_IDX).value();
  absl::StatusOr<Dataset> dataset =
      Dataset::Load(bytes, v1::DATASET_FORMAT_IDX);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  ExpectSameAsTable(*dataset, table);
  // One byte per value (plus the two headers), not eight.
  EXPECT_EQ(dataset->value_bytes(), static_cast<int64_t>(bytes.size()));
  // Rows in any order, repeated, and columns in any order: as SelectColumns.
  const std::vector<int64_t> rows = {2, 0, 2}, cols = {6, 0, 5};
  EXPECT_EQ(dataset->SelectColumns(rows, cols),
            SelectColumns(table, rows, cols));
  EXPECT_THAT(dataset->SelectColumns({1}, {6, 1}), ElementsAre(1, 32));
  EXPECT_THAT(std::string(dataset->ColumnIndices({"pixel_9"})
                              .status()
                              .message()),
              HasSubstr("unknown column \"pixel_9\""));
}

TEST(DatasetTest, LoadedCsvIsItsTable) {
  for (const v1::DatasetFormat csv :
       {v1::DATASET_FORMAT_CSV, v1::DATASET_FORMAT_UNSPECIFIED}) {
    absl::StatusOr<Dataset> dataset = Dataset::Load("x,y\n1,2\n3,4\n", csv);
    ASSERT_TRUE(dataset.ok()) << dataset.status();
    ExpectSameAsTable(*dataset,
                      ParseDataset("x,y\n1,2\n3,4\n", csv).value());
    EXPECT_EQ(dataset->value_bytes(), 4 * 8);
  }
}

TEST(DatasetTest, LoadRefusesWhatParseDatasetRefuses) {
  IdxBuilder truncated;
  truncated.label_count = 2;
  DatasetLimits small;
  small.idx.max_values = 20;
  small.csv.max_columns = 1;
  const struct {
    std::string bytes;
    v1::DatasetFormat format;
    DatasetLimits limits;
  } cases[] = {
      {truncated.Bytes(), v1::DATASET_FORMAT_IDX, {}},
      {IdxBuilder().Bytes(), v1::DATASET_FORMAT_IDX, small},
      {IdxBuilder().Bytes(), v1::DATASET_FORMAT_CSV, {}},
      {"x,y\n1,2\n", v1::DATASET_FORMAT_CSV, small},
      {"x,y\n1,2\n", v1::DATASET_FORMAT_IDX, {}},
      {"x\n1\n", static_cast<v1::DatasetFormat>(7), {}},
  };
  for (const auto& c : cases) {
    const absl::Status want =
        ParseDataset(c.bytes, c.format, c.limits).status();
    ASSERT_FALSE(want.ok());
    EXPECT_EQ(Dataset::Load(c.bytes, c.format, c.limits).status(), want);
  }
}

TEST(DatasetTest, ParseAndInspectByFormat) {
  const std::string idx = IdxBuilder().Bytes();
  absl::StatusOr<Table> table = ParseDataset(idx, v1::DATASET_FORMAT_IDX);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->rows, 3);
  absl::StatusOr<DatasetShape> shape =
      InspectDataset(idx, v1::DATASET_FORMAT_IDX);
  ASSERT_TRUE(shape.ok()) << shape.status();
  EXPECT_EQ(shape->columns, table->columns);
  EXPECT_EQ(shape->rows, 3);
  EXPECT_THAT(shape->image_shape, ElementsAre(2, 3));

  for (const v1::DatasetFormat csv :
       {v1::DATASET_FORMAT_CSV, v1::DATASET_FORMAT_UNSPECIFIED}) {
    table = ParseDataset("x,y\n1,2\n", csv);
    ASSERT_TRUE(table.ok()) << table.status();
    EXPECT_THAT(table->values, ElementsAre(1, 2));
    shape = InspectDataset("x,y\n1,2\n", csv);
    ASSERT_TRUE(shape.ok()) << shape.status();
    EXPECT_THAT(shape->columns, ElementsAre("x", "y"));
    EXPECT_EQ(shape->rows, 1);
    EXPECT_TRUE(shape->image_shape.empty());
  }
  // Each format refuses the other's data.
  EXPECT_THAT(std::string(ParseDataset(idx, v1::DATASET_FORMAT_CSV)
                              .status()
                              .message()),
              HasSubstr("NUL byte"));
  EXPECT_THAT(std::string(InspectDataset("x,y\n1,2\n", v1::DATASET_FORMAT_IDX)
                              .status()
                              .message()),
              HasSubstr("magic number"));
}

TEST(DatasetTest, UnknownFormat) {
  const auto format = static_cast<v1::DatasetFormat>(7);
  for (const absl::Status& status :
       {ParseDataset("x\n1\n", format).status(),
        InspectDataset("x\n1\n", format).status()}) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()),
                HasSubstr("unknown data set format 7"));
  }
  EXPECT_EQ(DatasetFormatName(format), "7");
  EXPECT_EQ(DatasetFormatName(v1::DATASET_FORMAT_UNSPECIFIED), "CSV");
  EXPECT_EQ(DatasetFormatName(v1::DATASET_FORMAT_IDX), "IDX");
}

// ------------------------------------------- the real Fashion-MNIST files

constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist/";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// The stored form of a Fashion-MNIST split: both files decompressed, the
// images first.
std::string FashionMnist(const std::string& split) {
  std::string bytes;
  for (const char* part : {"-images-idx3-ubyte.gz", "-labels-idx1-ubyte.gz"}) {
    const std::string path = kFashionMnistDir + split + part;
    const std::string compressed = ReadFile(path);
    EXPECT_FALSE(compressed.empty())
        << path << " is missing: apt install dataset-fashion-mnist";
    const absl::Status status =
        GunzipAppend(compressed, int64_t{1} << 30, &bytes);
    EXPECT_TRUE(status.ok()) << path << ": " << status;
  }
  return bytes;
}

struct Expected {
  int64_t rows;
  int64_t stored_bytes;
  // Computed once with Python's gzip module: the sum of all pixels, the sum
  // of pixel * (its index + 1), the first image's pixel sum, the first and
  // last labels.
  uint64_t pixel_sum;
  uint64_t weighted_pixel_sum;
  uint64_t first_image_sum;
  int first_label;
  int last_label;
};

void CheckFashionMnist(const std::string& split, const Expected& expected) {
  const std::string bytes = FashionMnist(split);
  ASSERT_EQ(static_cast<int64_t>(bytes.size()), expected.stored_bytes);
  IdxLayout layout;
  absl::StatusOr<Table> table = ParseIdx(bytes, IdxLimits(), &layout);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(layout.height, 28);
  EXPECT_EQ(layout.width, 28);
  EXPECT_EQ(table->rows, expected.rows);
  ASSERT_EQ(table->cols(), 28 * 28 + 1);
  EXPECT_EQ(table->columns.front(), "pixel_0");
  EXPECT_EQ(table->columns[783], "pixel_783");
  EXPECT_EQ(table->columns.back(), "label");
  ASSERT_EQ(static_cast<int64_t>(table->values.size()),
            expected.rows * table->cols());

  uint64_t pixel_sum = 0, weighted = 0, first_image = 0;
  std::map<int, int64_t> label_counts;
  for (int64_t r = 0; r < table->rows; ++r) {
    for (int64_t c = 0; c < 784; ++c) {
      const double v = table->at(r, c);
      ASSERT_TRUE(v >= 0 && v <= 255 && v == static_cast<uint64_t>(v));
      pixel_sum += static_cast<uint64_t>(v);
      weighted += static_cast<uint64_t>(v) * (c + 1);
      if (r == 0) first_image += static_cast<uint64_t>(v);
    }
    ++label_counts[static_cast<int>(table->at(r, 784))];
  }
  EXPECT_EQ(pixel_sum, expected.pixel_sum);
  EXPECT_EQ(weighted, expected.weighted_pixel_sum);
  EXPECT_EQ(first_image, expected.first_image_sum);
  EXPECT_EQ(table->at(0, 784), expected.first_label);
  EXPECT_EQ(table->at(table->rows - 1, 784), expected.last_label);
  ASSERT_EQ(label_counts.size(), 10u);
  for (const auto& [label, count] : label_counts) {
    EXPECT_EQ(count, expected.rows / 10) << "label " << label;
  }
  EXPECT_EQ(label_counts.begin()->first, 0);
  EXPECT_EQ(label_counts.rbegin()->first, 9);

  // What a worker caches: the same values from the stored bytes, compared
  // 1,000 rows at a time.
  absl::StatusOr<Dataset> dataset =
      Dataset::Load(bytes, v1::DATASET_FORMAT_IDX);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->value_bytes(), expected.stored_bytes);
  std::vector<int64_t> cols(table->cols());
  for (int64_t c = 0; c < table->cols(); ++c) cols[c] = c;
  for (int64_t start = 0; start < table->rows; start += 1000) {
    std::vector<int64_t> rows;
    for (int64_t r = start; r < std::min(table->rows, start + 1000); ++r) {
      rows.push_back(r);
    }
    ASSERT_EQ(dataset->SelectColumns(rows, cols),
              SelectColumns(*table, rows, cols))
        << "rows from " << start;
  }

  // What the controller records: the same shape without building a table.
  absl::StatusOr<DatasetShape> shape =
      InspectDataset(bytes, v1::DATASET_FORMAT_IDX);
  ASSERT_TRUE(shape.ok()) << shape.status();
  EXPECT_EQ(shape->rows, expected.rows);
  EXPECT_EQ(shape->columns, table->columns);
  EXPECT_THAT(shape->image_shape, ElementsAre(28, 28));
}

TEST(FashionMnistTest, Train) {
  CheckFashionMnist("train", {60000, 47040016 + 60008, 3431114169,
                              1413923198216, 76247, 9, 5});
}

TEST(FashionMnistTest, Test) {
  CheckFashionMnist("t10k", {10000, 7840016 + 10008, 573469082, 236710503601,
                             33456, 9, 5});
}

}  // namespace
}  // namespace evonas
