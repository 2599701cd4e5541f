// Conformance of vmmu's x86 walker against real KVM: thousands of random 64-bit page-table
// trees in guest RAM that KVM owns, each gva translated by KVM_TRANSLATE and by
// vmmu::x86::walk reading the very same RAM through vmmu::GuestMemory.
//
// What is compared (KVM_TRANSLATE = an explicit supervisor read, see support/kvm_vm.hpp):
//   - valid <=> vmmu's walk of Access::read() (supervisor, explicit) succeeds;
//   - the guest-physical address when valid;
//   - Accessed-bit side effects: vmmu walks a copy of the RAM with A/D updates on while KVM
//     updates its own, and after every translation the two sets of tables must be equal
//     byte for byte (KVM sets A in every entry of a successful walk and nothing on a fault;
//     a read never sets D -- SDM vol. 3A, 4.8);
//   - non-canonical gvas: real hardware raises #GP (SDM vol. 3A, 3.3.7.1) and vmmu must say
//     GeneralProtection; KVM_TRANSLATE does not check (it walks the low 48 bits), so KVM's
//     answer is compared with vmmu's walk of the canonical form of the address.
//
// Found by probing this host's KVM (support/kvm_probe.hpp; the backend refuses
// KVM_SET_CPUID2, so the guest has no CPUID): guest MAXPHYADDR 36 (KVM's default without
// CPUID leaf 0x80000008), no 1-GiB pages (PDPTE.PS reserved, as on a CPU without Page1GB),
// CR4.SMEP/SMAP/PKE/PGE and EFER.NXE accepted, CR4.LA57 refused, PKRU stuck at 0
// (KVM_SET_XSAVE refused). The walker is given the same CpuModel.
//
// The run prints the seed (VMMU_KVM_SEED replays another), case counts, and for a mismatch
// the registers, the path, the whole tree and both answers (VMMU_KVM_SHOW=1 prints the first
// mismatch the wrong-MAXPHYADDR test provokes, to see what a report looks like).

#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>

#include "kvm/support/conformance.hpp"
#include "kvm/support/kvm_probe.hpp"
#include "kvm/support/kvm_required.hpp"

namespace vmmu::test::kvm {
namespace {

constexpr std::uint64_t kDefaultSeed = 0x6b766d5f7472ULL;

// Sanitizer builds walk ~10x slower: fewer trees keep the run to seconds.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr unsigned kTreeDivisor = 5;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr unsigned kTreeDivisor = 5;
#else
constexpr unsigned kTreeDivisor = 1;
#endif
#else
constexpr unsigned kTreeDivisor = 1;
#endif

std::uint64_t seed_from_env() {
  const char* s = std::getenv("VMMU_KVM_SEED");
  return s != nullptr ? std::strtoull(s, nullptr, 0) : kDefaultSeed;
}

class KvmTranslate : public ::testing::Test {
 protected:
  void SetUp() override {
    auto facts_or = probe_paging();
    if (!facts_or) VMMU_KVM_SETUP_FAILED(facts_or.error(), "the KVM_TRANSLATE conformance test");
    facts = *facts_or;
    auto created = Conformance::create(facts);
    if (!created) VMMU_KVM_SETUP_FAILED(created.error(), "the KVM_TRANSLATE conformance test");
    conformance = std::move(*created);
  }

  // vmmu told exactly what KVM's guest CPU is.
  [[nodiscard]] ConformanceOptions options(unsigned levels) const {
    ConformanceOptions o;
    o.levels = levels;
    o.seed = seed_from_env();
    o.trees /= kTreeDivisor;
    o.cpu = {.maxphyaddr = facts.maxphyaddr_walk, .pages_1g = facts.pages_1g, .pse36 = true};
    return o;
  }

  ConformanceReport run_and_print(const ConformanceOptions& o) {
    ConformanceReport report = conformance->run(o);
    std::cout << "[ KVM      ] " << report.summary(o) << "\n[ KVM      ] " << facts.describe() << "\n";
    return report;
  }

