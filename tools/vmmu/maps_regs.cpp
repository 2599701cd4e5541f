#include "maps_regs.hpp"

#include <cstdint>

#include "batch.hpp"
#include "case_json.hpp"
#include "x86_walk_case.hpp"

namespace vmmu::cli {
namespace {

Unexpected<std::string> fail(const std::string& path, const std::string& why) {
  return Unexpected{path + ": " + why};
}

}  // namespace

Result<GuestRegs, std::string> read_guest_regs(const std::string& path) {
  auto text = read_file(path);
  if (!text) return Unexpected{to_string(text.error())};
  auto doc = parse_case_text(*text);
  if (!doc) return fail(path, to_string(doc.error()));

  auto regs_obj = read_object_or_null(*doc, "", "regs");
  if (!regs_obj) return fail(path, to_string(regs_obj.error()));
  if (*regs_obj == nullptr) return fail(path, "no 'regs' object (cr0, cr3, cr4, efer)");
  const Json& r = **regs_obj;

  GuestRegs out;
  auto cr3 = read_number(r, "regs", "cr3");
  if (!cr3) return fail(path, to_string(cr3.error()));
  out.regs.cr3 = *cr3;
  struct Reg {
    const char* name;
    std::uint64_t* slot;
  };
  const Reg optional[] = {{"cr0", &out.regs.cr0}, {"cr4", &out.regs.cr4}, {"efer", &out.regs.efer},
                          {"rflags", &out.regs.rflags}};
  for (const Reg& reg : optional) {
    auto v = read_number_or(r, "regs", reg.name, *reg.slot);
    if (!v) return fail(path, to_string(v.error()));
    *reg.slot = *v;
  }
  auto pkru = read_number_or(r, "regs", "pkru", 0, 0xffff'ffff);
  if (!pkru) return fail(path, to_string(pkru.error()));
  out.regs.pkru = static_cast<std::uint32_t>(*pkru);

  auto m = read_number_or(*doc, "", "maxphyaddr", 52, kMaxMaxphyaddr);
  if (!m) return fail(path, to_string(m.error()));
  if (*m < kMinMaxphyaddr) {
    return fail(path, to_string(CaseError{CaseErrorKind::OutOfRange, "maxphyaddr",
                                          "must be between 32 and 52"}));
  }
  out.cpu.maxphyaddr = static_cast<unsigned>(*m);
  return out;
}

}  // namespace vmmu::cli
