// MemoryImage: raw images and ELF64 cores as read-only guest-physical memory.

#include <elf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "image/support/image_builder.hpp"
#include "vmmu/image/memory_image.hpp"
#include "vmmu/pt/format.hpp"

namespace vmmu::image {
namespace {

using testing::ElfRange;
using testing::GuestPages;
using testing::TempDir;

static_assert(pt::TableMemory<MemoryImage, Gpa>);

TEST(RawImage, FileOffsetIsGuestPhysicalAddress) {
  TempDir dir;
  GuestPages pages;
  pages.write<std::uint64_t>(Gpa(0x1000), 0x1122334455667788);
  pages.write<std::uint32_t>(Gpa(0x3ffc), 0xdeadbeef);
  testing::write_raw_image(dir.file("raw"), pages, 0x4000);
  auto img = MemoryImage::open(dir.file("raw"));
  ASSERT_TRUE(img) << to_string(img.error());
  EXPECT_EQ(img->kind(), ImageKind::Raw);
  EXPECT_EQ(img->read<std::uint64_t>(Gpa(0x1000)), 0x1122334455667788u);
  EXPECT_EQ(img->read<std::uint32_t>(Gpa(0x1004)), 0x11223344u);
  EXPECT_EQ(img->read<std::uint32_t>(Gpa(0x3ffc)), 0xdeadbeefu);
  EXPECT_EQ(img->read<std::uint64_t>(Gpa(0x2000)), 0u);  // a hole of the sparse file
}

TEST(RawImage, MemoryBeyondTheFileReadsAsZero) {
  TempDir dir;
  GuestPages pages;
  pages.write<std::uint32_t>(Gpa(0xffc), 0xaabbccdd);
  testing::write_raw_image(dir.file("raw"), pages, 0x1000);
  auto img = MemoryImage::open(dir.file("raw"));
  ASSERT_TRUE(img);
  EXPECT_EQ(img->read<std::uint64_t>(Gpa(0x5000)), 0u);
  EXPECT_EQ(img->read<std::uint64_t>(Gpa(~std::uint64_t{0} - 7)), 0u);
  // A read straddling the end takes the bytes the file has and zeros for the rest.
  EXPECT_EQ(img->read<std::uint64_t>(Gpa(0xffc)), 0xaabbccddu);
}

TEST(RawImage, EmptyFileIsAllZeros) {
  TempDir dir;
  std::ofstream(dir.file("empty")).close();
  auto img = MemoryImage::open(dir.file("empty"));
  ASSERT_TRUE(img);
  EXPECT_TRUE(img->segments().empty());
  EXPECT_EQ(img->read<std::uint64_t>(Gpa(0)), 0u);
}

TEST(RawImage, CompareExchangeNeverWritesAndReportsCurrentValue) {
  TempDir dir;
  GuestPages pages;
  pages.write<std::uint64_t>(Gpa(0x8), 0x1003);
  testing::write_raw_image(dir.file("raw"), pages, 0x1000);
  const auto before = testing::read_file(dir.file("raw"));
  {
    auto img = MemoryImage::open(dir.file("raw"));
    ASSERT_TRUE(img);
    std::uint64_t expected = 0x1003;
    EXPECT_FALSE(img->compare_exchange<std::uint64_t>(Gpa(0x8), expected, 0x1023));
    EXPECT_EQ(expected, 0x1003u);
    EXPECT_EQ(img->read<std::uint64_t>(Gpa(0x8)), 0x1003u);
  }
  EXPECT_EQ(testing::read_file(dir.file("raw")), before);
}

TEST(ElfCore, SegmentsAreFoundByPhysicalAddress) {
  TempDir dir;
  GuestPages pages;
  pages.write<std::uint64_t>(Gpa(0x0), 1);
  pages.write<std::uint64_t>(Gpa(0x9ff8), 2);
  pages.write<std::uint64_t>(Gpa(0x100000), 3);
  pages.write<std::uint64_t>(Gpa(0x100000000), 4);
  pages.write<std::uint64_t>(Gpa(0x50000), 5);  // not in any segment: a dump would not hold it
  // Out of gpa order in the file, as a dump of several RAM blocks may be.
  testing::write_elf_core(dir.file("core"), pages,
                          {ElfRange{Gpa(0x100000000), 0x2000}, ElfRange{Gpa(0), 0xa000},
                           ElfRange{Gpa(0x100000), 0x1000}});
  auto img = MemoryImage::open(dir.file("core"));
  ASSERT_TRUE(img) << to_string(img.error());
  EXPECT_EQ(img->kind(), ImageKind::ElfCore);
  ASSERT_EQ(img->segments().size(), 3u);
  EXPECT_EQ(img->segments()[0].gpa, Gpa(0));
  EXPECT_EQ(img->segments()[2].gpa, Gpa(0x100000000));
  EXPECT_EQ(img->read<std::uint64_t>(Gpa(0x0)), 1u);
  EXPECT_EQ(img->read<std::uint64_t>(Gpa(0x9ff8)), 2u);
  EXPECT_EQ(img->read<std::uint64_t>(Gpa(0x100000)), 3u);
  EXPECT_EQ(img->read<std::uint64_t>(Gpa(0x100000000)), 4u);
  EXPECT_EQ(img->read<std::uint64_t>(Gpa(0x50000)), 0u);
  EXPECT_EQ(img->read<std::uint64_t>(Gpa(0x0)), 1u);  // back to the first after the cache moved
}

TEST(ElfCore, ReadsAcrossAdjacentSegmentsAndHoles) {
  TempDir dir;
  GuestPages pages;
  pages.write<std::uint32_t>(Gpa(0xffc), 0x44332211);
  pages.write<std::uint32_t>(Gpa(0x1000), 0x88776655);
  testing::write_elf_core(dir.file("core"), pages, {ElfRange{Gpa(0), 0x1000}, ElfRange{Gpa(0x1000), 0x1000}});
  auto img = MemoryImage::open(dir.file("core"));
  ASSERT_TRUE(img);
  EXPECT_EQ(img->read<std::uint64_t>(Gpa(0xffc)), 0x8877665544332211u);
  std::array<std::byte, 16> buf{};
  img->read_bytes(Gpa(0x1ffc), buf);
  for (auto b : buf) EXPECT_EQ(b, std::byte{0});
}

// ---- errors -------------------------------------------------------------------------------

class BrokenElf : public ::testing::Test {
 protected:
  void SetUp() override {
    GuestPages pages;
    pages.write<std::uint64_t>(Gpa(0x1000), 7);
    testing::write_elf_core(path, pages, {ElfRange{Gpa(0), 0x4000}});
  }
  void patch(std::uint64_t offset, const void* bytes, std::size_t n) {
    const int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, bytes, n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
    ::close(fd);
  }
  ImageError open_error() {
    auto img = MemoryImage::open(path);
    EXPECT_FALSE(img);
    return img ? ImageError{} : img.error();
  }
  TempDir dir;
  std::string path = dir.file("core");
};

TEST_F(BrokenElf, ValidCoreOpens) { EXPECT_TRUE(MemoryImage::open(path)); }

TEST_F(BrokenElf, ThirtyTwoBitElfIsNotA64BitCore) {
  const unsigned char c = ELFCLASS32;
  patch(EI_CLASS, &c, 1);
  EXPECT_EQ(open_error().kind, ImageErrorKind::NotElf64);
}

TEST_F(BrokenElf, BigEndianIsRejected) {
  const unsigned char d = ELFDATA2MSB;
  patch(EI_DATA, &d, 1);
  EXPECT_EQ(open_error().kind, ImageErrorKind::NotLittleEndian);
}

TEST_F(BrokenElf, ExecutableIsNotACore) {
  const Elf64_Half type = ET_EXEC;
  patch(offsetof(Elf64_Ehdr, e_type), &type, sizeof type);
  const ImageError e = open_error();
  EXPECT_EQ(e.kind, ImageErrorKind::NotCore);
  EXPECT_NE(to_string(e).find("executable"), std::string::npos) << to_string(e);
}

TEST_F(BrokenElf, TruncatedSegmentIsAClearError) {
  ASSERT_EQ(::truncate(path.c_str(), 0x2000), 0);
  const ImageError e = open_error();
  EXPECT_EQ(e.kind, ImageErrorKind::Truncated);
  EXPECT_NE(to_string(e).find(path), std::string::npos);
  EXPECT_NE(to_string(e).find("segment"), std::string::npos) << to_string(e);
}

TEST_F(BrokenElf, TruncatedProgramHeadersAreAClearError) {
  ASSERT_EQ(::truncate(path.c_str(), sizeof(Elf64_Ehdr) + 10), 0);
  EXPECT_EQ(open_error().kind, ImageErrorKind::Truncated);
}

TEST_F(BrokenElf, TruncatedElfHeaderIsAClearError) {
  ASSERT_EQ(::truncate(path.c_str(), 30), 0);
  EXPECT_EQ(open_error().kind, ImageErrorKind::Truncated);
}

TEST_F(BrokenElf, WrongProgramHeaderSizeIsMalformed) {
  const Elf64_Half size = 32;
  patch(offsetof(Elf64_Ehdr, e_phentsize), &size, sizeof size);
  EXPECT_EQ(open_error().kind, ImageErrorKind::MalformedElf);
}

TEST(ElfCoreErrors, OverlappingSegmentsAreRejected) {
  TempDir dir;
  testing::write_elf_core(dir.file("core"), GuestPages{},
                          {ElfRange{Gpa(0), 0x3000}, ElfRange{Gpa(0x2000), 0x1000}});
  auto img = MemoryImage::open(dir.file("core"));
  ASSERT_FALSE(img);
  EXPECT_EQ(img.error().kind, ImageErrorKind::OverlappingSegments);
}

TEST(ImageErrors, MissingFileNamesFileAndCause) {
  auto img = MemoryImage::open("/nonexistent/guest.img");
  ASSERT_FALSE(img);
  EXPECT_EQ(img.error().kind, ImageErrorKind::CannotOpen);
  EXPECT_EQ(to_string(img.error()),
            "/nonexistent/guest.img: cannot open the memory image: No such file or directory");
}

TEST(ImageErrors, DirectoryIsNotAnImage) {
  TempDir dir;
  auto img = MemoryImage::open(dir.path());
  ASSERT_FALSE(img);
  EXPECT_EQ(img.error().kind, ImageErrorKind::CannotOpen);
}

}  // namespace
}  // namespace vmmu::image
