#pragma once
// fmt formatters: an address prints as "gpa:0x1000", so logs never leave its space in doubt.

#include <fmt/format.h>

#include "vmmu/core/address.hpp"

template <class Tag>
struct fmt::formatter<vmmu::Address<Tag>> : fmt::formatter<std::string_view> {
  auto format(vmmu::Address<Tag> a, fmt::format_context& ctx) const {
    return fmt::format_to(ctx.out(), "{}:{:#x}", Tag::prefix, a.raw());
  }
};

template <class Tag>
struct fmt::formatter<vmmu::FrameNumber<Tag>> : fmt::formatter<std::string_view> {
  auto format(vmmu::FrameNumber<Tag> f, fmt::format_context& ctx) const {
    return fmt::format_to(ctx.out(), "{}:{:#x}", Tag::prefix, f.raw());
  }
};
