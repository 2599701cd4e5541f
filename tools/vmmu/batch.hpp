#pragma once
// Case files and the answer protocol every case-reading command shares (walk, s2walk, ...):
//
//  - A file ending in ".jsonl" is a batch: one case per line. Any other file is one case.
//  - "-" is standard input, read as one case.
//  - Each case is answered with one line on the output: a compact JSON result, or for a
//    malformed case {"error":"FILE[:LINE]: field 'accesses[3].gva': ..."}; an unreadable file
//    is answered with one such error line too, so output lines follow the inputs in order.
//  - Every malformed case and unreadable file also gives one line on the error stream,
//    "vmmu walk: FILE[:LINE]: field '...': ...", and makes the exit status 2 (exit_status.hpp).

#include <cstddef>
#include <functional>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>

#include "case_json.hpp"
#include "exit_status.hpp"

namespace vmmu::cli {

// Where a case came from: its file and, in a batch, its line (1-based; 0 for a single case).
struct CaseLocation {
  std::string_view file;
  std::size_t line = 0;
};

// "FILE" or "FILE:LINE".
std::string to_string(const CaseLocation& where);

enum class InputErrorKind : std::uint8_t { CannotOpen, IsDirectory, ReadFailed };

struct InputError {
  InputErrorKind kind = InputErrorKind::CannotOpen;
  std::string file;
  std::string detail;  // the system's reason
};

// "FILE: cannot open: No such file or directory".
std::string to_string(const InputError& error);

// True for batch files (name ends in ".jsonl").
bool is_batch_path(std::string_view path);

// Reads the whole file at `path` ("-": standard input).
// Errors: CannotOpen, IsDirectory, ReadFailed.
Result<std::string, InputError> read_file(const std::string& path);

// Calls visit(where, text) for each case of a file's contents: the whole text, or each line of
// a batch (a final newline does not start another case; "\r\n" line ends are accepted; an empty
// line is a case, and a malformed one, so result lines stay aligned with input lines).
void for_each_case(std::string_view file, std::string_view contents, bool batch,
                   const std::function<void(const CaseLocation&, std::string_view text)>& visit);

// Answers one parsed case: the compact JSON result (no newline), or why it is malformed.
using CaseAnswerer = std::function<Result<std::string, CaseError>(const Json& doc)>;

struct AnswerCounts {
  std::size_t answered = 0;
  std::size_t malformed = 0;
  std::size_t unreadable_files = 0;
  [[nodiscard]] int exit_status() const { return malformed == 0 && unreadable_files == 0 ? kExitOk : kExitBadInput; }
};

// Runs the protocol above over `paths` in order. `command` names the command in error lines
// ("walk" -> "vmmu walk: ...").
// Errors: none thrown; malformed cases and unreadable files are counted and reported.
AnswerCounts answer_cases(std::span<const std::string> paths, const CaseAnswerer& answer, std::ostream& out,
                          std::ostream& err, std::string_view command);

// The protocol's one loop, for every way of printing answers: each case of `paths`, in order,
// is answered by answer(doc, where); answered(where, result) gets each answer, failed(where,
// message) each malformed case and unreadable file (a file's `where` has line 0), which are
// also named on `err` ("vmmu COMMAND: ...") and counted.
using LocatedAnswerer = std::function<Result<std::string, CaseError>(const Json& doc, const CaseLocation& where)>;
using CaseOutput = std::function<void(const CaseLocation& where, const std::string& text)>;
AnswerCounts visit_answers(std::span<const std::string> paths, const LocatedAnswerer& answer,
                           const CaseOutput& answered, const CaseOutput& failed, std::ostream& err,
                           std::string_view command);

// The answer to one case's text (parse + answer), as answer_cases() would print it: the result,
// or the error message naming `where` and the field.
Result<std::string, std::string> answer_case_text(std::string_view text, const CaseLocation& where,
                                                  const CaseAnswerer& answer);

// {"error":"MESSAGE"}: the line of a malformed case in a batch.
std::string error_line(std::string_view message);

}  // namespace vmmu::cli
