// `vmmu translate`: single walks through a guest's memory image, which is never written.

#include <fmt/format.h>

#include <charconv>
#include <iostream>
#include <memory>
#include <optional>
#include <ostream>

#include "exit_status.hpp"
#include "json_writer.hpp"
#include "maps_commands.hpp"
#include "maps_regs.hpp"
#include "vmmu/core/page_size.hpp"
#include "vmmu/image/memory_image.hpp"
#include "vmmu/x86/walk.hpp"
#include "x86_walk_case.hpp"

namespace vmmu::cli {
namespace {

// "0x..." hex or plain decimal, the whole string, at most 64 bits.
std::optional<std::uint64_t> parse_gva(std::string_view s) {
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  }
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

int run_translate(const TranslateOptions& options, std::ostream& out, std::ostream& err) {
  const auto op = parse_access_kind(options.op);
  if (!op) {
    err << "vmmu translate: --op must be read, write or fetch, not '" << options.op << "'\n";
    return kExitBadInput;
  }
  if (options.cpl != 0 && options.cpl != 3) {
    err << "vmmu translate: --cpl must be 0 or 3, not " << options.cpl << '\n';
    return kExitBadInput;
  }
  auto regs = read_guest_regs(options.regs);
  if (!regs) {
    err << "vmmu translate: " << regs.error() << '\n';
    return kExitBadInput;
  }
  const auto paging = x86::GuestPaging::from(regs->regs, regs->cpu);
  const bool long_mode = paging.mode() == x86::PagingMode::Long4 || paging.mode() == x86::PagingMode::Long5;
  std::vector<Gva> gvas;
  for (const std::string& text : options.gvas) {
    const auto v = parse_gva(text);
    if (!v) {
      err << "vmmu translate: GVA '" << text << "' is not a number (hex 0x... or decimal)\n";
      return kExitBadInput;
    }
    if (!long_mode && *v > 0xffff'ffff) {
      err << fmt::format("vmmu translate: GVA {:#x} is wider than 32 bits, the {} paging mode's linear addresses\n",
                         *v, x86::to_string(paging.mode()));
      return kExitBadInput;
    }
    gvas.push_back(Gva(*v));
  }
  auto image = image::MemoryImage::open(options.memory);
  if (!image) {
    err << "vmmu translate: " << to_string(image.error()) << '\n';
    return kExitBadInput;
  }

  const Access access{*op, options.cpl == 3, false};
  JsonWriter w;
  w.begin_object().key("format").string(kX86ResultFormat).key("results").begin_array();
  for (const Gva gva : gvas) {
    // The image is read-only; the walker is also told not to try A/D updates.
    const auto r = x86::walk(paging, *image, gva, access, x86::WalkOptions{.update_accessed_dirty = false});
    w.begin_object().key("gva").hex(gva.raw());
    if (r) {
      w.key("ok").boolean(true).key("gpa").hex(r->gpa.raw()).key("page_size").string(size_name(r->page_size));
    } else {
      w.key("ok").boolean(false).key("fault").string(fault_name(r.error().kind));
      if (r.error().kind == x86::WalkFaultKind::PageFault) w.key("error_code").hex(r.error().error_code);
    }
    w.end_object();
  }
  w.end_array().end_object();
  out << w.str() << '\n';
  out.flush();
  return 0;
}

void register_translate_command(CLI::App& app) {
  auto options = std::make_shared<TranslateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "translate",
      "Walk guest virtual addresses through a guest's memory image (never written) and paging registers; prints "
      "a vmmu-walk-result/1 object with one result per GVA");
  cmd->add_option("--memory", options->memory, "guest memory image: raw (offset = gpa) or ELF64 core")->required();
  cmd->add_option("--regs", options->regs, "JSON with a 'regs' object (cr0, cr3, cr4, efer, rflags, pkru)")
      ->required();
  cmd->add_option("--op", options->op, "access kind: read, write or fetch (default read)");
  cmd->add_option("--cpl", options->cpl, "privilege of the access: 0 or 3 (default 0)");
  cmd->add_option("GVA", options->gvas, "guest virtual addresses (0x... hex or decimal)")->required();
  cmd->callback([options] {
    const int status = run_translate(*options, std::cout, std::cerr);
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

}  // namespace vmmu::cli
