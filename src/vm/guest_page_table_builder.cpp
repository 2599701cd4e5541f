#include "vmmu/vm/guest_page_table_builder.hpp"

#include <algorithm>
#include <array>
#include <span>

#include "vmmu/core/page_size.hpp"
#include "vmmu/vm/vm.hpp"
#include "vmmu/x86/guest_entry.hpp"

namespace vmmu::vm {
namespace {

namespace gpte = x86::gpte;
constexpr unsigned kEntries = 512;
constexpr std::uint64_t kTableFlags = gpte::P::mask | gpte::RW::mask | gpte::US::mask;

unsigned level_of(std::uint64_t page_size) {
  switch (page_size) {
    case kPageSize: return 1;
    case 2 * MiB: return 2;
    case GiB: return 3;
    default: return 0;
  }
}

unsigned index_of(Gva gva, unsigned level) {
  return static_cast<unsigned>((gva.raw() >> (kPageShift + 9 * (level - 1))) & (kEntries - 1));
}

bool canonical(std::uint64_t a, unsigned levels) {
  const unsigned bits = levels == 5 ? 57 : 48;
  const unsigned unused = 64 - bits;
  return static_cast<std::uint64_t>(static_cast<std::int64_t>(a << unused) >> unused) == a;
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
  if (levels != 4 && levels != 5) return Unexpected{BuildError::BadLevels};
  if (!pool.begin.aligned_to(kPageSize)) return Unexpected{BuildError::Misaligned};
  GuestPageTableBuilder b(vm, pool, levels);
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
  if (!vm_->write(next_, kZero)) return Unexpected{BuildError::Memory};
  const Gpa t = next_;
  next_ += kPageSize;
  ++tables_;
  return t;
}

Result<std::uint64_t, BuildError> GuestPageTableBuilder::read(Gpa where) {
  std::uint64_t e = 0;
  if (!vm_->read(where, std::as_writable_bytes(std::span(&e, 1)))) return Unexpected{BuildError::Memory};
  return e;
}

Status<BuildError> GuestPageTableBuilder::write(Gpa where, std::uint64_t entry) {
  if (!vm_->write(where, std::as_bytes(std::span(&entry, 1)))) return Unexpected{BuildError::Memory};
  return {};
}

Result<Gpa, BuildError> GuestPageTableBuilder::entry_address(Gva gva, unsigned level) {
  if (!canonical(gva.raw(), levels_)) return Unexpected{BuildError::NonCanonical};
  Gpa table = root_;
  for (unsigned l = levels_;; --l) {
    const Gpa where = table + std::uint64_t{index_of(gva, l)} * 8;
    if (l == level) return where;
    Result<std::uint64_t, BuildError> e = read(where);
    if (!e) return Unexpected{e.error()};
    if (!gpte::P::get(*e)) {
      Result<Gpa, BuildError> t = take_table();
      if (!t) return t;
      if (Status<BuildError> w = write(where, t->raw() | kTableFlags); !w) return Unexpected{w.error()};
      table = *t;
    } else if (gpte::PS::get(*e)) {
      return Unexpected{BuildError::Conflict};
    } else {
      table = Gpa(gpte::Addr::bits(*e));
    }
  }
}

Status<BuildError> GuestPageTableBuilder::check(Gva gva, std::uint64_t bytes, std::uint64_t page_size) const {
  if (level_of(page_size) == 0) return Unexpected{BuildError::BadPageSize};
  if (!gva.aligned_to(page_size) || bytes % page_size != 0) return Unexpected{BuildError::Misaligned};
  if (bytes == 0) return {};
  const std::uint64_t last = gva.raw() + (bytes - 1);
  if (last < gva.raw() || !canonical(gva.raw(), levels_) || !canonical(last, levels_) ||
      (gva.raw() >> 63) != (last >> 63)) {
    return Unexpected{BuildError::NonCanonical};
  }
  return {};
}

Status<BuildError> GuestPageTableBuilder::map(Gva gva, Gpa gpa, std::uint64_t bytes, std::uint64_t page_size,
                                              GuestPageFlags flags) {
  if (Status<BuildError> c = check(gva, bytes, page_size); !c) return c;
  if (!gpa.aligned_to(page_size)) return Unexpected{BuildError::Misaligned};
  const unsigned level = level_of(page_size);
  std::array<std::uint64_t, kEntries> run{};
  // One table at a time: the entries of a run are adjacent, so one write covers them.
  for (std::uint64_t off = 0; off < bytes;) {
    const Gva at = gva + off;
    Result<Gpa, BuildError> where = entry_address(at, level);
    if (!where) return Unexpected{where.error()};
    const std::uint64_t n = std::min<std::uint64_t>(kEntries - index_of(at, level), (bytes - off) / page_size);
    const std::span<std::uint64_t> entries(run.data(), n);
    if (level > 1) {
      if (!vm_->read(*where, std::as_writable_bytes(entries))) return Unexpected{BuildError::Memory};
      for (std::uint64_t e : entries) {
        if (gpte::P::get(e) && !gpte::PS::get(e)) return Unexpected{BuildError::Conflict};
      }
    }
    for (std::uint64_t i = 0; i < n; ++i) entries[i] = leaf_entry(gpa + off + i * page_size, level, flags);
    if (!vm_->write(*where, std::as_bytes(entries))) return Unexpected{BuildError::Memory};
    off += n * page_size;
  }
  return {};
}

Status<BuildError> GuestPageTableBuilder::unmap(Gva gva, std::uint64_t bytes, std::uint64_t page_size) {
  if (Status<BuildError> c = check(gva, bytes, page_size); !c) return c;
  const unsigned level = level_of(page_size);
  for (std::uint64_t off = 0; off < bytes; off += page_size) {
    Result<Gpa, BuildError> where = entry_address(gva + off, level);
    if (!where) return Unexpected{where.error()};
    Result<std::uint64_t, BuildError> e = read(*where);
    if (!e) return Unexpected{e.error()};
    if (level > 1 && gpte::P::get(*e) && !gpte::PS::get(*e)) return Unexpected{BuildError::Conflict};
    if (Status<BuildError> w = write(*where, 0); !w) return w;
  }
  return {};
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
