// libFuzzer over the memory-image readers as `vmmu maps` and `vmmu translate` drive them: one
// input holds a guest's paging registers and its memory image, raw or an ELF64 core (framing:
// image_input.hpp). The image is opened with image::MemoryImage::open, every mapping is listed
// (image::for_each_mapping, written as text, JSON or merged ranges) and walked, and the
// header's gva is translated. Hostile tables -- loops, self-references, 512-way fan-out,
// entries pointing outside the image -- must give answers, never a crash, a hang or a leak.
//
// Beyond "no crash", two properties of the readers are checked:
//  - an image read never fails (memory no segment holds reads as 0), so a walk never answers
//    TableUnreadable;
//  - listing and walker read the tables alike: each listed leaf, walked as a supervisor read,
//    gives the listed frame, size and rights, or a protection fault (SMAP, protection keys).
//
// The listing is bounded by ReadBudget (read_budget.hpp): the library has no limit of its own.

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "fuzz/image_input.hpp"
#include "fuzz/read_budget.hpp"
#include "vmmu/core/format.hpp"
#include "vmmu/image/guest_mappings.hpp"
#include "vmmu/image/mapping_merge.hpp"
#include "vmmu/image/mapping_writer.hpp"
#include "vmmu/image/memory_image.hpp"
#include "vmmu/x86/walk.hpp"

namespace vmmu::fuzz {
namespace {

// Entry reads one listing may make: eight full tables, a few milliseconds under ASan.
constexpr std::uint64_t kListingReads = 1 << 12;
// Listed leaves walked again to compare: the first ones of each input (a walk per leaf of a
// table listing 512^4 leaves would spend the budget of the fuzzer, not of the listing).
constexpr std::uint64_t kLeavesChecked = 64;
// Output is discarded in blocks, as `vmmu maps` flushes it.
constexpr std::size_t kFlushBytes = 1 << 16;
constexpr std::uint32_t kErrorCodePresent = 1;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "image_maps_fuzz: %s\n", what.c_str());
  std::abort();
}

// The image as a file, because MemoryImage::open takes a path: an in-memory file (memfd),
// rewritten for every input and opened again through /proc/self/fd.
class ImageFile {
 public:
  ImageFile() : fd_(::memfd_create("image_maps_fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0) fail("memfd_create failed");
    path_ = fmt::format("/proc/self/fd/{}", fd_);
  }
  ImageFile(const ImageFile&) = delete;
  ImageFile& operator=(const ImageFile&) = delete;
  ~ImageFile() { ::close(fd_); }

  void write(std::span<const std::byte> bytes) {
    if (::ftruncate(fd_, 0) != 0) fail("ftruncate failed");
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::pwrite(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
      if (n <= 0) fail("pwrite failed");
      done += static_cast<std::size_t>(n);
    }
  }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

void check_walk_agrees(const x86::GuestPaging& paging, const image::MemoryImage& memory, const image::GuestMapping& m) {
  const auto r = x86::walk(paging, memory, m.gva, Access::read(false), x86::WalkOptions{.update_accessed_dirty = false});
  if (r) {
    if (r->gpa != m.gpa || r->page_size != m.page_size || r->user != m.user || r->writable != m.write ||
        r->nx != m.nx) {
      fail(fmt::format("listed {} -> {} ({:#x} bytes, user={} write={} nx={}), walked to {} ({:#x} bytes, user={} "
                       "write={} nx={})",
                       m.gva, m.gpa, m.page_size, m.user, m.write, m.nx, r->gpa, r->page_size, r->user, r->writable,
                       r->nx));
    }
    return;
  }
  if (r.error().kind != x86::WalkFaultKind::PageFault || (r.error().error_code & kErrorCodePresent) == 0) {
    fail(fmt::format("listed {} -> {}, but a supervisor read faults: {} error code {:#x} at level {}", m.gva, m.gpa,
                     x86::to_string(r.error().kind), r.error().error_code, r.error().level));
  }
}

template <class T>
void append(fmt::memory_buffer& out, const T& line, bool json) {
  if (json) {
    image::append_json(out, line);
  } else {
    image::append_text(out, line);
  }
}

}  // namespace
}  // namespace vmmu::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace vmmu;
  static fuzz::ImageFile file;
  const fuzz::ImageInput in = fuzz::decode_image_input(std::as_bytes(std::span(data, size)));
  file.write(in.image);
  auto opened = image::MemoryImage::open(file.path());
  if (!opened) {
    (void)image::to_string(opened.error());
    return 0;
  }
  const image::MemoryImage& memory = *opened;
  const auto paging = x86::GuestPaging::from(in.regs, in.cpu);

  // `vmmu maps`
  fmt::memory_buffer out;
  image::RangeMerger merger;
  fuzz::ReadBudget budget(memory, fuzz::kListingReads);
  std::uint64_t listed = 0;
  const image::MappingCounts counts = image::for_each_mapping(paging, budget, [&](const image::GuestMapping& m) {
    if (!in.merge) {
      fuzz::append(out, m, in.json);
    } else if (auto closed = merger.add(m)) {
      fuzz::append(out, *closed, in.json);
    }
    if (out.size() >= fuzz::kFlushBytes) out.clear();
    if (++listed <= fuzz::kLeavesChecked) fuzz::check_walk_agrees(paging, memory, m);
  });
  if (auto last = merger.finish()) fuzz::append(out, *last, in.json);
  (void)counts;

  // `vmmu translate`
  const auto t = x86::walk(paging, memory, in.gva, in.access, x86::WalkOptions{.update_accessed_dirty = false});
  if (!t && t.error().kind == x86::WalkFaultKind::TableUnreadable) {
    fuzz::fail(fmt::format("translating {}: a table read failed, but image reads always succeed", in.gva));
  }
  return 0;
}
