#pragma once
// A scenario: one VM (TDP format, policies, memslots, vCPUs) and the phases its vCPU threads
// run, in order. `vmmu run` reads it from a vmmu-scenario/1 JSON file (docs/scenario-format.md);
// programs build it directly and check it with validate().
//
//   Scenario ── vm (EPT/NPT, levels, A/D, vCPUs, dirty ring) ── policies ── memslots
//            └─ phases: populate, random-access, smep-storm, migration, read-all,
//                       dirty-log-enable, dirty-log-disable, conversion,
//                       fork, rewrite-tables, cr3-switch (a guest kernel on its own page tables)

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "vmmu/mmu/mmu.hpp"
#include "vmmu/tdp/policy.hpp"
#include "vmmu/tdp/tdp_format.hpp"

namespace vmmu::sim {

// Every vCPU writes each 4 KiB page of its share of memory once.
struct PopulatePhase {};

// `accesses` accesses in all, split between the vCPUs, each at a random page of all memory
// (seeded); a write with probability `write_fraction`.
struct RandomAccessPhase {
  std::uint64_t accesses = 1'000'000;
  double write_fraction = 0.5;
};

// Each vCPU runs in long mode on guest page tables and flips CR4.SMEP `flips` times, reading
// `touch_pages` pages of its share through its page tables after every flip.
struct SmepStormPhase {
  std::uint64_t flips = 1000;
  std::uint64_t touch_pages = 8;
};

// KVM's dirty_log_perf_test: populate, enable dirty logging, `iterations` rounds of
// {vCPUs dirty their share (each page written with probability write_fraction), get the
// dirty log, clear it}, disable dirty logging. Every written page must be harvested.
// manual_protect (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, the test's default): get copies the
// bitmap, clear clears and write-protects what it names; without it, get does both.
// harvest_while_writing (dirty bitmaps only): as a live migration does, another thread gets and
// clears the dirty log again and again while the vCPUs write, before each round's own harvest.
struct MigrationPhase {
  std::uint32_t iterations = 3;
  double write_fraction = 1.0;
  bool manual_protect = true;
  bool harvest_while_writing = false;
};

// Every vCPU reads each page of its share once.
struct ReadAllPhase {};

// Dirty logging on / off for every memslot, as separate steps.
struct DirtyLogEnablePhase {};
struct DirtyLogDisablePhase {};

// `ranges` 2 MiB ranges, each: write a pattern, convert one 4 KiB page to shared (split,
// disallow huge, overlay other host memory), access it, convert back, merge the range in place,
// check every byte of the pattern.
struct ConversionPhase {
  std::uint64_t ranges = 16;
};

// The guest-kernel phases (fork, rewrite-tables, cr3-switch): each vCPU runs a guest kernel
// whose processes map user pages to frames of its share; the kernel writes its page tables
// through the vCPU (a direct map of its frames and table pages), as a guest does, so under
// shadow each table write is the guest's own (emulated, or into an unsync page).

// Each vCPU's process writes `pages` pages and forks: the child's tables are copied and both
// sides' leaves made read-only (copy-on-write). Parent, then child, write a seeded
// `write_fraction` of the pages; each first write is a guest #PF its kernel handles: copy the
// page (unless the other side copied it already), map it writable, INVLPG. Checks: every
// page's data in both processes, the exact count of COW faults and copies.
struct ForkPhase {
  std::uint64_t pages = 256;
  double write_fraction = 0.5;
};

// How the rewrite-tables guest flushes what it rewrote: INVLPG of each page, or a CR3 reload.
enum class RewriteFlush : std::uint8_t { Invlpg, Cr3 };

// Each vCPU's process maps `pages` pages, then `rounds` rounds of: rewrite each page's leaf
// (seeded: another frame, the other permission, unmapped, or mapped again), flush as
// `flush` says, access every page. Checks: each access sees the new mapping (the frame's tag,
// a #PF where unmapped or read-only).
struct RewriteTablesPhase {
  std::uint64_t pages = 64;
  std::uint32_t rounds = 16;
  RewriteFlush flush = RewriteFlush::Invlpg;
};

// Each vCPU runs `processes` processes (the same user gvas, frames of their own) and switches
// CR3 between them `switches` times, round robin, reading and writing `touch_pages` pages after
// each switch. `pcid`: CR4.PCIDE, each process its PCID and CR3 writes with bit 63 (no flush).
// Checks: each process's data; the guest's TLB flushes (none with PCIDs); under shadow with at
// most kShadowCachedRoots processes, no root built and, with PCIDs, no root synced after the
// first round.
struct Cr3SwitchPhase {
  std::uint32_t processes = 3;
  std::uint64_t switches = 1000;
  std::uint64_t touch_pages = 4;
  bool pcid = true;
};

enum class PhaseKind : std::uint8_t {
  Populate,
  RandomAccess,
  SmepStorm,
  Migration,
  ReadAll,
  DirtyLogEnable,
  DirtyLogDisable,
  Conversion,
  Fork,
  RewriteTables,
  Cr3Switch,
};
// "populate", "random-access", "smep-storm", "migration", "read-all", "dirty-log-enable",
// "dirty-log-disable", "conversion", "fork", "rewrite-tables", "cr3-switch".
std::string_view to_string(PhaseKind k);
std::optional<PhaseKind> parse_phase_kind(std::string_view s);
// Every kind, in the order above.
std::vector<PhaseKind> all_phase_kinds();

using PhaseParams = std::variant<PopulatePhase, RandomAccessPhase, SmepStormPhase, MigrationPhase, ReadAllPhase,
                                 DirtyLogEnablePhase, DirtyLogDisablePhase, ConversionPhase, ForkPhase,
                                 RewriteTablesPhase, Cr3SwitchPhase>;
// The variant's alternatives are in PhaseKind order.
static_assert(std::variant_size_v<PhaseParams> == 11);

struct Phase {
  std::string name;  // how reports name it; empty: the kind (made unique by name_phases())
  PhaseParams params;
  [[nodiscard]] PhaseKind kind() const { return static_cast<PhaseKind>(params.index()); }
};
// The default parameters of a kind.
PhaseParams default_params(PhaseKind k);

struct MemslotParams {
  std::uint64_t size = 0;                  // bytes
  std::uint64_t backing_page_size = 4096;  // 4 KiB, 2 MiB or 1 GiB
  std::optional<std::uint64_t> gpa;        // guest-physical base; none: after the previous slot
  bool host_huge_pages = false;            // ask the host kernel for pages of the backing size
};

// vm.nested: the phases run in an L2 guest of the scenario's VM (L1), whose hypervisor gives L2
// the scenario's memory 1:1 (L2 gfn g -> L1 gfn g) through its own EPT or nested page tables,
// built on L2's exits (or all at once: prefault). L0 shadows them (nested::ShadowEptMmu,
// nested::ShadowNptMmu).
enum class NestedKind : std::uint8_t { Ept, Npt };
struct NestedParams {
  NestedKind kind = NestedKind::Ept;
  bool ept_ad = true;     // EPTP bit 6: A/D bits in L1's EPT (ignored under Npt; the JSON refuses it)
  bool prefault = false;  // L1 maps all of L2's memory before the first phase
};

struct VmParams {
  mmu::MmuKind mmu = mmu::MmuKind::Tdp;  // the VM's MMU: TDP (EPT/NPT) or shadow paging
  tdp::TdpKind tdp = tdp::TdpKind::Ept;
  unsigned levels = 4;
  bool ad_bits = true;  // EPT only (NPT always has A/D)
  bool pages_1g = true;
  std::uint32_t dirty_ring_size = 0;  // 0: dirty bitmaps; else entries per vCPU ring
  unsigned vcpus = 2;
  // vm.shadow.unsync: under shadow, a write fault on a last-level guest table lets its shadow
  // pages go unsync (synced on the guest's flushes) instead of emulating every write.
  bool shadow_unsync = true;
  std::optional<NestedParams> nested;  // none: the phases run in this VM
};

struct Scenario {
  std::string name = "scenario";
  std::string description;
  std::uint64_t seed = 1;
  VmParams vm;
  tdp::Policies policies;
  std::vector<MemslotParams> memslots;
  std::vector<Phase> phases;
};

// What is wrong with a scenario: the key it is at, as the JSON spells it ("vm.vcpus",
// "memslots[1].size", "phases[3]"), and what was expected there.
struct ScenarioError {
  std::string key;
  std::string message;
};

// Limits validate() enforces.
inline constexpr unsigned kMaxVcpus = 64;
inline constexpr std::size_t kMaxScenarioMemslots = 64;
inline constexpr std::uint64_t kMaxScenarioMemory = std::uint64_t{1} << 40;  // 1 TiB in all
inline constexpr std::uint32_t kMaxIterations = 100'000;
inline constexpr std::uint64_t kMaxTouchPages = 512;
inline constexpr std::uint32_t kMinDirtyRing = 16, kMaxDirtyRing = 1u << 20;
inline constexpr std::uint64_t kMaxGuestKernelPages = 4096;  // fork / rewrite-tables pages
inline constexpr std::uint32_t kMaxProcesses = 64;
// A vCPU's cache of previous roots under shadow plus its current root: how many processes
// cr3-switch can run with no root rebuilt (shadow::ShadowVcpu::kPrevRoots + 1).
inline constexpr std::uint32_t kShadowCachedRoots = 4;
// Under shadow the phases' vCPUs make their guest-physical accesses with paging off, which
// reaches the first 4 GiB; the last 64 MiB stay free for guest page tables (smep-storm).
inline constexpr std::uint64_t kShadowMemoryLimit = (std::uint64_t{1} << 32) - (std::uint64_t{64} << 20);

// The first problem found, or none: value ranges, memslot sizes and alignment, overlaps,
// what vm.nested cannot run (dirty rings, the guest-kernel phases, conversion, a harvest
// while L2 writes, memory above kNestedMemoryLimit),
// policy combinations (dirty-bits needs A/D), what the shadow MMU cannot run (conversion, a
// TDX idea; dirty rings; dirty-bit tracking; memory above 4 GiB), the dirty-logging state each phase needs
// (dirty-log-enable when off, dirty-log-disable when on, migration when off), conversion
// ranges available.
std::optional<ScenarioError> validate(const Scenario& s);

// L1's EPT or NPT under vm.nested is 4-level (256 TiB) and its tables go above L2's memory:
// the memslots must end 1 GiB below that.
inline constexpr std::uint64_t kNestedMemoryLimit = (std::uint64_t{1} << 48) - (std::uint64_t{1} << 30);

// The guest-physical base of every memslot, in order (the given one, or the previous slot's end
// rounded up to the slot's backing page size).
std::vector<std::uint64_t> memslot_bases(const Scenario& s);
// Total guest memory in bytes.
std::uint64_t total_memory(const Scenario& s);
// How many 2 MiB-aligned 2 MiB ranges lie fully inside memslots (what conversion can use).
std::uint64_t conversion_ranges_available(const Scenario& s);

// Gives every phase without a name its kind's name, with "#2", "#3"... for repeats.
void name_phases(Scenario& s);

}  // namespace vmmu::sim
