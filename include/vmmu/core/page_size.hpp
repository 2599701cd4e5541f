#pragma once
// Page and block sizes, and the short names the result formats use ("4K", "2M", "512G").

#include <cstdint>
#include <string>

namespace vmmu {

inline constexpr std::uint64_t KiB = 1024;
inline constexpr std::uint64_t MiB = 1024 * KiB;
inline constexpr std::uint64_t GiB = 1024 * MiB;
inline constexpr std::uint64_t TiB = 1024 * GiB;

// "4K", "2M", "1G", "512G", "4T" ...: the largest binary unit that divides `bytes` exactly.
std::string size_name(std::uint64_t bytes);

}  // namespace vmmu
