// `vmmu maps`: every leaf of a guest's page tables, read from its memory image.

#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <ostream>

#include "exit_status.hpp"
#include "maps_commands.hpp"
#include "maps_regs.hpp"
#include "run_progress.hpp"
#include "vmmu/image/guest_mappings.hpp"
#include "vmmu/image/mapping_merge.hpp"
#include "vmmu/image/mapping_writer.hpp"
#include "vmmu/image/memory_image.hpp"
#include "vmmu/x86/guest_paging.hpp"

namespace vmmu::cli {
namespace {

// Output waits in a buffer until it holds this much or `flush_after` has passed: one write per
// block, not one per line, yet a listing that takes minutes shows its lines as it goes.
constexpr std::size_t kFlushBytes = 64 << 10;
// Leaves between looks at the clock (a look costs about as much as listing a leaf).
constexpr std::uint64_t kClockEvery = 4096;
// The progress line is rewritten at most this often.
constexpr std::chrono::milliseconds kProgressEvery{250};

void flush(fmt::memory_buffer& buf, std::ostream& out) {
  out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
  out.flush();
  buf.clear();
}

}  // namespace

int run_maps(const MapsOptions& options, std::ostream& out, std::ostream& err) {
  using Clock = std::chrono::steady_clock;
  auto regs = read_guest_regs(options.regs);
  if (!regs) {
    err << "vmmu maps: " << regs.error() << '\n';
    return kExitBadInput;
  }
  auto image = image::MemoryImage::open(options.memory);
  if (!image) {
    err << "vmmu maps: " << to_string(image.error()) << '\n';
    return kExitBadInput;
  }
  const auto paging = x86::GuestPaging::from(regs->regs, regs->cpu);
  if (paging.mode() == x86::PagingMode::Off) {
    err << "vmmu maps: paging is off (CR0.PG = 0): gva = gpa, there are no page tables to list\n";
    return kExitOk;
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
  std::uint64_t seen = 0;
  bool limited = false;
  Clock::time_point flushed = Clock::now(), shown = flushed;
  bool progress_shown = false;
  // Every kClockEvery leaves: hand the buffer on if it waited long enough; refresh the progress line.
  auto tick = [&](const image::GuestMapping& m) {
    const Clock::time_point now = Clock::now();
    if (buf.size() != 0 && now - flushed >= options.flush_after) {
      flush(buf, out);
      flushed = now;
    }
    if (options.progress && now - shown >= kProgressEvery) {
      err << fmt::format("\r\x1b[Kvmmu maps: {} leaves listed, at gva {:#x}{}", seen, m.gva.raw(),
                         options.limit == 0 ? " (--limit N stops)" : "")
          << std::flush;
      progress_shown = true;
      shown = now;
    }
  };
  const image::MappingCounts counts =
      image::for_each_mapping(paging, *image, [&](const image::GuestMapping& m) -> bool {
        if (options.limit != 0 && seen == options.limit) {
          limited = true;
          return false;
        }
        ++seen;
        if (options.merge) {
          if (auto closed = merger.add(m)) emit_range(*closed);
        } else if (options.json) {
          image::append_json(buf, m);
        } else {
          image::append_text(buf, m);
        }
        if (buf.size() >= kFlushBytes) {
          flush(buf, out);
          flushed = Clock::now();
        }
        if (seen % kClockEvery == 0) tick(m);
        return true;
      });
  if (options.merge) {
    if (auto last = merger.finish()) emit_range(*last);
  }
  flush(buf, out);
  if (progress_shown) err << "\r\x1b[K";
  // for_each_mapping counted the leaf it was offered when the limit stopped it.
  const std::uint64_t listed = limited ? counts.mappings - 1 : counts.mappings;
  if (limited) {
    err << fmt::format("vmmu maps: stopped after {} mappings (--limit {}); the tables hold more\n", listed,
                       options.limit);
  }
  err << fmt::format("vmmu maps: {} mappings; {} paths through an entry with a reserved bit set (not listed)\n",
                     listed, counts.reserved_paths);
  return kExitOk;
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
  cmd->add_option("--limit", options->limit,
                  "stop after N leaves (tables that point back at themselves can hold 512^4); default: no limit")
      ->type_name("N");
  cmd->callback([options] {
    MapsOptions o = *options;
    o.progress = stderr_is_terminal();
    const int status = run_maps(o, std::cout, std::cerr);
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

}  // namespace vmmu::cli
