#pragma once
// JsonWriter: compact JSON written straight into a string, keys in the order they are written.
// The result formats fix their key order ("gva", "ok", "gpa", ...), which a JSON object type
// with sorted keys would lose; writing directly is also what keeps a 100k-access batch fast.
// The output is byte-for-byte what nlohmann::ordered_json::dump() prints.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vmmu::cli {

// `s` with every byte that is not part of well-formed UTF-8 replaced by U+FFFD, so text taken
// from the input (an error message quoting it) can be written as JSON.
std::string valid_utf8(std::string_view s);

class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  // The next value belongs to `name` (inside an object).
  JsonWriter& key(std::string_view name);

  JsonWriter& string(std::string_view s);  // escaped as JSON requires; invalid UTF-8 -> U+FFFD
  JsonWriter& boolean(bool b);
  JsonWriter& integer(std::uint64_t n);
  JsonWriter& signed_integer(std::int64_t n);  // e.g. arm64 level -1
  JsonWriter& hex(std::uint64_t n);  // a hex string, "0x1f"

  // The text written so far; complete once every begin_* has its end_*.
  [[nodiscard]] const std::string& str() const { return out_; }
  [[nodiscard]] std::string take() { return std::move(out_); }

 private:
  void before_value();
  void append_escaped(std::string_view s);

  std::string out_;
  std::vector<bool> first_;  // per open object/array: nothing written in it yet
  bool after_key_ = false;
};

}  // namespace vmmu::cli
