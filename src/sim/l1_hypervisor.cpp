#include "l1_hypervisor.hpp"

#include <fmt/format.h>

#include "sim_vm.hpp"
#include "vmmu/x86/ept_entry.hpp"

namespace vmmu::sim {
namespace {

namespace ept = x86::ept;

constexpr unsigned kLevels = 4;
constexpr std::uint64_t kTableRights = ept::R::mask | ept::W::mask | ept::X::mask;
constexpr std::uint64_t kLeafRights = kTableRights | ept::MemType::set(0, ept::kMemTypeWb);
// An access meets at most one violation per missing path, and another vCPU's work can at most
// make it retry; more exits than this means L1's fix did not take.
constexpr int kMaxExits = 8;

unsigned index_at(Gfn gfn, unsigned level) { return static_cast<unsigned>((gfn.raw() >> (9 * (level - 1))) & 511); }

}  // namespace

std::uint64_t l1_ept_pages(const Scenario& s) {
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
  std::unique_ptr<L1Hypervisor> l1(new L1Hypervisor());
  for (const SimSlot& s : vm.slots()) l1->l2_.push_back(Range<Gfn>{s.base, s.base + s.pages});
  auto pool = vm.add_table_pool(l1_ept_pages(vm.scenario()));
  if (!pool) return Unexpected{"vm.nested: L1's EPT " + pool.error()};
  l1->pool_ = *pool;
  l1->pool_host_ = vm.pool_host(pool->begin);
  l1->pool_used_ = 1;
  l1->eptp_ = pool->begin.raw() | ept::eptp::MemType::set(0, ept::kMemTypeWb) |
              ept::eptp::WalkLengthMinus1::set(0, kLevels - 1) | (p.ept_ad ? ept::eptp::AccessedDirty::mask : 0);
  l1->mmu_ = nested::ShadowEptMmu::create(vm.memslots(), x86::EptCapabilities{});
  for (unsigned v = 0; v < vcpus; ++v) l1->vcpus_.push_back(std::make_unique<nested::ShadowEptVcpu>());
  l1->entered_.assign(vcpus, 0);
  if (p.prefault) {
    for (const Range<Gfn>& r : l1->l2_) {
      for (Gfn g = r.begin; g < r.end; ++g) {
        if (!l1->map(g)) return Unexpected{std::string("vm.nested: L1's EPT table pool is full")};
      }
    }
  }
  return l1;
}

L1Hypervisor::~L1Hypervisor() { vcpus_.clear(); }

bool L1Hypervisor::l2_memory(Gfn gfn) const {
  for (const Range<Gfn>& r : l2_) {
    if (r.contains(gfn)) return true;
  }
  return false;
}

std::uint64_t L1Hypervisor::read(Gpa entry) const {
  // An 8-byte-aligned word of L1's page-aligned pool (L1 reads its own memory).
  auto* word = reinterpret_cast<std::uint64_t*>(pool_host_ + (entry.raw() - pool_.begin.raw()));  // NOLINT
  return std::atomic_ref<std::uint64_t>(*word).load(std::memory_order_acquire);
}

bool L1Hypervisor::map(Gfn gfn) {
  if (!l2_memory(gfn)) return false;
  Gpa table = pool_.begin;
  for (unsigned level = kLevels; level > 1; --level) {
    const Gpa at = table + index_at(gfn, level) * 8;
    std::uint64_t e = read(at);
    if (!ept::present(e)) {
      if (pool_used_ * kPageSize >= pool_.size()) return false;
      e = gpa_of(gfn_of(pool_.begin) + pool_used_++).raw() | kTableRights;
      mmu_->write_l1(at, e);
    }
    table = Gpa(ept::Addr::bits(e));
  }
  const Gpa leaf = table + index_at(gfn, 1) * 8;
  if (!ept::present(read(leaf))) mmu_->write_l1(leaf, gpa_of(gfn).raw() | kLeafRights);  // else: another vCPU's
  return true;
}

void L1Hypervisor::enter(unsigned vcpu) {
  {
    const std::lock_guard lock(lock_);
    if (!flushed_) mmu_->invept_single(eptp_);  // a fresh EPTP: flush its context before the first entry
    flushed_ = true;
  }
  (void)mmu_->load_eptp(*vcpus_[vcpu], eptp_);  // an invalid EPTP: the next access says so
  entered_[vcpu] = 1;
}

Status<mmu::Exit> L1Hypervisor::access(unsigned vcpu, Gpa l2_gpa, Access a, const mmu::HostUse& use) {
  if (entered_[vcpu] == 0) enter(vcpu);
  for (int exits = 0; exits < kMaxExits; ++exits) {
    const nested::L2Access r = mmu_->access(*vcpus_[vcpu], l2_gpa, a.kind);
    if (r) {
      if (r->emulate) return Unexpected{mmu::Exit::Mmio};  // one of L1's EPT pages: not L2 memory
      // The host byte of L1's memory behind it (the shadow leaf's output is a host address).
      if (use) use(reinterpret_cast<std::byte*>(static_cast<std::uintptr_t>(r->host.raw())));  // NOLINT
      return {};
    }
    const nested::NestedExit& e = r.error();
    if (e.kind == nested::ExitKind::OutOfMemory) return Unexpected{mmu::Exit::OutOfMemory};
    if (e.kind == nested::ExitKind::L1Mmio) return Unexpected{mmu::Exit::Mmio};
    if (e.fault.kind != x86::EptFaultKind::Violation) return Unexpected{mmu::Exit::Unsupported};
    const std::lock_guard lock(lock_);
    if (!map(gfn_of(l2_gpa))) return Unexpected{l2_memory(gfn_of(l2_gpa)) ? mmu::Exit::OutOfMemory : mmu::Exit::Mmio};
  }
  return Unexpected{mmu::Exit::Unsupported};
}

}  // namespace vmmu::sim
