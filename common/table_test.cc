#include "common/table.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace evonas {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Parses `text` and expects InvalidArgument whose message contains every one
// of `parts`.
void ExpectInvalid(const std::string& text,
                   const std::vector<std::string>& parts,
                   const CsvLimits& limits = CsvLimits()) {
  SCOPED_TRACE(text.substr(0, 200));
  const absl::StatusOr<Table> table = ParseCsv(text, limits);
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  for (const std::string& part : parts) {
    EXPECT_THAT(std::string(table.status().message()), HasSubstr(part));
  }
}

Table ParseOk(const std::string& text) {
  absl::StatusOr<Table> table = ParseCsv(text);
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? *std::move(table) : Table();
}

TEST(ParseCsvTest, Simple) {
  const Table t = ParseOk("x,y\n1,2\n3.5,-4e-3\n");
  EXPECT_THAT(t.columns, ElementsAre("x", "y"));
  EXPECT_EQ(t.rows, 2);
  EXPECT_EQ(t.cols(), 2);
  EXPECT_THAT(t.values, ElementsAre(1, 2, 3.5, -4e-3));
  EXPECT_EQ(t.at(1, 0), 3.5);
}

TEST(ParseCsvTest, SingleColumnSingleRow) {
  const Table t = ParseOk("only\n42");
  EXPECT_THAT(t.columns, ElementsAre("only"));
  EXPECT_EQ(t.rows, 1);
  EXPECT_THAT(t.values, ElementsAre(42));
}

TEST(ParseCsvTest, Utf8ByteOrderMark) {
  const Table t = ParseOk("\xEF\xBB\xBFx,y\n1,2\n");
  EXPECT_THAT(t.columns, ElementsAre("x", "y"));
}

TEST(ParseCsvTest, Utf16IsRejectedWithHint) {
  ExpectInvalid(std::string("\xFF\xFEx\0,\0y\0", 8), {"UTF-16", "UTF-8"});
}

TEST(ParseCsvTest, CrLfLineEnds) {
  const Table t = ParseOk("x,y\r\n1,2\r\n3,4\r\n");
  EXPECT_THAT(t.columns, ElementsAre("x", "y"));
  EXPECT_THAT(t.values, ElementsAre(1, 2, 3, 4));
}

TEST(ParseCsvTest, MixedLineEnds) {
  const Table t = ParseOk("x,y\r\n1,2\n3,4\r\n");
  EXPECT_EQ(t.rows, 2);
}

TEST(ParseCsvTest, FinalNewlineVariations) {
  for (const std::string text :
       {"x,y\n1,2", "x,y\n1,2\n", "x,y\n1,2\r\n", "x,y\n1,2\r", "x,y\n1,2\n\n",
        "x,y\n1,2\n\n\n", "x,y\r\n1,2\r\n\r\n", "x,y\n1,2\n  \n\t\n",
        "x,y\n1,2\n   "}) {
    SCOPED_TRACE(text);
    const Table t = ParseOk(text);
    EXPECT_EQ(t.rows, 1);
    EXPECT_THAT(t.values, ElementsAre(1, 2));
  }
}

TEST(ParseCsvTest, BlankLineInTheMiddleIsRejected) {
  ExpectInvalid("x,y\n1,2\n\n3,4\n", {"line 3", "blank line"});
  ExpectInvalid("x\n1\n\n3\n", {"line 3", "blank line"});
}

TEST(ParseCsvTest, BlankHeaderLine) {
  ExpectInvalid("\nx,y\n1,2\n", {"line 1", "header"});
}

TEST(ParseCsvTest, WhitespaceAroundFieldsIsTrimmed) {
  const Table t = ParseOk(" x , \ty\t\n 1 ,\t2 \n");
  EXPECT_THAT(t.columns, ElementsAre("x", "y"));
  EXPECT_THAT(t.values, ElementsAre(1, 2));
}

TEST(ParseCsvTest, QuotedFields) {
  const Table t = ParseOk(
      "\"x, the input\",\"say \"\"hi\"\"\", \" z \" \n\"1\",2, \"3\" \n");
  EXPECT_THAT(t.columns, ElementsAre("x, the input", "say \"hi\"", "z"));
  EXPECT_THAT(t.values, ElementsAre(1, 2, 3));
}

