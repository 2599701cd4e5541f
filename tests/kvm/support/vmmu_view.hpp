#pragma once
// VmmuView: guest RAM (host buffers laid out as memslots) as vmmu itself sees it -- a
// vmmu::Memslots with one slot per region over the very same host bytes, and a
// vmmu::GuestMemory over it, the accessor vmmu's walker reads tables through.

#include <memory>
#include <vector>

#include "kvm/support/kvm_vm.hpp"
#include "vmmu/memory/guest_memory.hpp"
#include "vmmu/memory/memslots.hpp"

namespace vmmu::test::kvm {

class VmmuView {
 public:
  // Errors: the MemslotError of the first region Memslots refuses.
  static Result<std::unique_ptr<VmmuView>, MemslotError> over(const std::vector<RamRegion>& regions) {
    auto view = std::unique_ptr<VmmuView>(new VmmuView());
    std::uint32_t id = 0;
    for (const RamRegion& r : regions) {
      MemslotSpec spec;
      spec.id = SlotId{id++};
      spec.base = gfn_of(r.base);
      spec.pages = r.bytes.size() / kPageSize;
      spec.host = r.bytes.data();
      spec.flags = r.read_only ? MemslotFlags::read_only() : MemslotFlags::none();
      if (auto st = view->slots_.add(spec); !st) return Unexpected<MemslotError>{st.error()};
    }
    return view;
  }

  GuestMemory& memory() { return memory_; }

 private:
  VmmuView() : memory_(slots_) {}
  Memslots slots_;
  GuestMemory memory_;
};

}  // namespace vmmu::test::kvm
