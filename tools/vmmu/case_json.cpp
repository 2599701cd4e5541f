#include "case_json.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "json_writer.hpp"

namespace vmmu::cli {

std::string_view to_string(CaseErrorKind kind) {
  switch (kind) {
    case CaseErrorKind::Syntax: return "syntax";
    case CaseErrorKind::Missing: return "missing";
    case CaseErrorKind::WrongType: return "wrong type";
    case CaseErrorKind::BadNumber: return "bad number";
    case CaseErrorKind::OutOfRange: return "out of range";
    case CaseErrorKind::BadValue: return "bad value";
    case CaseErrorKind::Misaligned: return "misaligned";
    case CaseErrorKind::Overlap: return "overlap";
    case CaseErrorKind::UnknownKey: return "unknown key";
  }
  return "?";
}

std::string to_string(const CaseError& error) {
  if (error.field.empty()) return error.detail;
  return fmt::format("field '{}': {}", error.field, error.detail);
}

std::string field_path(std::string_view at, std::string_view key) {
  if (at.empty()) return std::string(key);
  return fmt::format("{}.{}", at, key);
}

std::string element_path(std::string_view at, std::size_t index) { return fmt::format("{}[{}]", at, index); }

namespace {

CaseError error(CaseErrorKind kind, std::string field, std::string detail) {
  return CaseError{kind, std::move(field), std::move(detail)};
}

}  // namespace

std::string_view type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: return "a string";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "an integer";
    case Json::value_t::number_float: return "a fractional or oversized number";
    case Json::value_t::binary: return "binary";
    case Json::value_t::discarded: return "discarded";
  }
  return "?";
}

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Result<std::uint64_t, CaseError> parse_hex(std::string_view s, std::string_view field) {
  if (s.size() < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X')) {
    return Unexpected{error(CaseErrorKind::BadNumber, std::string(field),
                            fmt::format("{} is not a hex string like \"0x1f\"", quoted(s)))};
  }
  std::uint64_t value = 0;
  for (char c : s.substr(2)) {
    const int d = hex_digit(c);
    if (d < 0) {
      return Unexpected{error(CaseErrorKind::BadNumber, std::string(field),
                              fmt::format("{} is not a hex string like \"0x1f\"", quoted(s)))};
    }
    if ((value >> 60) != 0) {
      return Unexpected{error(CaseErrorKind::OutOfRange, std::string(field),
                              fmt::format("{} does not fit in 64 bits", quoted(s)))};
    }
    value = (value << 4) | static_cast<std::uint64_t>(d);
  }
  return value;
}

std::string json_error_text(const std::exception& e) {
  // nlohmann's message: "[json.exception.parse_error.101] parse error at line 1, column 44: ...".
  std::string_view what = e.what();
  if (auto close = what.find("] "); close != std::string_view::npos) what.remove_prefix(close + 2);
  return valid_utf8(what);
}

bool is_informational_key(std::string_view key) {
  return key == "notes" || key == "comment" || key.substr(0, 2) == "x-";
}