TEST(ParseCsvTest, QuotedEmptyHeaderIsRejected) {
  ExpectInvalid("x,\"\"\n1,2\n", {"line 1", "column 2", "empty name"});
}

TEST(ParseCsvTest, QuotedNumberWithEscapedQuoteIsNotANumber) {
  ExpectInvalid("x\n\"1\"\"\"\n", {"line 2", "column \"x\"", "not a number"});
}

TEST(ParseCsvTest, UnterminatedQuote) {
  ExpectInvalid("x,y\n1,\"2\n3,4\n",
                {"line 2", "column \"y\"", "never closed"});
  ExpectInvalid("\"x,y\n1,2\n", {"line", "never closed"});
}

TEST(ParseCsvTest, TextAfterClosingQuote) {
  ExpectInvalid("x,y\n1,\"2\"3\n", {"line 2", "column \"y\"", "closing quote"});
}

TEST(ParseCsvTest, QuoteInsideUnquotedField) {
  ExpectInvalid("x,y\"z\n1,2\n", {"line 1", "quote"});
  ExpectInvalid("x,y\n1,2\"\n", {"line 2", "column \"y\"", "quote"});
}

TEST(ParseCsvTest, LineBreakInsideQuotedCell) {
  // Quoted fields may span lines, but a number never holds a line break; the
  // error names the line where the record starts and escapes the break.
  ExpectInvalid("x,y\n1,\"2\n3\"\n",
                {"line 2", "column \"y\"", "\"2\\n3\" is not a number"});
}

TEST(ParseCsvTest, LineNumbersCountPhysicalLines) {
  ExpectInvalid("x,y\n1,2\n3,4\n5,oops\n",
                {"line 4", "column \"y\"", "\"oops\" is not a number"});
  ExpectInvalid("x,y\r\n1,2\r\n3,4\r\n5,oops\r\n", {"line 4"});
  // A line break inside a quoted column name is rejected.
  ExpectInvalid("\"x\",\"y\n\"\n1,2\n", {"line 1", "control character"});
}

TEST(ParseCsvTest, RaggedRowTooMany) {
  ExpectInvalid("x,y\n1,2\n3,4,5\n", {"line 3", "3 fields", "header has 2"});
}

TEST(ParseCsvTest, RaggedRowTooFew) {
  ExpectInvalid("x,y,z\n1,2,3\n4,5\n",
                {"line 3", "only 2 fields", "header has 3", "\"z\""});
}

TEST(ParseCsvTest, TrailingCommaIsExplained) {
  ExpectInvalid("x,y\n1,2,\n", {"line 2", "trailing comma"});
}

TEST(ParseCsvTest, NonNumericCell) {
  ExpectInvalid("x1,x2\n1,2\n3,abc\n",
                {"line 3, column \"x2\": \"abc\" is not a number"});
}

TEST(ParseCsvTest, PartiallyNumericCell) {
  ExpectInvalid("x\n1.0abc\n", {"line 2", "column \"x\"", "\"1.0abc\""});
  ExpectInvalid("x\n1e\n", {"line 2", "\"1e\""});
  ExpectInvalid("x\n1 2\n", {"line 2", "\"1 2\""});
  ExpectInvalid("x\n0x10\n", {"line 2", "\"0x10\""});
  ExpectInvalid("x\n+\n", {"line 2", "\"+\""});
  ExpectInvalid("x\n+-1\n", {"line 2", "\"+-1\""});
}

TEST(ParseCsvTest, SemicolonSeparatorHint) {
  ExpectInvalid("x;y\n1;2\n", {"line 2", "separated by commas"});
}

TEST(ParseCsvTest, NanAndInfinityAreRejected) {
  for (const std::string cell : {"nan", "NaN", "-nan", "inf", "-inf",
                                 "Infinity", "INF", "1e400", "-1e999"}) {
    SCOPED_TRACE(cell);
    ExpectInvalid("x,y\n1," + cell + "\n",
                  {"line 2", "column \"y\"", "\"" + cell + "\""});
  }
}

