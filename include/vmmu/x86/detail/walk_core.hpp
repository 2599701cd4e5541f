#pragma once
// The one walker loop shared by every x86 format (32-bit, PAE, 4/5-level guest tables and
// nested EPT): pt::walk over the format, architecture rules supplied as a `Rules` object, then
// the Accessed/Dirty write-back with compare-exchange and a restart when the guest changed an
// entry under the walk. Everything is a template so it inlines into each mode's walk.
//
// Rules (all members inline):
//   void start();                               a fresh attempt begins
//   pt::Visit visit(unsigned level, Entry e);   every entry read, present or not; Stop = fault
//                                               recorded in the rules (reserved / misconfig)
//   void not_present(unsigned level, Entry e);  the walk ended at a not-present entry
//   bool permit(unsigned level, Entry leaf);    false = permission fault recorded in the rules
//   bool ad_pending(Entry leaf);                any A/D bit still to set? (skips the write-back
//                                               loop on the warm path, where all are set)
//   Entry ad_bits(unsigned level, Entry e, bool leaf);  bits to set after a successful walk
//   void record(const pt::Step<F>& s);          optional: every entry read, with its address
//                                               (rules without it compile to the plain walk)
//
// A/D bits are set only when the whole walk succeeds (the format pages leave the A bits of a
// faulting walk implementation-specific; KVM's walker does the same). They are written top-down
// after the walk, as KVM's FNAME(update_accessed_dirty_bits) does.
//
// Two passes, so that the warm walk (every A/D bit already set) records nothing: the first
// walk (walk_core) only checks; when it finds A/D bits to set it says so (AdPending) and the
// caller walks again with walk_core_update_ad, out of line and with fresh rules, recording
// the path it uses; that walk's result stands -- as if the guest's tables had been read a
// moment later, which they may be. The compare-exchanges expect exactly the entries it checked.

#include <array>
#include <cstdint>
#include <optional>

#include "vmmu/pt/format.hpp"
#include "vmmu/pt/walk.hpp"

namespace vmmu::x86::detail {

// AdPending: the walk reached a permitted leaf with A/D bits to set; the caller runs
// walk_core_update_ad (out of line, with rules of its own) and answers from that walk.
enum class CoreEnd : std::uint8_t { Leaf, Fault, Unreadable, AdPending };

template <class Entry>
struct CoreResult {
  CoreEnd end;
  unsigned level;
  Entry entry;  // the leaf as the walk left it (A/D bits included) when end == Leaf
};

// The end of a walk that did not reach a permitted leaf; nullopt when it did.
template <class F, class Rules>
inline std::optional<CoreResult<typename F::Entry>> settle(const pt::WalkResult<F>& r, Rules& rules) {
  using Entry = typename F::Entry;
  switch (r.end) {
    case pt::WalkEnd::Unreadable: return CoreResult<Entry>{CoreEnd::Unreadable, r.level, Entry{}};
    case pt::WalkEnd::Stopped: return CoreResult<Entry>{CoreEnd::Fault, r.level, r.entry};
    case pt::WalkEnd::NotPresent: rules.not_present(r.level, r.entry); return CoreResult<Entry>{CoreEnd::Fault, r.level, r.entry};
    case pt::WalkEnd::Leaf: break;
  }
  if (!rules.permit(r.level, r.entry)) return CoreResult<Entry>{CoreEnd::Fault, r.level, r.entry};
  return std::nullopt;
}

// The walk that sets A/D bits: records the path it uses, so that each compare-exchange
// expects exactly the entry the walk checked. The warm walk never comes here.
template <pt::Format F, class M, class Rules>
  requires pt::TableMemory<M, typename F::Output>
CoreResult<typename F::Entry> walk_core_update_ad(F format, M& memory,
                                                                    typename F::Output root, std::uint64_t input,
                                                                    Rules& rules) {
  using Entry = typename F::Entry;
  struct Used {
    typename F::Output address;
    Entry entry;
  };
  for (;;) {
    std::array<Used, pt::kMaxLevels + 1> path;
    rules.start();
    const pt::WalkResult<F> r = pt::walk(format, memory, root, input, [&](pt::Step<F>& s) {
      path[s.level] = Used{s.entry_address, s.entry};
      if constexpr (requires { rules.record(s); }) rules.record(s);
      return rules.visit(s.level, s.entry);
    });
    if (auto done = settle(r, rules)) return *done;
    if (!rules.ad_pending(r.entry)) return {CoreEnd::Leaf, r.level, r.entry};

    Entry leaf = r.entry;
    bool changed = false;
    for (unsigned level = format.geometry().root_level(); level >= r.level; --level) {
      const Used& u = path[level];
      const Entry bits = rules.ad_bits(level, u.entry, level == r.level);
      if ((u.entry & bits) == bits) continue;
      Entry expected = u.entry;
      const Entry desired = static_cast<Entry>(u.entry | bits);
      if (memory.template compare_exchange<Entry>(u.address, expected, desired)) {
        if (level == r.level) leaf = desired;
        continue;
      }
      // A changed entry means the guest (another vCPU) rewrote it: walk again from the root.
      // An unchanged one means the memory refused the write (read-only memslot, image): the
      // update is dropped and the walk stands, as KVM does for a gpte it cannot write.
      if (expected != u.entry) {
        changed = true;
        break;
      }
    }
    if (!changed) return {CoreEnd::Leaf, r.level, leaf};
  }
}

template <pt::Format F, class M, class Rules>
  requires pt::TableMemory<M, typename F::Output>
inline CoreResult<typename F::Entry> walk_core(F format, M& memory,
                                                                      typename F::Output root, std::uint64_t input,
                                                                      bool update_ad, Rules& rules) {
  rules.start();
  const pt::WalkResult<F> r = pt::walk(format, memory, root, input, [&](pt::Step<F>& s) {
    if constexpr (requires { rules.record(s); }) rules.record(s);
    return rules.visit(s.level, s.entry);
  });
  if (auto done = settle(r, rules)) return *done;
  if (!update_ad || !rules.ad_pending(r.entry)) return {CoreEnd::Leaf, r.level, r.entry};
  // Not walk_core_update_ad from here: `rules` would then be copied to or from a call, and a
  // rules object whose state crosses a call lives in memory, stored after every entry.
  return {CoreEnd::AdPending, r.level, r.entry};
}

}  // namespace vmmu::x86::detail
