#pragma once
// Why a owned-table operation failed. Guest faults are not errors (see the MMUs' fault results).

#include <cstdint>
#include <string_view>

namespace vmmu::pt {

enum class TableError : std::uint8_t {
  OutOfRange,      // input range beyond what the tables translate, or empty / reversed
  Misaligned,      // input or output not aligned to the smallest page
  OutOfMemory,     // no table page could be allocated (budget exhausted)
  NotMapped,       // no present leaf where one is required
  Unsupported,     // the format cannot express the request (e.g. a split into a level without blocks)
};

std::string_view to_string(TableError e);

}  // namespace vmmu::pt
