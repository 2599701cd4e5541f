#pragma once
// The --regs file of `vmmu maps` and `vmmu translate` (x86-maps.md): JSON holding a `regs`
// object with cr0 / cr3 / cr4 / efer (and rflags, pkru) written as in a walk case, and an
// optional `maxphyaddr` beside it (default 52). A walk case file itself serves. Unlike a walk
// case, CR3 is required: without it there is no table to read.

#include <string>

#include "vmmu/core/result.hpp"
#include "vmmu/x86/guest_paging.hpp"
#include "vmmu/x86/registers.hpp"

namespace vmmu::cli {

struct GuestRegs {
  x86::Registers regs;
  x86::CpuModel cpu;
};

// Reads and checks the regs file at `path`.
// Errors (one line naming the file and the field): unreadable file, not JSON, no `regs`
// object, `regs` without cr3, a register name x86-walk.md does not list, a register that is
// not a number or too wide (pkru: 32 bits),
// maxphyaddr outside 32..52.
Result<GuestRegs, std::string> read_guest_regs(const std::string& path);

}  // namespace vmmu::cli
