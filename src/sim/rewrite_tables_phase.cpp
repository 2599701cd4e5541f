// rewrite-tables: each vCPU's guest rewrites its own page tables while it uses them. Every
// round its kernel rewrites each page's leaf through the vCPU (seeded: to another frame, to
// the other permission, unmapped, or left), flushes as the architecture requires (INVLPG of
// each page rewritten, or one CR3 reload), and the process then accesses every page: a read
// must find the tag of the frame now mapped (or fault where unmapped), a write must fault
// exactly where the page is read-only.
//
// Under shadow the leaf tables are shadowed, so their rewrites are emulated writes, or (with
// vm.shadow.unsync) make them unsync until the flush syncs them: what this phase stresses.

#include "kernel_phase.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::sim {
namespace {

enum Written : std::uint64_t { kTag = 5, kOp = 6, kScratch = 7 };
constexpr std::uint64_t kNone = ~std::uint64_t{0};  // a page not mapped

struct RewriteCounts {
  std::uint64_t rewrites = 0, remaps = 0, protects = 0, unmaps = 0, reads = 0, writes = 0, faults = 0;
};

class Rewrite {
 public:
  Rewrite(PhaseContext& c, const RewriteTablesPhase& p, unsigned v, KernelVcpu& k) : c_(c), p_(p), v_(v), k_(k) {}

  void run(RewriteCounts& n) {
    if (auto s = start(); !s) return k_.log.fail(s.error());
    for (std::uint32_t r = 0; r < p_.rounds; ++r) {
      if (auto s = rewrite(r, n); !s) return k_.log.fail(s.error());
      access(r, n);
    }
  }

 private:
  [[nodiscard]] std::uint64_t frames() const { return 2 * p_.pages; }
  [[nodiscard]] std::uint64_t tag(std::uint64_t f) const { return kernel_value(c_, kTag, v_, f); }

  // Every frame gets its tag (first word); page i maps frame i, writable.
  Status<std::string> start() {
    for (std::uint64_t f = 0; f < frames(); ++f) {
      if (auto s = k_.mm.write_phys(k_.frames[f], tag(f)); !s) return s;
    }
    for (std::uint64_t i = 0; i < p_.pages; ++i) {
      auto at = k_.mm.leaf_address(k_.mm.first_root(), user_page(i));
      if (!at) return Unexpected{at.error()};
      leaf_.push_back(*at);
      frame_.push_back(i);
      writable_.push_back(true);
      if (auto s = k_.mm.write_phys(*at, GuestMm::user_leaf(k_.frames[i], true)); !s) return s;
    }
    return {};
  }

  Status<std::string> rewrite(std::uint32_t round, RewriteCounts& n) {
    for (std::uint64_t i = 0; i < p_.pages; ++i) {
      const std::uint64_t r = kernel_value(c_, kOp, v_, (std::uint64_t{round} << 32) | i);
      switch (r % 4) {
        case 0:  // another frame (mapped again if it was not)
          frame_[i] = frame_[i] == kNone ? i : (frame_[i] + 1 + (r >> 8) % (frames() - 1)) % frames();
          ++n.remaps;
          break;
        case 1:  // the other permission
          if (frame_[i] == kNone) frame_[i] = i;
          writable_[i] = !writable_[i];
          ++n.protects;
          break;
        case 2:  // unmapped (mapped again if it was not)
          frame_[i] = frame_[i] == kNone ? i : kNone;
          ++n.unmaps;
          break;
        default:
          continue;
      }
      const std::uint64_t leaf = frame_[i] == kNone ? 0 : GuestMm::user_leaf(k_.frames[frame_[i]], writable_[i]);
      if (auto s = k_.mm.write_phys(leaf_[i], leaf); !s) return s;
      ++n.rewrites;
      if (p_.flush == RewriteFlush::Invlpg) k_.mm.vcpu().invlpg(user_page(i));
    }
    if (p_.flush == RewriteFlush::Cr3) k_.mm.vcpu().set_cr3(k_.mm.first_root().raw());
    return {};
  }

