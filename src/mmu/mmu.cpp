#include "vmmu/mmu/mmu.hpp"

namespace vmmu::mmu {

std::string_view to_string(MmuKind k) {
  switch (k) {
    case MmuKind::Tdp: return "tdp";
    case MmuKind::Shadow: return "shadow";
    case MmuKind::Adaptive: return "adaptive";
  }
  return "?";
}

std::optional<MmuKind> parse_mmu_kind(std::string_view s) {
  for (MmuKind k : {MmuKind::Tdp, MmuKind::Shadow, MmuKind::Adaptive}) {
    if (s == to_string(k)) return k;
  }
  return std::nullopt;
}

std::string_view to_string(Exit e) {
  switch (e) {
    case Exit::Mmio: return "mmio";
    case Exit::RingFull: return "ring-full";
    case Exit::OutOfRange: return "out-of-range";
    case Exit::OutOfMemory: return "out-of-memory";
    case Exit::Unsupported: return "unsupported";
  }
  return "?";
}

}  // namespace vmmu::mmu
