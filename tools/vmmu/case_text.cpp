// parse_case_text(): one case's text as a JSON document, read through nlohmann's SAX interface
// so that memory chunks' word lists never become DOM nodes. A 60 MB chunk of hex strings as a
// DOM costs about 17 times its size (a node and a heap string per word); here each word is
// checked and appended to one binary value as the parser passes it.
//
//   {"memory": [ {"gpa": "0x1000", "u64": ["0x2007", ...]} ]}
//    depth 1       depth 2 (memory)  depth 3 (a chunk) ─► word list: binary, 8 bytes a word

#include <cstring>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "case_json.hpp"
#include "memory_chunks.hpp"

namespace vmmu::cli {
namespace {

class CaseSax : public nlohmann::json_sax<Json> {
 public:
  bool null() override { return scalar(Json(nullptr)); }
  bool boolean(bool b) override { return scalar(Json(b)); }
  bool number_integer(number_integer_t n) override { return scalar(Json(n)); }
  bool number_unsigned(number_unsigned_t n) override { return scalar(Json(n)); }
  bool number_float(number_float_t n, const string_t& /*text*/) override { return scalar(Json(n)); }
  bool binary(binary_t& b) override { return scalar(Json::binary(std::move(b))); }

  bool string(string_t& s) override {
    if (!words_) return value(Json(std::move(s)));
    auto n = parse_hex(s, "");
    if (!n) return fail_word(n.error());
    return word(*n);
  }

  bool start_object(std::size_t /*elements*/) override {
    if (words_) return fail_word_type(Json::object());
    return open(Json::object());
  }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    stack_.pop_back();
    return true;
  }

  bool start_array(std::size_t /*elements*/) override {
    if (words_) return fail_word_type(Json::array());
    // A chunk's word list: the array under "u64"/"u32"/"u8" of an object in the top-level "memory".
    if (stack_.size() == 3 && memory_ == stack_[1] && stack_[2]->is_object()) {
      if (const ChunkWidth* w = chunk_width(key_)) {
        width_ = w;
        chunk_ = stack_[1]->size() - 1;
        words_ = put(Json::binary({}));
        return true;
      }
    }
    if (!open(Json::array())) return false;
    if (stack_.size() == 2 && stack_[0]->is_object() && key_ == "memory") memory_ = stack_.back();
    return true;
  }
  bool end_array() override {
    if (words_) {
      words_ = nullptr;
      return true;
    }
    stack_.pop_back();
    return true;
  }

  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& e) override {
    failure_ = CaseError{CaseErrorKind::Syntax, "", fmt::format("not valid JSON: {}", json_error_text(e))};
    return false;
  }

  Json root;
  std::optional<CaseError> failure_;

 private:
  // Places `v` where the parser is: the root, the next array element, or the pending key.
  Json* put(Json&& v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    Json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    Json& slot = top[key_];
    slot = std::move(v);
    return &slot;
  }
  bool value(Json&& v) {
    put(std::move(v));
    return true;
  }
  // A value other than a string: a word (a JSON integer) inside a word list, else a DOM node.
  bool scalar(Json&& v) {
    if (!words_) return value(std::move(v));
    auto n = to_number(v, "", width_->max);
    if (!n) return fail_word(n.error());
    return word(*n);
  }
  // Open containers stay put: a parent gets no new member while its child is open.
  bool open(Json&& v) {
    stack_.push_back(put(std::move(v)));
    return true;
  }

  std::string word_path() const {
    const std::size_t index = words_->get_binary().size() / 8;
    return element_path(field_path(element_path("memory", chunk_), width_->key), index);
  }
  bool word(std::uint64_t n) {
    if (n > width_->max) {
      auto e = to_number(Json(n), word_path(), width_->max);
      return fail_word(e.error());
    }
    auto& bytes = words_->get_binary();
    std::uint8_t raw[8];
    std::memcpy(raw, &n, sizeof raw);
    bytes.insert(bytes.end(), raw, raw + sizeof raw);
    return true;
  }
  bool fail_word(CaseError e) {
    e.field = word_path();
    failure_ = std::move(e);
    return false;
  }
  bool fail_word_type(const Json& v) {
    auto e = to_number(v, word_path());
    return fail_word(e.error());
  }

  std::vector<Json*> stack_;  // the open objects and arrays, outermost first
  std::string key_;           // the key of the next value in the open object
  const Json* memory_ = nullptr;  // the top-level "memory" array, once open
  Json* words_ = nullptr;         // the word list being read, or nullptr
  const ChunkWidth* width_ = nullptr;
  std::size_t chunk_ = 0;
};

}  // namespace

Result<Json, CaseError> parse_case_text(std::string_view text) {
  CaseSax sax;
  const bool ok = Json::sax_parse(text.begin(), text.end(), &sax);
  if (sax.failure_) return Unexpected{std::move(*sax.failure_)};
  if (!ok) return Unexpected{CaseError{CaseErrorKind::Syntax, "", "not valid JSON"}};
  if (!sax.root.is_object()) {
    return Unexpected{CaseError{CaseErrorKind::Syntax, "",
                                fmt::format("a case must be a JSON object, not {}", type_name(sax.root))}};
  }
  return std::move(sax.root);
}

}  // namespace vmmu::cli
