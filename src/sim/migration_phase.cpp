// migration: KVM's dirty_log_perf_test -- populate, enable dirty logging, rounds of
// {vCPUs dirty memory, get the dirty log, clear it}, disable -- timed step by step, with every
// page a vCPU wrote in a round checked against that round's harvest.
//
// Bitmap mode with manual protect: get = TdpMmu::peek_dirty_log per slot (a copy), clear =
// clear_dirty_log over the pages it named (KVM_CLEAR_DIRTY_LOG); without: get =
// get_dirty_log (takes the bits and write-protects), no clear. Ring mode: get = harvest every vCPU's
// ring, clear = reset them; a ring that fills during a round is harvested by its vCPU thread
// (KVM_EXIT_DIRTY_RING_FULL), and those entries count for the round too. Under vm.nested: get =
// the nested MMU's get_dirty_log of L1's slots (takes the bits, write-protects the shadow EPT
// leaves over them; it has no copy-only get), no clear, whatever manual_protect says.

#include <algorithm>
#include <atomic>
#include <bit>
#include <thread>

#include "l1_hypervisor.hpp"
#include "phase.hpp"
#include "vmmu/sim/fault_injection.hpp"

namespace vmmu::sim {
namespace {

struct Round {
  std::vector<std::uint8_t> written;  // by page index; one byte each: vCPUs write disjoint bytes
  std::vector<std::uint8_t> found;
};

bool writes_page(std::uint64_t salt, std::uint64_t page, double fraction) {
  if (fraction >= 1.0) return true;
  return static_cast<double>(mix64(salt ^ page) >> 11) * 0x1.0p-53 < fraction;
}

// Marks the pages of slot `slot` whose bits are set in `bitmap`.
void mark_bitmap(const SimSlot& slot, const std::vector<std::uint64_t>& bitmap, std::vector<std::uint8_t>& found) {
  for (std::size_t w = 0; w < bitmap.size(); ++w) {
    for (std::uint64_t bits = bitmap[w]; bits != 0; bits &= bits - 1) {
      const std::uint64_t page = w * 64 + static_cast<std::uint64_t>(std::countr_zero(bits));
      if (page < slot.pages) found[slot.first_page + page] = 1;
    }
  }
}

void mark_entries(const SimVm& vm, const std::vector<DirtyGfn>& entries, std::vector<std::uint8_t>& found) {
  for (const DirtyGfn& e : entries) {
    if (e.slot.value < vm.slots().size() && e.page < vm.slots()[e.slot.value].pages)
      found[vm.slots()[e.slot.value].first_page + e.page] = 1;
  }
}

// Harvest of one round: bitmaps (get_dirty_log + clear_dirty_log) or rings (harvest + reset).
Status<std::string> harvest(PhaseContext& c, const MigrationPhase& p, MigrationIteration& it, Round& r) {
  mmu::Mmu& mmu = c.vm.mmu();
  const auto& slots = c.vm.slots();
  if (c.scenario.vm.dirty_ring_size == 0) {
    std::vector<std::vector<std::uint64_t>> maps(slots.size());
    std::string error;
    L1Hypervisor* l1 = c.vm.l1();
    it.get_ns = timed([&] {
      for (std::size_t s = 0; s < slots.size() && error.empty(); ++s) {
        auto log = l1 != nullptr        ? l1->get_dirty_log(slots[s].id)
                   : p.manual_protect ? mmu.peek_dirty_log(slots[s].id)
                                      : mmu.get_dirty_log(slots[s].id);
        if (!log)
          error = fmt::format("get dirty log of memslot {}: {}", s, to_string(log.error()));
        else
          maps[s] = std::move(*log);
      }
    });
    if (p.manual_protect && l1 == nullptr)
      it.clear_ns = timed([&] {
        for (std::size_t s = 0; s < slots.size() && error.empty(); ++s) {
          auto st = mmu.clear_dirty_log(slots[s].id, 0, slots[s].pages, maps[s]);
          if (!st) error = fmt::format("clear dirty log of memslot {}: {}", s, to_string(st.error()));
        }
      });
    if (!error.empty()) return Unexpected{error};
    for (std::size_t s = 0; s < slots.size(); ++s) mark_bitmap(slots[s], maps[s], r.found);
    return {};
  }
  std::vector<DirtyGfn> entries;
  it.get_ns = timed([&] {
    for (unsigned v = 0; v < c.vm.vcpus(); ++v) mmu.harvest_dirty_ring(c.vm.vcpu_mmu(v), entries);
  });
  it.clear_ns = timed([&] {
    for (unsigned v = 0; v < c.vm.vcpus(); ++v) mmu.reset_dirty_ring(c.vm.vcpu_mmu(v));
  });
  mark_entries(c.vm, entries, r.found);
  for (VcpuAccess& a : c.access) mark_entries(c.vm, a.take_harvested(), r.found);
  return {};
}

// harvest_while_writing: a thread that harvests into the round's `found` from construction
// until stop(), while the vCPU threads write (they touch only `written`).
class ConcurrentHarvest {
 public:
  ConcurrentHarvest(PhaseContext& c, const MigrationPhase& p, Round& r) {
    if (!p.harvest_while_writing) return;
    thread_ = std::thread([this, &c, &p, &r] {
      while (writing_.load(std::memory_order_acquire)) {
        MigrationIteration untimed;
        if (auto s = harvest(c, p, untimed, r); !s) {
          error_ = s.error();
          return;
        }
        ++harvests_;
        std::this_thread::yield();
      }
    });
  }
  ~ConcurrentHarvest() { (void)stop_thread(); }
  ConcurrentHarvest(const ConcurrentHarvest&) = delete;
  ConcurrentHarvest& operator=(const ConcurrentHarvest&) = delete;

