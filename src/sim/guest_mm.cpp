#include "guest_mm.hpp"

#include <fmt/format.h>

#include <array>
#include <optional>
#include <span>
#include <type_traits>

#include "vmmu/core/format.hpp"
#include "vmmu/core/page_size.hpp"
#include "vmmu/pt/walk.hpp"
#include "vmmu/vm/guest_page_table_builder.hpp"
#include "vmmu/x86/guest_entry.hpp"
#include "vmmu/x86/guest_format.hpp"

namespace vmmu::sim {
namespace {

namespace gpte = x86::gpte;

// Non-leaf entries grant everything: the leaf decides (as GuestPageTableBuilder's do).
constexpr std::uint64_t kTableFlags = gpte::P::mask | gpte::RW::mask | gpte::US::mask;

Gva direct(Gpa gpa) { return Gva(GuestMm::kDirectMap + gpa.raw()); }

// The guest's tables as a pt::TableMemory seen from its kernel: every entry read and written
// by the vCPU at the direct map. The exchange is a read, a compare and a write: the kernel is
// its tables' only writer.
class DirectMapMemory {
 public:
  explicit DirectMapMemory(vm::Vcpu& vcpu) : vcpu_(vcpu) {}

  template <class T>
  std::optional<T> read(Gpa gpa) {
    T value{};
    if (auto s = vcpu_.read(direct(gpa), std::as_writable_bytes(std::span(&value, 1))); !s) {
      exit = s.error();
      return std::nullopt;
    }
    return value;
  }

  template <class T>
  bool compare_exchange(Gpa gpa, T& expected, T desired) {
    const std::optional<T> now = read<T>(gpa);
    if (!now || *now != expected) {
      expected = now.value_or(T{0});
      return false;
    }
    if (auto s = vcpu_.write(direct(gpa), std::as_bytes(std::span(&desired, 1))); !s) {
      exit = s.error();
      return false;
    }
    return true;
  }

  std::optional<vm::GuestExit> exit;  // the last access that exited

