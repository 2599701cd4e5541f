#pragma once
// Fixture for the guest-walker rule tests: registers for a mode, a table builder over
// SparseMemory<Gpa>, and short helpers for "walk and expect a translation / an error code".

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>

#include "x86/support/table_builder.hpp"
#include "vmmu/core/page_size.hpp"
#include "vmmu/memory/sparse_memory.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::x86::test {

// Entry flags used throughout the tests.
inline constexpr std::uint64_t kP = gpte::P::mask;
inline constexpr std::uint64_t kRW = gpte::RW::mask;
inline constexpr std::uint64_t kUS = gpte::US::mask;
inline constexpr std::uint64_t kA = gpte::A::mask;
inline constexpr std::uint64_t kD = gpte::D::mask;
inline constexpr std::uint64_t kPS = gpte::PS::mask;
inline constexpr std::uint64_t kXD = gpte::XD::mask;
inline constexpr std::uint64_t kUserRw = kP | kRW | kUS;

inline const pt::Geometry& geometry_of(PagingMode mode) {
  switch (mode) {
    case PagingMode::Bits32: return Format32::kGeometry;
    case PagingMode::Pae: return FormatPae::kGeometry;
    case PagingMode::Long5: return Format5::kGeometry;
    default: return Format4::kGeometry;
  }
}

// Registers of a guest in `mode` with CR0.WP set, NX on where it exists, PSE on in 32-bit.
inline Registers registers_for(PagingMode mode, std::uint64_t cr3) {
  Registers r;
  r.cr3 = cr3;
  if (mode == PagingMode::Off) return r;
  r.cr0 = cr0::PG::mask | cr0::PE::mask | cr0::WP::mask;
  switch (mode) {
    case PagingMode::Bits32: r.cr4 = cr4::PSE::mask; break;
    case PagingMode::Pae: r.cr4 = cr4::PAE::mask; r.efer = efer::NXE::mask; break;
    case PagingMode::Long4: r.cr4 = cr4::PAE::mask; r.efer = efer::LME::mask | efer::LMA::mask | efer::NXE::mask; break;
    case PagingMode::Long5:
      r.cr4 = cr4::PAE::mask | cr4::LA57::mask;
      r.efer = efer::LME::mask | efer::LMA::mask | efer::NXE::mask;
      break;
    case PagingMode::Off: break;
  }
  return r;
}

class GuestTest : public ::testing::Test {
 protected:
  // Root at 0x1000 (PAE: the PDPTEs at 0x1fe0, to show CR3[31:5] is honoured).
  void use(PagingMode mode) {
    const std::uint64_t root = mode == PagingMode::Pae ? 0x1fe0 : 0x1000;
    regs = registers_for(mode, root);
    tables = std::make_unique<TableBuilder<Gpa>>(mem, geometry_of(mode), Gpa(root),
                                                 mode == PagingMode::Pae ? kP : kUserRw);
    // PAE PDPTEs carry only P: the builder creates them as P | address, lower tables below.
    pae_ = mode == PagingMode::Pae;
  }
  // Table entries created below the PAE PDPTE level must be P|RW|US, as in every other mode.
  void map(std::uint64_t gva, unsigned level, std::uint64_t entry) {
    if (pae_ && level < 3) {
      const Gpa pdpte = tables->slot(gva, 3);
      if (tables->read(pdpte) == 0) tables->write(pdpte, tables->alloc().raw() | kP);
      if (level == 1) {
        const Gpa pde = tables->slot(gva, 2);
        if (tables->read(pde) == 0) tables->write(pde, tables->alloc().raw() | kUserRw);
      }
    }
    tables->map(gva, level, entry);
  }
  std::uint64_t entry(std::uint64_t gva, unsigned level) { return tables->entry(gva, level); }
  void set(std::uint64_t gva, unsigned level, std::uint64_t value) { tables->write(tables->slot(gva, level), value); }

  GuestPaging paging() const { return GuestPaging::from(regs, cpu); }
  Result<Translation, WalkFault> walk(std::uint64_t gva, Access access, WalkOptions options = {}) {
    return x86::walk(paging(), mem, Gva(gva), access, options);
  }
  // The page-fault error code of a walk that must fault with #PF.
  std::optional<std::uint32_t> error(std::uint64_t gva, Access access) {
    auto r = walk(gva, access);
    if (r.has_value() || r.error().kind != WalkFaultKind::PageFault) return std::nullopt;
    return r.error().error_code;
  }
  // The gpa of a walk that must succeed.
  std::optional<std::uint64_t> gpa(std::uint64_t gva, Access access) {
    auto r = walk(gva, access);
    if (!r.has_value()) return std::nullopt;
    return r->gpa.raw();
  }

  static constexpr Access kRead = Access::read();
  static constexpr Access kWrite = Access::write();
  static constexpr Access kFetch = Access::fetch();
  static constexpr Access kUserRead = Access::read(true);
  static constexpr Access kUserWrite = Access::write(true);
  static constexpr Access kUserFetch = Access::fetch(true);
  static constexpr Access kImplicitRead = Access{AccessKind::Read, false, true};

  SparseMemory<Gpa> mem;
  Registers regs;
  CpuModel cpu;
  std::unique_ptr<TableBuilder<Gpa>> tables;

 private:
  bool pae_ = false;
};

}  // namespace vmmu::x86::test
