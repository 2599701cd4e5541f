#pragma once
// Reading the JSON case files of docs' formats/ (x86-walk, x86-ept-walk, arm64-s2-walk,
// x86-maps): the pieces every command shares.
//
//  - CaseError: why a case is malformed, naming the field by its JSON path
//    ("accesses[3].gva"), so each command prints one clear line.
//  - Numbers are hex strings ("0x1f") or non-negative JSON integers, range-checked.
//  - Fields the formats do not name are errors, except informational ones (check_keys); a
//    named field of the wrong type is an error.
//  - parse_case_text() reads memory chunks' word lists as a stream (case_text.cpp), so a case
//    with a 60 MB chunk costs a few times its size, not a DOM node per word.
//
// Every reader takes the JSON path of the object it reads from (`at`, "" for the case itself)
// and reports errors against `at` + "." + key.

#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "json_types.hpp"
#include "vmmu/core/access.hpp"
#include "vmmu/core/result.hpp"

namespace vmmu::cli {

enum class CaseErrorKind : std::uint8_t {
  Syntax,      // not JSON, or not a JSON object
  Missing,     // a required field is absent
  WrongType,   // a field of the wrong JSON type
  BadNumber,   // not a hex string or a non-negative integer
  OutOfRange,  // a number too large for its field
  BadValue,    // a value the field does not allow (an unknown op, cpl 1, another format)
  Misaligned,  // a memory chunk not aligned to its word width
  Overlap,     // two memory chunks share bytes, or a chunk wraps past the top of memory
  UnknownKey,  // a field the format does not name (a misspelt key must not change the case)
};

std::string_view to_string(CaseErrorKind kind);

// Why a case is malformed. `field` is the JSON path of the offending field ("" for the case as
// a whole, e.g. bad JSON); `detail` says what is wrong with it.
struct CaseError {
  CaseErrorKind kind = CaseErrorKind::BadValue;
  std::string field;
  std::string detail;
};

// "field 'accesses[3].gva': must be below 2^32 ..." (or just the detail when no field).
std::string to_string(const CaseError& error);

// Path of `key` inside the object at `at`: "regs" + "cr0" -> "regs.cr0".
std::string field_path(std::string_view at, std::string_view key);
// Path of element `index` of the array at `at`: "accesses" + 3 -> "accesses[3]".
std::string element_path(std::string_view at, std::size_t index);

// Parses one case: valid JSON whose top level is an object. The word list of each chunk of the
// top-level "memory" array ("u64", "u32", "u8") is read as it streams past and kept as one
// binary value of 8-byte little-endian words, each already checked against its width.
// Errors: Syntax (position and reason), and a word's BadNumber / OutOfRange naming it
// ("memory[0].u32[5]").
Result<Json, CaseError> parse_case_text(std::string_view text);

// "an object", "a string", ...: a JSON value's type, for error messages.
std::string_view type_name(const Json& value);

// "parse error at line 1, column 44: syntax error while parsing value - ...": the position and
// reason of a JSON parser's error, without the library's exception name and number.
std::string json_error_text(const std::exception& e);

// Informational fields every case format allows anywhere: "notes", "comment", "x-*".
bool is_informational_key(std::string_view key);

// Checks that every member of `object` (found at `at`) is one of `known` or informational.
// Errors: UnknownKey, naming the first unknown field and the known ones.
Status<CaseError> check_keys(const Json& object, std::string_view at, std::span<const std::string_view> known);

// Calls visit(element, path) for each element of `array` (found at `at`), in order; each must
// be an object, and `example` shows one in the error ({"gva": "0x1000", "op": "read", "cpl": 0}).
// Errors: WrongType for an element that is not an object, or the first error visit returns.
Status<CaseError> for_each_object(const Json& array, std::string_view at, std::string_view example,
                                  const std::function<Status<CaseError>(const Json&, const std::string&)>& visit);

// `s` as a hex string "0x..." (any case, leading zeros allowed).
// Errors: BadNumber, OutOfRange (beyond 64 bits), naming `field`.
Result<std::uint64_t, CaseError> parse_hex(std::string_view s, std::string_view field);

// `value` as a number: a hex string "0x..." (any case, leading zeros allowed) or a
// non-negative JSON integer, at most `max`.
// Errors: BadNumber (other strings, negative or fractional numbers, other types),
// OutOfRange (above `max`, or beyond 64 bits).
Result<std::uint64_t, CaseError> to_number(const Json& value, std::string_view field,
                                           std::uint64_t max = std::numeric_limits<std::uint64_t>::max());

// The member `key` of `object`, or nullptr when absent. `object` must be a JSON object.
const Json* find_member(const Json& object, std::string_view key);

// The member `key` of `object`, which must be present.
// Errors: Missing.
Result<const Json*, CaseError> require_member(const Json& object, std::string_view at, std::string_view key);

// Required number field. Errors: Missing, BadNumber, OutOfRange.
Result<std::uint64_t, CaseError> read_number(const Json& object, std::string_view at, std::string_view key,
                                             std::uint64_t max = std::numeric_limits<std::uint64_t>::max());
// Optional number field, `fallback` when absent. Errors: BadNumber, OutOfRange.
Result<std::uint64_t, CaseError> read_number_or(const Json& object, std::string_view at, std::string_view key,
                                                std::uint64_t fallback,
                                                std::uint64_t max = std::numeric_limits<std::uint64_t>::max());
// Optional boolean field (JSON true/false only), `fallback` when absent. Errors: WrongType.
Result<bool, CaseError> read_bool_or(const Json& object, std::string_view at, std::string_view key, bool fallback);
// Required string field. Errors: Missing, WrongType.
Result<std::string_view, CaseError> read_string(const Json& object, std::string_view at, std::string_view key);
// Required array field. Errors: Missing, WrongType.
Result<const Json*, CaseError> read_array(const Json& object, std::string_view at, std::string_view key);
// Optional object field (nullptr when absent). Errors: WrongType.
Result<const Json*, CaseError> read_object_or_null(const Json& object, std::string_view at, std::string_view key);

// The `op` of an access: "read", "write" or "fetch"; `allow_fetch` false limits it to read/write
// (arm64 stage 2). Errors: Missing, WrongType, BadValue.
Result<AccessKind, CaseError> read_op(const Json& access, std::string_view at, bool allow_fetch = true);

// Checks the case's "format" (required, exactly `format`) and "arch" (optional; when present it
// must be `arch`). Errors: Missing, WrongType, BadValue.
Status<CaseError> check_format(const Json& doc, std::string_view format, std::string_view arch);

// A string from the input as a JSON string literal, cut after 40 characters ("...") so one bad
// field cannot flood an error line; invalid UTF-8 is replaced.
std::string quoted(std::string_view s);

// "0x" followed by lower-case hex digits, no padding: the formats' way of writing numbers.
std::string hex(std::uint64_t value);

// The "accesses" array every walk case has: each element an object with only the fields
// `known`, read by read_one(element, path) into an access (`example` shows one in errors).
// Errors: Missing, WrongType (the array or an element), and read_one's.
template <class Access, class ReadOne>
Result<std::vector<Access>, CaseError> read_accesses(const Json& doc, std::span<const std::string_view> known,
                                                     std::string_view example, ReadOne&& read_one) {
  auto array = read_array(doc, "", "accesses");
  if (!array) return Unexpected{array.error()};
  std::vector<Access> accesses;
  accesses.reserve((*array)->size());
  auto read = for_each_object(**array, "accesses", example, [&](const Json& a, const std::string& at) -> Status<CaseError> {
    if (auto k = check_keys(a, at, known); !k) return k;
    Result<Access, CaseError> one = read_one(a, at);
    if (!one) return Unexpected{one.error()};
    accesses.push_back(*one);
    return {};
  });
  if (!read) return Unexpected{read.error()};
  return accesses;
}

}  // namespace vmmu::cli
