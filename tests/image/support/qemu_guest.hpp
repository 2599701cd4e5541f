#pragma once
// Test helper: boots a small Linux guest under QEMU (TCG, no root file system: the kernel sets
// up its page tables, finds no root and panics, and waits there), stops it, and collects what
// the QEMU monitor says about it -- `info registers`, `info tlb`, `info mem` -- and an ELF core
// from `dump-guest-memory`. The monitor is a unix socket the helper drives itself: no expect,
// socat or python needed.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace vmmu::image::testing {

struct QemuGuestSetup {
  std::string qemu;    // path of qemu-system-x86_64
  std::string kernel;  // a bzImage (e.g. /boot/vmlinuz-*)
};

// qemu-system-x86_64 from $VMMU_QEMU or $PATH, and a kernel from $VMMU_GUEST_KERNEL or the
// newest readable /boot/vmlinuz-*. nullopt with `why` set when either is missing.
std::optional<QemuGuestSetup> find_qemu_guest(std::string& why);

struct QemuGuestState {
  std::string registers;  // `info registers` output, '\r' removed
  std::string tlb;        // `info tlb`
  std::string mem;        // `info mem`
  std::string dump_path;  // the ELF core written by dump-guest-memory
  std::string console;    // the guest's serial console
  double boot_seconds = 0;  // from start until the guest was stopped
};

// Boots the guest in `dir`, waits until its console shows `ready_line` (or `max_wait`
// passes), stops it and collects its state, then makes QEMU quit.
// Errors: throws std::runtime_error naming the step that failed (QEMU did not start, the
// monitor did not answer, the dump was not written).
QemuGuestState run_qemu_guest(const QemuGuestSetup& setup, const std::string& dir, const std::string& ready_line,
                              std::chrono::seconds max_wait);

}  // namespace vmmu::image::testing
