#include "image/support/image_builder.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace vmmu::image::testing {
namespace {

void pwrite_all(int fd, const void* data, std::size_t n, std::uint64_t offset) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w <= 0) throw std::runtime_error("pwrite failed");
    p += w;
    n -= static_cast<std::size_t>(w);
    offset += static_cast<std::uint64_t>(w);
  }
}

int create(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path);
  return fd;
}

}  // namespace

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr && *base != 0 ? base : "/tmp") + "/vmmu-image-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void GuestPages::write_bytes(Gpa gpa, const std::byte* bytes, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t a = gpa.raw() + i;
    auto& page = pages_[a >> kPageShift];
    if (page.empty()) page.resize(kPageSize);
    page[a & (kPageSize - 1)] = bytes[i];
  }
}

std::vector<std::byte> GuestPages::bytes(Gpa gpa, std::size_t n) const {
  std::vector<std::byte> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t a = gpa.raw() + i;
    auto it = pages_.find(a >> kPageShift);
    if (it != pages_.end()) out[i] = it->second[a & (kPageSize - 1)];
  }
  return out;
}

void write_raw_image(const std::string& path, const GuestPages& pages, std::uint64_t size) {
  const int fd = create(path);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) throw std::runtime_error("ftruncate failed");
  for (const auto& [gfn, bytes] : pages.pages()) {
    const std::uint64_t at = gfn << kPageShift;
    if (at >= size) continue;
    pwrite_all(fd, bytes.data(), static_cast<std::size_t>(std::min<std::uint64_t>(kPageSize, size - at)), at);
  }
  ::close(fd);
}

void write_elf_core(const std::string& path, const GuestPages& pages, const std::vector<ElfRange>& ranges) {
  const int fd = create(path);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_CORE;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = static_cast<Elf64_Half>(ranges.size() + 1);
  pwrite_all(fd, &eh, sizeof eh, 0);

  const std::uint64_t note_offset = sizeof(Elf64_Ehdr) + (ranges.size() + 1) * sizeof(Elf64_Phdr);
  const std::uint64_t note_size = 64;  // an empty note area: vmmu does not read notes
  std::uint64_t offset = (note_offset + note_size + kPageSize - 1) & ~(kPageSize - 1);

  Elf64_Phdr note{};
  note.p_type = PT_NOTE;
  note.p_offset = note_offset;
  note.p_filesz = note.p_memsz = note_size;
  pwrite_all(fd, &note, sizeof note, sizeof(Elf64_Ehdr));
  std::vector<char> zeros(note_size, 0);
  pwrite_all(fd, zeros.data(), zeros.size(), note_offset);

  for (std::size_t i = 0; i < ranges.size(); ++i) {
    Elf64_Phdr ph{};
    ph.p_type = PT_LOAD;
    ph.p_offset = offset;
    ph.p_paddr = ranges[i].gpa.raw();
    ph.p_filesz = ph.p_memsz = ranges[i].size;
    pwrite_all(fd, &ph, sizeof ph, sizeof(Elf64_Ehdr) + (i + 1) * sizeof(Elf64_Phdr));
    // Only the written pages inside the range: the rest stays a hole (reads as zeros).
    if (::ftruncate(fd, static_cast<off_t>(offset + ranges[i].size)) != 0) throw std::runtime_error("ftruncate");
    for (const auto& [gfn, bytes] : pages.pages()) {
      const std::uint64_t a = gfn << kPageShift;
      if (a < ranges[i].gpa.raw() || a >= ranges[i].gpa.raw() + ranges[i].size) continue;
      const std::uint64_t n = std::min<std::uint64_t>(kPageSize, ranges[i].gpa.raw() + ranges[i].size - a);
      pwrite_all(fd, bytes.data(), static_cast<std::size_t>(n), offset + (a - ranges[i].gpa.raw()));
    }
    offset += ranges[i].size;
  }
  ::close(fd);
}

std::vector<std::byte> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(chars.size());
  std::memcpy(out.data(), chars.data(), chars.size());
  return out;
}

std::int64_t mtime_ns(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

}  // namespace vmmu::image::testing
