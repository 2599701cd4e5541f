// conversion: the private/shared conversion a confidential guest asks for, on 2 MiB ranges
// mapped huge -- one 4 KiB page of each becomes "shared" (other host memory overlays it) and
// then private again, and the range is merged back into one huge leaf in place.
//
//   per range:  write a pattern over 512 pages
//               split the huge leaf covering the page (the other 511 stay mapped)
//               disallow huge mappings over the page, overlay shared memory on it
//               write + read the shared page through the tables
//               remove the overlay, read the private page back, let the guest write it
//               allow huge again, merge the range in place, read all 512 pages back

#include "phase.hpp"
#include "vmmu/sim/fault_injection.hpp"

namespace vmmu::sim {
namespace {

constexpr std::uint64_t kPagesPer2M = 512;
constexpr std::uint64_t kPrivateSalt = 0x707276;
constexpr std::uint64_t kSharedSalt = 0x736872;

// The first gfn of every 2 MiB-aligned 2 MiB range inside a slot.
std::vector<Gfn> huge_ranges(const SimVm& vm) {
  std::vector<Gfn> out;
  for (const SimSlot& s : vm.slots()) {
    const std::uint64_t first = (s.base.raw() + kPagesPer2M - 1) / kPagesPer2M * kPagesPer2M;
    for (std::uint64_t g = first; g + kPagesPer2M <= s.base.raw() + s.pages; g += kPagesPer2M) out.push_back(Gfn(g));
  }
  return out;
}

bool mapped_huge(tdp::TdpMmu& mmu, Gfn g) {
  auto leaf = mmu.lookup(gpa_of(g));
  return leaf && leaf->level >= 2;
}

struct Counts {
  std::uint64_t huge_before = 0, huge_after = 0, pages_checked = 0, bad_words = 0, shared_ok = 0;
};

}  // namespace

Status<std::string> run_conversion(PhaseContext& c, const ConversionPhase& p) {
  // A TDX idea: scenarios under vm.mmu shadow are refused before they run (validate()).
  if (c.vm.tdp_mmu() == nullptr) return Unexpected{std::string("conversion needs the TDP MMU (vm.mmu tdp)")};
  tdp::TdpMmu& mmu = *c.vm.tdp_mmu();
  VcpuAccess& a = c.access[0];
  const std::vector<Gfn> all = huge_ranges(c.vm);
  auto shared = HostBuffer::allocate(p.ranges * kPageSize, kPageSize);
  if (!shared) return Unexpected{shared.error()};
  Counts n;
  ExitLog log;
  c.progress.step("", p.ranges);
  for (std::uint64_t r = 0; r < p.ranges; ++r) {
    const Gfn base = all[r * all.size() / p.ranges];  // spread over memory
    const Gfn page = base + (mix64(c.seed() + r) % kPagesPer2M);
    const Range<Gfn> range{base, base + kPagesPer2M};
    const Range<Gfn> one{page, page + 1};
    for (std::uint64_t i = 0; i < kPagesPer2M; ++i) {
      if (auto s = a.fill_page(gpa_of(base + i), kPrivateSalt); !s) log.add(0, gpa_of(base + i), true, s.error());
    }
    if (mapped_huge(mmu, base)) ++n.huge_before;

    // To shared: split first so disallowing huge pages finds no huge leaf to zap.
    if (auto s = mmu.split(one); !s) return Unexpected{fmt::format("split: {}", pt::to_string(s.error()))};
    mmu.disallow_huge(one);
    std::byte* shared_page = shared->data() + r * kPageSize;
    auto overlay = c.vm.memslots().overlay_add(page, 1, shared_page);
    if (!overlay) return Unexpected{fmt::format("overlay at gfn {:#x}: {}", page.raw(), to_string(overlay.error()))};
    if (auto s = a.fill_page(gpa_of(page), kSharedSalt); !s) log.add(0, gpa_of(page), true, s.error());
    auto shared_bad = a.check_page(gpa_of(page), kSharedSalt);
    if (!shared_bad) log.add(0, gpa_of(page), false, shared_bad.error());
    // The shared data must land in the shared memory (the private page is checked below).
    const auto* words = reinterpret_cast<const std::uint64_t*>(shared_page);  // page-aligned mmap memory
    if (shared_bad && *shared_bad == 0 && words[0] == pattern_word(page, 0, kSharedSalt)) ++n.shared_ok;

    // Back to private: the original data reappears; the guest writes the page (accepts it).
    if (auto s = c.vm.memslots().overlay_remove(*overlay); !s)
      return Unexpected{fmt::format("overlay removal at gfn {:#x}: {}", page.raw(), to_string(s.error()))};
    auto back = a.check_page(gpa_of(page), kPrivateSalt);
    if (!back)
      log.add(0, gpa_of(page), false, back.error());
    else
      n.bad_words += *back;
    if (auto s = a.fill_page(gpa_of(page), kPrivateSalt); !s) log.add(0, gpa_of(page), true, s.error());
    mmu.allow_huge(one);
    mmu.collapse(range);
    if (injected_fault() == InjectedFault::CorruptWord) {
      if (auto st = a.write64(gpa_of(base), ~pattern_word(base, 0, kPrivateSalt)); !st)
        log.add(0, gpa_of(base), true, st.error());
    }

    for (std::uint64_t i = 0; i < kPagesPer2M; ++i) {
      auto bad = a.check_page(gpa_of(base + i), kPrivateSalt);
      if (!bad)
        log.add(0, gpa_of(base + i), false, bad.error());
      else
        n.bad_words += *bad;
    }
    n.pages_checked += kPagesPer2M + 1;
    if (mapped_huge(mmu, base)) ++n.huge_after;
    c.progress.add(1);
    c.progress.tick();
  }
  c.result("ranges", "2M ranges converted", p.ranges);
  c.result("huge_before", "ranges mapped huge before", n.huge_before);
  c.result("huge_after", "ranges mapped huge after", n.huge_after);
  c.result("shared_ok", "shared pages seen in shared memory", n.shared_ok);
  c.result("pages_checked", "pages checked", n.pages_checked);
  c.result("bad_words", "words with wrong data", n.bad_words);
  if (n.bad_words != 0) c.fail(fmt::format("{} words read back wrong after conversions", n.bad_words));
  if (n.shared_ok != p.ranges)
    c.fail(fmt::format("{} of {} shared pages did not reach the shared memory", p.ranges - n.shared_ok, p.ranges));
  return settle_exits(c, {log});
}

}  // namespace vmmu::sim
