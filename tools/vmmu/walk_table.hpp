#pragma once
// `vmmu walk --table`: the walks of x86 and EPT cases as a readable, aligned table,
//
//   case                 mode   address     op     cpl  result
//   long4-basic          long4  0x400123    read   3    gpa 0x7123 (4K)
//   long4-basic          long4  0x800000    write  3    #PF 0x7 P|W|U
//   ept-example          ept4   0x7         fetch  -    EPT violation 0x184 (fetch; entries r=0 w=0 x=0)

#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "case_json.hpp"

namespace vmmu::cli {

struct WalkTableRow {
  std::string case_name;
  std::string mode;     // paging mode ("long4", "pae", ...) or EPT walk length ("ept4")
  std::string address;  // gva (x86) or gpa (EPT)
  std::string op;
  std::string cpl;      // "0", "3", or "-" for EPT
  std::string result;   // "gpa 0x7123 (4K)", "#PF 0x7 P|W|U", "error: ..."
};

// One row per access of the case `doc`, named `case_name`.
// Errors: the case is malformed (as answer_walk_case).
Result<std::vector<WalkTableRow>, CaseError> walk_table_rows(const Json& doc, std::string_view case_name);

// Prints a header and the rows, each column padded to its widest cell.
void print_walk_table(std::ostream& out, std::span<const WalkTableRow> rows);

// The rows of one case, named `case_name`. Errors: the case is malformed.
using CaseTableRows = Result<std::vector<WalkTableRow>, CaseError> (*)(const Json& doc, std::string_view case_name);

// `vmmu walk --table` and `vmmu s2walk --table`: the rows of every case of `files` (the
// protocol of batch.hpp; a malformed case or unreadable file is an "error: ..." row and a line
// on `err`, "vmmu COMMAND: ..."), printed as one table. Returns the exit status (exit_status.hpp).
int print_case_table(std::span<const std::string> files, CaseTableRows rows_of, std::ostream& out, std::ostream& err,
                     std::string_view command);

}  // namespace vmmu::cli
