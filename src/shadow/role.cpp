#include "vmmu/shadow/role.hpp"

#include <fmt/format.h>

#include "vmmu/x86/guest_entry.hpp"
#include "vmmu/x86/registers.hpp"

namespace vmmu::shadow {

std::string to_string(Role r) {
  std::string s = fmt::format("level={} access={}", r.level(), r.access());
  auto flag = [&](bool on, const char* name) {
    if (on) s += fmt::format(" {}", name);
  };
  flag(r.gpte4(), "gpte4");
  if (r.quadrant() != 0) s += fmt::format(" quadrant={}", r.quadrant());
  flag(r.direct(), "direct");
  flag(r.cr0_wp(), "wp");
  flag(r.smep_andnot_wp(), "smep_andnot_wp");
  flag(r.smap_andnot_wp(), "smap_andnot_wp");
  flag(r.efer_nx(), "nx");
  flag(r.ad_disabled(), "ad_disabled");
  flag(r.guest_mode(), "guest_mode");
  flag(r.passthrough(), "passthrough");
  flag(r.invalid(), "invalid");
  flag(r.pke_andnot_wp(), "pke_andnot_wp");
  if (r.pdpt() != 0) s += fmt::format(" pdpt={}", r.pdpt());
  flag(r.ept(), "ept");
  flag(r.ept_exec_only(), "ept_exec_only");
  if (r.ept_huge_level() != 0) s += fmt::format(" ept_huge_level={}", r.ept_huge_level());
  flag(r.npt(), "npt");
  return s;
}

unsigned guest_levels(x86::PagingMode mode) {
  switch (mode) {
    case x86::PagingMode::Off: return 0;
    case x86::PagingMode::Bits32: return 2;
    case x86::PagingMode::Pae: return 3;
    case x86::PagingMode::Long4: return 4;
    case x86::PagingMode::Long5: return 5;
  }
  return 0;
}

Role root_role(const x86::GuestPaging& paging, unsigned host_levels, bool ad_disabled, bool guest_mode) {
  const x86::Registers& r = paging.registers();
  const bool paging_on = paging.mode() != x86::PagingMode::Off;
  const bool wp = x86::cr0::WP::get(r.cr0);
  const unsigned levels = guest_levels(paging.mode());
  Role role;
  role.set_level(host_levels)
      .set_gpte4(paging.mode() == x86::PagingMode::Bits32)
      .set_direct(!paging_on)
      .set_access(x86::gpte::kAccAll)
      .set_cr0_wp(wp)
      .set_smep_andnot_wp(paging_on && x86::cr4::SMEP::get(r.cr4) && !wp)
      .set_smap_andnot_wp(paging_on && x86::cr4::SMAP::get(r.cr4) && !wp)
      .set_pke_andnot_wp(paging.protection_keys() && !wp)
      .set_pdpt(paging.mode() == x86::PagingMode::Pae ? static_cast<unsigned>((r.cr3 >> 5) & 0x7f) : 0)
      .set_efer_nx(paging.format_config().nx)
      .set_ad_disabled(ad_disabled)
      .set_guest_mode(guest_mode)
      .set_passthrough(paging_on && host_levels > levels);
  return role;
}

Role child_role(Role parent, const ChildOf& c) {
  Role child = parent;
  const unsigned level = parent.level() - 1;
  child.set_level(level).set_quadrant(0);
  if (parent.passthrough()) {
    // Still above the guest's root: the child is the next passthrough level or the page
    // shadowing the guest's root table itself -- for a 32-bit guest, the quarter of its
    // 1024-entry root that the parent entry's GiB covers; for a 64-bit one, the half of its
    // root that canonical addresses reach through this entry (low: entry 0, high: entry 511),
    // so that an address canonical for the host but not for the guest finds nothing.
    child.set_passthrough(level > c.guest_levels).set_access(x86::gpte::kAccAll).set_direct(false);
    if (level == c.guest_levels) child.set_quadrant(child.gpte4() ? c.index & 3u : (c.index >> 8) & 1u);
    return child;
  }
  // Below a PAE guest's PDPT the tables are whole pages: shared whatever CR3's offset.
  child.set_access(static_cast<std::uint8_t>(parent.access() & c.access)).set_direct(parent.direct() || c.direct).set_pdpt(0);
  // A 1024-entry guest page table is shadowed by two 512-entry pages: shadow PDE 2i maps the
  // guest PDE's low 2 MiB (guest PTEs 0..511), 2i+1 its high half.
  if (child.gpte4() && !child.direct() && level == 1) child.set_quadrant(c.index & 1u);
  return child;
}

}  // namespace vmmu::shadow
