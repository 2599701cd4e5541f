#pragma once
// What the guest-kernel phases (fork, rewrite-tables, cr3-switch) share: per vCPU a guest
// kernel booted on frames of the vCPU's share, a log of what went wrong, and the seeded
// values they write and check.

#include <cstdint>
#include <string>
#include <vector>

#include "guest_mm.hpp"
#include "phase.hpp"

namespace vmmu::sim {

struct KernelVcpu {
  GuestMm mm;
  std::vector<Gpa> frames;  // the first pages of the vCPU's share, directly mapped
  KernelLog log;
};

// Boots a GuestMm on every vCPU with `frames` frames of its share and a table pool of its own
// for `spaces` address spaces of `user_pages` pages. Error: a line naming what failed.
Result<std::vector<KernelVcpu>, std::string> boot_kernels(PhaseContext& c, std::uint64_t frames, unsigned spaces,
                                                          std::uint64_t user_pages);

// Runs body(vCPU index, its kernel) on every vCPU's thread, as one progress step.
template <class Body>
void on_every_vcpu(PhaseContext& c, std::vector<KernelVcpu>& kernels, Body&& body) {
  const auto n = static_cast<unsigned>(kernels.size());
  c.progress.step("", n);
  c.progress.parallel(n, [&](unsigned v) {
    body(v, kernels[v]);
    c.progress.add(1);
  });
}

// Puts every vCPU's failures in the report ("vCPU 1: ...", the first few of each).
void settle_kernels(PhaseContext& c, const std::vector<KernelVcpu>& kernels);

// The user gva of page i.
inline Gva user_page(std::uint64_t i) { return GuestMm::kUserBase + i * kPageSize; }

// A seeded value for (what, vCPU, i): what the phases write and expect back.
inline std::uint64_t kernel_value(const PhaseContext& c, std::uint64_t what, unsigned vcpu, std::uint64_t i) {
  return mix64(c.seed() ^ mix64((what << 48) ^ (std::uint64_t{vcpu} << 32) ^ i));
}

// A uniform double in [0, 1) from 53 bits of `r`.
inline double unit_interval(std::uint64_t r) { return static_cast<double>(r >> 11) * 0x1.0p-53; }

}  // namespace vmmu::sim
