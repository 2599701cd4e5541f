#include "memory_chunks.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include <fmt/format.h>

namespace vmmu::cli {

namespace {

bool allowed(const ChunkWidth& w, const ChunkRules& rules) {
  return w.bytes == 8 || (w.bytes == 4 && rules.allow_u32) || (w.bytes == 1 && rules.allow_u8);
}

std::string allowed_list(const ChunkRules& rules) {
  if (rules.allow_u32 && rules.allow_u8) return "\"u64\", \"u32\" or \"u8\"";
  if (rules.allow_u32) return "\"u64\" or \"u32\"";
  if (rules.allow_u8) return "\"u64\" or \"u8\"";
  return "\"u64\"";
}

// Appends the words of one list (an array, or parse_case_text()'s binary) to `values`.
Status<CaseError> append_words(const Json& words, const ChunkWidth& width, const std::string& at,
                               std::vector<std::uint64_t>& values) {
  if (words.is_binary()) {
    const auto& bytes = words.get_binary();
    const std::size_t first = values.size();
    values.resize(first + bytes.size() / 8);
    if (!bytes.empty()) std::memcpy(&values[first], bytes.data(), bytes.size() / 8 * 8);
    return {};
  }
  if (!words.is_array()) return Unexpected{CaseError{CaseErrorKind::WrongType, at, "must be an array of numbers"}};
  for (std::size_t k = 0; k < words.size(); ++k) {
    auto v = to_number(words[k], element_path(at, k), width.max);
    if (!v) return Unexpected{v.error()};
    values.push_back(*v);
  }
  return {};
}

std::size_t word_count(const Json& words) { return words.is_binary() ? words.get_binary().size() / 8 : words.size(); }

}  // namespace

const ChunkWidth* chunk_width(std::string_view key) {
  for (const ChunkWidth& w : kChunkWidths) {
    if (w.key == key) return &w;
  }
  return nullptr;
}

Result<MemoryImage, CaseError> parse_memory_chunks(const Json& doc, const ChunkRules& rules) {
  MemoryImage image;
  auto memory = find_member(doc, "memory");
  if (memory == nullptr) return image;
  if (!memory->is_array()) {
    return Unexpected{CaseError{CaseErrorKind::WrongType, "memory", "must be an array of chunks"}};
  }
  image.chunks.reserve(memory->size());
  const std::string example = fmt::format("{{\"{}\": \"0x1000\", \"u64\": [...]}}", rules.address_key);
  const std::string_view keys[] = {rules.address_key, "u64", "u32", "u8"};
  auto chunks = for_each_object(*memory, "memory", example, [&](const Json& chunk, const std::string& at) -> Status<CaseError> {
    auto base = read_number(chunk, at, rules.address_key);
    if (!base) return Unexpected{base.error()};
    if (auto k = check_keys(chunk, at, keys); !k) return k;

    const ChunkWidth* width = nullptr;
    const Json* words = nullptr;
    for (const ChunkWidth& w : kChunkWidths) {
      const Json* list = find_member(chunk, w.key);
      if (list == nullptr) continue;
      if (!allowed(w, rules)) {
        return Unexpected{CaseError{CaseErrorKind::BadValue, field_path(at, w.key),
                                    fmt::format("this format's memory holds only {} words", allowed_list(rules))}};
      }
      if (words != nullptr) {
        return Unexpected{CaseError{CaseErrorKind::BadValue, field_path(at, w.key),
                                    fmt::format("a chunk holds one word list, and this one also has \"{}\"",
                                                width->key)}};
      }
      width = &w;
      words = list;
    }
    if (words == nullptr) {
      return Unexpected{CaseError{CaseErrorKind::Missing, field_path(at, "u64"),
                                  fmt::format("a chunk needs a word list: {}", allowed_list(rules))}};
    }
    const std::string list_at = field_path(at, width->key);
    if (!words->is_array() && !words->is_binary()) {
      return Unexpected{CaseError{CaseErrorKind::WrongType, list_at, "must be an array of numbers"}};
    }
    if ((*base % width->bytes) != 0) {
      return Unexpected{CaseError{CaseErrorKind::Misaligned, field_path(at, rules.address_key),
                                  fmt::format("{} is not aligned to its {}-byte words", hex(*base), width->bytes)}};
    }
    const std::uint64_t count = word_count(*words);
    const std::uint64_t room = std::numeric_limits<std::uint64_t>::max() - *base;  // bytes above base
    if (count > 0 && (count - 1) > room / width->bytes) {
      return Unexpected{CaseError{CaseErrorKind::Overlap, list_at,
                                  fmt::format("the chunk at {} runs past the top of the address space", hex(*base))}};
    }
    const MemoryChunk c{*base, width->bytes, image.values.size(), count};
    if (auto w = append_words(*words, *width, list_at, image.values); !w) return w;
    image.chunks.push_back(c);
    return {};
  });
  if (!chunks) return Unexpected{chunks.error()};

  // Overlap: sort chunk indices by base; each non-empty chunk must end before the next begins.
  std::vector<std::size_t> order(image.chunks.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return image.chunks[a].base < image.chunks[b].base;
  });
  const MemoryChunk* prev = nullptr;
  std::size_t prev_index = 0;
  for (std::size_t i : order) {
    const MemoryChunk& c = image.chunks[i];
    if (c.count == 0) continue;
    // last byte of prev (no overflow: checked above)
    if (prev != nullptr && prev->base + (prev->count * prev->width - 1) >= c.base) {
      const std::size_t later = std::max(i, prev_index);
      const std::size_t earlier = std::min(i, prev_index);
      return Unexpected{CaseError{CaseErrorKind::Overlap, element_path("memory", later),
                                  fmt::format("overlaps memory[{}] (bytes from {})", earlier, hex(c.base))}};
    }
    prev = &c;
    prev_index = i;
  }
  return image;
}

}  // namespace vmmu::cli
