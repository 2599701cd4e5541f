#include "kvm/support/conformance.hpp"

#include <fmt/format.h>

#include <cstring>

#include "kvm/support/path_dump.hpp"
#include "kvm/support/x86_entry.hpp"

namespace vmmu::test::kvm {
namespace {

constexpr std::uint64_t kSlotBytes = 0x100000;

std::string describe(const x86::Registers& r) {
  return fmt::format("cr0={:#x} cr3={:#x} cr4={:#x} efer={:#x} rflags={:#x} pkru={:#x}", r.cr0, r.cr3, r.cr4, r.efer,
                     r.rflags, r.pkru);
}

std::string describe(const Result<x86::Translation, x86::WalkFault>& r) {
  if (r) return fmt::format("gpa:{:#x} (leaf level {})", r->gpa.raw(), r->level);
  return fmt::format("{} error_code={:#x} level={}", x86::to_string(r.error().kind), r.error().error_code,
                     r.error().level);
}

std::string describe(const KvmTranslation& t) {
  return t.valid ? fmt::format("valid gpa:{:#x}", t.gpa.raw()) : std::string("invalid");
}

// Sign-extends from the top translated bit (47 or 56), as a canonical address would be.
Gva canonical_form(Gva gva, unsigned levels) {
  const unsigned top = kPageShift + 9 * levels;
  const std::uint64_t low = gva.raw() & ((std::uint64_t{1} << top) - 1);
  return Gva(((low >> (top - 1)) & 1) != 0 ? low | (~std::uint64_t{0} << top) : low);
}

void count_fault(const Result<x86::Translation, x86::WalkFault>& r, Tally& tally) {
  if (r) return;
  const x86::WalkFault& f = r.error();
  if (f.kind == x86::WalkFaultKind::TableUnreadable) {
    ++tally.unreadable;
  } else if ((f.error_code & x86::pferr::kReserved) != 0) {
    ++tally.reserved;
  } else if ((f.error_code & x86::pferr::kPresent) != 0) {
    ++tally.protection;
  } else {
    ++tally.not_present;
  }
}

}  // namespace

std::string ConformanceReport::summary(const ConformanceOptions& options) const {
  return fmt::format(
      "{}-level, seed {:#x}: {} cases compared, {} valid / {} invalid translations (vmmu faults: {} not present, "
      "{} reserved bit, {} protection (SMAP), {} unreadable table; {} non-canonical gvas); {} A bits set by walks; "
      "{} mismatches",
      options.levels, options.seed, tally.cases, tally.valid, tally.invalid, tally.not_present, tally.reserved,
      tally.protection, tally.unreadable, tally.non_canonical, tally.accessed_set, tally.mismatches);
}

Result<std::unique_ptr<Conformance>, KvmFailure> Conformance::create(const KvmPagingFacts& facts,
                                                                     HighSlot high_slot) {
  const Gpa high(std::uint64_t{1} << (facts.maxphyaddr_walk - 1));
  auto vm = KvmVm::create({GuestRamSlot{{Gpa(0), Gpa(kSlotBytes)}}, GuestRamSlot{{high, high + kSlotBytes}, high_slot != HighSlot::ReadWrite}});
  if (!vm) return Unexpected<KvmFailure>{vm.error()};
  auto c = std::unique_ptr<Conformance>(new Conformance(facts, std::move(*vm)));
  std::vector<RamRegion> kregions = c->vm_.ram();
  std::vector<RamRegion> vregions = c->copy_.regions();
  if (high_slot == HighSlot::ReadOnlyToKvmOnly) kregions.back().read_only = vregions.back().read_only = false;
  auto kview = VmmuView::over(kregions);
  auto vview = VmmuView::over(vregions);
  if (!kview || !vview) return Unexpected<KvmFailure>{KvmFailure{KvmError::SetMemoryRegion, 0}};
  c->kvm_view_ = std::move(*kview);
  c->copy_view_ = std::move(*vview);
  return c;
}

Conformance::Conformance(const KvmPagingFacts& facts, KvmVm vm)
    : facts_(facts), vm_(std::move(vm)), copy_(vm_.ram()), kram_(vm_.ram()), vram_(copy_.regions()) {}

std::string Conformance::compare_one(const x86::GuestPaging& paging, const GeneratedTree& tree,
                                     const ConformanceOptions& options, Gva gva, Tally& tally, std::string& answers) {
  std::string why;
  ++tally.cases;
  const Gva arch = canonical_form(gva, options.levels);
  if (!paging.canonical(gva)) {
    ++tally.non_canonical;
    auto gp = x86::walk(paging, kvm_view_->memory(), gva, Access::read(), {.update_accessed_dirty = false});
    if (gp || gp.error().kind != x86::WalkFaultKind::GeneralProtection) {
      why += "a non-canonical gva must raise #GP (SDM vol. 3A, 3.3.7.1); vmmu says " + describe(gp) + "\n";
    }
  }
  // vmmu first, read-only, on the very RAM KVM walks next; then KVM (which sets A bits in it);
  // then vmmu with A/D updates on the copy.
  auto same_ram = x86::walk(paging, kvm_view_->memory(), arch, Access::read(), {.update_accessed_dirty = false});
  auto kvm = vm_.translate(gva);
  if (!kvm) return "KVM_TRANSLATE failed: " + kvm.error().message() + "\n";
  auto updating = x86::walk(paging, copy_view_->memory(), arch, Access::read(), options.copy_walk);

  ++(kvm->valid ? tally.valid : tally.invalid);
  count_fault(same_ram, tally);
  if (facts_.checks_canonical && !paging.canonical(gva)) {
    if (kvm->valid) why += "KVM translated a non-canonical gva although the probe saw it refuse one\n";
  } else {
    if (kvm->valid != same_ram.has_value()) why += "KVM and vmmu disagree on validity\n";
    if (kvm->valid && same_ram && kvm->gpa != same_ram->gpa) why += "KVM and vmmu disagree on the address\n";
  }
  if (updating.has_value() != same_ram.has_value() || (updating && updating->gpa != same_ram->gpa)) {
    why += "vmmu's walk of the copy (with A/D updates) answered " + describe(updating) + "\n";
  }
  std::string diff;
  for (const GeneratedTable& table : tree.tables) {
    if (std::memcmp(kram_.slot<std::byte>(table.page), vram_.slot<std::byte>(table.page), kPageSize) == 0) continue;
    for (std::uint64_t i = 0; i < 512; ++i) {
      const Gpa at = table.page + i * 8;
      const std::uint64_t k = *kram_.read<std::uint64_t>(at);
      const std::uint64_t v = *vram_.read<std::uint64_t>(at);
      if (k != v) diff += fmt::format("    gpa:{:#x}: KVM {:#018x}, vmmu {:#018x}\n", at.raw(), k, v);
    }
  }
  if (!diff.empty()) why += "A/D side effects differ (KVM's RAM vs vmmu's copy):\n" + diff;
  answers = fmt::format("KVM_TRANSLATE: {}\nvmmu walk:     {}\n", describe(*kvm), describe(same_ram));
  return why;
}

ConformanceReport Conformance::run(const ConformanceOptions& options) {
  ConformanceReport report;
  TableGenerator gen(kram_, options.seed, {.levels = options.levels, .maxphyaddr = facts_.maxphyaddr_walk});
  std::vector<Gpa> previous;
  for (unsigned t = 0; t < options.trees; ++t) {
    const GeneratedTree tree = gen.next(options.gvas_per_tree);
    for (Gpa page : previous) vram_.zero_page(page);
    previous.clear();
    for (const GeneratedTable& table : tree.tables) {
      vram_.copy_page_from(kram_, table.page);
      previous.push_back(table.page);
    }
    const x86::Registers wanted = gen.registers(facts_, tree.root);
    if (auto st = vm_.set_paging(wanted); !st) {
      report.setup_error = "KVM refused " + describe(wanted) + ": " + st.error().message();
      return report;
    }
    auto regs = vm_.paging();
    if (!regs || !(*regs == wanted)) {
      report.setup_error = "KVM does not hold the registers it was given: " + describe(wanted);
      return report;
    }
    const x86::GuestPaging paging = x86::GuestPaging::from(*regs, options.cpu);

    for (const Gva gva : tree.gvas) {
      std::string answers;
      const std::string why = compare_one(paging, tree, options, gva, report.tally, answers);
      if (why.empty()) continue;
      ++report.tally.mismatches;
      if (report.mismatches.size() >= options.max_reports) continue;
      const Gva arch = canonical_form(gva, options.levels);
      report.mismatches.push_back(fmt::format(
          "mismatch (seed {:#x}, tree {}) at gva {:#x}{}\n{}registers: {}\n{}path (KVM's RAM, after the walks):\n{}"
          "tree (as generated):\n{}",
          options.seed, t, gva.raw(), arch == gva ? "" : fmt::format(" (canonical form {:#x})", arch.raw()), why,
          describe(*regs), answers, dump_path(kram_, Gpa(x86e::Address::bits(regs->cr3)), arch, options.levels),
          tree.describe()));
    }
    for (const GeneratedTable& table : tree.tables) {
      for (const GeneratedEntry& e : table.entries) {
        const std::uint64_t now = *kram_.read<std::uint64_t>(table.page + std::uint64_t{e.index} * 8);
        if (!x86e::Accessed::get(e.value) && x86e::Accessed::get(now)) ++report.tally.accessed_set;
      }
    }
  }
  return report;
}

}  // namespace vmmu::test::kvm
