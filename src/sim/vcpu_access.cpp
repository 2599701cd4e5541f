#include "vcpu_access.hpp"

#include <cstring>

#include "l1_hypervisor.hpp"

namespace vmmu::sim {
namespace {

constexpr std::uint64_t kWordsPerPage = kPageSize / sizeof(std::uint64_t);

// Host memory behind a guest page, 8-byte aligned (the host pointer of an aligned gpa).
std::atomic_ref<std::uint64_t> word_at(std::byte* host, std::uint64_t i = 0) {
  // The pointer comes from a page-aligned slot plus an 8-byte-aligned offset: the cast is
  // aligned, and std::atomic_ref needs an object of the type, which mmap'ed memory provides.
  return std::atomic_ref<std::uint64_t>(*(reinterpret_cast<std::uint64_t*>(host) + i));
}

}  // namespace

std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::uint64_t pattern_word(Gfn gfn, std::uint64_t word, std::uint64_t salt) {
  return mix64((gfn.raw() * kWordsPerPage + word) ^ (salt * 0x2545f4914f6cdd1dULL));
}

template <class Use>
Status<mmu::Exit> VcpuAccess::access(Gpa gpa, Access a, Use&& use) {
  if (l1_ != nullptr) return l1_->access(index_, gpa, a, mmu::HostUse(use));  // no rings under vm.nested
  // A full ring: the reset frees every harvested entry, so one retry finds room; more retries
  // only if other writes filled it again in between (not possible from this one thread).
  for (int attempt = 0;; ++attempt) {
    Status<mmu::Exit> s = vcpu_.access_gpa(gpa, a, use);
    if (s || s.error() != mmu::Exit::RingFull || attempt == 2) return s;
    ++ring_full_exits_;
    mmu_.harvest_dirty_ring(vcpu_, harvested_);
    mmu_.reset_dirty_ring(vcpu_);
  }
}

Status<mmu::Exit> VcpuAccess::write64(Gpa gpa, std::uint64_t value) {
  return access(gpa, Access::write(), [&](std::byte* host) { word_at(host).store(value, std::memory_order_relaxed); });
}

Result<std::uint64_t, mmu::Exit> VcpuAccess::read64(Gpa gpa) {
  std::uint64_t v = 0;
  auto s = access(gpa, Access::read(), [&](std::byte* host) { v = word_at(host).load(std::memory_order_relaxed); });
  if (!s) return Unexpected{s.error()};
  return v;
}

Status<mmu::Exit> VcpuAccess::fill_page(Gpa page, std::uint64_t salt) {
  const Gfn gfn = gfn_of(page);
  return access(page, Access::write(), [&](std::byte* host) {
    for (std::uint64_t i = 0; i < kWordsPerPage; ++i)
      word_at(host, i).store(pattern_word(gfn, i, salt), std::memory_order_relaxed);
  });
}

Result<std::uint64_t, mmu::Exit> VcpuAccess::check_page(Gpa page, std::uint64_t salt) {
  const Gfn gfn = gfn_of(page);
  std::uint64_t bad = 0;
  auto s = access(page, Access::read(), [&](std::byte* host) {
    for (std::uint64_t i = 0; i < kWordsPerPage; ++i)
      if (word_at(host, i).load(std::memory_order_relaxed) != pattern_word(gfn, i, salt)) ++bad;
  });
  if (!s) return Unexpected{s.error()};
  return bad;
}

}  // namespace vmmu::sim
