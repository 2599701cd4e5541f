#pragma once
// Reading the JSON case files of docs' formats/ (x86-walk, x86-ept-walk, arm64-s2-walk,
// x86-maps): the pieces every command shares.
//
//  - CaseError: why a case is malformed, naming the field by its JSON path
//    ("accesses[3].gva"), so each command prints one clear line.
//  - Numbers are hex strings ("0x1f") or non-negative JSON integers, range-checked.
//  - Fields the formats do not name are ignored; a named field of the wrong type is an error.
//
// Every reader takes the JSON path of the object it reads from (`at`, "" for the case itself)
// and reports errors against `at` + "." + key.

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "vmmu/core/access.hpp"
#include "vmmu/core/result.hpp"

namespace vmmu::cli {

using Json = nlohmann::json;

enum class CaseErrorKind : std::uint8_t {
  Syntax,      // not JSON, or not a JSON object
  Missing,     // a required field is absent
  WrongType,   // a field of the wrong JSON type
  BadNumber,   // not a hex string or a non-negative integer
  OutOfRange,  // a number too large for its field
  BadValue,    // a value the field does not allow (an unknown op, cpl 1, another format)
  Misaligned,  // a memory chunk not aligned to its word width
  Overlap,     // two memory chunks share bytes, or a chunk wraps past the top of memory
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

// Parses one case: valid JSON whose top level is an object.
// Errors: Syntax (with nlohmann's position and reason).
Result<Json, CaseError> parse_case_text(std::string_view text);

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

}  // namespace vmmu::cli
