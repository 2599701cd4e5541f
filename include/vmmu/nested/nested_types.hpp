#pragma once
// What the nested MMU (nested_mmu.hpp) answers, whatever kind of tables L1 gave its L2 guest
// (Intel EPT or AMD NPT), and what a kind's walk of those tables hands the shared fault path.

#include <cstdint>
#include <string_view>

#include "vmmu/core/address.hpp"

namespace vmmu::nested {

// A successful L2 access: where the byte is on the host, and what L1's tables said.
struct L2Translation {
  Hpa host;                // the host byte (the shadow leaf's output)
  Gpa l1_gpa;              // L1's guest-physical address of the byte (L1's walk)
  std::uint64_t page_size; // L1's leaf: 4K, 2M or 1G
  bool emulate = false;    // a write to a frame holding an L1 table: L0 emulates it (write_l1)
};

enum class ExitKind : std::uint8_t {
  ToL1,         // reflected to L1: `fault` is the exit L1 gets (EPT violation..., #NPF...)
  L1Mmio,       // L1's gpa has no memory behind it, or is read-only and written: L0 emulates
  OutOfMemory,  // a shadow table could not be allocated
};
std::string_view to_string(ExitKind k);

template <class Fault>
struct NestedExitOf {
  ExitKind kind = ExitKind::ToL1;
  Fault fault{};
  Gpa l1_gpa{};  // L1Mmio only
};

struct NestedStats {
  std::uint64_t hits = 0;         // answered by the shadow tables alone
  std::uint64_t faults = 0;       // walked L1's tables
  std::uint64_t reflected = 0;    // exits to L1
  std::uint64_t roots_built = 0;  // root shadow pages made
  std::uint64_t root_switches = 0;  // a root pointer load answered from a vCPU's cache
  std::uint64_t l1_writes = 0;    // emulated writes to L1's tables
  std::uint64_t invepts = 0;      // INVEPTs (EPT), TLB_CONTROL flushes (NPT)
  std::uint64_t logged = 0;       // L1 frames marked dirty (L2 write faults, A/D updates, write_l1)
  std::size_t pages = 0;          // shadow pages now
};

// The bits of a shadow leaf that allow an access: (entry & mask) == value.
struct ShadowNeed {
  std::uint64_t mask = 0, value = 0;
};

// A successful walk of L1's tables for one L2 gpa, as the shared fault path builds from it
// (with the kind's path of the entries used: Kind::rights / Kind::table read it).
struct L1Walk {
  Gpa address;              // L1 gpa of the byte
  std::uint64_t page_size;  // L1's leaf
  unsigned level;           // L1's leaf level (1 = 4K)
  bool readable, writable, executable;  // over the whole path
  // L1's leaf D bit clear while the hardware maintains L1's A/D bits: no W in the shadow until
  // a write sets D (KVM's protect_clean_gpte).
  bool clean;
};

}  // namespace vmmu::nested
