#include "vmmu/pt/owned_table_memory.hpp"

#include <sys/mman.h>

#include <bit>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include "vmmu/core/rcu.hpp"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VMMU_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define VMMU_ASAN 1
#endif
#if defined(VMMU_ASAN)
#include <sanitizer/asan_interface.h>
#define VMMU_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define VMMU_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define VMMU_POISON(p, n) ((void)(p), (void)(n))
#define VMMU_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace vmmu::pt {

// 4 KiB table pages, carved from chunks mapped with MAP_POPULATE: one system call faults in a
// chunk's pages, zeroed by the kernel, instead of a page fault per table on a vCPU's fault
// path. A page given back is zeroed and kept warm (already touched: the next table there costs
// no host fault) up to kWarmPages; past that it goes back to the kernel (MADV_DONTNEED, so the
// pool stops growing with the largest VM the process ever had) and is kept, cold, for when the
// warm pages run out: its first write then faults in a zeroed page, as a fresh chunk's would.
// (Zeroing as pages are taken instead was tried: it made the exclusive write-protect of 1 GiB
// slower, 0.33 against 0.19 ms, and the 4K fault's p99 no better.) Free pages are poisoned for
// ASan, so a walker that keeps using a freed table is still caught.
class TablePool {
 public:
  static constexpr std::size_t kPageBytes = 4096;
  static constexpr std::size_t kChunkPages = 64;  // 256 KiB: one refill per 64 tables
  // 32 MiB: the tables of a 16 GiB VM mapped with 4 KiB pages (populating 1 GiB takes 515).
  static constexpr std::size_t kWarmPages = 8192;

  TablePool() = default;
  ~TablePool() {
    for (std::byte* c : chunks_) {
      VMMU_UNPOISON(c, kChunkPages * kPageBytes);
      ::munmap(c, kChunkPages * kPageBytes);
    }
  }
  TablePool(const TablePool&) = delete;
  TablePool& operator=(const TablePool&) = delete;

  // A zeroed page, or null when the system has no memory.
  std::byte* take() {
    std::byte* p = nullptr;
    {
      std::lock_guard g(mutex_);
      if (!warm_.empty()) {
        p = pop(warm_);
      } else if (!cold_.empty()) {
        p = pop(cold_);
      }
    }
    return p != nullptr ? p : refill();
  }
  // `page` came from take() and no walker can reach it any more.
  void give_back(std::byte* page) {
    bool keep_warm = false;
    {
      std::lock_guard g(mutex_);
      keep_warm = warm_.size() < kWarmPages;
    }
    // Still ours if madvise fails: kept warm then, only not returned.
    if (!keep_warm && ::madvise(page, kPageBytes, MADV_DONTNEED) != 0) keep_warm = true;
    if (keep_warm) std::memset(page, 0, kPageBytes);
    VMMU_POISON(page, kPageBytes);
    std::lock_guard g(mutex_);
    (keep_warm ? warm_ : cold_).push_back(page);
  }
  TablePoolPages pages() {
    std::lock_guard g(mutex_);
    return {warm_.size(), cold_.size()};
  }

