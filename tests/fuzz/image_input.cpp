#include "fuzz/image_input.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace vmmu::fuzz {
namespace {

constexpr unsigned kMaxphyaddrMin = 32;
constexpr unsigned kMaxphyaddrValues = 21;  // 32..52
constexpr std::uint8_t kOpMask = 0x3, kCpl3 = 0x4, kJson = 0x8, kMerge = 0x10, kAc = 0x20, kNo1g = 0x40,
                        kNoPse36 = 0x80;

std::uint64_t u64_at(std::span<const std::byte, kImageHeaderBytes> h, std::size_t at) {
  std::uint64_t v = 0;
  std::memcpy(&v, h.data() + at, sizeof v);
  return v;
}

void put_u64(std::vector<std::byte>& out, std::size_t at, std::uint64_t v) { std::memcpy(out.data() + at, &v, sizeof v); }

}  // namespace

ImageInput decode_image_input(std::span<const std::byte> data) {
  std::array<std::byte, kImageHeaderBytes> head{};
  const std::size_t n = std::min(data.size(), kImageHeaderBytes);
  std::copy_n(data.begin(), n, head.begin());
  const std::span<const std::byte, kImageHeaderBytes> h(head);

  ImageInput in;
  in.regs.cr0 = u64_at(h, 0);
  in.regs.cr3 = u64_at(h, 8);
  in.regs.cr4 = u64_at(h, 16);
  in.regs.efer = u64_at(h, 24);
  in.gva = Gva(u64_at(h, 32));
  std::uint32_t pkru = 0;
  std::memcpy(&pkru, head.data() + 40, sizeof pkru);
  in.regs.pkru = pkru;
  in.cpu.maxphyaddr = kMaxphyaddrMin + std::to_integer<unsigned>(head[44]) % kMaxphyaddrValues;
  const auto how = std::to_integer<std::uint8_t>(head[45]);
  constexpr AccessKind kinds[] = {AccessKind::Read, AccessKind::Write, AccessKind::Fetch, AccessKind::Read};
  in.access = Access{kinds[how & kOpMask], (how & kCpl3) != 0, false};
  in.json = (how & kJson) != 0;
  in.merge = (how & kMerge) != 0;
  in.regs.rflags = x86::rflags::AC::set(in.regs.rflags, (how & kAc) != 0);
  in.cpu.pages_1g = (how & kNo1g) == 0;
  in.cpu.pse36 = (how & kNoPse36) == 0;
  in.image = data.subspan(n);
  return in;
}

std::vector<std::byte> encode_image_input(const ImageInput& in) {
  std::vector<std::byte> out(kImageHeaderBytes);
  put_u64(out, 0, in.regs.cr0);
  put_u64(out, 8, in.regs.cr3);
  put_u64(out, 16, in.regs.cr4);
  put_u64(out, 24, in.regs.efer);
  put_u64(out, 32, in.gva.raw());
  std::memcpy(out.data() + 40, &in.regs.pkru, sizeof in.regs.pkru);
  out[44] = std::byte(static_cast<std::uint8_t>((in.cpu.maxphyaddr - kMaxphyaddrMin) % kMaxphyaddrValues));
  std::uint8_t how = in.access.kind == AccessKind::Write ? 1 : in.access.kind == AccessKind::Fetch ? 2 : 0;
  if (in.access.user) how |= kCpl3;
  if (in.json) how |= kJson;
  if (in.merge) how |= kMerge;
  if (x86::rflags::AC::get(in.regs.rflags)) how |= kAc;
  if (!in.cpu.pages_1g) how |= kNo1g;
  if (!in.cpu.pse36) how |= kNoPse36;
  out[45] = std::byte(how);
  out.insert(out.end(), in.image.begin(), in.image.end());
  return out;
}

}  // namespace vmmu::fuzz