 private:
  vm::Vcpu& vcpu_;
};

std::string exit_text(const std::optional<vm::GuestExit>& e) {
  return e ? vm::to_string(*e) : std::string("the entry changed under the kernel");
}

}  // namespace

std::uint64_t GuestMm::pool_pages(std::uint64_t frames, unsigned spaces, std::uint64_t user_pages) {
  // The direct map: a root, and per 2 MiB run of frames a page table (plus directories);
  // each space: a root, a PDPT, a directory and its page tables.
  const std::uint64_t n = 16 + 2 * (frames / 512 + 2) + spaces * (3 + (user_pages + 511) / 512);
  return n + n / 512 + 1;  // the pool's own direct map
}

Result<GuestMm, std::string> GuestMm::boot(vm::Vm& vm, vm::Vcpu& vcpu, Range<Gpa> pool,
                                           const std::vector<Gpa>& frames) {
  auto b = vm::GuestPageTableBuilder::create(vm, pool, 4);
  if (!b) return Unexpected{fmt::format("guest page tables: {}", vm::to_string(b.error()))};
  vm::GuestPageFlags kernel;
  kernel.nx = true;
  auto map = [&](Gpa gpa, std::uint64_t bytes) -> Status<std::string> {
    if (auto s = b->map(direct(gpa), gpa, bytes, kPageSize, kernel); !s)
      return Unexpected{fmt::format("guest direct map of gpa {:#x}: {}", gpa.raw(), vm::to_string(s.error()))};
    return {};
  };
  if (auto s = map(pool.begin, pool.end - pool.begin); !s) return Unexpected{s.error()};
  // Frames come in runs of consecutive pages: one map call per run.
  for (std::size_t i = 0; i < frames.size();) {
    std::size_t j = i + 1;
    while (j < frames.size() && frames[j] == frames[j - 1] + kPageSize) ++j;
    if (auto s = map(frames[i], (j - i) * kPageSize); !s) return Unexpected{s.error()};
    i = j;
  }
  GuestMm mm(vcpu, pool);
  mm.next_ = pool.begin + b->tables_used() * kPageSize;
  mm.first_root_ = b->root();
  vcpu.set_registers(vm::long_mode_registers(b->root(), 4));
  return mm;
}

Result<Gpa, std::string> GuestMm::take_table() {
  if (pool_.end < next_ + kPageSize) return Unexpected{std::string("guest kernel: no table page left in its pool")};
  static constexpr std::array<std::byte, kPageSize> kZero{};
  if (auto s = vcpu_->write(direct(next_), kZero); !s)
    return Unexpected{fmt::format("guest kernel: clearing a table page: {}", vm::to_string(s.error()))};
  const Gpa t = next_;
  next_ += kPageSize;
  return t;
}

Result<Gpa, std::string> GuestMm::new_address_space() {
  Result<Gpa, std::string> root = take_table();
  if (!root) return root;
  // The kernel half is the direct map's one root entry.
  const unsigned i = x86::Format4::kGeometry.index(kDirectMap, x86::Format4::kGeometry.root_level());
  Result<std::uint64_t, std::string> kernel = read_phys(pt::entry_address<x86::Format4>(first_root_, i));
  if (!kernel) return Unexpected{kernel.error()};
  if (auto s = write_phys(pt::entry_address<x86::Format4>(*root, i), *kernel); !s) return Unexpected{s.error()};
  return root;
}

// The engine's walk through the direct map down to level 1, making a table wherever an
// entry is empty (GuestPageTableBuilder::entry_address, but with the guest's own accesses).
Result<Gpa, std::string> GuestMm::leaf_address(Gpa root, Gva gva) {
  const x86::GuestPaging paging = x86::GuestPaging::from(vm::long_mode_registers(root, 4));
  DirectMapMemory memory(*vcpu_);
  Result<Gpa, std::string> out = Unexpected{std::string("guest kernel: not a 4-level address space")};
  paging.with_format([&]([[maybe_unused]] auto format, [[maybe_unused]] Gpa r) {
    using F = decltype(format);
    if constexpr (std::is_same_v<F, x86::Format4>) {
      for (;;) {
        const pt::WalkResult<F> w = pt::walk(format, memory, r, gva.raw(), [&](pt::Step<F>& s) {
          return s.level == 1 ? pt::Visit::Stop : pt::Visit::Continue;
        });
        switch (w.end) {
          case pt::WalkEnd::Stopped: out = w.entry_address; return;
          case pt::WalkEnd::Leaf:
            out = Unexpected{fmt::format("guest kernel: a huge page maps {}", gva)};
            return;
          case pt::WalkEnd::Unreadable:
            out = Unexpected{fmt::format("guest kernel: reading the tables of {}: {}", gva, exit_text(memory.exit))};
            return;
          case pt::WalkEnd::NotPresent: break;
        }
        Result<Gpa, std::string> table = take_table();
        if (!table) {
          out = table;
          return;
        }
        typename F::Entry expected = w.entry;
        if (!memory.compare_exchange(w.entry_address, expected, typename F::Entry{table->raw() | kTableFlags})) {
          out = Unexpected{fmt::format("guest kernel: linking a table for {}: {}", gva, exit_text(memory.exit))};
          return;
        }
      }
    }
  });
  return out;
}

Result<std::uint64_t, std::string> GuestMm::read_phys(Gpa gpa) {
  std::uint64_t v = 0;
  if (auto s = vcpu_->read(direct(gpa), std::as_writable_bytes(std::span(&v, 1))); !s)
    return Unexpected{fmt::format("guest kernel: reading gpa {:#x}: {}", gpa.raw(), vm::to_string(s.error()))};
  return v;
}

Status<std::string> GuestMm::write_phys(Gpa gpa, std::uint64_t value) {
  if (auto s = vcpu_->write(direct(gpa), std::as_bytes(std::span(&value, 1))); !s)
    return Unexpected{fmt::format("guest kernel: writing gpa {:#x}: {}", gpa.raw(), vm::to_string(s.error()))};
  return {};
}

Status<std::string> GuestMm::copy_page(Gpa from, Gpa to) {
  std::array<std::byte, kPageSize> buf{};
  if (auto s = vcpu_->read(direct(from), buf); !s)
    return Unexpected{fmt::format("guest kernel: copying gpa {:#x}: {}", from.raw(), vm::to_string(s.error()))};
  if (auto s = vcpu_->write(direct(to), buf); !s)
    return Unexpected{fmt::format("guest kernel: copying to gpa {:#x}: {}", to.raw(), vm::to_string(s.error()))};
  return {};
}

std::uint64_t GuestMm::user_leaf(Gpa frame, bool writable) {
  vm::GuestPageFlags f;
  f.user = true;
  f.writable = writable;
  return vm::GuestPageTableBuilder::leaf_entry(frame, 1, f);
}

Gpa GuestMm::leaf_frame(std::uint64_t leaf) { return Gpa(gpte::Addr::bits(leaf)); }

bool GuestMm::leaf_writable(std::uint64_t leaf) { return gpte::RW::get(leaf) != 0; }

Result<std::uint64_t, vm::GuestExit> GuestMm::read_user(Gva gva) {
  std::uint64_t v = 0;
  if (auto s = vcpu_->read(gva, std::as_writable_bytes(std::span(&v, 1)), true); !s) return Unexpected{s.error()};
  return v;
}

Status<vm::GuestExit> GuestMm::write_user(Gva gva, std::uint64_t value) {
  return vcpu_->write(gva, std::as_bytes(std::span(&value, 1)), true);
}

}  // namespace vmmu::sim
