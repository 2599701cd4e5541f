#include "vmmu/vm/guest_page_table_builder.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <type_traits>

#include "vm_table_memory.hpp"
#include "vmmu/core/page_size.hpp"
#include "vmmu/pt/walk.hpp"
#include "vmmu/vm/vm.hpp"
#include "vmmu/x86/guest_entry.hpp"
#include "vmmu/x86/guest_format.hpp"

namespace vmmu::vm {
namespace {

namespace gpte = x86::gpte;
using Entry = std::uint64_t;
constexpr std::uint64_t kTableFlags = gpte::P::mask | gpte::RW::mask | gpte::US::mask;
// 4- and 5-level tables index every level alike: 5-level's geometry serves both.
constexpr const pt::Geometry& kGeometry = x86::Format5::kGeometry;

unsigned level_of(std::uint64_t page_size) {
  switch (page_size) {
    case kPageSize: return 1;
    case 2 * MiB: return 2;
    case GiB: return 3;
    default: return 0;
  }
}

}  // namespace

std::string_view to_string(BuildError e) {
  switch (e) {
    case BuildError::BadLevels: return "guest page tables must have 4 or 5 levels";
    case BuildError::BadPageSize: return "page size must be 4 KiB, 2 MiB or 1 GiB";
    case BuildError::Misaligned: return "address or size not aligned to the page size";
    case BuildError::NonCanonical: return "gva range is not canonical";
    case BuildError::PoolExhausted: return "no table page left in the pool";
    case BuildError::Conflict: return "a mapping of another size is in the way";
    case BuildError::Memory: return "guest memory behind the tables is not accessible";
  }
  return "?";
}

Result<GuestPageTableBuilder, BuildError> GuestPageTableBuilder::create(Vm& vm, Range<Gpa> pool, unsigned levels) {
  return create(vm, nullptr, pool, levels);
}

Result<GuestPageTableBuilder, BuildError> GuestPageTableBuilder::create(Vcpu& vcpu, Range<Gpa> pool, unsigned levels) {
  return create(vcpu.vm(), &vcpu, pool, levels);
}

Result<GuestPageTableBuilder, BuildError> GuestPageTableBuilder::create(Vm& vm, Vcpu* vcpu, Range<Gpa> pool,
                                                                        unsigned levels) {
  if (levels != 4 && levels != 5) return Unexpected{BuildError::BadLevels};
  if (!pool.begin.aligned_to(kPageSize)) return Unexpected{BuildError::Misaligned};
  GuestPageTableBuilder b(vm, vcpu, pool, levels);
  Result<Gpa, BuildError> root = b.take_table();
  if (!root) return Unexpected{root.error()};
  b.root_ = *root;
  return b;
}

std::uint64_t GuestPageTableBuilder::leaf_entry(Gpa gpa, unsigned level, GuestPageFlags f) {
  std::uint64_t e = gpte::P::mask | gpte::Addr::bits(gpa.raw());
  if (f.writable) e |= gpte::RW::mask;
  if (f.user) e |= gpte::US::mask;
  if (f.accessed) e |= gpte::A::mask;
  if (f.dirty) e |= gpte::D::mask;
  if (level > 1) e |= gpte::PS::mask;
  if (f.global) e |= gpte::G::mask;
  if (f.nx) e |= gpte::XD::mask;
  return gpte::ProtKey::set(e, f.key);
}

Result<Gpa, BuildError> GuestPageTableBuilder::take_table() {
  if (pool_.end < next_ + kPageSize) return Unexpected{BuildError::PoolExhausted};
  static constexpr std::array<std::byte, kPageSize> kZero{};
  if (!detail::VmTableMemory(*vm_, vcpu_).write(next_, kZero)) return Unexpected{BuildError::Memory};
  const Gpa t = next_;
  next_ += kPageSize;
  ++tables_;
  return t;
}

x86::GuestPaging GuestPageTableBuilder::paging() const {
  return x86::GuestPaging::from(long_mode_registers(root_, levels_));
}

// The engine's walk down to `level`, building a table wherever an entry is empty.
Result<Gpa, BuildError> GuestPageTableBuilder::entry_address(Gva gva, unsigned level) {
  const x86::GuestPaging p = paging();
  if (!p.canonical(gva)) return Unexpected{BuildError::NonCanonical};
  detail::VmTableMemory memory(*vm_, vcpu_);
  Result<Gpa, BuildError> out = Unexpected{BuildError::Memory};
  p.with_format([&]([[maybe_unused]] auto format, [[maybe_unused]] Gpa root) {
    using F = decltype(format);
    // The registers are long mode's (4 or 5 levels, see create()): no other format occurs.
    if constexpr (std::is_same_v<F, x86::Format4> || std::is_same_v<F, x86::Format5>) {
      for (;;) {
        const pt::WalkResult<F> w = pt::walk(format, memory, root, gva.raw(), [&](pt::Step<F>& s) {
          return s.level == level ? pt::Visit::Stop : pt::Visit::Continue;
        });
        switch (w.end) {
          case pt::WalkEnd::Stopped: out = w.entry_address; return;
          case pt::WalkEnd::Leaf: out = Unexpected{BuildError::Conflict}; return;  // a huge leaf above `level`
          case pt::WalkEnd::Unreadable: out = Unexpected{BuildError::Memory}; return;
          case pt::WalkEnd::NotPresent: break;
        }
        Result<Gpa, BuildError> table = take_table();
        if (!table) {
          out = table;
          return;
        }
        typename F::Entry expected = w.entry;
        if (!memory.compare_exchange(w.entry_address, expected, typename F::Entry{table->raw() | kTableFlags})) {
          out = Unexpected{BuildError::Memory};  // the only writer: a lost exchange is a failed access
          return;
        }
      }
    }
  });
  return out;
}

Status<BuildError> GuestPageTableBuilder::check(Gva gva, std::uint64_t bytes, std::uint64_t page_size) const {
  if (level_of(page_size) == 0) return Unexpected{BuildError::BadPageSize};
  if (!gva.aligned_to(page_size) || bytes % page_size != 0) return Unexpected{BuildError::Misaligned};
  if (bytes == 0) return {};
  const std::uint64_t last = gva.raw() + (bytes - 1);
  const x86::GuestPaging p = paging();
  if (last < gva.raw() || !p.canonical(gva) || !p.canonical(Gva(last)) || (gva.raw() >> 63) != (last >> 63)) {
    return Unexpected{BuildError::NonCanonical};
  }
  return {};
}

Status<BuildError> GuestPageTableBuilder::set_leaves(Gva gva, std::uint64_t bytes, std::uint64_t page_size,
                                                    std::optional<Gpa> gpa, GuestPageFlags flags) {
  if (Status<BuildError> c = check(gva, bytes, page_size); !c) return c;
  const unsigned level = level_of(page_size);
  detail::VmTableMemory memory(*vm_, vcpu_);
  // One table at a time: the entries of a run are adjacent, one walk finds them all.
  for (std::uint64_t off = 0; off < bytes;) {
    const Gva at = gva + off;
    Result<Gpa, BuildError> where = entry_address(at, level);
    if (!where) return Unexpected{where.error()};
    const std::uint64_t n =
        std::min<std::uint64_t>(kGeometry.entries(level) - kGeometry.index(at.raw(), level), (bytes - off) / page_size);
    for (std::uint64_t i = 0; i < n; ++i) {
      const Gpa entry_at = pt::entry_address<x86::Format5>(*where, static_cast<unsigned>(i));
      std::optional<Entry> old = memory.read<Entry>(entry_at);
      if (!old) return Unexpected{BuildError::Memory};
      if (level > 1 && gpte::P::get(*old) && !gpte::PS::get(*old)) return Unexpected{BuildError::Conflict};
      const Entry desired = gpa ? leaf_entry(*gpa + off + i * page_size, level, flags) : Entry{0};
      if (!memory.compare_exchange(entry_at, *old, desired)) return Unexpected{BuildError::Memory};
    }
    off += n * page_size;
  }
  return {};
}

Status<BuildError> GuestPageTableBuilder::map(Gva gva, Gpa gpa, std::uint64_t bytes, std::uint64_t page_size,
                                              GuestPageFlags flags) {
  if (level_of(page_size) != 0 && !gpa.aligned_to(page_size)) return Unexpected{BuildError::Misaligned};
  return set_leaves(gva, bytes, page_size, gpa, flags);
}

Status<BuildError> GuestPageTableBuilder::unmap(Gva gva, std::uint64_t bytes, std::uint64_t page_size) {
  return set_leaves(gva, bytes, page_size, std::nullopt, {});
}

x86::Registers long_mode_registers(Gpa cr3, unsigned levels) {
  x86::Registers r;
  r.cr0 = x86::cr0::PE::mask | x86::cr0::WP::mask | x86::cr0::PG::mask;
  r.cr4 = x86::cr4::PAE::mask | (levels == 5 ? x86::cr4::LA57::mask : 0);
  r.efer = x86::efer::LME::mask | x86::efer::LMA::mask | x86::efer::NXE::mask;
  r.cr3 = cr3.raw();
  return r;
}

}  // namespace vmmu::vm
