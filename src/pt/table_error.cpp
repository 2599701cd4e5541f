#include "vmmu/pt/table_error.hpp"

namespace vmmu::pt {

std::string_view to_string(TableError e) {
  switch (e) {
    case TableError::OutOfRange: return "input range outside the translated address space";
    case TableError::Misaligned: return "address not aligned to the smallest page";
    case TableError::OutOfMemory: return "out of table memory";
    case TableError::NotMapped: return "no present mapping at that address";
    case TableError::Unsupported: return "the format cannot express this operation";
  }
  return "unknown owned-table error";
}

}  // namespace vmmu::pt
