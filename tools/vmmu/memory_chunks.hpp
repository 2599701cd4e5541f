#pragma once
// The "memory" array of a case: chunks of little-endian words at an address,
//   {"gpa": "0x1000", "u64": ["0x2007", "0x0"]}   (x86: u64, u32 or u8; EPT and arm64: u64)
// each aligned to its word width, none overlapping. parse_memory_chunks() checks and keeps
// them; store() writes them into a SparseMemory; write_memory_after() prints the same chunks,
// in order and width, as the walks left them (the "memory_after" of a result).

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "case_json.hpp"
#include "json_writer.hpp"
#include "vmmu/core/address.hpp"
#include "vmmu/memory/sparse_memory.hpp"

namespace vmmu::cli {

// The word widths a chunk may hold, by the key of its word list.
struct ChunkWidth {
  std::string_view key;  // "u64", "u32", "u8"
  unsigned bytes;
  std::uint64_t max;  // the largest word
};
inline constexpr ChunkWidth kChunkWidths[] = {
    {"u64", 8, ~std::uint64_t{0}}, {"u32", 4, 0xffff'ffff}, {"u8", 1, 0xff}};

// The width whose word list is called `key`, or nullptr.
const ChunkWidth* chunk_width(std::string_view key);

struct ChunkRules {
  std::string_view address_key = "gpa";  // "gpa" (x86) or "pa" (EPT, arm64)
  bool allow_u32 = false;
  bool allow_u8 = false;
};

struct MemoryChunk {
  std::uint64_t base = 0;
  unsigned width = 8;           // bytes per word: 8, 4 or 1
  std::size_t first_value = 0;  // index of its first word in MemoryImage::values
  std::size_t count = 0;
};

// All chunks of a case, their words flattened into one vector (one allocation, not one per chunk).
struct MemoryImage {
  std::vector<MemoryChunk> chunks;
  std::vector<std::uint64_t> values;
};

// Reads the optional "memory" array of `doc` (absent: no chunks). Word lists are arrays, or the
// binary values parse_case_text() makes of them (words already checked against their width).
// Errors: WrongType (memory not an array, a chunk not an object, a word list not an array),
// Missing (no address, or no word list), BadValue (two word lists, or a width the rules do not
// allow), BadNumber / OutOfRange (an address, or a word too wide for its width), Misaligned
// (address not a multiple of the width), Overlap (chunks sharing bytes, or wrapping past 2^64),
// UnknownKey (a chunk field other than the address, one word list and informational ones).
Result<MemoryImage, CaseError> parse_memory_chunks(const Json& doc, const ChunkRules& rules);

// Writes every chunk's words into `memory`.
template <class A>
void store(const MemoryImage& image, SparseMemory<A>& memory) {
  for (const MemoryChunk& c : image.chunks) {
    for (std::size_t i = 0; i < c.count; ++i) {
      const A at(c.base + i * c.width);
      const std::uint64_t v = image.values[c.first_value + i];
      switch (c.width) {
        case 8: memory.template write<std::uint64_t>(at, v); break;
        case 4: memory.template write<std::uint32_t>(at, static_cast<std::uint32_t>(v)); break;
        default: memory.template write<std::uint8_t>(at, static_cast<std::uint8_t>(v)); break;
      }
    }
  }
}

// Writes "memory_after": [...] -- the chunks of `image`, read back from `memory`.
template <class A>
void write_memory_after(JsonWriter& w, const MemoryImage& image, std::string_view address_key,
                        const SparseMemory<A>& memory) {
  w.key("memory_after").begin_array();
  for (const MemoryChunk& c : image.chunks) {
    w.begin_object().key(address_key).hex(c.base);
    w.key(c.width == 8 ? "u64" : c.width == 4 ? "u32" : "u8").begin_array();
    for (std::size_t i = 0; i < c.count; ++i) {
      const A at(c.base + i * c.width);
      std::uint64_t v = 0;
      switch (c.width) {
        case 8: v = memory.template read<std::uint64_t>(at).value_or(0); break;
        case 4: v = memory.template read<std::uint32_t>(at).value_or(0); break;
        default: v = memory.template read<std::uint8_t>(at).value_or(0); break;
      }
      w.hex(v);
    }
    w.end_array().end_object();
  }
  w.end_array();
}

}  // namespace vmmu::cli
