// CSV after RFC 4180: quoted fields, doubled quotes, separators and newlines inside quotes.
#include "core/core.h"

namespace atax {

std::vector<CsvRow> parse_csv(std::string_view text, const std::string& name) {
  std::vector<CsvRow> rows;
  CsvRow row;
  std::string field;
  bool in_quotes = false, field_started = false;
  int64_t line = 1, quote_line = 0;
  size_t i = 0;
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") i = 3;  // BOM
  auto end_field = [&] {
    row.push_back(std::move(field));
    field.clear();
    field_started = false;
  };
  auto end_row = [&] {
    end_field();
    if (!(row.size() == 1 && row[0].empty())) rows.push_back(std::move(row));
    row.clear();
  };
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"' && !field_started) {
      in_quotes = true;
      field_started = true;
      quote_line = line;
    } else if (c == ',') {
      end_field();
    } else if (c == '\r') {
      // ignored: \r\n line ends
    } else if (c == '\n') {
      ++line;
      end_row();
    } else {
      field += c;
      field_started = true;
    }
  }
  if (in_quotes)
    throw Error("unterminated quoted field", name, "the file may be truncated", quote_line);
  if (field_started || !field.empty() || !row.empty()) end_row();
  return rows;
}

std::vector<CsvRow> read_csv(const fs::path& path) { return parse_csv(read_maybe_gzip(path), path.string()); }

std::string csv_escape(std::string_view field) {
  bool quote = field.find_first_of(",\"\n\r") != std::string_view::npos ||
               (!field.empty() && (field.front() == ' ' || field.back() == ' '));
  if (!quote) return std::string(field);
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string to_csv(const std::vector<CsvRow>& rows) {
  std::string out;
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) {
      if (i) out += ',';
      out += csv_escape(r[i]);
    }
    out += '\n';
  }
  return out;
}

CsvTable CsvTable::parse(std::string_view text, const std::string& name) {
  CsvTable t;
  t.name_ = name;
  auto rows = parse_csv(text, name);
  if (rows.empty()) throw Error("empty CSV, expected a header row", name);
  t.header_ = rows[0];
  for (size_t i = 1; i < rows.size(); ++i) {
    if (rows[i].size() != t.header_.size())
      throw Error("row " + std::to_string(i + 1) + " has " + std::to_string(rows[i].size()) +
                      " fields, the header has " + std::to_string(t.header_.size()),
                  name);
    t.rows_.push_back(std::move(rows[i]));
  }
  return t;
}

CsvTable CsvTable::read(const fs::path& path) { return parse(read_maybe_gzip(path), path.string()); }

bool CsvTable::has_column(const std::string& col) const {
  return std::find(header_.begin(), header_.end(), col) != header_.end();
}

const std::string& CsvTable::at(size_t row, const std::string& col) const {
  auto it = std::find(header_.begin(), header_.end(), col);
  if (it == header_.end())
    throw Error("no column \"" + col + "\" (columns: " + join(header_, ", ") + ")", name_);
  return rows_.at(row).at(static_cast<size_t>(it - header_.begin()));
}

}  // namespace atax
