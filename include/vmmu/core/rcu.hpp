#pragma once
// Read-copy-update: a thin C++ layer over liburcu's memb flavour (sys_membarrier based).
//
// Readers enter a read-side section with `rcu::ReadGuard` (cheap, nestable, never blocks).
// Writers publish a new version of a structure with one atomic pointer store, then either
// wait for every reader that might still hold the old version (`rcu::synchronize()`), or hand
// the old version to `rcu::retire()` / `rcu::defer()` to be freed after a grace period
// without waiting.
//
//   reader                                  writer
//   ------                                  ------
//   rcu::ReadGuard g;                       auto* old = ptr.exchange(fresh, release);
//   auto* p = ptr.load(acquire);            rcu::synchronize();   // or rcu::retire(old)
//   use(*p);                                delete old;
//   // ~g: section ends
//
// Threads register with liburcu automatically on first use and unregister at thread exit.
//
// Rules:
//  - never call synchronize() (or rcu_barrier()) inside a read-side section of the same
//    thread: it would wait for itself (checked: aborts with a message);
//  - a pointer loaded inside a section is valid only until that section ends.
//
// ThreadSanitizer: liburcu is not instrumented, so the happens-before it provides is invisible
// to TSan. Under VMMU_TSAN every section end releases, and every synchronize() / deferred
// callback acquires, one shared sync object. This is coarser than RCU (a reader that ends
// after the grace period started also orders before it), so TSan may miss a few real races
// of that shape but never reports a false one.

#include <functional>
#include <memory>
#include <utility>

namespace vmmu::rcu {

// Registers the calling thread with liburcu if it is not yet (idempotent). ReadGuard,
// synchronize() and defer() call it; call it yourself only to move the cost off a hot path.
void register_thread();

// Depth of read-side sections the calling thread is in (0: outside any section).
[[nodiscard]] unsigned read_depth();

namespace detail {
void read_lock();
void read_unlock();
}  // namespace detail

// RAII read-side section. Nestable; must end on the thread that began it.
class [[nodiscard]] ReadGuard {
 public:
  ReadGuard() { detail::read_lock(); }
  ~ReadGuard() { detail::read_unlock(); }
  ReadGuard(const ReadGuard&) = delete;
  ReadGuard& operator=(const ReadGuard&) = delete;
  ReadGuard(ReadGuard&&) = delete;
  ReadGuard& operator=(ReadGuard&&) = delete;
};

// Waits until every read-side section that began before the call has ended.
// Errors: none. Calling it inside a read-side section is a bug and aborts.
void synchronize();

// Runs `fn` on liburcu's call_rcu worker thread after a grace period: every section that
// began before the call has ended. Does not block. `fn` must not throw.
// Errors: none (allocation failure throws std::bad_alloc like any allocation).
void defer(std::function<void()> fn);

// Deletes `p` after a grace period (see defer()).
template <class T>
void retire(T* p) {
  if (p != nullptr) defer([p] { std::default_delete<T>{}(p); });
}
template <class T>
void retire(std::unique_ptr<T> p) {
  retire(p.release());
}

// Waits until every callback handed to defer() / retire() so far has run (like rcu_barrier).
// Errors: none. Calling it inside a read-side section aborts.
void barrier();

}  // namespace vmmu::rcu
