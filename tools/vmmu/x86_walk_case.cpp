#include "x86_walk_case.hpp"

#include <optional>

#include <fmt/format.h>

#include "json_writer.hpp"
#include "vmmu/core/page_size.hpp"

namespace vmmu::cli {

namespace {

bool long_mode(x86::PagingMode mode) { return mode == x86::PagingMode::Long4 || mode == x86::PagingMode::Long5; }

// x86-walk.md: the fields a case names; "mode" (such as "long4") is informational.
constexpr std::string_view kCaseKeys[] = {"format", "arch", "maxphyaddr", "regs", "memory", "accesses", "mode"};
constexpr std::string_view kAccessKeys[] = {"gva", "op", "cpl"};

}  // namespace

Status<CaseError> read_x86_registers(const Json& regs_object, x86::Registers& regs) {
  struct Reg {
    std::string_view name;
    std::uint64_t* slot;
  };
  const Reg regs64[] = {{"cr0", &regs.cr0}, {"cr3", &regs.cr3}, {"cr4", &regs.cr4},
                        {"efer", &regs.efer}, {"rflags", &regs.rflags}};
  static constexpr std::string_view kNames[] = {"cr0", "cr3", "cr4", "efer", "rflags", "pkru"};
  if (auto k = check_keys(regs_object, "regs", kNames); !k) return k;
  for (const Reg& reg : regs64) {
    auto v = read_number_or(regs_object, "regs", reg.name, *reg.slot);
    if (!v) return Unexpected{v.error()};
    *reg.slot = *v;
  }
  auto pkru = read_number_or(regs_object, "regs", "pkru", 0, 0xffff'ffff);
  if (!pkru) return Unexpected{pkru.error()};
  regs.pkru = static_cast<std::uint32_t>(*pkru);
  return {};
}

Result<unsigned, CaseError> read_maxphyaddr(const Json& doc, std::optional<unsigned> fallback) {
  auto m = fallback ? read_number_or(doc, "", "maxphyaddr", *fallback, kMaxMaxphyaddr)
                    : read_number(doc, "", "maxphyaddr", kMaxMaxphyaddr);
  if (!m) return Unexpected{m.error()};
  if (*m < kMinMaxphyaddr) {
    return Unexpected{CaseError{CaseErrorKind::OutOfRange, "maxphyaddr",
                                fmt::format("{} is below {}", *m, kMinMaxphyaddr)}};
  }
  return static_cast<unsigned>(*m);
}

Result<X86WalkCase, CaseError> parse_x86_walk_case(const Json& doc) {
  X86WalkCase c;
  if (auto f = check_format(doc, kX86CaseFormat, "x86"); !f) return Unexpected{f.error()};
  if (auto k = check_keys(doc, "", kCaseKeys); !k) return Unexpected{k.error()};
  auto m = read_maxphyaddr(doc, 52u);
  if (!m) return Unexpected{m.error()};
  c.maxphyaddr = *m;
  // x86-walk.md: regs is required ({} allowed): a misspelt "regs" must not become paging off.
  auto regs = require_member(doc, "", "regs");
  if (!regs) return Unexpected{regs.error()};
  auto obj = read_object_or_null(doc, "", "regs");
  if (!obj) return Unexpected{obj.error()};
  if (auto r = read_x86_registers(**obj, c.regs); !r) return Unexpected{r.error()};

  auto memory = parse_memory_chunks(doc, ChunkRules{"gpa", true, true});
  if (!memory) return Unexpected{memory.error()};
  c.memory = std::move(*memory);

  const x86::PagingMode mode = x86::paging_mode(c.regs);
  auto accesses = read_accesses<X86Access>(doc, kAccessKeys, R"({"gva": "0x1000", "op": "read", "cpl": 0})",
                                           [&](const Json& a, const std::string& at) -> Result<X86Access, CaseError> {
    auto gva = read_number(a, at, "gva");
    if (!gva) return Unexpected{gva.error()};
    // x86-walk.md: a gva must fit the mode; outside long mode linear addresses have 32 bits.
    if (!long_mode(mode) && (*gva >> 32) != 0) {
      return Unexpected{CaseError{CaseErrorKind::OutOfRange, field_path(at, "gva"),
                                  fmt::format("{} is wider than the 32-bit linear addresses of paging mode {} "
                                              "(not long mode)",
                                              hex(*gva), x86::to_string(mode))}};
    }
    auto op = read_op(a, at);
    if (!op) return Unexpected{op.error()};
    auto cpl = read_number(a, at, "cpl", 3);
    if (!cpl) return Unexpected{cpl.error()};
    if (*cpl != 0 && *cpl != 3) {
      return Unexpected{CaseError{CaseErrorKind::BadValue, field_path(at, "cpl"),
                                  fmt::format("{} is not 0 or 3", *cpl)}};
    }
    return X86Access{Gva(*gva), *op, static_cast<unsigned>(*cpl)};
  });
  if (!accesses) return Unexpected{accesses.error()};
  c.accesses = std::move(*accesses);
  return c;
}

std::string_view fault_name(x86::WalkFaultKind kind) {
  switch (kind) {
    case x86::WalkFaultKind::PageFault: return "page_fault";
    case x86::WalkFaultKind::GeneralProtection: return "general_protection";
    case x86::WalkFaultKind::TableUnreadable: return "table_unreadable";
  }
  return "?";
}

std::string decode_error_code(std::uint32_t error_code) {
  static constexpr std::pair<std::uint32_t, std::string_view> kBits[] = {
      {x86::pferr::kPresent, "P"}, {x86::pferr::kWrite, "W"},    {x86::pferr::kUser, "U"},
      {x86::pferr::kReserved, "RSVD"}, {x86::pferr::kFetch, "I"}, {x86::pferr::kProtectionKey, "PK"}};
  std::string out;
  for (auto [bit, name] : kBits) {
    if ((error_code & bit) == 0) continue;
    if (!out.empty()) out += '|';
    out += name;
  }
  return out.empty() ? "0" : out;
}

std::string x86_walk_result_json(const X86WalkCase& c, const X86WalkRun& run) {
  JsonWriter w;
  w.begin_object().key("format").string(kX86ResultFormat).key("results").begin_array();
  for (std::size_t i = 0; i < c.accesses.size(); ++i) {
    const X86Outcome& o = run.outcomes[i];
    w.begin_object().key("gva").hex(c.accesses[i].gva.raw());
    if (o) {
      w.key("ok").boolean(true).key("gpa").hex(o->gpa.raw()).key("page_size").string(size_name(o->page_size));
    } else {
      w.key("ok").boolean(false).key("fault").string(fault_name(o.error().kind));
      if (o.error().kind == x86::WalkFaultKind::PageFault) w.key("error_code").hex(o.error().error_code);
    }
    w.end_object();
  }
  w.end_array();
  write_memory_after(w, c.memory, "gpa", run.memory);
  w.end_object();
  return w.take();
}

}  // namespace vmmu::cli
