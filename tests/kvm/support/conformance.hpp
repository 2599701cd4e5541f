#pragma once
// Conformance: one KVM VM (two memslots, one high in the guest-physical space so table
// pointers into the hole between them are unbacked), vmmu's view of its RAM, and a copy of
// the RAM with vmmu's view of that; run() compares KVM_TRANSLATE with vmmu::x86::walk over
// random trees (see kvm_translate_conformance_test.cpp for what is compared and why).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kvm/support/kvm_probe.hpp"
#include "kvm/support/kvm_vm.hpp"
#include "kvm/support/ram_table_memory.hpp"
#include "kvm/support/table_generator.hpp"
#include "kvm/support/vmmu_view.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::test::kvm {

struct ConformanceOptions {
  unsigned levels = 4;
  std::uint64_t seed = 0;
  unsigned trees = 500;
  unsigned gvas_per_tree = 40;
  x86::CpuModel cpu;                // what vmmu's walker is told about the CPU
  x86::WalkOptions copy_walk = {};  // vmmu's walk over the copy (A/D updates on by default)
  unsigned max_reports = 3;         // mismatches described in full
};

struct Tally {
  unsigned cases = 0, valid = 0, invalid = 0, non_canonical = 0;
  unsigned reserved = 0, not_present = 0, protection = 0, unreadable = 0;  // vmmu's faults
  unsigned accessed_set = 0;  // entries generated with A = 0 that a walk then set A in
  unsigned mismatches = 0;
};

struct ConformanceReport {
  Tally tally;
  std::vector<std::string> mismatches;  // the first max_reports, in full
  std::string setup_error;               // KVM refused the registers of a tree: nothing compared after
  [[nodiscard]] std::string summary(const ConformanceOptions& options) const;
};

enum class HighSlot : std::uint8_t {
  ReadWrite,
  ReadOnly,           // to KVM and to vmmu
  ReadOnlyToKvmOnly,  // a deliberately wrong vmmu view, to show the read-only case is reached
};

class Conformance {
 public:
  // `high`: whether the high memslot is KVM_MEM_READONLY, and whether vmmu's views of it are
  // read-only too (tables there are walked but their A bits cannot be set).
  // Errors: the KvmFailure of VM creation; MemslotError is reported as SetMemoryRegion.
  static Result<std::unique_ptr<Conformance>, KvmFailure> create(const KvmPagingFacts& facts,
                                                                 HighSlot high = HighSlot::ReadWrite);

  // Generates options.trees trees and compares every gva. Errors: none as such -- mismatches
  // are counted and described in the report; report.setup_error is set (and the run cut
  // short) when KVM refuses or alters a tree's registers.
  ConformanceReport run(const ConformanceOptions& options);

 private:
  Conformance(const KvmPagingFacts& facts, KvmVm vm);
  // Compares one gva; returns what disagrees ("" when nothing) and sets `answers` to both
  // answers for a report.
  std::string compare_one(const x86::GuestPaging& paging, const GeneratedTree& tree, const ConformanceOptions& options,
                          Gva gva, Tally& tally, std::string& answers);

  KvmPagingFacts facts_;
  KvmVm vm_;
  OwnedRam copy_;
  RamTableMemory kram_;  // the RAM KVM translates through
  RamTableMemory vram_;  // the copy vmmu updates A bits in
  std::unique_ptr<VmmuView> kvm_view_;
  std::unique_ptr<VmmuView> copy_view_;
};

}  // namespace vmmu::test::kvm
