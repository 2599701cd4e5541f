#include "sim_vm.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "l1_hypervisor.hpp"
#include "vmmu/core/page_size.hpp"

namespace vmmu::sim {

Result<std::unique_ptr<SimVm>, std::string> SimVm::create(const Scenario& s) {
  std::unique_ptr<SimVm> sim(new SimVm());
  sim->scenario_ = s;
  vm::VmConfig config;
  config.mmu = s.vm.mmu;
  config.tdp.format.kind = s.vm.tdp;
  config.tdp.format.levels = s.vm.levels;
  config.tdp.format.ad_bits = s.vm.tdp == tdp::TdpKind::Npt || s.vm.ad_bits;
  config.tdp.format.pages_1g = s.vm.pages_1g;
  config.tdp.policies = s.policies;
  config.tdp.dirty_ring_size = s.vm.dirty_ring_size;
  config.shadow_unsync = s.vm.shadow_unsync;
  auto vm = vm::Vm::create(config);
  if (!vm) return Unexpected{fmt::format("cannot create the VM: {}", vm::to_string(vm.error()))};
  sim->vm_ = std::move(*vm);

  const std::vector<std::uint64_t> bases = memslot_bases(s);
  for (std::size_t i = 0; i < s.memslots.size(); ++i) {
    const MemslotParams& m = s.memslots[i];
    auto memory = HostBuffer::allocate(m.size, m.backing_page_size, HostMemoryOptions{m.host_huge_pages, true});
    if (!memory) return Unexpected{fmt::format("memslots[{}]: {}", i, memory.error())};
    SimSlot slot;
    slot.id = SlotId{static_cast<std::uint32_t>(i)};
    slot.base = gfn_of(Gpa(bases[i]));
    slot.pages = m.size / kPageSize;
    slot.first_page = sim->pages_;
    slot.memory = std::move(*memory);
    MemslotSpec spec;
    spec.id = slot.id;
    spec.base = slot.base;
    spec.pages = slot.pages;
    spec.host = slot.memory.data();
    spec.backing_page_size = m.backing_page_size;
    if (auto added = sim->vm_->memslots().add(spec); !added)
      return Unexpected{fmt::format("memslots[{}]: cannot add the slot: {}", i, to_string(added.error()))};
    sim->pages_ += slot.pages;
    sim->slots_.push_back(std::move(slot));
  }
  for (unsigned i = 0; i < s.vm.vcpus; ++i) sim->vcpus_.push_back(&sim->vm_->add_vcpu());
  if (s.vm.nested) {
    auto l1 = L1Hypervisor::create(*sim, *s.vm.nested, s.vm.vcpus);
    if (!l1) return Unexpected{l1.error()};
    sim->l1_ = std::move(*l1);
  }
  return sim;
}

SimVm::~SimVm() {
  l1_.reset();
  vcpus_.clear();
  vm_.reset();  // before slots_: the VM's memslots point into their memory
}

std::pair<std::uint64_t, std::uint64_t> SimVm::share(unsigned i) const {
  const std::uint64_t n = vcpus_.size();
  return {pages_ * i / n, pages_ * (i + 1) / n};
}

std::pair<const SimSlot*, std::uint64_t> SimVm::locate(std::uint64_t page) const {
  // The last slot starting at or before `page`.
  auto it = std::upper_bound(slots_.begin(), slots_.end(), page,
                             [](std::uint64_t p, const SimSlot& s) { return p < s.first_page; });
  const SimSlot& slot = *(it - 1);
  return {&slot, page - slot.first_page};
}

Gpa SimVm::gpa_of_page(std::uint64_t page) const {
  auto [slot, in_slot] = locate(page);
  return gpa_of(slot->base + in_slot);
}

std::vector<PageRun> SimVm::runs(std::uint64_t first, std::uint64_t end) const {
  std::vector<PageRun> out;
  while (first < end) {
    auto [slot, in_slot] = locate(first);
    const std::uint64_t n = std::min(end - first, slot->pages - in_slot);
    out.push_back(PageRun{slot, first, n});
    first += n;
  }
  return out;
}

Result<Range<Gpa>, std::string> SimVm::add_table_pool(std::uint64_t pages) {
  std::uint64_t end = 0;
  for (const auto* list : {&slots_, &pools_}) {
    for (const SimSlot& s : *list) end = std::max(end, (s.base + s.pages).raw());
  }
  auto memory = HostBuffer::allocate(pages * kPageSize, kPageSize);
  if (!memory) return Unexpected{"guest page tables: " + memory.error()};
  SimSlot slot;
  slot.id = SlotId{static_cast<std::uint32_t>(slots_.size() + pools_.size())};
  slot.base = Gfn((end + 511) / 512 * 512);  // 2 MiB-aligned, above every slot
  slot.pages = pages;
  slot.memory = std::move(*memory);
  MemslotSpec spec;
  spec.id = slot.id;
  spec.base = slot.base;
  spec.pages = pages;
  spec.host = slot.memory.data();
  if (auto added = vm_->memslots().add(spec); !added)
    return Unexpected{fmt::format("guest page tables: cannot add a memslot at gfn {:#x}: {}", slot.base.raw(),
                                  to_string(added.error()))};
  const Range<Gpa> range{gpa_of(slot.base), gpa_of(slot.base + pages)};
  pools_.push_back(std::move(slot));
  return range;
}

std::byte* SimVm::pool_host(Gpa base) {
  for (SimSlot& s : pools_) {
    if (gpa_of(s.base) == base) return s.memory.data();
  }
  return nullptr;
}

StatsSnapshot SimVm::snapshot() {
  StatsSnapshot s;
  s.kind = mmu().kind();
  if (tdp::TdpMmu* t = tdp_mmu()) s.tdp = t->stats();
  s.mmu = mmu().stats();
  for (vm::Vcpu* v : vcpus_) s.root_loads += v->mmu().stats().root_loads;
  s.host_page_faults = host_page_faults();
  if (l1_) {
    s.nested = l1_->stats();
    s.nested_kind = scenario().vm.nested->kind;
  }
  return s;
}

std::uint64_t SimVm::host_touch_ns() const {
  std::uint64_t ns = 0;
  for (const SimSlot& s : slots_) ns += s.memory.touch_ns();
  return ns;
}

std::uint64_t SimVm::host_pages_touched() const {
  std::uint64_t pages = 0;
  for (const SimSlot& s : slots_) pages += s.memory.pages_touched();
  return pages;
}

}  // namespace vmmu::sim
