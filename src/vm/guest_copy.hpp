#pragma once
// Copies between guest memory and a caller's buffer the way x86 accesses memory: each
// naturally aligned 8-byte word of guest memory in one atomic load or store, so a guest
// page-table entry written through Vcpu::write / Vm::write is never seen torn by another
// vCPU's walk (Intel SDM vol. 3A 9.1.1: aligned quadword accesses are atomic). The edges go
// byte by byte. Relaxed order: nothing is published by these copies themselves (the walker's
// own loads are acquire); relaxed atomics compile to plain moves on x86.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace vmmu::vm::detail {

inline std::size_t head_bytes(const std::byte* guest, std::size_t n) {
  const std::size_t mis = reinterpret_cast<std::uintptr_t>(guest) & 7u;
  const std::size_t head = mis == 0 ? 0 : 8 - mis;
  return head < n ? head : n;
}

inline void copy_from_guest(std::byte* out, std::byte* guest, std::size_t n) {
  std::size_t i = 0;
  const std::size_t head = head_bytes(guest, n);
  for (; i < head; ++i) out[i] = std::atomic_ref<std::byte>(guest[i]).load(std::memory_order_relaxed);
  for (; i + 8 <= n; i += 8) {
    // guest + i is 8-byte aligned here (head_bytes), as atomic_ref requires.
    const std::uint64_t w =
        std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(guest + i)).load(std::memory_order_relaxed);
    std::memcpy(out + i, &w, 8);
  }
  for (; i < n; ++i) out[i] = std::atomic_ref<std::byte>(guest[i]).load(std::memory_order_relaxed);
}

inline void copy_to_guest(std::byte* guest, const std::byte* in, std::size_t n) {
  std::size_t i = 0;
  const std::size_t head = head_bytes(guest, n);
  for (; i < head; ++i) std::atomic_ref<std::byte>(guest[i]).store(in[i], std::memory_order_relaxed);
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, in + i, 8);
    std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(guest + i)).store(w, std::memory_order_relaxed);
  }
  for (; i < n; ++i) std::atomic_ref<std::byte>(guest[i]).store(in[i], std::memory_order_relaxed);
}

// Per-page copy steps for the access loops: (host pointer, offset in the buffer, bytes).
inline auto copy_into(std::span<std::byte> out) {
  return [out](std::byte* host, std::size_t off, std::size_t n) { copy_from_guest(out.data() + off, host, n); };
}
inline auto copy_from(std::span<const std::byte> in) {
  return [in](std::byte* host, std::size_t off, std::size_t n) { copy_to_guest(host, in.data() + off, n); };
}

}  // namespace vmmu::vm::detail
