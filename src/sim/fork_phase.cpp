// fork: each vCPU's guest process forks. Its kernel copies the parent's page tables for the
// child with both sides' leaves read-only (copy-on-write), writing every entry through the
// vCPU, and reloads the parent's CR3 to drop its writable translations (flush_tlb_mm). Then
// the parent, and after it the child, write a seeded part of the pages: the first write to
// each is a guest #PF that the kernel handles as Linux's do_wp_page does -- copy the page unless
// the other side copied it already, map it writable, INVLPG -- and the write is made again.
//
//   parent ─ leaf i: frame i, RO ──┐   after its write fault:  parent ─► copy (spare frame)
//   child  ─ leaf i: frame i, RO ──┘                           child  ─► frame i (now its own)

#include "kernel_phase.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::sim {
namespace {

// What the values written are (kernel_value's `what`).
enum Written : std::uint64_t { kBefore = 1, kLastWord = 2, kByParent = 3, kByChild = 4 };
constexpr std::uint64_t kLastWordOffset = kPageSize - 8;

struct ForkCounts {
  std::uint64_t faults = 0, copies = 0, reuses = 0;
  std::uint64_t expected_faults = 0, expected_copies = 0;
};

struct Side {
  Gpa root;
  std::vector<Gpa> leaf;      // where each page's leaf entry lives
  std::vector<bool> writes;   // the pages this side writes
  Written value;
};

class Fork {
 public:
  Fork(PhaseContext& c, const ForkPhase& p, unsigned v, KernelVcpu& k) : c_(c), p_(p), v_(v), k_(k) {}

  void run(ForkCounts& n) {
    if (auto s = start(); !s) return k_.log.fail(s.error());
    if (auto s = fork(); !s) return k_.log.fail(s.error());
    shared_.assign(p_.pages, true);
    for (Side* s : {&parent_, &child_}) {
      k_.mm.vcpu().set_cr3(s->root.raw());
      for (std::uint64_t i = 0; i < p_.pages; ++i) {
        if (s->writes[i] && !write(*s, i, n)) return;
      }
    }
    for (std::uint64_t i = 0; i < p_.pages; ++i) {
      n.expected_faults += (parent_.writes[i] ? 1u : 0u) + (child_.writes[i] ? 1u : 0u);
      n.expected_copies += parent_.writes[i] || child_.writes[i] ? 1u : 0u;
    }
    check(parent_);
    check(child_);
  }

 private:
  Gpa frame(std::uint64_t i) const { return k_.frames[i]; }

  // The parent maps its pages writable and writes the first and last word of each.
  Status<std::string> start() {
    parent_.root = k_.mm.first_root();
    parent_.value = kByParent;
    child_.value = kByChild;
    for (Side* s : {&parent_, &child_}) {
      for (std::uint64_t i = 0; i < p_.pages; ++i)
        s->writes.push_back(unit_interval(kernel_value(c_, s->value, v_, i)) < p_.write_fraction);
    }
    for (std::uint64_t i = 0; i < p_.pages; ++i) {
      auto at = k_.mm.leaf_address(parent_.root, user_page(i));
      if (!at) return Unexpected{at.error()};
      parent_.leaf.push_back(*at);
      if (auto s = k_.mm.write_phys(*at, GuestMm::user_leaf(frame(i), true)); !s) return s;
    }
    for (std::uint64_t i = 0; i < p_.pages; ++i) {
      if (auto s = k_.mm.write_user(user_page(i), kernel_value(c_, kBefore, v_, i)); !s)
        return Unexpected{fmt::format("parent's first write of page {}: {}", i, vm::to_string(s.error()))};
      if (auto s = k_.mm.write_user(user_page(i) + kLastWordOffset, kernel_value(c_, kLastWord, v_, i)); !s)
        return Unexpected{fmt::format("parent's first write of page {}: {}", i, vm::to_string(s.error()))};
    }
    return {};
  }

  // dup_mmap: the child's tables, both sides' leaves read-only; the parent's TLB flushed.
  Status<std::string> fork() {
    auto root = k_.mm.new_address_space();
    if (!root) return Unexpected{root.error()};
    child_.root = *root;
    for (std::uint64_t i = 0; i < p_.pages; ++i) {
      const std::uint64_t cow = GuestMm::user_leaf(frame(i), false);
      if (auto s = k_.mm.write_phys(parent_.leaf[i], cow); !s) return s;
      auto at = k_.mm.leaf_address(child_.root, user_page(i));
      if (!at) return Unexpected{at.error()};
      child_.leaf.push_back(*at);
      if (auto s = k_.mm.write_phys(*at, cow); !s) return s;
    }
    k_.mm.vcpu().set_cr3(parent_.root.raw());
    return {};
  }

