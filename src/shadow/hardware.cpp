// The modelled hardware under shadow paging: the x86 walker over the shadow tables with the
// registers the host runs the guest with, then the guest's view of what it reached.

#include "vmmu/shadow/shadow_mmu.hpp"
#include "vmmu/x86/registers.hpp"

namespace vmmu::shadow {
namespace {

// The shadow tables as the processor's page walker sees them: its "physical" addresses are
// host addresses here (the walker's Gpa-typed table memory reads an Hpa of the same value).
// It never writes: shadow entries carry A and D already.
class HardwareView {
 public:
  explicit HardwareView(pt::OwnedTableMemory& memory) : memory_(memory) {}
  template <class T>
  std::optional<T> read(Gpa addr) const {
    return memory_.read<T>(Hpa(addr.raw()));
  }
  template <class T>
  bool compare_exchange(Gpa, T&, T) {
    return false;
  }

 private:
  pt::OwnedTableMemory& memory_;
};

// The host's registers for running this guest: long mode with 4 or 5 levels at the shadow
// root, CR0.WP always on (so write-protected shadow entries hold against the guest kernel too),
// EFER.NX always on (shadow entries may need XD the guest cannot set), the guest's SMEP /
// SMAP, effective protection keys, PKRU and RFLAGS.AC.
x86::Registers host_registers(const x86::GuestPaging& paging, Hpa root, unsigned host_levels) {
  namespace cr0 = x86::cr0;
  namespace cr4 = x86::cr4;
  namespace efer = x86::efer;
  const x86::Registers& g = paging.registers();
  const bool paging_on = paging.mode() != x86::PagingMode::Off;
  x86::Registers r;
  r.cr0 = cr0::PE::mask | cr0::PG::mask | cr0::WP::mask;
  r.cr3 = root.raw();
  r.cr4 = cr4::PAE::mask | (host_levels == 5 ? cr4::LA57::mask : 0) |
          (paging_on ? g.cr4 & (cr4::SMEP::mask | cr4::SMAP::mask) : 0) |
          (paging.protection_keys() ? cr4::PKE::mask : 0);
  r.efer = efer::LME::mask | efer::LMA::mask | efer::NXE::mask;
  r.rflags = g.rflags;
  r.pkru = g.pkru;
  return r;
}

}  // namespace

const x86::GuestPaging& ShadowMmu::host_paging(const x86::GuestPaging& paging, const ShadowPage& root) {
  const x86::Registers r = host_registers(paging, root.table(), config_.host_levels);
  if (!host_ || host_->registers != r) host_.emplace(HostPaging{r, x86::GuestPaging::from(r, {})});
  return host_->paging;
}

std::optional<x86::Translation> ShadowMmu::hardware(const x86::GuestPaging& host, std::uint64_t linear,
                                                    Access access, std::byte** host_byte) {
  HardwareView view(memory_);
  x86::WalkPath& path = hardware_path_;
  Result<x86::Translation, x86::WalkFault> r =
      x86::walk(host, view, Gva(linear), access, x86::WalkOptions{.update_accessed_dirty = false}, path);
  if (!r) return std::nullopt;
  // The walk's "physical" address is the host address the shadow leaf maps.
  if (host_byte != nullptr) *host_byte = reinterpret_cast<std::byte*>(static_cast<std::uintptr_t>(r->gpa.raw()));  // NOLINT
  // What the leaf maps in guest terms: the shadow page holding it (found from the leaf's
  // address the walk used) knows.
  const Hpa table(path[r->level].address.raw() & ~(kPageSize - 1));
  const GuestLeaf leaf = pages_.by_table(table)->leaf(format_.geometry().index(linear, r->level));
  x86::Translation t = *r;
  t.gpa = gpa_of(leaf.gfn) + (linear & (format_.geometry().span(r->level) - 1));
  t.page_size = leaf.page_size;
  return t;
}

}  // namespace vmmu::shadow
