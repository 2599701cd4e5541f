#include "vmmu/vm/soft_tlb.hpp"

namespace vmmu::vm {
namespace {

bool same_page(const TlbEntry& e, std::uint64_t vpn) { return (e.vpn >> e.size_shift) == (vpn >> e.size_shift); }

}  // namespace

void SoftTlb::drop(std::uint64_t vpn) {
  TlbEntry& e = entries_[vpn % kEntries];
  if (e.valid && e.vpn == vpn) e.valid = false;
}

std::size_t SoftTlb::invalidate_page(std::uint64_t vpn, std::uint16_t pcid) {
  std::size_t n = 0;
  for (TlbEntry& e : entries_) {
    if (e.valid && same_page(e, vpn) && (e.global || e.pcid == pcid)) {
      e.valid = false;
      ++n;
    }
  }
  return n;
}

std::size_t SoftTlb::flush(TlbScope scope, std::uint16_t pcid) {
  std::size_t n = 0;
  for (TlbEntry& e : entries_) {
    if (!e.valid) continue;
    bool drop = false;
    switch (scope) {
      case TlbScope::NonGlobal: drop = !e.global && e.pcid == pcid; break;
      case TlbScope::Pcid: drop = e.global || e.pcid == pcid; break;
      case TlbScope::All: drop = true; break;
    }
    if (drop) {
      e.valid = false;
      ++n;
    }
  }
  return n;
}

std::size_t SoftTlb::size() const {
  std::size_t n = 0;
  for (const TlbEntry& e : entries_) n += e.valid ? 1 : 0;
  return n;
}

std::size_t SoftTlb::global_entries() const {
  std::size_t n = 0;
  for (const TlbEntry& e : entries_) n += e.valid && e.global ? 1 : 0;
  return n;
}

}  // namespace vmmu::vm
