#pragma once
// An independent stage-2 walker for the tests: written bit by bit from the Arm ARM
// pseudocode (AArch64.S2Translate / AArch64.S2Walk), on raw integers, with no part of the
// library's engine, layout or descriptor code, so that comparing the two finds bugs in either.

#include <cstdint>
#include <string>

#include "vmmu/core/address.hpp"
#include "vmmu/memory/sparse_memory.hpp"

namespace vmmu::arm64::reference {

struct Outcome {
  bool ok = false;
  std::uint64_t pa = 0;
  std::uint64_t block_size = 0;
  std::string fault;  // "translation", "access_flag", "permission", "address_size"
  int level = 0;
  friend bool operator==(const Outcome&, const Outcome&) = default;
};

// op: 'r' read, 'w' write, 'x' fetch. Writes AF / S2AP[1] back as HA / HD ask.
// The registers must be ones the library accepts (pa_bits in {32..52}; DS only with pa_bits
// 52; SL2 only with DS and 4K; TG0 != 3).
Outcome walk(std::uint64_t vtcr, std::uint64_t vttbr, unsigned pa_bits, SparseMemory<Hpa>& memory,
             std::uint64_t ipa, char op);

std::string describe(const Outcome& o);

}  // namespace vmmu::arm64::reference