TEST(ParseCsvTest, NumberFormats) {
  const Table t = ParseOk(
      "a,b,c,d,e,f,g,h\n"
      "+1.5,.5,5.,-0,1E3,1e-400,4.9e-324,-1.7976931348623157e308\n");
  ASSERT_EQ(t.values.size(), 8u);
  EXPECT_EQ(t.values[0], 1.5);
  EXPECT_EQ(t.values[1], 0.5);
  EXPECT_EQ(t.values[2], 5);
  EXPECT_EQ(t.values[3], 0);
  EXPECT_TRUE(std::signbit(t.values[3]));
  EXPECT_EQ(t.values[4], 1000);
  EXPECT_EQ(t.values[5], 0);  // underflow rounds to zero
  EXPECT_GT(t.values[6], 0);
  EXPECT_EQ(t.values[7], -1.7976931348623157e308);
}

TEST(ParseCsvTest, UnderflowWithoutExponentRoundsToZero) {
  const Table t = ParseOk("x\n-0." + std::string(400, '0') + "1\n");
  EXPECT_EQ(t.values[0], 0);
  ExpectInvalid("x\n1" + std::string(400, '0') + "\n", {"range"});
}

TEST(ParseCsvTest, ExactDecimalRoundTrip) {
  const Table t = ParseOk("x\n0.1\n0.30000000000000004\n");
  EXPECT_EQ(t.values[0], 0.1);
  EXPECT_EQ(t.values[1], 0.30000000000000004);
}

TEST(ParseCsvTest, EmptyFile) {
  ExpectInvalid("", {"empty"});
  ExpectInvalid("\xEF\xBB\xBF", {"empty"});
}

TEST(ParseCsvTest, HeaderOnly) {
  ExpectInvalid("x,y", {"no data rows"});
  ExpectInvalid("x,y\n", {"no data rows"});
  ExpectInvalid("x,y\r\n\r\n", {"no data rows"});
}

TEST(ParseCsvTest, DuplicateColumnNames) {
  ExpectInvalid("a,b,a\n1,2,3\n",
                {"line 1", "\"a\"", "twice", "columns 1 and 3"});
  // Duplicates after trimming count too.
  ExpectInvalid("a, a\n1,2\n", {"line 1", "\"a\"", "twice"});
}

TEST(ParseCsvTest, EmptyColumnName) {
  ExpectInvalid("a,,c\n1,2,3\n", {"line 1", "column 2", "empty name"});
  ExpectInvalid("a,b,\n1,2,3\n", {"line 1", "column 3", "empty name"});
}

TEST(ParseCsvTest, EmptyCell) {
  ExpectInvalid("a,b\n1,\n", {"line 2", "column \"b\"", "empty cell"});
  ExpectInvalid("a,b\n1,2\n,3\n", {"line 3", "column \"a\"", "empty cell"});
  ExpectInvalid("a,b\n1, \"\" \n", {"line 2", "column \"b\"", "empty cell"});
}

TEST(ParseCsvTest, TooManyColumns) {
  CsvLimits limits;
  limits.max_columns = 3;
  ExpectInvalid("a,b,c,d\n1,2,3,4\n", {"line 1", "more than 3 columns"},
                limits);
  EXPECT_TRUE(ParseCsv("a,b,c\n1,2,3\n", limits).ok());
}

TEST(ParseCsvTest, TooManyBytes) {
  CsvLimits limits;
  limits.max_bytes = 10;
  ExpectInvalid("abc,def\n1,2\n", {"12 bytes", "limit is 10"}, limits);
  EXPECT_TRUE(ParseCsv("a,b\n1,2\n", limits).ok());
}

TEST(ParseCsvTest, NulByte) {
  ExpectInvalid(std::string("x,y\n1,2\n3,\0\n", 11), {"line 3", "NUL"});
}

TEST(ParseCsvTest, BinaryGarbage) {
  std::string garbage;
  uint32_t state = 12345;
  for (int i = 0; i < 4096; ++i) {
    state = state * 1664525u + 1013904223u;
    garbage.push_back(static_cast<char>(state >> 24));
  }
  const absl::StatusOr<Table> table = ParseCsv(garbage);
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(table.status().message()), HasSubstr("line "));
}

