#include "vmmu/core/rcu.hpp"

// liburcu's read_lock / read_unlock as library calls cost ~15 ns per section (a PLT call and
// a general-dynamic TLS access each); inlined from its static headers ~2 ns. liburcu allows
// the inline form only in LGPL-compatible code (its README, "_LGPL_SOURCE"), so it is opt-in:
// build with -DVMMU_URCU_INLINE=1 when vmmu's distribution licence permits it.
#if defined(VMMU_URCU_INLINE)
#define _LGPL_SOURCE 1  // NOLINT: liburcu's documented switch
#endif
#include <urcu/urcu-memb.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>

#if defined(VMMU_TSAN)
extern "C" void __tsan_acquire(void* addr);  // NOLINT: sanitizer interface
extern "C" void __tsan_release(void* addr);  // NOLINT
#endif

namespace vmmu::rcu {
namespace {

// Registers on construction, unregisters when the thread exits (thread_local destructor).
// liburcu requires a thread to be registered before its first read_lock.
struct Registrar {
  Registrar() { urcu_memb_register_thread(); }
  ~Registrar() { urcu_memb_unregister_thread(); }
  Registrar(const Registrar&) = delete;
  Registrar& operator=(const Registrar&) = delete;
};

thread_local unsigned t_depth = 0;

#if defined(VMMU_TSAN)
// The object every section end releases and every grace period acquires (see rcu.hpp).
char g_tsan_grace_period;
void tsan_release(void* p) { __tsan_release(p); }
void tsan_acquire(void* p) { __tsan_acquire(p); }
#else
void tsan_release(void*) {}
void tsan_acquire(void*) {}
#endif
void* grace_sync() {
#if defined(VMMU_TSAN)
  return &g_tsan_grace_period;
#else
  return nullptr;
#endif
}

void check_outside_section(const char* what) {
  if (t_depth != 0) {
    std::fprintf(stderr, "vmmu::rcu::%s called inside a read-side section: it would wait for itself\n", what);
    std::abort();
  }
}

// A deferred callback. rcu_head is the first member of a standard-layout base, so the
// rcu_head* liburcu hands back is pointer-interconvertible with the Node.
struct Node {
  rcu_head head;
};
struct Deferred : Node {
  explicit Deferred(std::function<void()> f) : Node{}, fn(std::move(f)) {}
  std::function<void()> fn;
};

void run_deferred(rcu_head* head) {
  auto* node = static_cast<Deferred*>(reinterpret_cast<Node*>(head));
  tsan_acquire(node);           // what the deferring thread did before defer()
  tsan_acquire(grace_sync());   // every reader that ended before the grace period
  node->fn();
  delete node;
}

}  // namespace

void register_thread() {
  thread_local Registrar registrar;
  (void)registrar;
}

unsigned read_depth() { return t_depth; }

namespace detail {
// Nested guards only count: liburcu is entered and left by the outermost one.
void read_lock() {
  if (t_depth++ == 0) {
    register_thread();
    urcu_memb_read_lock();
  }
}
void read_unlock() {
  if (--t_depth == 0) {
    tsan_release(grace_sync());
    urcu_memb_read_unlock();
  }
}
}  // namespace detail

void synchronize() {
  check_outside_section("synchronize");
  register_thread();
  urcu_memb_synchronize_rcu();
  tsan_acquire(grace_sync());
}

void defer(std::function<void()> fn) {
  register_thread();
  auto* node = new Deferred(std::move(fn));
  tsan_release(node);
  urcu_memb_call_rcu(&node->head, &run_deferred);
}

// Not urcu_memb_barrier(): its completion record is allocated by the caller and freed by the
// worker with only uninstrumented synchronisation between them, which TSan reports. Callbacks
// of every thread go to liburcu's default call_rcu worker (vmmu creates no per-CPU workers),
// which runs them in order: a marker deferred now runs after every earlier callback.
void barrier() {
  check_outside_section("barrier");
  struct Marker {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
  };
  auto marker = std::make_shared<Marker>();
  defer([marker] {
    std::lock_guard lock(marker->mutex);
    marker->done = true;
    marker->cv.notify_all();
  });
  std::unique_lock lock(marker->mutex);
  marker->cv.wait(lock, [&] { return marker->done; });
}

}  // namespace vmmu::rcu