  // Every page as the tables say now.
  void access(std::uint32_t round, RewriteCounts& n) {
    for (std::uint64_t i = 0; i < p_.pages; ++i) {
      const bool mapped = frame_[i] != kNone;
      auto got = k_.mm.read_user(user_page(i));
      ++n.reads;
      if (!mapped) {
        if (got || got.error().kind != vm::GuestExitKind::PageFault || (got.error().error_code & x86::pferr::kPresent))
          k_.log.fail(fmt::format("round {}: read of unmapped page {}: {}", round, i,
                                  got ? fmt::format("read {:#x}, expected a not-present #PF", *got)
                                      : vm::to_string(got.error())));
        else
          ++n.faults;
        continue;
      }
      if (!got) {
        k_.log.fail(fmt::format("round {}: read of page {}: {}", round, i, vm::to_string(got.error())));
        continue;
      }
      if (*got != tag(frame_[i]))
        k_.log.fail(fmt::format("round {}: page {} reads {:#x}, the tag of frame {} is {:#x} (a stale mapping?)",
                                round, i, *got, frame_[i], tag(frame_[i])));
      // The second word is scratch: the frame's tag stays.
      auto w = k_.mm.write_user(user_page(i) + 8, kernel_value(c_, kScratch, v_, i));
      ++n.writes;
      constexpr std::uint32_t kProtection = x86::pferr::kPresent | x86::pferr::kWrite | x86::pferr::kUser;
      if (writable_[i] && !w)
        k_.log.fail(fmt::format("round {}: write of writable page {}: {}", round, i, vm::to_string(w.error())));
      else if (!writable_[i] && (w || w.error().kind != vm::GuestExitKind::PageFault ||
                                 w.error().error_code != kProtection))
        k_.log.fail(fmt::format("round {}: write of read-only page {}: {}", round, i,
                                w ? std::string("went through, expected a protection #PF")
                                  : vm::to_string(w.error())));
      else if (!writable_[i])
        ++n.faults;
    }
  }

  PhaseContext& c_;
  const RewriteTablesPhase& p_;
  unsigned v_;
  KernelVcpu& k_;
  std::vector<Gpa> leaf_;             // where page i's leaf entry lives
  std::vector<std::uint64_t> frame_;  // the frame page i maps (index into frames), or kNone
  std::vector<bool> writable_;
};

}  // namespace

Status<std::string> run_rewrite_tables(PhaseContext& c, const RewriteTablesPhase& p) {
  const unsigned n = c.vm.vcpus();
  auto kernels = boot_kernels(c, 2 * p.pages, 1, p.pages);
  if (!kernels) return Unexpected{kernels.error()};
  std::vector<RewriteCounts> counts(n);
  const StatsSnapshot before = c.vm.snapshot();
  on_every_vcpu(c, *kernels, [&](unsigned v, KernelVcpu& k) { Rewrite(c, p, v, k).run(counts[v]); });
  const StatsSnapshot after = c.vm.snapshot();
  RewriteCounts all;
  for (const RewriteCounts& x : counts) {
    all.rewrites += x.rewrites;
    all.remaps += x.remaps;
    all.protects += x.protects;
    all.unmaps += x.unmaps;
    all.reads += x.reads;
    all.writes += x.writes;
    all.faults += x.faults;
  }
  c.result("rewrites", "leaf entries rewritten", all.rewrites);
  c.result("remaps", "pages remapped to another frame", all.remaps);
  c.result("protects", "permission changes", all.protects);
  c.result("unmaps", "unmaps (or maps again)", all.unmaps);
  c.result("reads", "reads checked", all.reads);
  c.result("writes", "writes checked", all.writes);
  c.result("guest_faults", "guest #PFs where the tables say so", all.faults);
  settle_kernels(c, *kernels);
  if (after.kind == mmu::MmuKind::Shadow && all.rewrites != 0) {
    // The rewrites reach shadowed leaf tables: emulated, or let go unsync and synced on a flush.
    const std::uint64_t emulated = after.mmu.emulated - before.mmu.emulated;
    const std::uint64_t unsyncs = after.mmu.unsyncs - before.mmu.unsyncs;
    const std::uint64_t syncs = after.mmu.syncs - before.mmu.syncs;
    if (c.scenario.vm.shadow_unsync && unsyncs == 0)
      c.fail(
          fmt::format("under shadow with vm.shadow.unsync no shadow page went unsync in {} rewrites", all.rewrites));
    if (c.scenario.vm.shadow_unsync && p.flush == RewriteFlush::Cr3 && syncs == 0)
      c.fail(fmt::format("under shadow with vm.shadow.unsync the {} CR3 reloads synced no shadow page", p.rounds));
    // Without unsync each rewrite is emulated, but write flooding (three writes to a table with
    // no use between) unshadows the table until the accesses fault it back.
    if (!c.scenario.vm.shadow_unsync && (unsyncs != 0 || emulated == 0))
      c.fail(fmt::format("under shadow without unsync: {} unsyncs (expected none) and {} emulated writes (expected "
                         "some) for {} rewrites",
                         unsyncs, emulated, all.rewrites));
  }
  return {};
}

}  // namespace vmmu::sim
