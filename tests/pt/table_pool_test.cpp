// The process's table-page pool: freed pages stay warm up to a cap, the rest go back to the
// kernel (so the pool does not keep the largest VM's tables for the life of the process).
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <vector>

#include "vmmu/core/rcu.hpp"
#include "vmmu/pt/owned_table_memory.hpp"

namespace vmmu::pt {
namespace {

constexpr Geometry kPool4K = Geometry::uniform(4, 12, 9, 9, 8);

bool resident(Hpa page) {
  unsigned char in = 0;
  void* p = OwnedTableMemory::pointer<void>(page);
  return ::mincore(p, static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)), &in) == 0 && (in & 1) != 0;
}

TEST(TablePoolTest, PagesPastTheWarmCapGoBackToTheKernelAndComeBackZeroed) {
  rcu::barrier();  // tables earlier tests retired are back in the pool: the counts hold still
  OwnedTableMemory memory(kPool4K);
  // More pages in use at once than the pool keeps warm: every free page is taken first.
  const std::size_t n = table_pool_pages().warm + table_pool_pages().cold + table_pool_warm_cap() + 64;
  std::vector<Hpa> pages;
  for (std::size_t i = 0; i < n; ++i) {
    Result<Hpa, TableError> t = memory.allocate(1);
    ASSERT_TRUE(t);
    OwnedTableMemory::pointer<std::uint64_t>(*t)[7] = 0xdead;  // used, so resident
    pages.push_back(*t);
  }
  EXPECT_EQ(table_pool_pages().warm, 0u);
  for (Hpa p : pages) memory.free_unpublished(p, 1);
  const TablePoolPages after = table_pool_pages();
  EXPECT_EQ(after.warm, table_pool_warm_cap());
  EXPECT_GE(after.cold, 64u);
  // The last pages freed are the ones past the cap: no longer resident.
  EXPECT_FALSE(resident(pages.back()));
  EXPECT_TRUE(resident(pages.front()));
  // Taken again, every page (warm or cold) reads as zero.
  std::vector<Hpa> again;
  for (std::size_t i = 0; i < n; ++i) {
    Result<Hpa, TableError> t = memory.allocate(1);
    ASSERT_TRUE(t);
    ASSERT_EQ(OwnedTableMemory::pointer<std::uint64_t>(*t)[7], 0u);
    again.push_back(*t);
  }
  for (Hpa p : again) memory.free_unpublished(p, 1);
}

TEST(TablePoolTest, AQuiescedMemoryFreesRetiredTablesAtOnce) {
  rcu::barrier();
  OwnedTableMemory memory(kPool4K);
  Result<Hpa, TableError> t = memory.allocate(1);
  ASSERT_TRUE(t);
  memory.quiesce();
  const std::size_t warm = table_pool_pages().warm;
  memory.retire({*t, 1});
  // Back in the pool now, not after a grace period (liburcu's worker polls every ~10 ms).
  EXPECT_EQ(table_pool_pages().warm, warm + 1);
  EXPECT_EQ(memory.tables_in_use(), 0u);
}

TEST(TablePoolTest, QuiesceInsideAReadSectionKeepsFreesDeferred) {
  rcu::barrier();
  OwnedTableMemory memory(kPool4K);
  Result<Hpa, TableError> t = memory.allocate(1);
  ASSERT_TRUE(t);
  const std::size_t warm = table_pool_pages().warm;
  {
    rcu::ReadGuard reading;
    memory.quiesce();  // would wait for itself: does nothing
    memory.retire({*t, 1});
    EXPECT_EQ(table_pool_pages().warm, warm);  // a reader may still hold it
  }
  rcu::barrier();
  EXPECT_EQ(table_pool_pages().warm, warm + 1);
}

}  // namespace
}  // namespace vmmu::pt
