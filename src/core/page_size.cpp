#include "vmmu/core/page_size.hpp"

#include <array>
#include <utility>

namespace vmmu {

std::string size_name(std::uint64_t bytes) {
  static constexpr std::array<std::pair<std::uint64_t, char>, 4> kUnits{
      {{TiB, 'T'}, {GiB, 'G'}, {MiB, 'M'}, {KiB, 'K'}}};
  for (auto [unit, letter] : kUnits) {
    if (bytes >= unit && bytes % unit == 0) return std::to_string(bytes / unit) + letter;
  }
  return std::to_string(bytes);
}

}  // namespace vmmu