 private:
  // A new chunk: one page of it for the caller, the rest warm. Null when the system has no
  // memory. Mapped outside the lock: another thread refilling at the same time only costs memory.
  std::byte* refill() {
    void* m = ::mmap(nullptr, kChunkPages * kPageBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    auto* chunk = static_cast<std::byte*>(m);
    VMMU_POISON(chunk, kChunkPages * kPageBytes);
    std::lock_guard g(mutex_);
    chunks_.push_back(chunk);
    for (std::size_t i = kChunkPages; i-- > 0;) warm_.push_back(chunk + i * kPageBytes);
    return pop(warm_);
  }
  static std::byte* pop(std::vector<std::byte*>& from) {
    std::byte* p = from.back();
    from.pop_back();
    VMMU_UNPOISON(p, kPageBytes);
    return p;
  }

  std::mutex mutex_;
  std::vector<std::byte*> chunks_;
  std::vector<std::byte*> warm_;  // zeroed, touched
  std::vector<std::byte*> cold_;  // returned to the kernel: zero-filled on the next touch
};

namespace {

// One pool for the process, keeping up to kWarmPages free pages warm: the tables of a VM
// created after another one went reuse its pages, already touched. A fresh page costs a host
// fault on its first write on a virtualized host even after MAP_POPULATE (microseconds: 2 ms
// of a 1 GiB populate's 515 tables, seen as the first load of each new table in a profile).
std::shared_ptr<TablePool> process_pool() {
  static const std::shared_ptr<TablePool> pool = std::make_shared<TablePool>();
  return pool;
}

}  // namespace

TablePoolPages table_pool_pages() { return process_pool()->pages(); }

std::size_t table_pool_warm_cap() { return TablePool::kWarmPages; }

OwnedTableMemory::OwnedTableMemory(const Geometry& geometry, std::uint64_t page_budget, std::size_t min_align)
    : geometry_(geometry), min_align_(min_align), budget_(page_budget), pool_(process_pool()) {}

OwnedTableMemory::~OwnedTableMemory() = default;

std::size_t OwnedTableMemory::bytes(unsigned level) const {
  return static_cast<std::size_t>(geometry_.table_bytes(level));
}

std::size_t OwnedTableMemory::alignment(unsigned level) const {
  const std::size_t b = std::bit_ceil(bytes(level));
  return b > min_align_ ? b : min_align_;
}

bool OwnedTableMemory::pooled(unsigned level) const {
  return bytes(level) == TablePool::kPageBytes && alignment(level) == TablePool::kPageBytes;
}

std::uint64_t OwnedTableMemory::tables_in_use() const { return total_.load(std::memory_order_relaxed); }

Result<Hpa, TableError> OwnedTableMemory::allocate(unsigned level) {
  // Reserve a slot of the budget first so concurrent allocators never overshoot it.
  std::uint64_t used = total_.load(std::memory_order_relaxed);
  do {
    if (used >= budget_.load(std::memory_order_relaxed)) return Unexpected{TableError::OutOfMemory};
  } while (!total_.compare_exchange_weak(used, used + 1, std::memory_order_relaxed));
  void* p = nullptr;
  if (pooled(level)) {
    p = pool_->take();  // already zero
  } else {
    const std::size_t align = alignment(level);
    const std::size_t size = std::max(bytes(level), align);
    p = ::operator new(size, std::align_val_t{align}, std::nothrow);
    if (p != nullptr) std::memset(p, 0, size);
  }
  if (p == nullptr) {
    total_.fetch_sub(1, std::memory_order_relaxed);
    return Unexpected{TableError::OutOfMemory};
  }
  in_use_[level].fetch_add(1, std::memory_order_relaxed);
  return Hpa(reinterpret_cast<std::uintptr_t>(p));  // NOLINT: an Hpa is a host VA
}

void OwnedTableMemory::free_unpublished(Hpa table, unsigned level) {
  in_use_[level].fetch_sub(1, std::memory_order_relaxed);
  total_.fetch_sub(1, std::memory_order_relaxed);
  if (pooled(level)) {
    pool_->give_back(pointer<std::byte>(table));
  } else {
    ::operator delete(pointer<std::byte>(table), std::align_val_t{alignment(level)});
  }
}

void OwnedTableMemory::quiesce() {
  if (rcu::read_depth() != 0) return;
  rcu::synchronize();
  quiesced_.store(true, std::memory_order_release);
}

void OwnedTableMemory::retire(RetiredTable t) {
  if (quiesced_.load(std::memory_order_acquire)) {
    free_unpublished(t.table, t.level);  // no reader left: as if never published
    return;
  }
  in_use_[t.level].fetch_sub(1, std::memory_order_relaxed);
  total_.fetch_sub(1, std::memory_order_relaxed);
  // The callback must not touch *this: it may run after this object is gone (it holds the pool).
  std::byte* p = pointer<std::byte>(t.table);
  if (pooled(t.level)) {
    rcu::defer([p, pool = pool_] { pool->give_back(p); });
  } else {
    const std::align_val_t align{alignment(t.level)};
    rcu::defer([p, align] { ::operator delete(p, align); });
  }
}

}  // namespace vmmu::pt