  // The side's write of page i, through its COW fault if it takes one. False: give up.
  bool write(Side& s, std::uint64_t i, ForkCounts& n) {
    const std::uint64_t value = kernel_value(c_, s.value, v_, i);
    for (unsigned attempt = 0;; ++attempt) {
      auto w = k_.mm.write_user(user_page(i), value);
      if (w) return true;
      const vm::GuestExit& e = w.error();
      constexpr std::uint32_t kCow = x86::pferr::kPresent | x86::pferr::kWrite | x86::pferr::kUser;
      if (e.kind != vm::GuestExitKind::PageFault || e.error_code != kCow) {
        k_.log.fail(fmt::format("write of page {}: {} (expected a COW fault, error code {:#x})", i,
                                vm::to_string(e), kCow));
        return false;
      }
      if (attempt > 0) {
        k_.log.fail(fmt::format("write of page {} faulted again after its COW fault was handled", i));
        return true;
      }
      ++n.faults;
      if (auto h = cow_fault(s, i, n); !h) {
        k_.log.fail(h.error());
        return false;
      }
    }
  }

  // do_wp_page: a page the other side still maps is copied; one it no longer maps is reused.
  Status<std::string> cow_fault(Side& s, std::uint64_t i, ForkCounts& n) {
    auto leaf = k_.mm.read_phys(s.leaf[i]);
    if (!leaf) return Unexpected{leaf.error()};
    Gpa to = GuestMm::leaf_frame(*leaf);
    if (shared_[i]) {
      to = frame(p_.pages + n.copies);  // the spare frames, in order
      if (auto cp = k_.mm.copy_page(GuestMm::leaf_frame(*leaf), to); !cp) return cp;
      shared_[i] = false;
      ++n.copies;
    } else {
      ++n.reuses;
    }
    if (auto w = k_.mm.write_phys(s.leaf[i], GuestMm::user_leaf(to, true)); !w) return w;
    k_.mm.vcpu().invlpg(user_page(i));
    return {};
  }

  // Every page of `s` holds its own write or the data from before the fork.
  void check(const Side& s) {
    k_.mm.vcpu().set_cr3(s.root.raw());
    const char* who = &s == &parent_ ? "parent" : "child";
    for (std::uint64_t i = 0; i < p_.pages; ++i) {
      const std::uint64_t first = s.writes[i] ? kernel_value(c_, s.value, v_, i) : kernel_value(c_, kBefore, v_, i);
      for (auto [offset, want] : {std::pair{std::uint64_t{0}, first},
                                  std::pair{kLastWordOffset, kernel_value(c_, kLastWord, v_, i)}}) {
        auto got = k_.mm.read_user(user_page(i) + offset);
        if (!got)
          k_.log.fail(fmt::format("{} reading page {}: {}", who, i, vm::to_string(got.error())));
        else if (*got != want)
          k_.log.fail(fmt::format("{} page {} word {}: {:#x}, expected {:#x} ({})", who, i, offset / 8, *got, want,
                                  s.writes[i] && offset == 0 ? "its own write" : "from before the fork"));
      }
    }
  }

  PhaseContext& c_;
  const ForkPhase& p_;
  unsigned v_;
  KernelVcpu& k_;
  Side parent_, child_;
  std::vector<bool> shared_;  // the page's frame is still mapped by both sides
};

}  // namespace

Status<std::string> run_fork(PhaseContext& c, const ForkPhase& p) {
  const unsigned n = c.vm.vcpus();
  auto kernels = boot_kernels(c, 2 * p.pages, 2, p.pages);
  if (!kernels) return Unexpected{kernels.error()};
  std::vector<ForkCounts> counts(n);
  on_every_vcpu(c, *kernels, [&](unsigned v, KernelVcpu& k) { Fork(c, p, v, k).run(counts[v]); });
  ForkCounts all;
  for (const ForkCounts& x : counts) {
    all.faults += x.faults;
    all.copies += x.copies;
    all.reuses += x.reuses;
    all.expected_faults += x.expected_faults;
    all.expected_copies += x.expected_copies;
  }
  c.result("processes", "processes forked", n);
  c.result("pages", "pages per process", p.pages);
  c.result("cow_faults", "copy-on-write faults", all.faults);
  c.result("cow_copies", "pages copied", all.copies);
  c.result("cow_reuses", "pages reused (the other side had copied)", all.reuses);
  settle_kernels(c, *kernels);
  if (all.faults != all.expected_faults)
    c.fail(fmt::format("{} copy-on-write faults, expected {} (one per first write of a shared page)", all.faults,
                       all.expected_faults));
  if (all.copies != all.expected_copies)
    c.fail(fmt::format("{} pages copied, expected {}", all.copies, all.expected_copies));
  return {};
}

}  // namespace vmmu::sim
