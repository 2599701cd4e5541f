#include "image/support/x86_tables.hpp"

#include <stdexcept>

namespace vmmu::image::testing {

X86Tables::X86Tables(GuestPages& pages, x86::PagingMode mode, Gpa root, Gpa next_free)
    : pages_(pages), mode_(mode), root_(root), next_(next_free) {
  switch (mode) {
    case x86::PagingMode::Bits32: levels_ = 2; entry_bytes_ = 4; break;
    case x86::PagingMode::Pae: levels_ = 3; entry_bytes_ = 8; break;
    case x86::PagingMode::Long4: levels_ = 4; entry_bytes_ = 8; break;
    case x86::PagingMode::Long5: levels_ = 5; entry_bytes_ = 8; break;
    case x86::PagingMode::Off: throw std::invalid_argument("no tables with paging off");
  }
}

unsigned X86Tables::shift(unsigned level) const {
  return entry_bytes_ == 4 ? 12 + 10 * (level - 1) : 12 + 9 * (level - 1);
}

unsigned X86Tables::index(std::uint64_t gva, unsigned level) const {
  const unsigned bits = entry_bytes_ == 4 ? 10 : (mode_ == x86::PagingMode::Pae && level == 3 ? 2 : 9);
  return static_cast<unsigned>((gva >> shift(level)) & ((1u << bits) - 1));
}

Gpa X86Tables::allocate() {
  const Gpa t = next_;
  next_ += kPageSize;
  return t;
}

void X86Tables::set(Gpa table, unsigned index, std::uint64_t value) {
  if (entry_bytes_ == 4) {
    pages_.write<std::uint32_t>(table + index * 4ull, static_cast<std::uint32_t>(value));
  } else {
    pages_.write<std::uint64_t>(table + index * 8ull, value);
  }
}

std::uint64_t X86Tables::get(Gpa table, unsigned index) const {
  const auto b = pages_.bytes(table + index * std::uint64_t{entry_bytes_}, entry_bytes_);
  std::uint64_t v = 0;
  std::memcpy(&v, b.data(), entry_bytes_);
  return v;
}

Gpa X86Tables::table(std::uint64_t gva, unsigned level, std::uint64_t table_flags) {
  Gpa t = root_;
  for (unsigned l = levels_; l > level; --l) {
    const unsigned i = index(gva, l);
    std::uint64_t e = get(t, i);
    if ((e & bits::P) == 0) {
      const Gpa fresh = allocate();
      const std::uint64_t flags = mode_ == x86::PagingMode::Pae && l == 3 ? bits::P : table_flags;
      e = fresh.raw() | flags;
      set(t, i, e);
    }
    t = Gpa(e & (entry_bytes_ == 4 ? 0xfffff000ull : 0x000ffffffffff000ull));
  }
  return t;
}

void X86Tables::map(std::uint64_t gva, std::uint64_t gpa, std::uint64_t size, std::uint64_t leaf_flags,
                    std::uint64_t table_flags) {
  unsigned level = 1;
  while ((std::uint64_t{1} << shift(level)) < size) ++level;
  if ((std::uint64_t{1} << shift(level)) != size) throw std::invalid_argument("page size not of this mode");
  const Gpa t = table(gva, level, table_flags);
  std::uint64_t e = leaf_flags | bits::P | (level > 1 ? bits::PS : 0);
  if (entry_bytes_ == 4 && level == 2) {
    e |= (gpa & 0xffc00000ull) | (((gpa >> 32) & 0xff) << 13);  // PSE-36: PA 39:32 in bits 20:13
  } else {
    e |= gpa;
  }
  set(t, index(gva, level), e);
}

x86::Registers registers_for(x86::PagingMode mode, Gpa root, bool nxe, bool pse) {
  x86::Registers r;
  r.cr0 = 0x80010033;  // PG, WP, NE, ET, MP, PE
  r.cr3 = root.raw();
  r.cr4 = pse ? 0x10 : 0;
  r.efer = nxe ? 0x800 : 0;
  switch (mode) {
    case x86::PagingMode::Off: r.cr0 = 0x33; break;
    case x86::PagingMode::Bits32: break;
    case x86::PagingMode::Pae: r.cr4 |= 0x20; break;
    case x86::PagingMode::Long4: r.cr4 |= 0x20; r.efer |= 0x500; break;
    case x86::PagingMode::Long5: r.cr4 |= 0x20 | 0x1000; r.efer |= 0x500; break;
  }
  return r;
}

}  // namespace vmmu::image::testing
