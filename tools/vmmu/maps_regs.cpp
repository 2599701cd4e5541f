#include "maps_regs.hpp"

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
  if (find_member(r, "cr3") == nullptr) return fail(path, "field 'regs.cr3': is required (the root of the page tables)");
  if (auto read = read_x86_registers(r, out.regs); !read) return fail(path, to_string(read.error()));
  auto m = read_maxphyaddr(*doc, 52u);
  if (!m) return fail(path, to_string(m.error()));
  out.cpu.maxphyaddr = *m;
  return out;
}

}  // namespace vmmu::cli
