#include "l1_hypervisor.hpp"

#include <atomic>
#include <mutex>

#include <fmt/format.h>

#include "l1_table_kinds.hpp"
#include "sim_vm.hpp"

namespace vmmu::sim {
namespace {

constexpr unsigned kLevels = 4;
// An access meets at most one exit per missing path, and another vCPU's work can at most
// make it retry; more exits than this means L1's fix did not take.
constexpr int kMaxExits = 8;

unsigned index_at(Gfn gfn, unsigned level) { return static_cast<unsigned>((gfn.raw() >> (9 * (level - 1))) & 511); }

// L1 writing L2's tables in the format of `Tables` (l1_table_kinds.hpp).
template <class Tables>
class L1HypervisorOf final : public L1Hypervisor {
 public:
  L1HypervisorOf(SimVm& vm, Range<Gpa> pool, const NestedParams& p, unsigned vcpus)
      : pool_host_(vm.pool_host(pool.begin)), pool_(pool), pointer_(Tables::pointer(pool.begin, p)),
        mmu_(Tables::create(vm.memslots())), entered_(vcpus, 0) {
    for (const SimSlot& s : vm.slots()) l2_.push_back(Range<Gfn>{s.base, s.base + s.pages});
    for (unsigned v = 0; v < vcpus; ++v) vcpus_.push_back(std::make_unique<typename Tables::Vcpu>());
  }
  ~L1HypervisorOf() override { vcpus_.clear(); }

  // Every page of L2's memory mapped; false when the pool is full.
  bool prefault() {
    for (const Range<Gfn>& r : l2_) {
      for (Gfn g = r.begin; g < r.end; ++g) {
        if (!map(g)) return false;
      }
    }
    return true;
  }

  Status<mmu::Exit> access(unsigned vcpu, Gpa l2_gpa, Access a, const mmu::HostUse& use) override {
    if (entered_[vcpu] == 0) enter(vcpu);
    for (int exits = 0; exits < kMaxExits; ++exits) {
      const auto r = mmu_->access(*vcpus_[vcpu], l2_gpa, a.kind);
      if (r) {
        if (r->emulate) return Unexpected{mmu::Exit::Mmio};  // one of L1's table pages: not L2 memory
        // The host byte of L1's memory behind it (the shadow leaf's output is a host address).
        if (use) use(reinterpret_cast<std::byte*>(static_cast<std::uintptr_t>(r->host.raw())));  // NOLINT
        return {};
      }
      const auto& e = r.error();
      if (e.kind == nested::ExitKind::OutOfMemory) return Unexpected{mmu::Exit::OutOfMemory};
      if (e.kind == nested::ExitKind::L1Mmio) return Unexpected{mmu::Exit::Mmio};
      if (!Tables::missing(e)) return Unexpected{mmu::Exit::Unsupported};
      const std::lock_guard lock(lock_);
      if (!map(gfn_of(l2_gpa)))
        return Unexpected{l2_memory(gfn_of(l2_gpa)) ? mmu::Exit::OutOfMemory : mmu::Exit::Mmio};
    }
    return Unexpected{mmu::Exit::Unsupported};
  }

  [[nodiscard]] nested::NestedStats stats() const override { return mmu_->stats(); }
  Result<std::vector<std::uint64_t>, MemslotError> get_dirty_log(SlotId slot) override {
    return mmu_->get_dirty_log(slot);
  }
  [[nodiscard]] std::optional<std::string> check_invariants() const override { return mmu_->check_invariants(); }

 private:
  [[nodiscard]] bool l2_memory(Gfn gfn) const {
    for (const Range<Gfn>& r : l2_) {
      if (r.contains(gfn)) return true;
    }
    return false;
  }

  [[nodiscard]] std::uint64_t read(Gpa entry) const {
    // An 8-byte-aligned word of L1's page-aligned pool (L1 reads its own memory).
    auto* word = reinterpret_cast<std::uint64_t*>(pool_host_ + (entry.raw() - pool_.begin.raw()));  // NOLINT
    return std::atomic_ref<std::uint64_t>(*word).load(std::memory_order_acquire);
  }

  // Installs L2 gfn -> L1 gfn in L1's tables; false when `gfn` is not L2 memory or the pool is full.
  bool map(Gfn gfn) {
    if (!l2_memory(gfn)) return false;
    Gpa table = pool_.begin;
    for (unsigned level = kLevels; level > 1; --level) {
      const Gpa at = table + index_at(gfn, level) * 8;
      std::uint64_t e = read(at);
      if (!Tables::present(e)) {
        if (pool_used_ * kPageSize >= pool_.size()) return false;
        e = gpa_of(gfn_of(pool_.begin) + pool_used_++).raw() | Tables::kTableRights;
        mmu_->write_l1(at, e);
      }
      table = Tables::address(e);
    }
    const Gpa leaf = table + index_at(gfn, 1) * 8;
    // Present: another vCPU's.
    if (!Tables::present(read(leaf))) mmu_->write_l1(leaf, gpa_of(gfn).raw() | Tables::kLeafRights);
    return true;
  }

  void enter(unsigned vcpu) {
    {
      const std::lock_guard lock(lock_);
      if (!flushed_) Tables::flush(*mmu_, pointer_);
      flushed_ = true;
    }
    Tables::enter(*mmu_, *vcpus_[vcpu], pointer_);
    entered_[vcpu] = 1;
  }

  std::vector<Range<Gfn>> l2_;             // L2's memory: the scenario's slots
  std::byte* pool_host_ = nullptr;         // L1's table pages
  Range<Gpa> pool_{};
  std::uint64_t pool_used_ = 1;            // pages handed out (the root first)
  typename Tables::Pointer pointer_;
  std::unique_ptr<typename Tables::Mmu> mmu_;
  std::vector<std::unique_ptr<typename Tables::Vcpu>> vcpus_;  // after mmu_: released first
  std::vector<std::uint8_t> entered_;      // by vCPU, written by its own thread
  std::mutex lock_;                        // L1's: its table edits, the first flush
  bool flushed_ = false;
};

template <class Tables>
Result<std::unique_ptr<L1Hypervisor>, std::string> make(SimVm& vm, const NestedParams& p, unsigned vcpus) {
  auto pool = vm.add_table_pool(l1_table_pages(vm.scenario()));
  if (!pool) return Unexpected{fmt::format("vm.nested: L1's {} {}", Tables::kTables, pool.error())};
  auto l1 = std::make_unique<L1HypervisorOf<Tables>>(vm, *pool, p, vcpus);
  if (p.prefault && !l1->prefault())
    return Unexpected{fmt::format("vm.nested: L1's {} table pool is full", Tables::kTables)};
  return std::unique_ptr<L1Hypervisor>(std::move(l1));
}

}  // namespace

std::uint64_t l1_table_pages(const Scenario& s) {
  const std::vector<std::uint64_t> bases = memslot_bases(s);
  std::uint64_t pages = 1;  // the root
  for (std::size_t i = 0; i < s.memslots.size(); ++i) {
    const std::uint64_t first = bases[i] / kPageSize, last = (bases[i] + s.memslots[i].size) / kPageSize - 1;
    for (unsigned shift = 9; shift <= 27; shift += 9) pages += (last >> shift) - (first >> shift) + 1;
  }
  return pages;
}

Result<std::unique_ptr<L1Hypervisor>, std::string> L1Hypervisor::create(SimVm& vm, const NestedParams& p,
                                                                        unsigned vcpus) {
  return p.kind == NestedKind::Npt ? make<L1Npt>(vm, p, vcpus) : make<L1Ept>(vm, p, vcpus);
}

}  // namespace vmmu::sim
