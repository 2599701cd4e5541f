#include "kvm/support/kvm_probe.hpp"

#include <fmt/format.h>

#include "kvm/support/ram_table_memory.hpp"
#include "kvm/support/x86_entry.hpp"

namespace vmmu::test::kvm {
namespace {

using namespace x86e;

// Layout of the probe VM: PML4 at 0x1000 (entries 0 and 256 -> PDPT), PDPT at 0x2000
// (entry 0 -> PD, entry 1 a 1-GiB leaf), PD at 0x3000 (512 identity 2-MiB leaves, the one at
// 2 MiB user-accessible, the others supervisor).
constexpr Gpa kPml4{0x1000}, kPdpt{0x2000}, kPd{0x3000};
constexpr std::uint64_t kUserTable = Present::mask | Writable::mask | User::mask;
constexpr std::uint64_t kLeaf2M = Present::mask | Writable::mask | PageSize::mask;
constexpr std::uint64_t kProbeSlot = 0x10000;

x86::Registers long_mode_registers() {
  x86::Registers r;
  r.cr0 = cr0::Pg::mask | cr0::Pe::mask | cr0::Et::mask;
  r.cr3 = kPml4.raw();
  r.cr4 = cr4::Pae::mask;
  r.efer = efer::Lme::mask | efer::Lma::mask;
  return r;
}

void build_identity_map(RamTableMemory& ram) {
  ram.write<std::uint64_t>(kPml4, kPdpt.raw() | kUserTable);
  ram.write<std::uint64_t>(kPml4 + 256 * 8, kPdpt.raw() | kUserTable);
  ram.write<std::uint64_t>(kPdpt, kPd.raw() | kUserTable);
  ram.write<std::uint64_t>(kPdpt + 8, (std::uint64_t{1} << 30) | kLeaf2M);
  for (std::uint64_t i = 0; i < 512; ++i) {
    ram.write<std::uint64_t>(kPd + i * 8, (i << 21) | kLeaf2M | (i == 1 ? User::mask : 0));
  }
}

}  // namespace

std::string KvmPagingFacts::describe() const {
  return fmt::format(
      "long mode {}, CR0.WP {}, CR4.PGE {}, CR4.SMEP {}, CR4.SMAP {}, CR4.PKE {}, CR4.LA57 {}, EFER.NXE {}; "
      "MAXPHYADDR {} (CR3 check) / {} (reserved-bit walk); 1-GiB pages {}; SMAP honoured {}, RFLAGS.AC "
      "overrides {}; canonical check {}; sets A bits {}",
      long_mode, wp, pge, smep, smap, pke, la57, nxe, maxphyaddr_cr3, maxphyaddr_walk, pages_1g, smap_honoured,
      smap_ac_override, checks_canonical, sets_accessed);
}

Result<KvmPagingFacts, KvmFailure> probe_paging() {
  auto vm = KvmVm::create({GuestRamSlot{{Gpa(0), Gpa(kProbeSlot)}}});
  if (!vm) return Unexpected<KvmFailure>{vm.error()};
  RamTableMemory ram(vm->ram());
  build_identity_map(ram);
  KvmPagingFacts facts;
  const x86::Registers base = long_mode_registers();

  // Translate with `regs` loaded; nullopt when KVM refuses the registers.
  auto valid_with = [&](const x86::Registers& regs, Gva gva) -> Result<std::optional<KvmTranslation>, KvmFailure> {
    if (!vm->set_paging(regs)) return std::optional<KvmTranslation>{};
    auto t = vm->translate(gva);
    if (!t) return Unexpected<KvmFailure>{t.error()};
    return std::optional<KvmTranslation>(*t);
  };
  auto accepted = [&](x86::Registers regs) { return vm->set_paging(regs).has_value(); };

  if (auto st = vm->set_paging(base); !st) return Unexpected<KvmFailure>{st.error()};
  facts.long_mode = true;
  {
    auto t = vm->translate(Gva(0x201234));
    if (!t) return Unexpected<KvmFailure>{t.error()};
    const std::uint64_t pde = *ram.read<std::uint64_t>(kPd + 8);
    const std::uint64_t pml4e = *ram.read<std::uint64_t>(kPml4);
    facts.sets_accessed = t->valid && Accessed::get(pde) && Accessed::get(pml4e);
  }
  auto with_cr4 = [&](std::uint64_t bit) {
    x86::Registers r = base;
    r.cr4 |= bit;
    return accepted(r);
  };
  facts.pge = with_cr4(cr4::Pge::mask);
  facts.smep = with_cr4(cr4::Smep::mask);
  facts.smap = with_cr4(cr4::Smap::mask);
  facts.pke = with_cr4(cr4::Pke::mask);
  facts.la57 = with_cr4(cr4::La57::mask);
  {
    x86::Registers r = base;
    r.efer |= efer::Nxe::mask;
    facts.nxe = accepted(r);
    r = base;
    r.cr0 |= cr0::Wp::mask;
    facts.wp = accepted(r);
  }
  for (unsigned b = 32; b < 52 && facts.maxphyaddr_cr3 == 0; ++b) {
    x86::Registers r = base;
    r.cr3 |= std::uint64_t{1} << b;
    if (!accepted(r)) facts.maxphyaddr_cr3 = b;
  }
  if (facts.maxphyaddr_cr3 == 0) facts.maxphyaddr_cr3 = 52;

  // Reserved-bit probe: the 2-MiB leaf at PD[3] with one address bit set; the lowest bit that
  // makes the walk fail is MAXPHYADDR (SDM 4.5.4: bits MAXPHYADDR..51 are reserved).
  const Gpa pd3 = kPd + 3 * 8;
  for (unsigned b = 32; b < 52 && facts.maxphyaddr_walk == 0; ++b) {
    ram.write<std::uint64_t>(pd3, (std::uint64_t{3} << 21) | kLeaf2M | (std::uint64_t{1} << b));
    auto t = valid_with(base, Gva(3u << 21));
    if (!t) return Unexpected<KvmFailure>{t.error()};
    if (*t && !(*t)->valid) facts.maxphyaddr_walk = b;
  }
  if (facts.maxphyaddr_walk == 0) facts.maxphyaddr_walk = 52;
  ram.write<std::uint64_t>(pd3, (std::uint64_t{3} << 21) | kLeaf2M);

  auto valid = [&](const x86::Registers& regs, Gva gva) -> Result<bool, KvmFailure> {
    auto t = valid_with(regs, gva);
    if (!t) return Unexpected<KvmFailure>{t.error()};
    return *t && (*t)->valid;
  };
  auto one_gig = valid(base, Gva(std::uint64_t{1} << 30));
  if (!one_gig) return Unexpected<KvmFailure>{one_gig.error()};
  facts.pages_1g = *one_gig;

  // Non-canonical: bit 47 set without bits 63:48 maps (by its low 48 bits) to PML4[256].
  auto non_canonical = valid(base, Gva(std::uint64_t{1} << 47));
  if (!non_canonical) return Unexpected<KvmFailure>{non_canonical.error()};
  facts.checks_canonical = !*non_canonical;

  if (facts.smap) {
    x86::Registers r = base;
    r.cr4 |= cr4::Smap::mask;
    auto blocked = valid(r, Gva(2u << 20));
    r.rflags |= rflags::Ac::mask;
    auto overridden = valid(r, Gva(2u << 20));
    if (!blocked) return Unexpected<KvmFailure>{blocked.error()};
    if (!overridden) return Unexpected<KvmFailure>{overridden.error()};
    facts.smap_honoured = !*blocked;
    facts.smap_ac_override = *overridden;
  }
  return facts;
}

}  // namespace vmmu::test::kvm
