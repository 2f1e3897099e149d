#include "client/table.h"

#include <gtest/gtest.h>

namespace fulcrum::client {
namespace {

TEST(Table, AlignsColumnsWithoutTrailingSpaces) {
  Table t({"NAME", "ADDRESS", "STATUS"});
  t.add_row({"web", "127.0.0.1", "active"});
  t.add_row({"api-internal", "::1", ""});
  EXPECT_EQ(t.render(),
            "NAME           ADDRESS     STATUS\n"
            "web            127.0.0.1   active\n"
            "api-internal   ::1         -\n");
}

TEST(Table, HeaderOnlyAndIndent) {
  Table t({"A", "B"});
  EXPECT_EQ(t.rows(), 0u);
  EXPECT_EQ(t.render(2), "  A   B\n");
}

TEST(Table, ShortRowsArePaddedLongRowsCut) {
  Table t({"A", "B"});
  t.add_row({"x"});
  t.add_row({"1", "2", "3"});
  EXPECT_EQ(t.render(), "A   B\nx   -\n1   2\n");
}

TEST(Table, WidthCountsCodePoints) {
  EXPECT_EQ(display_width("0–100"), 5u);
  Table t({"RANGE", "X"});
  t.add_row({"0–100", "y"});
  EXPECT_EQ(t.render(), "RANGE   X\n0–100   y\n");
}

}  // namespace
}  // namespace fulcrum::client
