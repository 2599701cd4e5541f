// Writes the generated seed corpora of image_maps_fuzz and elf_core_fuzz: guest page tables
// built to be hostile, each as a raw image and as an ELF64 core laid out as QEMU writes it,
// behind the registers header of image_input.hpp.
//
//   image_fuzz_seeds OUTDIR   ->  OUTDIR/image_maps_fuzz/NAME.{raw,core}
//                                 OUTDIR/elf_core_fuzz/NAME.core (the core file alone)
//
// Tables come from tests/image/support (the image tests' builders), so the seeds are images
// the readers are known to accept before libFuzzer mutates them.

#include <elf.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "fuzz/image_input.hpp"
#include "vmmu/core/page_size.hpp"
#include "image/support/image_builder.hpp"
#include "image/support/x86_tables.hpp"

namespace vmmu::fuzz {
namespace {

using image::testing::ElfRange;
using image::testing::GuestPages;
using image::testing::X86Tables;
namespace bits = image::testing::bits;
using x86::PagingMode;

constexpr std::uint64_t kTableFlags = bits::P | bits::RW | bits::US;
// Every seed's tables start at gpa 0x1000; the page at 0 stays empty.
constexpr Gpa kRoot(0x1000);

struct Seed {
  std::string name;
  PagingMode mode;
  GuestPages pages;
  std::vector<ElfRange> ranges;  // the core's segments (the raw image covers 0 .. the last one's end)
  Gva gva{0};                    // the extra address `translate` walks
};

unsigned entries_per_table(PagingMode mode) { return mode == PagingMode::Bits32 ? 1024 : 512; }

// Every entry of every table points back at the root: 512^levels leaves (1024^2 in 32-bit).
Seed self_reference(const std::string& name, PagingMode mode) {
  Seed s{name, mode, {}, {{kRoot, kPageSize}}, Gva(0x12345000)};
  X86Tables t(s.pages, mode, kRoot, kRoot + kPageSize);
  const unsigned n = mode == PagingMode::Pae ? 4 : entries_per_table(mode);
  for (unsigned i = 0; i < n; ++i) t.set(kRoot, i, kRoot.raw() | (mode == PagingMode::Pae ? bits::P : kTableFlags));
  return s;
}

// Two tables pointing at each other: the walk alternates between them until the leaf level.
Seed two_table_loop() {
  Seed s{"two-table-loop", PagingMode::Long4, {}, {{kRoot, 2 * kPageSize}}, Gva(0x7fff'ffff'f000)};
  X86Tables t(s.pages, PagingMode::Long4, kRoot, kRoot + 2 * kPageSize);
  const Gpa other = kRoot + kPageSize;
  for (unsigned i = 0; i < 512; ++i) {
    t.set(kRoot, i, other.raw() | kTableFlags);
    t.set(other, i, kRoot.raw() | kTableFlags | bits::A);
  }
  return s;
}

// 512-way fan-out at every level through shared tables; `leaves` false leaves the last table
// empty, so the listing visits 512^3 empty tables and lists nothing.
Seed fan_out(const std::string& name, bool leaves) {
  Seed s{name, PagingMode::Long4, {}, {{kRoot, 4 * kPageSize}}, Gva(0xffff'8000'0000'0000)};
  X86Tables t(s.pages, PagingMode::Long4, kRoot, kRoot + 4 * kPageSize);
  for (unsigned level = 4; level > 1; --level) {
    const Gpa table = kRoot + (4 - level) * kPageSize;
    for (unsigned i = 0; i < 512; ++i) t.set(table, i, (table + kPageSize).raw() | kTableFlags);
  }
  if (leaves) {
    for (unsigned i = 0; i < 512; ++i) t.set(kRoot + 3 * kPageSize, i, (std::uint64_t{i} << 12) | bits::P | bits::US);
  }
  return s;
}

// Tables and frames outside the image (above its end, at the top of the physical address
// space, in a hole between the core's segments), huge leaves, reserved bits, XD.
Seed outside_the_image(PagingMode mode) {
  Seed s{"outside-" + std::string(x86::to_string(mode)), mode, {}, {}, Gva(0x40'0000)};
  X86Tables t(s.pages, mode, kRoot, kRoot + kPageSize);
  t.map(0x0, 0x7000, kPageSize, bits::RW);
  t.map(0x40'0000, 0x40'0000, mode == PagingMode::Bits32 ? 4 * MiB : 2 * MiB, bits::RW | bits::US | bits::G);
  const Gpa root_table = mode == PagingMode::Pae ? t.table(0, 2) : kRoot;
  const bool wide = mode != PagingMode::Bits32;
  const std::uint64_t top = wide ? 0x000f'ffff'ffff'f000 : 0xffff'f000;
  t.set(root_table, 5, top | kTableFlags);                             // the top of the physical space
  t.set(root_table, 6, 0x20'0000 | kTableFlags);                       // beyond the image's end
  t.set(root_table, 7, (kRoot + 3 * kPageSize).raw() | kTableFlags);   // in the core's hole
  if (wide) {
    t.set(root_table, 8, (std::uint64_t{1} << 51) | kTableFlags | bits::PS);  // a huge leaf with reserved bits
    t.set(root_table, 9, (kRoot + kPageSize).raw() | kTableFlags | bits::XD);
  }
  s.ranges = {{kRoot, 3 * kPageSize}, {kRoot + 4 * kPageSize, kPageSize}};
  return s;
}

std::vector<std::byte> file_bytes(const image::testing::TempDir& dir, const std::string& name) {
  return image::testing::read_file(dir.file(name));
}

// e_phnum = PN_XNUM with the count in section header 0's sh_info, as QEMU writes cores of
// guests with many memory ranges.
std::vector<std::byte> with_pn_xnum(std::vector<std::byte> core) {
  Elf64_Ehdr eh;
  std::memcpy(&eh, core.data(), sizeof eh);
  Elf64_Shdr sh{};
  sh.sh_info = eh.e_phnum;
  eh.e_phnum = PN_XNUM;
  eh.e_shoff = core.size();
  eh.e_shentsize = sizeof sh;
  eh.e_shnum = 0;
  std::memcpy(core.data(), &eh, sizeof eh);
  const auto* p = reinterpret_cast<const std::byte*>(&sh);
  core.insert(core.end(), p, p + sizeof sh);
  return core;
}

void write(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

void write_seed(const std::filesystem::path& out, const Seed& s) {
  const image::testing::TempDir dir;
  std::uint64_t raw_size = 0;
  for (const ElfRange& r : s.ranges) raw_size = std::max(raw_size, r.gpa.raw() + r.size);
  image::testing::write_raw_image(dir.file("raw"), s.pages, raw_size);
  image::testing::write_elf_core(dir.file("core"), s.pages, s.ranges);
  const std::vector<std::byte> core = file_bytes(dir, "core");

  ImageInput in;
  in.regs = image::testing::registers_for(s.mode, kRoot);
  in.gva = s.gva;
  in.access = Access::write(true);
  const std::vector<std::byte> raw = file_bytes(dir, "raw");
  in.image = raw;
  write(out / "image_maps_fuzz" / (s.name + ".raw"), encode_image_input(in));
  in.image = core;
  in.json = true;
  write(out / "image_maps_fuzz" / (s.name + ".core"), encode_image_input(in));
  write(out / "elf_core_fuzz" / (s.name + ".core"), core);
  const std::vector<std::byte> xnum = with_pn_xnum(core);
  in.image = xnum;
  in.json = false;
  in.merge = true;
  write(out / "image_maps_fuzz" / (s.name + ".xnum.core"), encode_image_input(in));
  write(out / "elf_core_fuzz" / (s.name + ".xnum.core"), xnum);
}

}  // namespace
}  // namespace vmmu::fuzz

int main(int argc, char** argv) {
  using namespace vmmu::fuzz;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path out(argv[1]);
  std::filesystem::create_directories(out / "image_maps_fuzz");
  std::filesystem::create_directories(out / "elf_core_fuzz");
  const Seed seeds[] = {
      self_reference("self-reference-bits32", PagingMode::Bits32),
      self_reference("self-reference-pae", PagingMode::Pae),
      self_reference("self-reference-long4", PagingMode::Long4),
      self_reference("self-reference-long5", PagingMode::Long5),
      two_table_loop(),
      fan_out("fan-out-512-leaves", true),
      fan_out("fan-out-512-empty", false),
      outside_the_image(PagingMode::Bits32),
      outside_the_image(PagingMode::Pae),
      outside_the_image(PagingMode::Long4),
  };
  for (const Seed& s : seeds) write_seed(out, s);
  return 0;
}
