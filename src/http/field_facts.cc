#include "http/field_facts.h"

#include "http/syntax.h"

namespace fulcrum::http::detail {
namespace {

void read_transfer_encoding(std::string_view value, FieldFacts* f) {
  for_each_list_element(value, [f](std::string_view element) {
    const size_t semicolon = element.find(';');
    const std::string_view coding = trim_ows(element.substr(0, semicolon));
    if (!is_token(coding)) {
      f->coding_invalid = true;
      return false;
    }
    f->last_chunked = iequals(coding, "chunked");
    if (!f->last_chunked) {
      f->other_coding = true;
      return true;
    }
    ++f->chunked_count;
    if (semicolon != std::string_view::npos) {
      f->coding_invalid = true;  // chunked takes no parameters
      return false;
    }
    return true;
  });
}

void read_connection(std::string_view value, FieldFacts* f, std::vector<std::string_view>* tokens) {
  for_each_list_element(value, [f, tokens](std::string_view option) {
    if (!is_token(option)) {
      f->connection_invalid = true;
      return false;
    }
    tokens->push_back(option);
    f->close = f->close || iequals(option, "close");
    f->keep_alive = f->keep_alive || iequals(option, "keep-alive");
    f->connection_upgrade = f->connection_upgrade || iequals(option, "upgrade");
    return true;
  });
}

}  // namespace

void collect_field_facts(std::span<const Header> fields, FieldFacts* facts,
                         std::vector<std::string_view>* connection_tokens) {
  FieldFacts& f = *facts;
  for (const Header& h : fields) {
    if (iequals(h.name, "host")) {
      ++f.host_count;
      f.host = h.value;
    } else if (iequals(h.name, "content-length")) {
      ++f.length_count;
      if (!parse_content_length(h.value, &f.content_length)) f.length_valid = false;
    } else if (iequals(h.name, "transfer-encoding")) {
      f.transfer_encoding = true;
      if (h.value.empty()) f.last_chunked = false;
      read_transfer_encoding(h.value, &f);
    } else if (iequals(h.name, "connection")) {
      read_connection(h.value, &f, connection_tokens);
    } else if (iequals(h.name, "upgrade")) {
      if (!f.has_upgrade) f.upgrade = h.value;
      f.has_upgrade = true;
    } else if (iequals(h.name, "expect")) {
      f.expect_continue = f.expect_continue || iequals(h.value, "100-continue");
    }
  }
}

bool check_framing(const FieldFacts& f, uint8_t version_minor, ParseError* error) {
  if (f.length_count > 1) {
    *error = ParseError{400, "repeated Content-Length"};
    return false;
  }
  if (!f.length_valid) {
    *error = ParseError{400, "invalid Content-Length"};
    return false;
  }
  if (!f.transfer_encoding) return true;
  if (f.coding_invalid) {
    *error = ParseError{400, "invalid Transfer-Encoding"};
  } else if (version_minor == 0) {
    *error = ParseError{400, "Transfer-Encoding in HTTP/1.0"};
  } else if (f.length_count > 0) {
    *error = ParseError{400, "Content-Length with Transfer-Encoding"};
  } else if (!f.last_chunked) {
    *error = ParseError{400, "final transfer coding is not chunked"};
  } else if (f.chunked_count > 1) {
    *error = ParseError{400, "chunked applied more than once"};
  } else if (f.other_coding) {
    *error = ParseError{501, "transfer coding not implemented"};
  } else {
    return true;
  }
  return false;
}

}  // namespace fulcrum::http::detail
