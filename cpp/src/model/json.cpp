#include "model/json.hpp"

#include <charconv>
#include <cmath>
#include <string>

#include "spikeops/error.hpp"

namespace spikeops {
namespace json {

const Value* Value::find(const std::string& key) const {
  for (const auto& m : members_) {
    if (m.first == key) return &m.second;
  }
  return nullptr;
}

const char* Value::kind_name(Kind kind) {
  switch (kind) {
    case Kind::kNull: return "null";
    case Kind::kBool: return "a boolean";
    case Kind::kNumber: return "a number";
    case Kind::kString: return "a string";
    case Kind::kArray: return "an array";
    case Kind::kObject: return "an object";
  }
  return "?";
}

namespace {
constexpr int kMaxDepth = 32;
}  // namespace

class Parser {
 public:
  Parser(const char* text, std::size_t size, const std::string& what) : p_(text), size_(size), what_(what) {}

  Value parse_document() {
    skip_space();
    Value v = parse_value(0);
    skip_space();
    if (pos_ != size_) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(what_ + ": invalid JSON: " + why + " at byte " + std::to_string(pos_));
  }
  bool at_end() const { return pos_ >= size_; }
  char peek() const { return at_end() ? '\0' : p_[pos_]; }
  void expect(char c) {
    if (at_end() || p_[pos_] != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  void skip_space() {
    while (!at_end() && (p_[pos_] == ' ' || p_[pos_] == '\t' || p_[pos_] == '\n' || p_[pos_] == '\r')) ++pos_;
  }
  void expect_word(const char* word) {
    for (const char* w = word; *w; ++w) {
      if (at_end() || p_[pos_] != *w) fail(std::string("expected '") + word + "'");
      ++pos_;
    }
  }

  Value parse_value(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
    if (at_end()) fail("unexpected end of text");
    Value v;
    switch (peek()) {
      case '{': parse_object(v, depth); break;
      case '[': parse_array(v, depth); break;
      case '"': v.kind_ = Value::Kind::kString; v.string_ = parse_string(); break;
      case 't': expect_word("true"); v.kind_ = Value::Kind::kBool; v.bool_ = true; break;
      case 'f': expect_word("false"); v.kind_ = Value::Kind::kBool; v.bool_ = false; break;
      case 'n': expect_word("null"); v.kind_ = Value::Kind::kNull; break;
      default: parse_number(v); break;
    }
    return v;
  }

  void parse_object(Value& v, int depth) {
    v.kind_ = Value::Kind::kObject;
    expect('{');
    skip_space();
    if (peek() == '}') { ++pos_; return; }
    while (true) {
      skip_space();
      if (peek() != '"') fail("expected a string key");
      std::string key = parse_string();
      if (v.find(key) != nullptr) fail("duplicate key \"" + key + "\"");
      skip_space();
      expect(':');
      skip_space();
      Value item = parse_value(depth + 1);
      v.members_.emplace_back(std::move(key), std::move(item));
      skip_space();
      if (peek() == ',') { ++pos_; continue; }
      expect('}');
      return;
    }
  }

  void parse_array(Value& v, int depth) {
    v.kind_ = Value::Kind::kArray;
    expect('[');
    skip_space();
    if (peek() == ']') { ++pos_; return; }
    while (true) {
      skip_space();
      v.items_.push_back(parse_value(depth + 1));
      skip_space();
      if (peek() == ',') { ++pos_; continue; }
      expect(']');
      return;
    }
  }

  unsigned parse_hex4() {
    if (size_ - pos_ < 4) fail("truncated \\u escape");
    unsigned code = 0;
    for (int i = 0; i < 4; ++i) {
      char c = p_[pos_++];
      code <<= 4;
      if (c >= '0' && c <= '9') code |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') code |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') code |= unsigned(c - 'A' + 10);
      else fail("bad hex digit in \\u escape");
    }
    return code;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  std::string parse_string() {
    expect('"');
    std::string out;
    while (true) {
      if (at_end()) fail("unterminated string");
      char c = p_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') { out += c; continue; }
      if (at_end()) fail("unterminated escape");
      char e = p_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = parse_hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // a high surrogate must be followed by a low one
            if (size_ - pos_ < 2 || p_[pos_] != '\\' || p_[pos_ + 1] != 'u') fail("unpaired surrogate");
            pos_ += 2;
            unsigned low = parse_hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("unpaired surrogate");
          }
          append_utf8(out, cp);
          break;
        }
        default: fail(std::string("bad escape '\\") + e + "'");
      }
    }
  }

  void parse_number(Value& v) {
    const std::size_t start = pos_;
    bool integral = true;
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++pos_;
    } else {
      fail("expected a value");
    }
    if (peek() == '.') {
      integral = false;
      ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) fail("expected a digit after '.'");
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) fail("expected a digit in the exponent");
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    // from_chars is locale-independent, unlike strtod.
    const char* first = p_ + start;
    const char* last = p_ + pos_;
    v.kind_ = Value::Kind::kNumber;
    auto r = std::from_chars(first, last, v.number_);
    if (r.ec == std::errc::result_out_of_range) {
      pos_ = start;
      fail("number out of range");
    }
    if (r.ec != std::errc() || r.ptr != last) {
      pos_ = start;
      fail("malformed number");
    }
    if (integral) {
      auto ri = std::from_chars(first, last, v.integer_);
      v.is_integer_ = ri.ec == std::errc() && ri.ptr == last;  // false when it does not fit in int64
    }
  }

  const char* p_;
  std::size_t size_;
  std::size_t pos_ = 0;
  const std::string& what_;
};

Value parse(const char* text, std::size_t size, const std::string& what) {
  Parser parser(text, size, what);
  return parser.parse_document();
}

}  // namespace json
}  // namespace spikeops
