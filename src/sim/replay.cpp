// Trace replay: processes time-sliced on one vCPU, accesses through the hardware model,
// misses through the real guest walk and the VM's MMU, TDP, shadow or adaptive (see replay.hpp).

#include "vmmu/sim/replay.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <bitset>
#include <chrono>
#include <cmath>
#include <memory>
#include <unordered_map>

#include "guest_kernel.hpp"
#include "vmmu/core/format.hpp"
#include "vmmu/sim/host_buffer.hpp"
#include "vmmu/sim/trace.hpp"
#include "vmmu/vm/vcpu.hpp"
#include "vmmu/vm/vm.hpp"

namespace vmmu::sim {
namespace {

constexpr std::uint64_t k2M = std::uint64_t{2} << 20;

ReplayError bad_input(std::string m) { return {true, std::move(m)}; }
ReplayError failed(std::string m) { return {false, std::move(m)}; }

// Distinct pages touched and written by one process: a bitmap per 2 MiB region, the last
// region remembered (traces are local).
class PageSet {
 public:
  void note(std::uint64_t vpn, bool write) {
    const std::uint64_t region = vpn >> 9;
    if (region != last_region_ || last_ == nullptr) {
      last_ = &regions_[region];
      last_region_ = region;
    }
    const unsigned i = vpn & 511;
    if (!last_->touched[i]) {
      last_->touched[i] = true;
      ++touched_;
    }
    if (write && !last_->written[i]) {
      last_->written[i] = true;
      ++written_;
    }
  }
  [[nodiscard]] std::uint64_t touched() const { return touched_; }
  [[nodiscard]] std::uint64_t written() const { return written_; }

 private:
  struct Bits {
    std::bitset<512> touched, written;
  };
  std::unordered_map<std::uint64_t, Bits> regions_;
  Bits* last_ = nullptr;  // stable: unordered_map never moves its values
  std::uint64_t last_region_ = 0;
  std::uint64_t touched_ = 0, written_ = 0;
};

struct Process {
  std::unique_ptr<TraceReader> reader;
  TraceRecord record;
  std::uint64_t left = 0;  // accesses of `record` still to replay
  bool done = false;
  bool on_tdp = false;     // adaptive: the process runs on two-dimensional paging now
  PageSet pages;
};

Access access_of(TraceKind k) {
  switch (k) {
    case TraceKind::Fetch: return Access::fetch(true);
    case TraceKind::Read: return Access::read(true);
    case TraceKind::Write:
    case TraceKind::Modify: return Access::write(true);
  }
  return Access::read(true);
}

// Accesses in every trace (the first pass of --dirty-log-at; it also checks every line).
Result<std::uint64_t, ReplayError> count_accesses(const std::vector<std::string>& traces) {
  std::uint64_t total = 0;
  for (const std::string& t : traces) {
    auto r = TraceReader::open(t);
    if (!r) return Unexpected{bad_input(r.error())};
    TraceRecord rec;
    for (;;) {
      auto more = (*r)->next(rec);
      if (!more) return Unexpected{bad_input(more.error())};
      if (!*more) break;
      total += rec.count;
    }
  }
  return total;
}

// The whole replay's state: the VM and its one vCPU, the kernel, the hardware model.
class Replayer {
 public:
  Replayer(const ReplayConfig& c, std::unique_ptr<vm::Vm> vm, HostBuffer memory, GuestKernel kernel,
           tlb::TranslationHardware hw, Range<Gpa> tables)
      : c_(c), memory_(std::move(memory)), vm_(std::move(vm)), kernel_(std::move(kernel)), hw_(std::move(hw)),
        tables_(tables), vcpu_(vm_->vcpu(0)) {}

  Status<ReplayError> run(std::vector<Process>& procs, std::optional<std::uint64_t> dirty_start,
                          std::uint64_t sample_accesses, ReplayReport& rep);
  [[nodiscard]] vm::Vm& vm() { return *vm_; }

