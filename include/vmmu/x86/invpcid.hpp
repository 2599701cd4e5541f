#pragma once
// INVPCID's invalidation types (Intel SDM vol. 2A, INVPCID; vol. 3A 4.10.4.1), the register
// operand's values.

#include <cstdint>

namespace vmmu::x86 {

enum class InvpcidType : std::uint8_t {
  Address = 0,        // one linear address of one PCID, global translations excepted
  SingleContext = 1,  // every translation of one PCID, global ones excepted
  AllContexts = 2,    // every translation of every PCID, global ones included
  AllNonGlobal = 3,   // every translation of every PCID, global ones excepted
};

}  // namespace vmmu::x86
