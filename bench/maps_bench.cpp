// Listing a guest's mappings from a memory image (`vmmu maps`): a 1 GiB sparse raw image whose
// 4-level page tables hold 80,000 leaves (4K pages in runs with holes, and some 2M pages, in
// both halves of the address space). Target: the whole listing in well under 0.5 s.
//
//   BM_MapsCount     for_each_mapping only (the iterator over the image)
//   BM_MapsJson      for_each_mapping + the --json line of each leaf into one buffer
//   BM_MapsMerge     for_each_mapping + RangeMerger + merged --json lines
//   BM_ScanBaseline  baseline: read every entry of every table page once, linearly, through
//                    the same MemoryImage -- the least any listing must read
//
// VMMU_MAPS_BENCH_KEEP=DIR writes the image and a regs file to DIR (and keeps them) so the
// command line can be timed on the same guest:  vmmu maps --json --memory DIR/guest.img
// --regs DIR/regs.json

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "vmmu/image/guest_mappings.hpp"
#include "vmmu/image/mapping_merge.hpp"
#include "vmmu/image/mapping_writer.hpp"
#include "vmmu/image/memory_image.hpp"
#include "vmmu/x86/guest_paging.hpp"

namespace {

using namespace vmmu;

constexpr std::uint64_t kImageBytes = std::uint64_t{1} << 30;
constexpr std::uint64_t kMappings = 80'000;
constexpr std::uint64_t kRoot = 0x1000;
constexpr std::uint64_t kP = 1, kRW = 2, kUS = 4, kA = 0x20, kD = 0x40, kPS = 0x80, kG = 0x100;
constexpr std::uint64_t kXD = std::uint64_t{1} << 63;

// Page tables built in memory (only table pages), then written into the sparse image file.
class TableBuilder {
 public:
  std::uint64_t entry(std::uint64_t table, unsigned index) const {
    auto it = pages_.find(table);
    return it == pages_.end() ? 0 : it->second[index];
  }
  void set(std::uint64_t table, unsigned index, std::uint64_t value) { page(table)[index] = value; }
  std::uint64_t table_for(std::uint64_t gva, unsigned level) {
    std::uint64_t t = kRoot;
    page(t);
    for (unsigned l = 4; l > level; --l) {
      const unsigned i = static_cast<unsigned>((gva >> (12 + 9 * (l - 1))) & 511);
      std::uint64_t e = entry(t, i);
      if ((e & kP) == 0) {
        e = next_ | kP | kRW | kUS | kA;
        next_ += 0x1000;
        set(t, i, e);
      }
      t = e & 0x000ffffffffff000;
      page(t);
    }
    return t;
  }
  void map(std::uint64_t gva, std::uint64_t gpa, unsigned level, std::uint64_t flags) {
    const std::uint64_t t = table_for(gva, level);
    set(t, static_cast<unsigned>((gva >> (12 + 9 * (level - 1))) & 511), gpa | flags | kP | (level > 1 ? kPS : 0));
  }
  void write(const std::string& path) const {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(kImageBytes)) != 0) throw std::runtime_error("cannot write " + path);
    for (const auto& [at, entries] : pages_) {
      if (::pwrite(fd, entries.data(), 0x1000, static_cast<off_t>(at)) != 0x1000) throw std::runtime_error("pwrite");
    }
    ::close(fd);
  }
  [[nodiscard]] std::vector<std::uint64_t> table_pages() const {
    std::vector<std::uint64_t> out;
    for (const auto& [at, _] : pages_) out.push_back(at);
    return out;
  }

 private:
  std::vector<std::uint64_t>& page(std::uint64_t at) {
    auto& p = pages_[at];
    if (p.empty()) p.resize(512);
    return p;
  }
  std::map<std::uint64_t, std::vector<std::uint64_t>> pages_;
  std::uint64_t next_ = 0x2000;
};

struct Guest {
  std::string dir;
  std::string image_path;
  std::string regs_path;
  bool keep = false;
  x86::Registers regs;
  std::vector<std::uint64_t> table_pages;
  std::unique_ptr<image::MemoryImage> image;

