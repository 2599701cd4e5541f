#include "vmmu/mmu/fault.hpp"

namespace vmmu::mmu {

std::string_view to_string(FaultAction a) {
  switch (a) {
    case FaultAction::Mapped: return "mapped";
    case FaultAction::Relaxed: return "relaxed";
    case FaultAction::Spurious: return "spurious";
    case FaultAction::Retry: return "retry";
    case FaultAction::Mmio: return "mmio";
    case FaultAction::RingFull: return "ring-full";
    case FaultAction::OutOfRange: return "out-of-range";
  }
  return "?";
}

}  // namespace vmmu::mmu