 private:
  // `n` accesses of p's record, the first being access `index` of the replay.
  Status<ReplayError> access(unsigned proc, Process& p, std::uint64_t n, std::uint64_t index, ReplayReport& rep);
  Status<ReplayError> miss(unsigned proc, Gva gva, Access a, bool write);
  // Adaptive: a process whose mode changed during access `index` is recorded.
  void note_mode(unsigned proc, Process& p, std::uint64_t index, ReplayReport& rep);
  Status<ReplayError> start_dirty_logging();
  Status<ReplayError> next_record(Process& p, ReplayReport& rep);
  Status<ReplayError> sample(std::uint64_t index, bool logging, ReplayReport& rep);
  ReplaySample counters(std::uint64_t index);  // totals so far (table pages: now)
  // Harvests and clears the dirty log into logged_: data pages it held.
  Result<std::uint64_t, ReplayError> harvest();
  // The shadow leaf level over a guest leaf of `guest_level`: the guest's size where the host
  // backing holds it, 4 KiB while dirty logging runs (writes split huge shadow leaves; reads
  // through one left write-protected are counted as 4 KiB walks too: the MMU does not say).
  [[nodiscard]] unsigned shadow_leaf_level(unsigned guest_level) const {
    if (logging_) return 1;
    return std::min(guest_level, c_.host_page_size >= k2M ? 2u : 1u);
  }
  [[nodiscard]] std::uint64_t table_pool_pages() const { return (tables_.end - tables_.begin) >> kPageShift; }

