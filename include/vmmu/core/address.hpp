#pragma once
// Strong types for every address space vmmu deals with.
//
//   Gva  guest virtual address      (input of the guest's own page tables)
//   Gpa  guest physical address     (output of guest tables, input of TDP / memslots)
//   Ipa  intermediate physical addr (arm64: input of stage 2)
//   Hpa  host physical address      (output of TDP / stage 2; in user space: a host pointer)
//   Gfn / Pfn                        frame numbers of Gpa / Hpa (address >> 12)
//
// Each is a distinct type: a Gpa does not convert to a Gva or to an integer without
// `.raw()`, so mixing address spaces fails to compile. Only the arithmetic that makes
// sense is offered: address + bytes, address - address = bytes, alignment.

#include <compare>
#include <cstdint>
#include <functional>

namespace vmmu {

inline constexpr unsigned kPageShift = 12;
inline constexpr std::uint64_t kPageSize = std::uint64_t{1} << kPageShift;

template <class Tag>
class Address {
 public:
  constexpr Address() = default;
  constexpr explicit Address(std::uint64_t value) : value_(value) {}

  [[nodiscard]] constexpr std::uint64_t raw() const { return value_; }

  constexpr Address operator+(std::uint64_t bytes) const { return Address(value_ + bytes); }
  constexpr Address operator-(std::uint64_t bytes) const { return Address(value_ - bytes); }
  constexpr Address& operator+=(std::uint64_t bytes) {
    value_ += bytes;
    return *this;
  }
  constexpr std::uint64_t operator-(Address other) const { return value_ - other.value_; }

  // Offset inside a naturally aligned block of `size` bytes (size is a power of two).
  [[nodiscard]] constexpr std::uint64_t offset_in(std::uint64_t size) const { return value_ & (size - 1); }
  [[nodiscard]] constexpr Address align_down(std::uint64_t size) const { return Address(value_ & ~(size - 1)); }
  [[nodiscard]] constexpr bool aligned_to(std::uint64_t size) const { return offset_in(size) == 0; }

  friend constexpr auto operator<=>(Address, Address) = default;

  static constexpr const char* prefix() { return Tag::prefix; }

 private:
  std::uint64_t value_ = 0;
};

template <class Tag>
class FrameNumber {
 public:
  constexpr FrameNumber() = default;
  constexpr explicit FrameNumber(std::uint64_t value) : value_(value) {}

  [[nodiscard]] constexpr std::uint64_t raw() const { return value_; }

  constexpr FrameNumber operator+(std::uint64_t frames) const { return FrameNumber(value_ + frames); }
  constexpr FrameNumber operator-(std::uint64_t frames) const { return FrameNumber(value_ - frames); }
  constexpr std::uint64_t operator-(FrameNumber other) const { return value_ - other.value_; }
  constexpr FrameNumber& operator++() {
    ++value_;
    return *this;
  }

  friend constexpr auto operator<=>(FrameNumber, FrameNumber) = default;

  static constexpr const char* prefix() { return Tag::prefix; }

 private:
  std::uint64_t value_ = 0;
};

namespace tag {
struct Gva { static constexpr const char* prefix = "gva"; };
struct Gpa { static constexpr const char* prefix = "gpa"; };
struct Ipa { static constexpr const char* prefix = "ipa"; };
struct Hpa { static constexpr const char* prefix = "hpa"; };
struct Gfn { static constexpr const char* prefix = "gfn"; };
struct Pfn { static constexpr const char* prefix = "pfn"; };
}  // namespace tag

using Gva = Address<tag::Gva>;
using Gpa = Address<tag::Gpa>;
using Ipa = Address<tag::Ipa>;
using Hpa = Address<tag::Hpa>;
using Gfn = FrameNumber<tag::Gfn>;
using Pfn = FrameNumber<tag::Pfn>;

constexpr Gfn gfn_of(Gpa gpa) { return Gfn(gpa.raw() >> kPageShift); }
constexpr Gpa gpa_of(Gfn gfn) { return Gpa(gfn.raw() << kPageShift); }
constexpr Pfn pfn_of(Hpa hpa) { return Pfn(hpa.raw() >> kPageShift); }
constexpr Hpa hpa_of(Pfn pfn) { return Hpa(pfn.raw() << kPageShift); }

// Half-open range [begin, end) of one address space.
template <class A>
struct Range {
  A begin;
  A end;

  [[nodiscard]] constexpr std::uint64_t size() const { return end - begin; }
  [[nodiscard]] constexpr bool empty() const { return !(begin < end); }
  [[nodiscard]] constexpr bool contains(A a) const { return !(a < begin) && a < end; }
  [[nodiscard]] constexpr bool overlaps(const Range& o) const { return begin < o.end && o.begin < end; }
  friend constexpr bool operator==(const Range&, const Range&) = default;
};

// True for the address and frame types above; used by static_asserts and formatters.
template <class T>
inline constexpr bool is_address_type = false;
template <class Tag>
inline constexpr bool is_address_type<Address<Tag>> = true;
template <class Tag>
inline constexpr bool is_address_type<FrameNumber<Tag>> = true;

}  // namespace vmmu

template <class Tag>
struct std::hash<vmmu::Address<Tag>> {
  std::size_t operator()(vmmu::Address<Tag> a) const noexcept { return std::hash<std::uint64_t>{}(a.raw()); }
};
template <class Tag>
struct std::hash<vmmu::FrameNumber<Tag>> {
  std::size_t operator()(vmmu::FrameNumber<Tag> a) const noexcept { return std::hash<std::uint64_t>{}(a.raw()); }
};
