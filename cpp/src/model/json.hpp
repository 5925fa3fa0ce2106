// A small, strict JSON reader for the model file's header (RFC 8259; no extensions). Written for untrusted
// input: every read is bounds-checked, nesting is limited, and errors are spikeops::Error with the offset.
// The header is a few kilobytes, so a plain tree of values is all that is needed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace spikeops {
namespace json {

class Value {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_number() const { return kind_ == Kind::kNumber; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }
  // A number written without fraction or exponent that fits in int64.
  bool is_integer() const { return kind_ == Kind::kNumber && is_integer_; }

  bool as_bool() const { return bool_; }
  double as_double() const { return number_; }
  int64_t as_int() const { return integer_; }
  const std::string& as_string() const { return string_; }
  const std::vector<Value>& items() const { return items_; }
  const std::vector<std::pair<std::string, Value>>& members() const { return members_; }

  // The member named `key`, or nullptr (objects only).
  const Value* find(const std::string& key) const;

  static const char* kind_name(Kind kind);

 private:
  friend class Parser;
  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  bool is_integer_ = false;
  double number_ = 0.0;
  int64_t integer_ = 0;
  std::string string_;
  std::vector<Value> items_;
  std::vector<std::pair<std::string, Value>> members_;
};

// Parses exactly one JSON value spanning `text` (surrounding whitespace allowed). Duplicate object keys are
// an error (they would make the header ambiguous). Throws spikeops::Error("<what>: ... at byte N").
Value parse(const char* text, std::size_t size, const std::string& what);

}  // namespace json
}  // namespace spikeops
