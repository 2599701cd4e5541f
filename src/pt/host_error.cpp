#include "vmmu/pt/host_error.hpp"

namespace vmmu::pt {

std::string_view to_string(HostError e) {
  switch (e) {
    case HostError::OutOfRange: return "input range outside the translated address space";
    case HostError::Misaligned: return "address not aligned to the smallest page";
    case HostError::OutOfMemory: return "out of table memory";
    case HostError::NotMapped: return "no present mapping at that address";
    case HostError::Unsupported: return "the format cannot express this operation";
  }
  return "unknown host-table error";
}

}  // namespace vmmu::pt
