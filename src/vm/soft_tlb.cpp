#include "vmmu/vm/soft_tlb.hpp"

namespace vmmu::vm {
namespace {

bool same_page(const TlbEntry& e, std::uint64_t vpn) { return (e.vpn >> e.size_shift) == (vpn >> e.size_shift); }

}  // namespace

void SoftTlb::drop(std::uint64_t vpn) {
  TlbEntry& e = entries_[vpn % kEntries];
  if (e.valid && e.vpn == vpn) e.valid = false;
}

// Invalidates the valid entries `drop` names; returns how many.
template <class Pred>
static std::size_t drop_where(std::array<TlbEntry, SoftTlb::kEntries>& entries, Pred drop) {
  std::size_t n = 0;
  for (TlbEntry& e : entries) {
    if (e.valid && drop(e)) {
      e.valid = false;
      ++n;
    }
  }
  return n;
}

std::size_t SoftTlb::invalidate_page(std::uint64_t vpn, std::uint16_t pcid) {
  return drop_where(entries_, [&](const TlbEntry& e) { return same_page(e, vpn) && (e.global || e.pcid == pcid); });
}

std::size_t SoftTlb::invalidate_pcid_page(std::uint64_t vpn, std::uint16_t pcid) {
  return drop_where(entries_, [&](const TlbEntry& e) { return same_page(e, vpn) && !e.global && e.pcid == pcid; });
}

std::size_t SoftTlb::flush(TlbScope scope, std::uint16_t pcid) {
  return drop_where(entries_, [&](const TlbEntry& e) {
    switch (scope) {
      case TlbScope::NonGlobal: return !e.global && e.pcid == pcid;
      case TlbScope::Pcid: return e.global || e.pcid == pcid;
      case TlbScope::All: return true;
      case TlbScope::NonGlobalAll: return !e.global;
    }
    return false;
  });
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