Status<CaseError> check_keys(const Json& object, std::string_view at, std::span<const std::string_view> known) {
  for (const auto& [key, value] : object.items()) {
    if (is_informational_key(key) || std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string names;
    for (std::string_view k : known) names += fmt::format("{}\"{}\"", names.empty() ? "" : ", ", k);
    return Unexpected{error(CaseErrorKind::UnknownKey, field_path(at, key),
                            fmt::format("is not a field of this format (known: {}; informational: \"notes\", "
                                        "\"comment\", \"x-...\")",
                                        names))};
  }
  return {};
}

Status<CaseError> for_each_object(const Json& array, std::string_view at, std::string_view example,
                                  const std::function<Status<CaseError>(const Json&, const std::string&)>& visit) {
  for (std::size_t i = 0; i < array.size(); ++i) {
    const std::string path = element_path(at, i);
    if (!array[i].is_object()) {
      return Unexpected{error(CaseErrorKind::WrongType, path, fmt::format("must be an object like {}", example))};
    }
    if (auto s = visit(array[i], path); !s) return s;
  }
  return {};
}

Result<std::uint64_t, CaseError> to_number(const Json& value, std::string_view field, std::uint64_t max) {
  std::uint64_t n = 0;
  if (value.is_string()) {
    auto parsed = parse_hex(value.get_ref<const std::string&>(), field);
    if (!parsed) return Unexpected{parsed.error()};
    n = *parsed;
  } else if (value.is_number_unsigned()) {
    n = value.get<std::uint64_t>();
  } else if (value.is_number_integer()) {
    // nlohmann stores non-negative literals as unsigned, so this one is negative.
    return Unexpected{error(CaseErrorKind::BadNumber, std::string(field),
                            fmt::format("{} is negative", value.get<std::int64_t>()))};
  } else {
    return Unexpected{error(CaseErrorKind::BadNumber, std::string(field),
                            fmt::format("must be a hex string like \"0x1f\" or an integer below 2^64, not {}",
                                        type_name(value)))};
  }
  if (n > max) {
    return Unexpected{error(CaseErrorKind::OutOfRange, std::string(field),
                            fmt::format("{} is above the largest allowed value {}", hex(n), hex(max)))};
  }
  return n;
}

const Json* find_member(const Json& object, std::string_view key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

Result<const Json*, CaseError> require_member(const Json& object, std::string_view at, std::string_view key) {
  const Json* member = find_member(object, key);
  if (member == nullptr) return Unexpected{error(CaseErrorKind::Missing, field_path(at, key), "is required")};
  return member;
}

Result<std::uint64_t, CaseError> read_number(const Json& object, std::string_view at, std::string_view key,
                                             std::uint64_t max) {
  auto member = require_member(object, at, key);
  if (!member) return Unexpected{member.error()};
  return to_number(**member, field_path(at, key), max);
}

Result<std::uint64_t, CaseError> read_number_or(const Json& object, std::string_view at, std::string_view key,
                                                std::uint64_t fallback, std::uint64_t max) {
  const Json* member = find_member(object, key);
  if (member == nullptr) return fallback;
  return to_number(*member, field_path(at, key), max);
}

Result<bool, CaseError> read_bool_or(const Json& object, std::string_view at, std::string_view key, bool fallback) {
  const Json* member = find_member(object, key);
  if (member == nullptr) return fallback;
  if (!member->is_boolean()) {
    return Unexpected{error(CaseErrorKind::WrongType, field_path(at, key),
                            fmt::format("must be true or false, not {}", type_name(*member)))};
  }
  return member->get<bool>();
}

Result<std::string_view, CaseError> read_string(const Json& object, std::string_view at, std::string_view key) {
  auto member = require_member(object, at, key);
  if (!member) return Unexpected{member.error()};
  if (!(*member)->is_string()) {
    return Unexpected{error(CaseErrorKind::WrongType, field_path(at, key),
                            fmt::format("must be a string, not {}", type_name(**member)))};
  }
  return std::string_view((*member)->get_ref<const std::string&>());
}

Result<const Json*, CaseError> read_array(const Json& object, std::string_view at, std::string_view key) {
  auto member = require_member(object, at, key);
  if (!member) return Unexpected{member.error()};
  if (!(*member)->is_array()) {
    return Unexpected{error(CaseErrorKind::WrongType, field_path(at, key),
                            fmt::format("must be an array, not {}", type_name(**member)))};
  }
  return *member;
}

Result<const Json*, CaseError> read_object_or_null(const Json& object, std::string_view at, std::string_view key) {
  const Json* member = find_member(object, key);
  if (member == nullptr) return member;
  if (!member->is_object()) {
    return Unexpected{error(CaseErrorKind::WrongType, field_path(at, key),
                            fmt::format("must be an object, not {}", type_name(*member)))};
  }
  return member;
}

Result<AccessKind, CaseError> read_op(const Json& access, std::string_view at, bool allow_fetch) {
  auto op = read_string(access, at, "op");
  if (!op) return Unexpected{op.error()};
  auto kind = parse_access_kind(*op);
  if (!kind || (!allow_fetch && *kind == AccessKind::Fetch)) {
    return Unexpected{error(CaseErrorKind::BadValue, field_path(at, "op"),
                            fmt::format("{} is not {}", quoted(*op),
                                        allow_fetch ? "\"read\", \"write\" or \"fetch\"" : "\"read\" or \"write\""))};
  }
  return *kind;
}

Status<CaseError> check_format(const Json& doc, std::string_view format, std::string_view arch) {
  auto f = read_string(doc, "", "format");
  if (!f) return Unexpected{f.error()};
  if (*f != format) {
    return Unexpected{error(CaseErrorKind::BadValue, "format",
                            fmt::format("{} is not \"{}\"", quoted(*f), format))};
  }
  if (find_member(doc, "arch") == nullptr) return {};
  auto a = read_string(doc, "", "arch");
  if (!a) return Unexpected{a.error()};
  if (*a != arch) {
    return Unexpected{error(CaseErrorKind::BadValue, "arch",
                            fmt::format("{} does not match format {} (expected \"{}\")", quoted(*a), format, arch))};
  }
  return {};
}

std::string quoted(std::string_view s) {
  constexpr std::size_t kMax = 40;
  std::string out = Json(std::string(s.substr(0, kMax))).dump(-1, ' ', true, Json::error_handler_t::replace);
  if (s.size() > kMax) out += "...";
  return out;
}

std::string hex(std::uint64_t value) { return fmt::format("{:#x}", value); }

}  // namespace vmmu::cli
