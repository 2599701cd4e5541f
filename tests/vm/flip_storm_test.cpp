// The flip storm (issue 4, "done means"): a long-mode vCPU with its memory faulted in flips
// CR4.SMEP (or CR0.WP, CR4.PGE) 100,000 times, touching memory between flips. With
// RootPolicy::Keep the TDP tables never notice: zero zaps, zero roots created, zero TDP
// faults. With RootPolicy::Rebuild (KVM before 6.4) every role change drops the root, so the
// same storm builds a root and faults the working set in again per flip -- except for PGE,
// which is no role bit and only flushes the guest TLB under both policies.

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>

#include "vm/support/guest_vm.hpp"

namespace vmmu::vm::test {
namespace {

constexpr unsigned kFlips = 100'000;
constexpr unsigned kRebuildFlips = 20'000;  // a root and five faults per flip: enough to show it
constexpr unsigned kPages = 512;  // 2 MiB working set, 4K guest pages

struct Storm {
  const char* name;
  Register reg;
  std::uint64_t bit;
  bool role_bit;  // does flipping it change the cpu role?
};

struct Delta {
  std::uint64_t zaps = 0, roots_created = 0, roots_invalidated = 0, tdp_flushes = 0, tdp_faults = 0,
                vcpu_faults = 0, root_loads = 0, root_unloads = 0, role_refreshes = 0, tlb_flushes = 0;
  double ns_per_flip = 0;
};

Delta run_storm(const Storm& s, tdp::RootPolicy policy, unsigned flips) {
  GuestVmOptions o;
  o.config.tdp.policies.roots = policy;
  GuestVm g(o);
  g.map(kData, kDataGpa, kPages * kPageSize);
  Vcpu& v = g.add_vcpu();
  std::array<std::byte, 8> buf{};
  for (unsigned p = 0; p < kPages; ++p) {
    EXPECT_TRUE(v.write(kData + p * kPageSize, buf));  // everything faulted in, A/D set
  }
  const tdp::TdpStats t0 = g.tdp().stats();
  const tdp::FaultStats f0 = v.tdp_mmu()->stats();
  const std::uint64_t loads0 = v.tdp_mmu()->root_loads();
  const VcpuStats v0 = v.stats();

  const auto start = std::chrono::steady_clock::now();
  for (unsigned i = 0; i < flips; ++i) {
    const std::uint64_t value = value_of(v.registers(), s.reg) ^ s.bit;
    if (s.reg == Register::Cr0) {
      v.set_cr0(value);
    } else {
      v.set_cr4(value);
    }
    const Gva at = kData + (i * 7919u % kPages) * kPageSize + (i % 512) * 8;
    if (i % 2 == 0) {
      EXPECT_TRUE(v.read(at, buf));
    } else {
      EXPECT_TRUE(v.write(at, buf));
    }
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;

  const tdp::TdpStats t1 = g.tdp().stats();
  const tdp::FaultStats f1 = v.tdp_mmu()->stats();
  const VcpuStats v1 = v.stats();
  Delta d;
  d.zaps = t1.zaps - t0.zaps;
  d.roots_created = t1.roots_created - t0.roots_created;
  d.roots_invalidated = t1.roots_invalidated - t0.roots_invalidated;
  d.tdp_flushes = t1.tlb_flushes - t0.tlb_flushes;
  d.tdp_faults = t1.faults.faults - t0.faults.faults;
  d.vcpu_faults = f1.faults - f0.faults;
  d.root_loads = v.tdp_mmu()->root_loads() - loads0;
  d.root_unloads = v1.root_unloads - v0.root_unloads;
  d.role_refreshes = v1.role_refreshes - v0.role_refreshes;
  d.tlb_flushes = v1.tlb_flushes - v0.tlb_flushes;
  d.ns_per_flip = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()) / flips;
  std::printf("[ storm    ] %-9s %-7s flips %u: zaps %llu, roots created %llu, TDP faults %llu, root loads %llu, "
              "guest TLB flushes %llu, %.0f ns per flip+access\n",
              s.name, policy == tdp::RootPolicy::Keep ? "keep" : "rebuild", flips,
              static_cast<unsigned long long>(d.zaps), static_cast<unsigned long long>(d.roots_created),
              static_cast<unsigned long long>(d.tdp_faults), static_cast<unsigned long long>(d.root_loads),
              static_cast<unsigned long long>(d.tlb_flushes), d.ns_per_flip);
  return d;
}

class FlipStorm : public ::testing::TestWithParam<Storm> {};

TEST_P(FlipStorm, KeepLeavesTheTdpTablesAlone) {
  const Storm& s = GetParam();
  const Delta d = run_storm(s, tdp::RootPolicy::Keep, kFlips);
  EXPECT_EQ(d.zaps, 0u);
  EXPECT_EQ(d.roots_created, 0u);
  EXPECT_EQ(d.roots_invalidated, 0u);
  EXPECT_EQ(d.tdp_flushes, 0u);
  EXPECT_EQ(d.tdp_faults, 0u);
  EXPECT_EQ(d.vcpu_faults, 0u);
  EXPECT_EQ(d.root_loads, 0u);
  EXPECT_EQ(d.root_unloads, 0u);
  // ... while the guest side did what the architecture asks.
  EXPECT_EQ(d.role_refreshes, s.role_bit ? kFlips : 0u);
  const std::uint64_t flushes = s.bit == x86::cr4::PGE::mask    ? kFlips       // every toggle
                                : s.bit == x86::cr4::SMEP::mask ? kFlips / 2  // only 0 -> 1
                                                                : 0;          // CR0.WP: never
  EXPECT_EQ(d.tlb_flushes, flushes);
}

TEST_P(FlipStorm, RebuildRebuildsARootPerRoleChange) {
  const Storm& s = GetParam();
  const Delta d = run_storm(s, tdp::RootPolicy::Rebuild, kRebuildFlips);
  EXPECT_EQ(d.zaps, 0u);
  if (!s.role_bit) {
    EXPECT_EQ(d.roots_created, 0u);
    EXPECT_EQ(d.tdp_faults, 0u);
    return;
  }
  EXPECT_EQ(d.root_unloads, kRebuildFlips);
  EXPECT_EQ(d.roots_created, kRebuildFlips);  // the last reference goes with each unload
  EXPECT_EQ(d.root_loads, kRebuildFlips);
  EXPECT_GE(d.tdp_faults, kRebuildFlips);  // at least the touched page, in every new root
  EXPECT_EQ(d.tlb_flushes, kRebuildFlips);  // a new root flushes the guest TLB each time
}

INSTANTIATE_TEST_SUITE_P(Bits, FlipStorm,
                         ::testing::Values(Storm{"cr4.smep", Register::Cr4, x86::cr4::SMEP::mask, true},
                                           Storm{"cr0.wp", Register::Cr0, x86::cr0::WP::mask, true},
                                           Storm{"cr4.pge", Register::Cr4, x86::cr4::PGE::mask, false}),
                         [](const ::testing::TestParamInfo<Storm>& p) {
                           std::string n = p.param.name;
                           for (char& c : n) c = c == '.' ? '_' : c;
                           return n;
                         });

}  // namespace
}  // namespace vmmu::vm::test