  KvmPagingFacts facts;
  std::unique_ptr<Conformance> conformance;
};

void expect_no_mismatch(const ConformanceReport& report) {
  EXPECT_TRUE(report.setup_error.empty()) << report.setup_error;
  EXPECT_EQ(report.tally.mismatches, 0u);
  for (const std::string& m : report.mismatches) ADD_FAILURE() << m;
}

// The generator reaches every outcome, or the comparison would prove little.
void expect_every_outcome(const ConformanceReport& report, const KvmPagingFacts& facts) {
  const Tally& t = report.tally;
  EXPECT_GT(t.valid, t.cases / 5);
  EXPECT_GT(t.invalid, t.cases / 5);
  EXPECT_GT(t.reserved, 0u);
  EXPECT_GT(t.not_present, 0u);
  EXPECT_GT(t.unreadable, 0u);
  EXPECT_GT(t.non_canonical, 0u);
  EXPECT_GT(t.accessed_set, 0u);
  if (facts.smap) {
    EXPECT_GT(t.protection, 0u);
  }
}

TEST_F(KvmTranslate, RandomFourLevelTreesTranslateAsKvmDoes) {
  const ConformanceReport report = run_and_print(options(4));
  expect_no_mismatch(report);
  expect_every_outcome(report, facts);
}

TEST_F(KvmTranslate, RandomFiveLevelTreesTranslateAsKvmDoes) {
  if (!facts.la57) {
    GTEST_SKIP() << "KVM_SET_SREGS refuses CR4.LA57 here (5-level paging needs guest CPUID, which this backend "
                    "refuses): skipping the 5-level conformance run";
  }
  const ConformanceReport report = run_and_print(options(5));
  expect_no_mismatch(report);
  expect_every_outcome(report, facts);
}

// The comparison can fail: a walker told the wrong CPU, or one that does not set A bits,
// must be caught (and reported with its tree).
TEST_F(KvmTranslate, ComparisonCatchesAWalkerWithTheWrongMaxphyaddr) {
  ConformanceOptions o = options(4);
  o.trees = 30 / kTreeDivisor + 10;
  o.cpu.maxphyaddr = facts.maxphyaddr_walk + 4;
  const ConformanceReport report = conformance->run(o);
  EXPECT_GT(report.tally.mismatches, 0u);
  ASSERT_FALSE(report.mismatches.empty());
  EXPECT_NE(report.mismatches.front().find("disagree on validity"), std::string::npos) << report.mismatches.front();
  if (std::getenv("VMMU_KVM_SHOW") != nullptr) std::cout << report.mismatches.front();
}

TEST_F(KvmTranslate, ComparisonCatchesAWalkerWithTheWrongPageSizes) {
  ConformanceOptions o = options(4);
  o.trees = 30 / kTreeDivisor + 10;
  o.cpu.pages_1g = !facts.pages_1g;
  const ConformanceReport report = conformance->run(o);
  EXPECT_GT(report.tally.mismatches, 0u);
}

TEST_F(KvmTranslate, ComparisonCatchesAWalkerThatLeavesAccessedBitsAlone) {
  ConformanceOptions o = options(4);
  o.trees = 30 / kTreeDivisor + 10;
  o.copy_walk.update_accessed_dirty = false;
  const ConformanceReport report = conformance->run(o);
  EXPECT_GT(report.tally.mismatches, 0u);
  ASSERT_FALSE(report.mismatches.empty());
  EXPECT_NE(report.mismatches.front().find("A/D side effects differ"), std::string::npos) << report.mismatches.front();
}

// KVM walks tables in a KVM_MEM_READONLY memslot but cannot set their A bits, and the walk
// still succeeds (paging_tmpl.h skips the update of a gpte it cannot write); vmmu's walker
// over a read-only vmmu memslot must answer and leave memory the same.
TEST_F(KvmTranslate, TablesInAReadOnlyMemslotAreWalkedWithoutAccessedUpdates) {
  auto read_only = Conformance::create(facts, HighSlot::ReadOnly);
  if (!read_only) GTEST_SKIP() << "KVM refuses a KVM_MEM_READONLY memslot: " << read_only.error().message();
  ConformanceOptions o = options(4);
  o.trees = 60 / kTreeDivisor + 10;
  const ConformanceReport report = (*read_only)->run(o);
  expect_no_mismatch(report);
  EXPECT_GT(report.tally.valid, report.tally.cases / 5);

  // The same trees with vmmu wrongly seeing the slot writable: A bits differ, so the trees do
  // reach read-only tables on successful walks.
  auto wrong = Conformance::create(facts, HighSlot::ReadOnlyToKvmOnly);
  ASSERT_TRUE(wrong) << wrong.error().message();
  const ConformanceReport caught = (*wrong)->run(o);
  EXPECT_GT(caught.tally.mismatches, 0u);
}

}  // namespace
}  // namespace vmmu::test::kvm
