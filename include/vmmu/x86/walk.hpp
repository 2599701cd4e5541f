#pragma once
// The x86 guest page-table walker (gva -> gpa) for every paging mode, and the nested EPT
// walker (gpa -> output address) -- one walker over the shared radix-table engine.
//
// Public API (the contract the CLI, the images and the MMUs code against):
//
//   auto paging = GuestPaging::from(regs, {.maxphyaddr = 40});   // the "cpu role"
//   Result<Translation, WalkFault> r = walk(paging, memory, Gva(...), access);
//
//   auto ept = EptContext::from(eptp, {.maxphyaddr = 40});       // fails: invalid EPTP
//   Result<EptTranslation<Hpa>, EptFault> t = walk_ept<Hpa>(*ept, memory, Gpa(...), AccessKind::Read);

#include <cstdint>

#include "vmmu/core/access.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/core/result.hpp"
#include "vmmu/pt/format.hpp"
#include "vmmu/x86/registers.hpp"

namespace vmmu::x86 {

// Page-fault error code bits (Intel SDM vol. 3A, 4.7).
namespace pferr {
inline constexpr std::uint32_t kPresent = 1u << 0;
inline constexpr std::uint32_t kWrite = 1u << 1;
inline constexpr std::uint32_t kUser = 1u << 2;
inline constexpr std::uint32_t kReserved = 1u << 3;
inline constexpr std::uint32_t kFetch = 1u << 4;
inline constexpr std::uint32_t kProtectionKey = 1u << 5;
}  // namespace pferr

struct CpuModel {
  unsigned maxphyaddr = 52;  // physical-address width; bits at or above it are reserved
};

struct WalkOptions {
  // Write Accessed/Dirty bits back with compare-exchange (false: never write, e.g. images).
  bool update_accessed_dirty = true;
};

enum class WalkFaultKind : std::uint8_t {
  PageFault,          // #PF with error_code
  GeneralProtection,  // non-canonical address in long mode
  TableUnreadable,    // a paging structure lies in memory that is not backed (no memslot)
};

struct WalkFault {
  WalkFaultKind kind = WalkFaultKind::PageFault;
  std::uint32_t error_code = 0;  // page-fault error code (PageFault only)
  unsigned level = 0;            // level of the entry that faulted (0: none, e.g. #GP)
  friend constexpr bool operator==(const WalkFault&, const WalkFault&) = default;
};

struct Translation {
  Gpa gpa;                  // the byte's guest-physical address
  std::uint64_t page_size;  // bytes mapped by the leaf: 4K, 2M, 4M, 1G
  unsigned level;           // level of the leaf (1 = 4K); 0 with paging off
  bool user;                // AND of U/S over the path
  bool writable;            // AND of R/W over the path
  bool nx;                  // OR of XD over the path (EFER.NXE only)
  std::uint8_t protection_key;
};

class GuestPaging;  // the cpu role: everything a walk needs, precomputed from the registers

template <class M>
  requires pt::TableMemory<M, Gpa>
Result<Translation, WalkFault> walk(const GuestPaging& paging, M& memory, Gva gva, Access access,
                                    WalkOptions options = {});

// ---- nested EPT ------------------------------------------------------------------------

// What the modelled processor supports (IA32_VMX_EPT_VPID_CAP), passed in, never assumed.
struct EptCapabilities {
  unsigned maxphyaddr = 52;
  bool execute_only = true;
  bool pages_2m = true;
  bool pages_1g = true;
  bool accessed_dirty = true;
  bool four_level = true;
  bool five_level = false;
};

enum class EptFaultKind : std::uint8_t { Violation, Misconfig, InvalidEptp, TableUnreadable };

struct EptFault {
  EptFaultKind kind = EptFaultKind::Violation;
  std::uint64_t exit_qualification = 0;  // Violation only
  unsigned level = 0;
  friend constexpr bool operator==(const EptFault&, const EptFault&) = default;
};

template <class Out>
struct EptTranslation {
  Out address;              // output address of the byte
  std::uint64_t page_size;  // 4K, 2M, 1G
  unsigned level;
  bool readable, writable, executable;  // AND over the path
};

class EptContext;  // a validated EPTP plus capabilities

}  // namespace vmmu::x86
