#pragma once
// `vmmu maps` and `vmmu translate` (docs formats/x86-maps.md): a real guest seen through its
// memory image (raw, or an ELF core from QEMU's dump-guest-memory) and its paging registers.
//
//   vmmu maps --memory FILE --regs FILE [--json] [--merge]
//   vmmu translate --memory FILE --regs FILE [--op read|write|fetch] [--cpl 0|3] GVA...

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "vmmu/core/access.hpp"

namespace vmmu::cli {

struct MapsOptions {
  std::string memory;  // image file
  std::string regs;    // regs file
  bool json = false;
  bool merge = false;
  std::uint64_t limit = 0;  // stop after this many leaves (0: none)
  bool progress = false;    // a progress line on `err` (when it is a terminal)
  // Output waits in a buffer at most this long (or until 64 KiB) before it reaches `out`.
  std::chrono::milliseconds flush_after{200};
};

// Lists every mapping to `out` as it goes (buffered, handed on every 64 KiB or `flush_after`);
// the count of paths ended by reserved bits to `err`. Tables that point back at themselves
// hold up to 512^4 leaves: `limit` stops the listing (one line on `err` says so). Returns the exit status: 0, or 2 after one line on `err` naming
// the problem (unreadable or malformed image or regs file).
int run_maps(const MapsOptions& options, std::ostream& out, std::ostream& err);

struct TranslateOptions {
  std::string memory;
  std::string regs;
  std::string op = "read";
  unsigned cpl = 0;
  std::vector<std::string> gvas;
};

// Walks each GVA (never writing the image) and prints one vmmu-walk-result/1 object whose
// `results` hold one result per GVA, in order. Returns 0, or 2 after one line on `err`
// (unreadable image or regs, a GVA that is not a number or too wide for the mode, bad op/cpl).
int run_translate(const TranslateOptions& options, std::ostream& out, std::ostream& err);

void register_maps_command(CLI::App& app);
void register_translate_command(CLI::App& app);

}  // namespace vmmu::cli