  const ReplayConfig& c_;
  HostBuffer memory_;  // before vm_: the memory outlives the slot that lends it
  std::unique_ptr<vm::Vm> vm_;
  GuestKernel kernel_;
  tlb::TranslationHardware hw_;
  Range<Gpa> tables_;
  vm::Vcpu& vcpu_;
  std::vector<std::uint64_t> logged_;  // pages harvested by migration rounds (slot bitmap)
  ReplaySample last_;                  // the counters at the previous sample
  bool logging_ = false;               // dirty logging has started
};

Result<std::uint64_t, ReplayError> Replayer::harvest() {
  auto bits = vm_->mmu().get_dirty_log(SlotId{0});
  if (!bits) return Unexpected{failed(fmt::format("cannot harvest the dirty log: {}", to_string(bits.error())))};
  hw_.flush_all();  // the harvest write-protected (or cleared D on) the pages the TLB may hold
  logged_.resize(std::max(logged_.size(), bits->size()));
  std::uint64_t data = 0;
  for (std::size_t w = 0; w < bits->size(); ++w) {
    logged_[w] |= (*bits)[w];
    for (std::uint64_t word = (*bits)[w]; word != 0; word &= word - 1)
      data += w * 64 + static_cast<unsigned>(std::countr_zero(word)) >= table_pool_pages() ? 1u : 0u;
  }
  return data;
}

ReplaySample Replayer::counters(std::uint64_t index) {
  const mmu::MmuStats mmu = vm_->mmu().stats();
  const tlb::HardwareStats& t = hw_.stats();
  return {index, kernel_.faults(), mmu.faults, kernel_.table_pages() + mmu.table_pages, t.lookups, t.misses,
          std::nullopt};
}

Status<ReplayError> Replayer::sample(std::uint64_t index, bool logging, ReplayReport& rep) {
  const ReplaySample now = counters(index);
  ReplaySample s{index,
                 now.guest_faults - last_.guest_faults,
                 now.mmu_faults - last_.mmu_faults,
                 now.table_pages,
                 now.tlb_lookups - last_.tlb_lookups,
                 now.tlb_misses - last_.tlb_misses,
                 std::nullopt};
  if (logging) {
    auto found = harvest();
    if (!found) return Unexpected{found.error()};
    s.dirty_pages = *found;
  }
  last_ = now;
  rep.series.push_back(s);
  return {};
}

Status<ReplayError> Replayer::next_record(Process& p, ReplayReport& rep) {
  auto more = p.reader->next(p.record);
  if (!more) return Unexpected{bad_input(more.error())};
  if (!*more) {
    p.done = true;
    return {};
  }
  const unsigned va_bits = c_.guest_levels == 5 ? 56 : 47;  // the lower (user) half
  if ((p.record.vpn >> (va_bits - kPageShift)) != 0)
    return Unexpected{bad_input(fmt::format("{}:{}: vpn {:x} is outside the {}-bit user address space of a {}-level guest",
                                            p.reader->path(), p.reader->line(), p.record.vpn, va_bits, c_.guest_levels))};
  p.left = p.record.count;
  ++rep.records;
  return {};
}

Status<ReplayError> Replayer::miss(unsigned proc, Gva gva, Access a, bool write) {
  for (bool faulted = false;; faulted = true) {
    Result<vm::GvaTranslation, vm::GuestExit> t = vcpu_.translate(gva, a);
    if (!t) {
      if (t.error().kind != vm::GuestExitKind::PageFault || faulted)
        return Unexpected{failed(fmt::format("process {}: {}", proc, vm::to_string(t.error())))};
      if (auto s = kernel_.fault(proc, gva); !s) return Unexpected{failed(s.error())};
      continue;
    }
    tlb::GuestPath path = kernel_.path(proc, gva);
    path.gpa = t->gpa;
    path.write = write;
    // The vCPU's context says which MMU ran the access (adaptive: the process's, after it).
    tdp::VcpuMmu* handle = vcpu_.tdp_mmu();
    if (handle == nullptr) {  // shadow: the access above faulted the shadow tables in; one dimension
      path.leaf_level = shadow_leaf_level(path.leaf_level);
      hw_.walk(path, [](Gpa) { return 1u; }, false);
      return {};
    }
    tdp::TdpMmu* tdp = vm_->tdp_mmu();
    auto s = tdp->access(*handle, t->gpa, a, [](std::byte*) {});
    if (!s) return Unexpected{failed(fmt::format("process {}: {} at {}", proc, tdp::to_string(s.error()), t->gpa))};
    hw_.walk(path, [tdp](Gpa g) {
      const std::optional<tdp::TdpMmu::Leaf> leaf = tdp->lookup(g);
      return leaf ? leaf->level : 1u;
    });
    return {};
  }
}

void Replayer::note_mode(unsigned proc, Process& p, std::uint64_t index, ReplayReport& rep) {
  const bool on_tdp = vcpu_.tdp_mmu() != nullptr;
  if (c_.mmu != MmuKind::Adaptive || on_tdp == p.on_tdp) return;
  p.on_tdp = on_tdp;
  rep.switches.push_back({proc, index, on_tdp});
}

Status<ReplayError> Replayer::access(unsigned proc, Process& p, std::uint64_t n, std::uint64_t index,
                                     ReplayReport& rep) {
  const bool write = p.record.kind == TraceKind::Write || p.record.kind == TraceKind::Modify;
  p.pages.note(p.record.vpn, write);
  const Gva gva(p.record.vpn << kPageShift);
  if (!hw_.lookup(gva, write)) {
    if (auto s = miss(proc, gva, access_of(p.record.kind), write); !s) return s;
    note_mode(proc, p, index, rep);
  }
  // The same page again with nothing between: the entry just hit or filled serves them all.
  hw_.repeat_hits(n - 1);
  return {};
}

Status<ReplayError> Replayer::start_dirty_logging() {
  if (auto s = vm_->memslots().set_flags(SlotId{0}, MemslotFlags::log_dirty()); !s)
    return Unexpected{failed(fmt::format("cannot start dirty logging: {}", to_string(s.error())))};
  logging_ = true;
  hw_.flush_all();  // the MMU's flush after write-protecting reaches the modelled TLBs too
  return {};
}

Status<ReplayError> Replayer::run(std::vector<Process>& procs, std::optional<std::uint64_t> dirty_start,
                                  std::uint64_t sample_accesses, ReplayReport& rep) {
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t index = 0;  // accesses replayed, all processes
  if (sample_accesses != 0) last_ = counters(0);
  bool logging = false;
  auto maybe_start_logging = [&]() -> Status<ReplayError> {
    if (logging || !dirty_start || index != *dirty_start) return {};
    logging = true;
    return start_dirty_logging();
  };
  std::size_t active = procs.size();
  unsigned loaded = 0;
  for (unsigned cur = 0; active > 0; cur = (cur + 1) % static_cast<unsigned>(procs.size())) {
    Process& p = procs[cur];
    if (p.done) continue;
    if (cur != loaded) {  // a context switch: MOV to CR3 (no PCIDs: flushes the TLB)
      vcpu_.set_cr3(kernel_.root(cur).raw());
      hw_.switch_address_space();
      loaded = cur;
    }
    for (std::uint64_t slice = c_.slice_accesses; slice > 0;) {
      if (p.left == 0) {
        if (auto s = next_record(p, rep); !s) return s;
        if (p.done) {
          --active;
          break;
        }
      }
      if (auto s = maybe_start_logging(); !s) return s;
      std::uint64_t n = std::min(p.left, slice);
      if (dirty_start && !logging) n = std::min(n, *dirty_start - index);
      if (sample_accesses != 0) n = std::min(n, sample_accesses - index % sample_accesses);
      if (auto s = access(cur, p, n, index, rep); !s) return s;
      index += n;
      p.left -= n;
      slice -= n;
      if (sample_accesses != 0 && index % sample_accesses == 0) {
        if (auto s = sample(index, logging, rep); !s) return s;
      }
    }
  }
  if (auto s = maybe_start_logging(); !s) return s;  // FRACTION 1: after the last access
  if (sample_accesses != 0 && index % sample_accesses != 0) {
    if (auto s = sample(index, logging, rep); !s) return s;
  }
  rep.time_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
  rep.accesses = index;
  for (const Process& q : procs) {
    rep.pages_touched += q.pages.touched();
    rep.pages_written += q.pages.written();
  }
  rep.guest_page_faults = kernel_.faults();
  rep.guest_table_pages = kernel_.table_pages();
  rep.tlb = hw_.stats();
  if (logging) {
    rep.dirty_log_start = dirty_start;
    auto bits = vm_->mmu().peek_dirty_log(SlotId{0});
    if (!bits) return Unexpected{failed(fmt::format("cannot read the dirty log: {}", to_string(bits.error())))};
    logged_.resize(std::max(logged_.size(), bits->size()));
    for (std::size_t w = 0; w < bits->size(); ++w) logged_[w] |= (*bits)[w];  // and what rounds harvested
    for (std::size_t w = 0; w < logged_.size(); ++w) {
      for (std::uint64_t word = logged_[w]; word != 0; word &= word - 1) {
        const std::uint64_t page = w * 64 + static_cast<unsigned>(std::countr_zero(word));
        ++(page < table_pool_pages() ? rep.table_pages_logged : rep.data_pages_logged);
      }
    }
  }
  return {};
}

StatsSnapshot snapshot(vm::Vm& vm) {
  StatsSnapshot s;
  s.kind = vm.mmu().kind();
  if (tdp::TdpMmu* t = vm.tdp_mmu()) s.tdp = t->stats();
  s.mmu = vm.mmu().stats();
  for (std::size_t i = 0; i < vm.vcpu_count(); ++i) s.root_loads += vm.vcpu(i).mmu().stats().root_loads;
  s.host_page_faults = host_page_faults();
  return s;
}

}  // namespace

std::string_view to_string(MmuKind k) {
  for (const MmuKindName& m : kMmuKinds) {
    if (m.kind == k) return m.name;
  }
  return "?";
}

std::optional<MmuKind> mmu_kind(std::string_view name) {
  for (const MmuKindName& m : kMmuKinds) {
    if (m.name == name) return m.kind;
  }
  return std::nullopt;
}

std::optional<std::string_view> replay_lacks(MmuKind k) {
  switch (k) {
    case MmuKind::Tdp: return std::nullopt;
    case MmuKind::Shadow: return std::nullopt;
    case MmuKind::Adaptive: return std::nullopt;
  }
  return "unknown MMU";
}

Result<ReplayReport, ReplayError> replay(const std::vector<std::string>& traces, const ReplayConfig& c) {
  if (traces.empty()) return Unexpected{bad_input("no trace given")};
  if (auto why = replay_lacks(c.mmu)) return Unexpected{bad_input(fmt::format("--mmu {}: {}", to_string(c.mmu), *why))};
  if (c.guest_page_size != kPageSize && c.guest_page_size != k2M)
    return Unexpected{bad_input("guest pages: expected 4k or 2m")};
  if (c.dirty_log_at && !(*c.dirty_log_at >= 0.0 && *c.dirty_log_at <= 1.0))
    return Unexpected{bad_input(fmt::format("dirty-log-at: {} is not a fraction between 0 and 1", *c.dirty_log_at))};
  ReplayReport rep;
  rep.mmu = c.mmu;
  rep.guest_page_size = c.guest_page_size;
  rep.policies = c.policies;
  // Under shadow the shadow tables are as deep as the guest's (a deeper host would add
  // passthrough levels the one-dimensional walk does not read); adaptive's both MMUs too.
  const unsigned mmu_levels = c.mmu == MmuKind::Tdp ? 4u : c.guest_levels;
  rep.hardware = {c.tlb, c.guest_levels, c.mmu == MmuKind::Shadow ? 0u : mmu_levels, c.psc_entries,
                  c.nested_tlb_entries};
  auto hw = tlb::TranslationHardware::create(rep.hardware);
  if (!hw) return Unexpected{bad_input(fmt::format("tlb: {}", tlb::to_string(hw.error())))};
  if (c.slice_accesses == 0) return Unexpected{bad_input("slice: at least one access")};

  std::optional<std::uint64_t> dirty_start;
  std::uint64_t sample_accesses = 0;
  if (c.dirty_log_at || c.samples != 0) {
    auto total = count_accesses(traces);
    if (!total) return Unexpected{total.error()};
    if (c.dirty_log_at)
      dirty_start = static_cast<std::uint64_t>(std::floor(static_cast<double>(*total) * *c.dirty_log_at));
    if (c.samples != 0) sample_accesses = std::max<std::uint64_t>(1, (*total + c.samples - 1) / c.samples);
  }
  std::vector<Process> procs(traces.size());
  for (std::size_t i = 0; i < traces.size(); ++i) {
    auto r = TraceReader::open(traces[i]);
    if (!r) return Unexpected{bad_input(r.error())};
    procs[i].reader = std::move(*r);
  }

  vm::VmConfig vc;
  switch (c.mmu) {
    case MmuKind::Tdp: vc.mmu = mmu::MmuKind::Tdp; break;
    case MmuKind::Shadow: vc.mmu = mmu::MmuKind::Shadow; break;
    case MmuKind::Adaptive: vc.mmu = mmu::MmuKind::Adaptive; break;
  }
  vc.tdp.format.levels = mmu_levels;
  vc.tdp.policies = c.policies;
  vc.adaptive = c.adaptive;
  auto vm = vm::Vm::create(vc);
  if (!vm) return Unexpected{failed(fmt::format("cannot create the VM: {}", vm::to_string(vm.error())))};
  // Table pool: enough for a process whose pages fill the data area, per process.
  const std::uint64_t per_process = (c.guest_memory / 256 + k2M) / k2M * k2M;
  const std::uint64_t table_bytes = per_process * traces.size();
  const std::uint64_t bytes = (table_bytes + c.guest_memory + c.host_page_size - 1) / c.host_page_size * c.host_page_size;
  auto memory = HostBuffer::allocate(bytes, c.host_page_size, {.huge_pages = false, .populate = false});
  if (!memory) return Unexpected{failed("guest memory: " + memory.error())};
  MemslotSpec spec;
  spec.id = SlotId{0};
  spec.base = Gfn(0);
  spec.pages = bytes >> kPageShift;
  spec.host = memory->data();
  spec.backing_page_size = c.host_page_size;
  if (auto s = (*vm)->memslots().add(spec); !s)
    return Unexpected{failed(fmt::format("cannot add the guest memory slot: {}", to_string(s.error())))};
  const Range<Gpa> tables{Gpa(0), Gpa(table_bytes)};
  auto kernel = GuestKernel::create((*vm)->add_vcpu(), tables, {Gpa(table_bytes), Gpa(bytes)}, static_cast<unsigned>(traces.size()),
                                    c.guest_levels, c.guest_page_size);
  if (!kernel) return Unexpected{failed(kernel.error())};
  const Gpa root = kernel->root(0);
  Replayer r(c, std::move(*vm), std::move(*memory), std::move(*kernel), std::move(*hw), tables);
  vm::Vm& v = r.vm();
  v.vcpu(0).set_registers(vm::long_mode_registers(root, c.guest_levels));
  const StatsSnapshot before = snapshot(v);
  rep.sample_accesses = sample_accesses;
  if (auto s = r.run(procs, dirty_start, sample_accesses, rep); !s) return Unexpected{s.error()};
  auto stats = stats_metrics(before, snapshot(v));
  if (!stats) return Unexpected{failed(stats.error())};
  rep.stats = std::move(*stats);
  return rep;
}

}  // namespace vmmu::sim
