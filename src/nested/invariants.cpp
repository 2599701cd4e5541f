// Shadow EPT invariants (checked after every operation when VMMU_CHECK_INVARIANTS is defined):
//   - every shadow leaf agrees with L1's EPT walk composed with L1's memory: same host page,
//     no right the walk denies, no W while L1's D bit is clear (A/D on), the L1 frame and page
//     size recorded for it;
//   - no frame holding an L1 EPT table that is shadowed is writable through a shadow leaf;
//   - every link is recorded as its child's parent.

#include <fmt/format.h>

#include "l1_ept_path.hpp"
#include "vmmu/nested/shadow_ept_mmu.hpp"

namespace vmmu::nested {

namespace ept = x86::ept;

std::optional<std::string> ShadowEptMmu::invariants_locked() const {
  std::optional<std::string> bad;
  pages_.for_each([&](const shadow::ShadowPage& p) {
    // Trees are checked from their roots: pages nothing links to (a level-5 or level-4 root).
    if (bad || !p.parents().empty() || p.role().direct() || p.role().level() < 4) return;
    const std::uint64_t eptp = ept::eptp::Addr::bits(gpa_of(p.gfn()).raw()) | ept::kMemTypeWb |
                               ept::eptp::WalkLengthMinus1::set(0, p.role().level() - 1) |
                               (p.role().ad_disabled() ? 0 : ept::eptp::AccessedDirty::mask);
    auto ctx = x86::EptContext::from(eptp, caps_);
    if (!ctx) {
      bad = fmt::format("root {} has no valid EPTP", shadow::to_string(p.role()));
      return;
    }
    bad = check_page(p, 0, *ctx);
  });
  return bad;
}

std::optional<std::string> ShadowEptMmu::check_page(const shadow::ShadowPage& p, std::uint64_t base,
                                                    const x86::EptContext& ctx) const {
  const unsigned level = p.role().level();
  for (unsigned i = 0; i < shadow::kShadowEntries; ++i) {
    const Hpa at = detail::entry_at(p.table(), i);
    const std::uint64_t e = memory_.read<std::uint64_t>(at).value_or(0);
    if (!format_.present(e, level)) continue;
    const std::uint64_t input = base + i * detail::span_at(level);
    if (level > 1) {
      const shadow::ShadowPage* c = pages_.by_table(format_.table_address(e, level));
      if (c == nullptr) return fmt::format("L2 gpa {:#x} level {}: link to no shadow page", input, level);
      if (std::find(c->parents().begin(), c->parents().end(), at) == c->parents().end()) {
        return fmt::format("L2 gpa {:#x} level {}: link not among the child's parents", input, level);
      }
      if (auto bad = check_page(*c, input, ctx)) return bad;
      continue;
    }
    // A leaf: L1's walk of the same L2 gpa, without setting anything.
    shadow::GuestRamTables tables(const_cast<shadow::GuestRam&>(l1_));  // reads only: no A/D updates
    const AccessKind probe = (e & ept::R::mask) != 0 ? AccessKind::Read : AccessKind::Fetch;
    const auto t = x86::walk_ept<Gpa>(ctx, tables, Gpa(input), probe, {.update_accessed_dirty = false});
    if (!t) return fmt::format("L2 gpa {:#x}: shadow leaf but L1's walk faults ({})", input, to_string(t.error().kind));
    const Gfn frame = gfn_of(t->address);
    const std::byte* host = const_cast<shadow::GuestRam&>(l1_).page(frame);
    if (reinterpret_cast<std::uintptr_t>(host) != format_.leaf_address(e, 1).raw()) {
      return fmt::format("L2 gpa {:#x}: shadow leaf maps {:#x}, L1 gpa {:#x} is elsewhere", input,
                         format_.leaf_address(e, 1).raw(), t->address.raw());
    }
    const bool r = (e & ept::R::mask) != 0, w = (e & ept::W::mask) != 0, x = (e & ept::X::mask) != 0;
    if ((r && !t->readable) || (w && !t->writable) || (x && !t->executable)) {
      return fmt::format("L2 gpa {:#x}: shadow leaf allows more than L1's EPT", input);
    }
    if (w && ctx.accessed_dirty()) {
      const detail::L1Path path = detail::read_l1_path(ctx, tables, Gpa(input), t->level);
      if (!ept::D::get(path.entry[t->level])) return fmt::format("L2 gpa {:#x}: writable while L1's D is clear", input);
    }
    if (w && pages_.tracked(frame)) {
      return fmt::format("L2 gpa {:#x}: L1 EPT table frame {:#x} writable", input, frame.raw());
    }
    const shadow::GuestLeaf l = p.leaf(i);
    if (l.gfn != frame || l.page_size != t->page_size) {
      return fmt::format("L2 gpa {:#x}: recorded L1 frame {:#x}, L1's walk says {:#x}", input, l.gfn.raw(), frame.raw());
    }
  }
  return std::nullopt;
}

}  // namespace vmmu::nested
