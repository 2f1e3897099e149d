// Plain-text tables for terminals: a header row and rows of cells, columns left-aligned and
// separated by three spaces, no trailing spaces. Widths count UTF-8 code points, so "0–100" is
// five columns wide. Pure. [any]
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fulcrum::client {

class Table {
 public:
  explicit Table(std::vector<std::string> columns);

  // A row with fewer cells than columns is padded with empty cells; extra cells are dropped.
  // An empty cell is shown as "-" so that columns stay readable.
  void add_row(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }

  // The header and every row, each line ending with '\n'. `indent` spaces start every line.
  std::string render(size_t indent = 0) const;

 private:
  std::vector<std::string> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// The number of UTF-8 code points of `text` (bytes that are not continuation bytes).
size_t display_width(std::string_view text);

}  // namespace fulcrum::client
