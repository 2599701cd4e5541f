#pragma once
// What the case-file fuzz targets share: the input is one case file's text, answered through
// the tool's reader as `vmmu walk` / `vmmu s2walk` answer it (batch.hpp) -- a result, or an
// error naming the field. Memory chunks far apart cost one 4 KiB page each; the input's size
// bounds them.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "batch.hpp"

namespace vmmu::fuzz {

inline void answer_case_bytes(const std::uint8_t* data, std::size_t size, const cli::CaseAnswerer& answer) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)cli::answer_case_text(text, cli::CaseLocation{"fuzz.json", 0}, answer);
}

}  // namespace vmmu::fuzz