TEST(ParseCsvTest, GarbageWithoutNulIsReportedPrintably) {
  const absl::StatusOr<Table> table = ParseCsv("x\n\x01\xff\xfe\n");
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(table.status().message()),
              HasSubstr("\"\\x01\\xff\\xfe\" is not a number"));
}

TEST(ParseCsvTest, HeaderNameMustBeUtf8) {
  ExpectInvalid("ok,\xC3\x28\n1,2\n", {"line 1", "column 2", "UTF-8"});
  const Table t = ParseOk("temp\xC3\xA9rature,y\n1,2\n");
  EXPECT_EQ(t.columns[0], "temp\xC3\xA9rature");
}

TEST(ParseCsvTest, HeaderNameControlCharacter) {
  ExpectInvalid("\"a\nb\",c\n1,2\n", {"line 1", "control character"});
}

TEST(ParseCsvTest, StrayCarriageReturn) {
  ExpectInvalid("x,y\r1,2\r3,4\r", {"line 1", "carriage return"});
}

TEST(ParseCsvTest, LongCellIsShortenedInMessage) {
  const absl::StatusOr<Table> table =
      ParseCsv("x\n" + std::string(10000, 'z') + "\n");
  ASSERT_FALSE(table.ok());
  EXPECT_LT(table.status().message().size(), 200u);
  EXPECT_THAT(std::string(table.status().message()), HasSubstr("..."));
}

TEST(ParseCsvTest, LargeTable) {
  // 20,000 rows x 5 columns, checked value by value.
  std::string text = "a,b,c,d,e\n";
  for (int r = 0; r < 20000; ++r) {
    for (int c = 0; c < 5; ++c) {
      absl::StrAppend(&text, c ? "," : "",
                      absl::StrFormat("%.17g", r * 0.25 - c * 1e-3));
    }
    text += '\n';
  }
  const Table t = ParseOk(text);
  ASSERT_EQ(t.rows, 20000);
  ASSERT_EQ(t.values.size(), 100000u);
  for (int r = 0; r < 20000; r += 997) {
    for (int c = 0; c < 5; ++c) {
      EXPECT_EQ(t.at(r, c), r * 0.25 - c * 1e-3);
    }
  }
}

TEST(ColumnIndicesTest, FindsColumnsInGivenOrder) {
  const Table t = ParseOk("a,b,c\n1,2,3\n");
  const absl::StatusOr<std::vector<int64_t>> indices =
      ColumnIndices(t, {"c", "a"});
  ASSERT_TRUE(indices.ok()) << indices.status();
  EXPECT_THAT(*indices, ElementsAre(2, 0));
}

TEST(ColumnIndicesTest, UnknownColumnListsKnownOnes) {
  const Table t = ParseOk("a,b,c\n1,2,3\n");
  const absl::StatusOr<std::vector<int64_t>> indices =
      ColumnIndices(t, {"a", "z"});
  ASSERT_FALSE(indices.ok());
  EXPECT_EQ(indices.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(indices.status().message()),
              HasSubstr("unknown column \"z\""));
  EXPECT_THAT(std::string(indices.status().message()),
              HasSubstr("\"a\", \"b\", \"c\""));
}

TEST(ColumnIndicesTest, LongColumnListIsShortened) {
  std::string header, row;
  for (int i = 0; i < 100; ++i) {
    absl::StrAppend(&header, i ? "," : "", "col", i);
    absl::StrAppend(&row, i ? "," : "", i);
  }
  const Table t = ParseOk(header + "\n" + row + "\n");
  const absl::StatusOr<std::vector<int64_t>> indices = ColumnIndices(t, {"z"});
  ASSERT_FALSE(indices.ok());
  EXPECT_THAT(std::string(indices.status().message()), HasSubstr("80 more"));
}

TEST(SelectColumnsTest, CopiesRowsAndColumns) {
  const Table t = ParseOk("a,b,c\n1,2,3\n4,5,6\n7,8,9\n");
  EXPECT_THAT(SelectColumns(t, {2, 0}, {1, 2}), ElementsAre(8, 9, 2, 3));
  EXPECT_THAT(SelectColumns(t, {1}, {0}), ElementsAre(4));
  EXPECT_TRUE(SelectColumns(t, {}, {0, 1}).empty());
}

}  // namespace
}  // namespace evonas