  // Ends the harvests and counts them in `it`. Error: a harvest failed.
  Status<std::string> stop(MigrationIteration& it) {
    if (!stop_thread()) return {};
    it.harvests_while_writing = harvests_;
    if (!error_.empty()) return Unexpected{"while the vCPUs wrote: " + error_};
    return {};
  }

 private:
  bool stop_thread() {
    if (!thread_.joinable()) return false;
    writing_.store(false, std::memory_order_release);
    thread_.join();
    return true;
  }

  std::atomic<bool> writing_{true};
  std::thread thread_;
  std::uint64_t harvests_ = 0;
  std::string error_;
};

// The injected fault: the first page written and found is dropped from the harvest.
void lose_one_page(Round& r) {
  for (std::uint64_t p = 0; p < r.written.size(); ++p) {
    if (r.written[p] != 0 && r.found[p] != 0) {
      r.found[p] = 0;
      return;
    }
  }
}

void check_round(PhaseContext& c, std::size_t n, MigrationIteration& it, const Round& r) {
  std::uint64_t first_lost = ~std::uint64_t{0};
  for (std::uint64_t p = 0; p < r.written.size(); ++p) {
    it.pages_written += r.written[p];
    it.pages_dirty += r.found[p];
    if (r.written[p] != 0 && r.found[p] == 0) {
      if (it.pages_lost++ == 0) first_lost = p;
    }
  }
  if (it.pages_lost != 0)
    c.fail(fmt::format("iteration {}: {} of {} pages written are missing from the dirty log (first: gpa {:#x})", n,
                       it.pages_lost, it.pages_written, c.vm.gpa_of_page(first_lost).raw()));
}

}  // namespace

Status<std::string> run_migration(PhaseContext& c, const MigrationPhase& p) {
  MigrationReport m;
  m.harvest_while_writing = p.harvest_while_writing;
  const std::uint64_t pages = c.vm.pages();
  std::vector<ExitLog> logs;
  m.populate_ns = timed([&] {
    logs = share_pass(c, "populate memory", [&](unsigned v, VcpuAccess& a, std::uint64_t page, Gpa gpa, ExitLog& log) {
      if (auto s = a.write64(gpa, c.seed() ^ page); !s) log.add(v, gpa, true, s.error());
    });
  });
  if (auto s = settle_exits(c, logs); !s) return s;

  c.progress.step("enable dirty logging", 0);
  Status<std::string> enabled;
  m.enable_ns = timed([&] { enabled = set_dirty_logging(c.vm, true); });
  if (!enabled) return enabled;

  Round r{std::vector<std::uint8_t>(pages), std::vector<std::uint8_t>(pages)};
  for (std::uint32_t i = 1; i <= p.iterations; ++i) {
    MigrationIteration it;
    std::fill(r.written.begin(), r.written.end(), 0);
    std::fill(r.found.begin(), r.found.end(), 0);
    const std::uint64_t salt = mix64(c.seed() + i);
    ConcurrentHarvest during(c, p, r);
    it.dirty_ns = timed([&] {
      logs = share_pass(c, fmt::format("dirty memory (iteration {}/{})", i, p.iterations),
                        [&](unsigned v, VcpuAccess& a, std::uint64_t page, Gpa gpa, ExitLog& log) {
                          if (writes_page(salt, page, p.write_fraction)) {
                            if (auto s = a.write64(gpa, salt ^ page); s)
                              r.written[page] = 1;
                            else
                              log.add(v, gpa, true, s.error());
                          } else if (auto rd = a.read64(gpa); !rd) {
                            log.add(v, gpa, false, rd.error());
                          }
                        });
    });
    if (auto s = during.stop(it); !s) return s;
    if (auto s = settle_exits(c, logs); !s) return s;
    c.progress.step(fmt::format("get and clear dirty log (iteration {}/{})", i, p.iterations), 0);
    if (auto s = harvest(c, p, it, r); !s) return s;
    if (injected_fault() == InjectedFault::LoseDirtyPage) lose_one_page(r);
    check_round(c, i, it, r);
    m.iterations.push_back(it);
  }

  c.progress.step("disable dirty logging", 0);
  drain_dirty_rings(c.vm);
  Status<std::string> disabled;
  m.disable_ns = timed([&] { disabled = set_dirty_logging(c.vm, false); });
  if (!disabled) return disabled;
  c.result("pages", "guest pages", pages);
  c.report.migration.push_back(std::move(m));
  return {};
}

}  // namespace vmmu::sim
