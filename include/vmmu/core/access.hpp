#pragma once
// What a memory access is: its kind and the privilege it is made with.

#include <cstdint>
#include <optional>
#include <string_view>

namespace vmmu {

enum class AccessKind : std::uint8_t { Read, Write, Fetch };

// An access as a page-table walk sees it.
//  - user: made at CPL 3 (x86) / EL0 (arm64).
//  - implicit_supervisor: an access the CPU makes for itself at supervisor privilege whatever
//    the CPL (x86: descriptor-table and similar system accesses); SMAP applies to it regardless
//    of RFLAGS.AC (Intel SDM vol. 3A, 4.6).
struct Access {
  AccessKind kind = AccessKind::Read;
  bool user = false;
  bool implicit_supervisor = false;

  static constexpr Access read(bool user = false) { return {AccessKind::Read, user, false}; }
  static constexpr Access write(bool user = false) { return {AccessKind::Write, user, false}; }
  static constexpr Access fetch(bool user = false) { return {AccessKind::Fetch, user, false}; }

  [[nodiscard]] constexpr bool is_write() const { return kind == AccessKind::Write; }
  [[nodiscard]] constexpr bool is_fetch() const { return kind == AccessKind::Fetch; }
  friend constexpr bool operator==(Access, Access) = default;
};

constexpr std::string_view to_string(AccessKind k) {
  switch (k) {
    case AccessKind::Read: return "read";
    case AccessKind::Write: return "write";
    case AccessKind::Fetch: return "fetch";
  }
  return "?";
}

constexpr std::optional<AccessKind> parse_access_kind(std::string_view s) {
  if (s == "read") return AccessKind::Read;
  if (s == "write") return AccessKind::Write;
  if (s == "fetch") return AccessKind::Fetch;
  return std::nullopt;
}

}  // namespace vmmu