  Guest() {
    const char* keep_dir = std::getenv("VMMU_MAPS_BENCH_KEEP");
    keep = keep_dir != nullptr && *keep_dir != 0;
    if (keep) {
      dir = keep_dir;
      std::filesystem::create_directories(dir);
    } else {
      std::string pattern = (std::filesystem::temp_directory_path() / "vmmu-maps-bench-XXXXXX").string();
      if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp");
      dir = pattern;
    }
    image_path = dir + "/guest.img";
    regs_path = dir + "/regs.json";

    TableBuilder t;
    // Frames come from a simple LCG over the 1 GiB of guest memory (fixed seed), above the tables.
    std::uint64_t seed = 0x2545f4914f6cdd1d;
    auto frame = [&] {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      return 0x10000000 + ((seed >> 20) % 0x30000) * 0x1000;
    };
    std::uint64_t made = 0;
    // User space: runs of 4K pages, one hole every 16 pages (lower half).
    for (std::uint64_t gva = 0x400000; made < kMappings / 2; gva += 0x1000) {
      if ((gva >> 12) % 16 == 15) continue;
      t.map(gva, frame(), 1, kUS | kRW | kA | ((gva >> 16) % 3 == 0 ? kXD : 0));
      ++made;
    }
    // Kernel: a direct map of 2M pages, then 4K pages (upper half).
    for (std::uint64_t i = 0; i < 256; ++i, ++made) t.map(0xffff888000000000 + i * 0x200000, i * 0x200000, 2, kRW | kA | kD | kG | kXD);
    for (std::uint64_t gva = 0xffffc90000000000; made < kMappings; gva += 0x1000, ++made) {
      t.map(gva, frame(), 1, kRW | kA | kD | kG | ((gva >> 12) % 7 == 0 ? 0 : kXD));
    }
    t.write(image_path);
    table_pages = t.table_pages();

    regs.cr0 = 0x80050033;
    regs.cr3 = kRoot;
    regs.cr4 = 0x6f0;
    regs.efer = 0xd01;
    std::ofstream(regs_path) << fmt::format(R"({{"regs": {{"cr0": "{:#x}", "cr3": "{:#x}", "cr4": "{:#x}", "efer": "{:#x}"}}}})",
                                            regs.cr0, regs.cr3, regs.cr4, regs.efer)
                             << '\n';
    auto opened = image::MemoryImage::open(image_path);
    if (!opened) throw std::runtime_error(to_string(opened.error()));
    image = std::make_unique<image::MemoryImage>(std::move(*opened));
  }
  Guest(const Guest&) = delete;
  Guest& operator=(const Guest&) = delete;
  ~Guest() {
    image.reset();
    if (!keep) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  }
};

Guest& guest() {
  static Guest g;
  return g;
}

void BM_MapsCount(benchmark::State& state) {
  Guest& g = guest();
  const auto paging = x86::GuestPaging::from(g.regs);
  std::uint64_t leaves = 0;
  for (auto _ : state) {
    const auto counts = image::for_each_mapping(paging, *g.image, [](const image::GuestMapping&) {});
    leaves = counts.mappings;
    benchmark::DoNotOptimize(leaves);
  }
  if (leaves != kMappings) state.SkipWithError("wrong number of mappings");
  state.counters["mappings"] = static_cast<double>(leaves);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(leaves));
}
BENCHMARK(BM_MapsCount)->Unit(benchmark::kMillisecond);

void BM_MapsJson(benchmark::State& state) {
  Guest& g = guest();
  const auto paging = x86::GuestPaging::from(g.regs);
  fmt::memory_buffer buf;
  for (auto _ : state) {
    buf.clear();
    image::for_each_mapping(paging, *g.image, [&](const image::GuestMapping& m) { image::append_json(buf, m); });
    benchmark::DoNotOptimize(buf.data());
  }
  state.counters["bytes_out"] = static_cast<double>(buf.size());
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kMappings));
}
BENCHMARK(BM_MapsJson)->Unit(benchmark::kMillisecond);

void BM_MapsMerge(benchmark::State& state) {
  Guest& g = guest();
  const auto paging = x86::GuestPaging::from(g.regs);
  fmt::memory_buffer buf;
  for (auto _ : state) {
    buf.clear();
    image::RangeMerger merger;
    image::for_each_mapping(paging, *g.image, [&](const image::GuestMapping& m) {
      if (auto r = merger.add(m)) image::append_json(buf, *r);
    });
    if (auto r = merger.finish()) image::append_json(buf, *r);
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kMappings));
}
BENCHMARK(BM_MapsMerge)->Unit(benchmark::kMillisecond);

void BM_ScanBaseline(benchmark::State& state) {
  Guest& g = guest();
  for (auto _ : state) {
    std::uint64_t present = 0;
    for (std::uint64_t page : g.table_pages) {
      for (std::uint64_t i = 0; i < 512; ++i) present += *g.image->read<std::uint64_t>(Gpa(page + i * 8)) & 1;
    }
    benchmark::DoNotOptimize(present);
  }
  state.counters["table_pages"] = static_cast<double>(g.table_pages.size());
}
BENCHMARK(BM_ScanBaseline)->Unit(benchmark::kMillisecond);

}  // namespace
