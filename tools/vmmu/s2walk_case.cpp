#include "s2walk_case.hpp"

#include <fmt/format.h>

#include "json_writer.hpp"
#include "vmmu/core/page_size.hpp"

namespace vmmu::cli {

namespace {

// arm64-s2-walk.md: the fields a case names.
constexpr std::string_view kCaseKeys[] = {"format", "arch", "pa_bits", "regs", "memory", "accesses"};
constexpr std::string_view kRegKeys[] = {"vtcr_el2", "vttbr_el2"};
constexpr std::string_view kAccessKeys[] = {"ipa", "op"};

}  // namespace

Result<S2WalkCase, CaseError> parse_s2_walk_case(const Json& doc) {
  if (auto f = check_format(doc, kS2CaseFormat, "arm64-s2"); !f) return Unexpected{f.error()};
  if (auto k = check_keys(doc, "", kCaseKeys); !k) return Unexpected{k.error()};
  auto pa_bits = read_number(doc, "", "pa_bits", 64);
  if (!pa_bits) return Unexpected{pa_bits.error()};
  auto regs = require_member(doc, "", "regs");
  if (!regs) return Unexpected{regs.error()};
  if (!(*regs)->is_object()) {
    return Unexpected{CaseError{CaseErrorKind::WrongType, "regs",
                                "must be an object like {\"vtcr_el2\": \"0x80023558\", \"vttbr_el2\": \"0x40000000\"}"}};
  }
  if (auto k = check_keys(**regs, "regs", kRegKeys); !k) return Unexpected{k.error()};
  auto vtcr = read_number(**regs, "regs", "vtcr_el2");
  if (!vtcr) return Unexpected{vtcr.error()};
  auto vttbr = read_number(**regs, "regs", "vttbr_el2");
  if (!vttbr) return Unexpected{vttbr.error()};

  auto stage2 = arm64::Stage2::from({*vtcr, *vttbr}, {static_cast<unsigned>(*pa_bits)});
  if (!stage2) {
    const bool pa = stage2.error() == arm64::ConfigError::PaBitsUnsupported;
    return Unexpected{CaseError{CaseErrorKind::BadValue,
                                pa ? "pa_bits" : "regs.vtcr_el2", std::string(arm64::to_string(stage2.error()))}};
  }

  auto memory = parse_memory_chunks(doc, ChunkRules{"pa", false, false});
  if (!memory) return Unexpected{memory.error()};

  auto accesses = read_accesses<S2Access>(doc, kAccessKeys, R"({"ipa": "0x1234000", "op": "read"})",
                                          [&](const Json& a, const std::string& at) -> Result<S2Access, CaseError> {
    // Any 64-bit IPA is accepted: one above the IPA size is answered with a translation fault.
    auto ipa = read_number(a, at, "ipa");
    if (!ipa) return Unexpected{ipa.error()};
    auto op = read_op(a, at, /*allow_fetch=*/false);
    if (!op) return Unexpected{op.error()};
    return S2Access{Ipa(*ipa), *op};
  });
  if (!accesses) return Unexpected{accesses.error()};
  return S2WalkCase{*stage2, std::move(*memory), std::move(*accesses)};
}

S2WalkRun run_s2_walk_case(const S2WalkCase& c) {
  S2WalkRun run;
  store(c.memory, run.memory);
  run.outcomes.reserve(c.accesses.size());
  for (const S2Access& a : c.accesses) run.outcomes.push_back(arm64::walk(c.stage2, run.memory, a.ipa, a.op));
  return run;
}

std::string s2_walk_result_json(const S2WalkCase& c, const S2WalkRun& run) {
  JsonWriter w;
  w.begin_object().key("format").string(kS2ResultFormat).key("results").begin_array();
  for (std::size_t i = 0; i < c.accesses.size(); ++i) {
    const S2Outcome& o = run.outcomes[i];
    w.begin_object().key("ipa").hex(c.accesses[i].ipa.raw());
    if (o) {
      w.key("ok").boolean(true).key("pa").hex(o->pa.raw()).key("block_size").string(size_name(o->block_size));
    } else {
      w.key("ok").boolean(false).key("fault").string(arm64::to_string(o.error().kind));
      w.key("level").signed_integer(o.error().level);
    }
    w.end_object();
  }
  w.end_array().end_object();
  return w.take();
}

}  // namespace vmmu::cli
