#pragma once
// The input of image_maps_fuzz: a guest's paging registers and its memory image in one byte
// string, so libFuzzer mutates both. Little-endian, fixed header, then the image file:
//
//   offset  0  cr0      u64
//           8  cr3      u64
//          16  cr4      u64
//          24  efer     u64
//          32  gva      u64   one extra address `translate` walks
//          40  pkru     u32
//          44  maxphyaddr     32 + byte % 21 (the regs file's range, 32..52)
//          45  how            bits 0-1 op (read, write, fetch, read), bit 2 cpl 3,
//                             bit 3 JSON lines, bit 4 merged ranges (`maps --json`, `--merge`),
//                             bit 5 RFLAGS.AC, bit 6 no 1G pages, bit 7 no PSE-36 (CPUID)
//          46  image          the rest: an ELF64 core if it starts with "\x7fELF", else raw
//
// Shorter inputs are padded with zeros up to the header's end (an empty image).

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "vmmu/core/access.hpp"
#include "vmmu/x86/guest_paging.hpp"
#include "vmmu/x86/registers.hpp"

namespace vmmu::fuzz {

inline constexpr std::size_t kImageHeaderBytes = 46;

struct ImageInput {
  x86::Registers regs;
  x86::CpuModel cpu;
  Gva gva;
  Access access;
  bool json = false;
  bool merge = false;
  std::span<const std::byte> image;
};

ImageInput decode_image_input(std::span<const std::byte> data);

// The bytes decode_image_input() reads back as `in` (image included); for the seed generator.
std::vector<std::byte> encode_image_input(const ImageInput& in);

}  // namespace vmmu::fuzz
