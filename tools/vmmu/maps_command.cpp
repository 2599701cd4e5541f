// `vmmu maps`: every leaf of a guest's page tables, read from its memory image.

#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <ostream>

#include "maps_commands.hpp"
#include "maps_regs.hpp"
#include "vmmu/image/guest_mappings.hpp"
#include "vmmu/image/mapping_merge.hpp"
#include "vmmu/image/mapping_writer.hpp"
#include "vmmu/image/memory_image.hpp"
#include "vmmu/x86/guest_paging.hpp"

namespace vmmu::cli {
namespace {

// Output is gathered in a buffer and handed to the stream in blocks of this size: one write
// per block, not one per line.
constexpr std::size_t kFlushBytes = 1 << 20;

void flush(fmt::memory_buffer& buf, std::ostream& out) {
  out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
  buf.clear();
}

}  // namespace

int run_maps(const MapsOptions& options, std::ostream& out, std::ostream& err) {
  auto regs = read_guest_regs(options.regs);
  if (!regs) {
    err << "vmmu maps: " << regs.error() << '\n';
    return 1;
  }
  auto image = image::MemoryImage::open(options.memory);
  if (!image) {
    err << "vmmu maps: " << to_string(image.error()) << '\n';
    return 1;
  }
  const auto paging = x86::GuestPaging::from(regs->regs, regs->cpu);
  if (paging.mode() == x86::PagingMode::Off) {
    err << "vmmu maps: paging is off (CR0.PG = 0): gva = gpa, there are no page tables to list\n";
    return 0;
  }

  fmt::memory_buffer buf;
  image::RangeMerger merger;
  auto emit_range = [&](const image::MappedRange& r) {
    if (options.json) {
      image::append_json(buf, r);
    } else {
      image::append_text(buf, r);
    }
  };
  const image::MappingCounts counts = image::for_each_mapping(paging, *image, [&](const image::GuestMapping& m) {
    if (options.merge) {
      if (auto closed = merger.add(m)) emit_range(*closed);
    } else if (options.json) {
      image::append_json(buf, m);
    } else {
      image::append_text(buf, m);
    }
    if (buf.size() >= kFlushBytes) flush(buf, out);
  });
  if (options.merge) {
    if (auto last = merger.finish()) emit_range(*last);
  }
  flush(buf, out);
  out.flush();
  err << fmt::format("vmmu maps: {} mappings; {} paths through an entry with a reserved bit set (not listed)\n",
                     counts.mappings, counts.reserved_paths);
  return 0;
}

void register_maps_command(CLI::App& app) {
  auto options = std::make_shared<MapsOptions>();
  CLI::App* cmd = app.add_subcommand(
      "maps",
      "List every mapping of a guest's page tables from its memory image (raw, or an ELF core from QEMU's "
      "dump-guest-memory) and paging registers, in ascending gva order");
  cmd->add_option("--memory", options->memory, "guest memory image: raw (offset = gpa) or ELF64 core")->required();
  cmd->add_option("--regs", options->regs, "JSON with a 'regs' object (cr0, cr3, cr4, efer) and optional maxphyaddr")
      ->required();
  cmd->add_flag("--json", options->json, "one JSON object per line instead of text");
  cmd->add_flag("--merge", options->merge, "merge contiguous mappings with equal user/write/nx into ranges");
  cmd->callback([options] {
    const int status = run_maps(*options, std::cout, std::cerr);
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

}  // namespace vmmu::cli
