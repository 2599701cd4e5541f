// Scenario files: every way a document can be wrong gives one error naming its key; --set
// reaches every key; samples and the built-in default read and write back unchanged.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "run_scenario_json.hpp"
#include "sim/support/run_cli.hpp"

namespace vmmu::cli {
namespace {

using Json = nlohmann::json;

Json default_doc() { return parse_scenario_text(default_scenario_text()).value(); }


struct BadCase {
  const char* name;
  std::function<void(Json&)> change;
  const char* key;      // the key the error must name
  const char* message;  // a piece of its message
};

class BadScenario : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadScenario, IsOneErrorNamingItsKey) {
  const BadCase& c = GetParam();
  Json doc = default_doc();
  c.change(doc);
  auto s = read_scenario(doc);
  ASSERT_FALSE(s.has_value()) << c.name << " was accepted";
  EXPECT_EQ(s.error().key, c.key) << s.error().message;
  EXPECT_NE(s.error().message.find(c.message), std::string::npos) << s.error().key << ": " << s.error().message;
  EXPECT_EQ(s.error().message.find('\n'), std::string::npos);
}

void set(Json& doc, const char* assignment) { ASSERT_TRUE(apply_set(doc, assignment)) << assignment; }

const BadCase kBadCases[] = {
    {"TopLevelArray", [](Json& d) { d = Json::array(); }, "(top level)", "expected a scenario"},
    {"MissingFormat", [](Json& d) { d.erase("format"); }, "format", "missing"},
    {"OtherFormat", [](Json& d) { d["format"] = "vmmu-scenario/2"; }, "format", "vmmu-scenario/1"},
    {"UnknownTopKey", [](Json& d) { d["colour"] = "blue"; }, "colour", "unknown key"},
    {"NameNotString", [](Json& d) { d["name"] = 5; }, "name", "expected a string"},
    {"NegativeSeed", [](Json& d) { d["seed"] = -1; }, "seed", "non-negative integer"},
    {"FractionalSeed", [](Json& d) { d["seed"] = 1.5; }, "seed", "non-negative integer"},
    {"VmNotObject", [](Json& d) { d["vm"] = 3; }, "vm", "JSON object"},
    {"UnknownVmKey", [](Json& d) { d["vm"]["smt"] = true; }, "vm.smt", "unknown key"},
    {"UnknownMmu", [](Json& d) { d["vm"]["mmu"] = "ept"; }, "vm.mmu", "\"tdp\", \"shadow\" or \"adaptive\""},
    {"MmuNotString", [](Json& d) { d["vm"]["mmu"] = 1; }, "vm.mmu", "expected a string"},
    // The default scenario ends with a conversion phase (phases[7]).
    {"ShadowWithConversion", [](Json& d) { d["vm"]["mmu"] = "shadow"; }, "phases[7]", "TDX"},
    {"ShadowWithDirtyRing",
     [](Json& d) {
       d["vm"]["mmu"] = "shadow";
       d["vm"]["dirty_ring_size"] = 64;
     },
     "vm.dirty_ring_size", "bitmaps"},
    {"ShadowAbove4G",
     [](Json& d) {
       d["vm"]["mmu"] = "shadow";
       d["memslots"][0]["gpa"] = "0x100000000";
     },
     "memslots[0].gpa", "paging off"},
    {"UnknownTdp", [](Json& d) { d["vm"]["tdp"] = "shadow"; }, "vm.tdp", "\"ept\" or \"npt\""},
    {"ThreeLevels", [](Json& d) { d["vm"]["levels"] = 3; }, "vm.levels", "4 or 5"},
    {"NoVcpus", [](Json& d) { d["vm"]["vcpus"] = 0; }, "vm.vcpus", "1 to 64"},
    {"TooManyVcpus", [](Json& d) { d["vm"]["vcpus"] = 65; }, "vm.vcpus", "1 to 64"},
    {"AdBitsNotBool", [](Json& d) { d["vm"]["ad_bits"] = "yes"; }, "vm.ad_bits", "true or false"},
    {"RingNotPowerOfTwo", [](Json& d) { d["vm"]["dirty_ring_size"] = 100; }, "vm.dirty_ring_size", "power of two"},
    {"RingTooSmall", [](Json& d) { d["vm"]["dirty_ring_size"] = 8; }, "vm.dirty_ring_size", "power of two"},
    {"PoliciesNotObject", [](Json& d) { d["policies"] = "fast"; }, "policies", "JSON object"},
    {"UnknownPolicy", [](Json& d) { d["policies"]["colour"] = "blue"; }, "policies.colour", "unknown key"},
    {"BadPolicyValue", [](Json& d) { d["policies"]["split"] = "sometimes"; }, "policies.split", "eager, lazy"},
    {"PolicyValueNotString", [](Json& d) { d["policies"]["roots"] = 1; }, "policies.roots", "expected a string"},
    {"DirtyBitsWithoutAd",
     [](Json& d) {
       d["vm"]["ad_bits"] = false;
       d["policies"]["dirty-tracking"] = "dirty-bits";
     },
     "policies.dirty-tracking", "A/D"},
    {"MissingMemslots", [](Json& d) { d.erase("memslots"); }, "memslots", "missing"},
    {"MemslotsNotArray", [](Json& d) { d["memslots"] = Json::object(); }, "memslots", "array"},
    {"NoMemslots", [](Json& d) { d["memslots"] = Json::array(); }, "memslots", "at least one"},
    {"MemslotNotObject", [](Json& d) { d["memslots"][0] = "256M"; }, "memslots[0]", "JSON object"},
    {"UnknownMemslotKey", [](Json& d) { d["memslots"][0]["flags"] = 1; }, "memslots[0].flags", "unknown key"},
    {"MissingSize", [](Json& d) { d["memslots"][0].erase("size"); }, "memslots[0].size", "missing"},
    {"BadSizeUnit", [](Json& d) { d["memslots"][0]["size"] = "12Q"; }, "memslots[0].size", "like \"256M\""},
    {"ZeroSize", [](Json& d) { d["memslots"][0]["size"] = 0; }, "memslots[0].size", "positive multiple"},
    {"SizeNotMultipleOfBacking", [](Json& d) { d["memslots"][0]["size"] = "3M"; }, "memslots[0].size", "2M"},
    {"BackingPage8K", [](Json& d) { d["memslots"][0]["backing_page_size"] = "8K"; }, "memslots[0].backing_page_size",
     "4K, 2M or 1G"},
    {"MisalignedGpa", [](Json& d) { d["memslots"][0]["gpa"] = "0x1000"; }, "memslots[0].gpa", "multiple"},
    {"GpaNotNumber", [](Json& d) { d["memslots"][0]["gpa"] = true; }, "memslots[0].gpa", "guest-physical address"},
    {"GpaBeyondTables", [](Json& d) { d["memslots"][0]["gpa"] = "0x1000000000000"; }, "memslots[0].gpa", "reach"},
    {"OverlappingSlots",
     [](Json& d) {
       d["memslots"].push_back({{"size", "2M"}, {"backing_page_size", "2M"}, {"gpa", "0x200000"}});
     },
     "memslots[1].gpa", "overlaps memslots[0]"},
    {"TooMuchMemory", [](Json& d) { d["memslots"][0]["size"] = "2T"; }, "memslots[0].size", "at most"},
    {"TooManyMemslots",
     [](Json& d) {
       d["memslots"] = Json::array();
       for (int i = 0; i < 65; ++i) d["memslots"].push_back({{"size", "2M"}, {"backing_page_size", "2M"}});
     },
     "memslots", "at most 64"},
    {"LevelsNotByte", [](Json& d) { d["vm"]["levels"] = 300; }, "vm.levels", "up to 255"},
    {"MissingPhases", [](Json& d) { d.erase("phases"); }, "phases", "missing"},
    {"PhasesNotArray", [](Json& d) { d["phases"] = "populate"; }, "phases", "array"},
    {"NoPhases", [](Json& d) { d["phases"] = Json::array(); }, "phases", "at least one"},
    {"PhaseNumber", [](Json& d) { d["phases"][0] = 7; }, "phases[0]", "expected a phase"},
    {"PhaseWithoutKind", [](Json& d) { d["phases"][1].erase("kind"); }, "phases[1].kind", "missing"},
    {"UnknownPhase", [](Json& d) { d["phases"][0] = "teleport"; }, "phases[0]", "unknown phase"},
    {"UnknownPhaseInObject", [](Json& d) { d["phases"][1]["kind"] = "teleport"; }, "phases[1].kind", "unknown phase"},
    {"ParamOfAnotherKind", [](Json& d) { d["phases"][1]["flips"] = 3; }, "phases[1].flips", "random-access phase"},
    {"DuplicateName",
     [](Json& d) {
       d["phases"][1]["name"] = "x";
       d["phases"][2]["name"] = "x";
     },
     "phases[2].name", "no other phase"},
    {"NoAccesses", [](Json& d) { d["phases"][1]["accesses"] = 0; }, "phases[1].accesses", "positive"},
    {"FractionAboveOne", [](Json& d) { d["phases"][1]["write_fraction"] = 1.5; }, "phases[1].write_fraction", "0 to 1"},
    {"FractionString", [](Json& d) { d["phases"][3]["write_fraction"] = "half"; }, "phases[3].write_fraction",
     "number"},
    {"NoFlips", [](Json& d) { d["phases"][2]["flips"] = 0; }, "phases[2].flips", "positive"},
    {"TooManyTouchPages", [](Json& d) { d["phases"][2]["touch_pages"] = 600; }, "phases[2].touch_pages", "1 to 512"},
    {"TouchPagesBeyondShare",
     [](Json& d) {
       d["memslots"][0]["size"] = "2M";
       d["phases"] = Json::array({{{"kind", "smep-storm"}, {"touch_pages", 300}}});
     },
     "phases[0].touch_pages", "of a vCPU's share"},
    {"PhaseNameNotString", [](Json& d) { d["phases"][1]["name"] = 1; }, "phases[1].name", "expected a string"},
    {"PhaseKindNotString", [](Json& d) { d["phases"][1]["kind"] = 1; }, "phases[1].kind", "expected a string"},
    {"NoIterations", [](Json& d) { d["phases"][3]["iterations"] = 0; }, "phases[3].iterations", "1 to"},
    {"NoRanges", [](Json& d) { d["phases"][7]["ranges"] = 0; }, "phases[7].ranges", "1 to 128"},
    {"MoreRangesThanMemory", [](Json& d) { d["phases"][7]["ranges"] = 129; }, "phases[7].ranges", "1 to 128"},
    {"DisableWithoutEnable", [](Json& d) { d["phases"].erase(4); }, "phases[5]", "not enabled"},
    {"EnableTwice", [](Json& d) { d["phases"][6] = "dirty-log-enable"; }, "phases[6]", "already enabled"},
    {"MigrationWhileLogging",
     [](Json& d) {
       d["phases"].push_back("dirty-log-enable");
       d["phases"].push_back("migration");
     },
     "phases[12]", "dirty logging off"},
    // The guest-kernel phases: fork, rewrite-tables, cr3-switch are phases[8..10].
    {"ForkNoPages", [](Json& d) { d["phases"][8]["pages"] = 0; }, "phases[8].pages", "1 to 4096"},
    {"ForkBeyondShare",
     [](Json& d) {
       d["memslots"][0]["size"] = "2M";
       d["phases"] = Json::array({{{"kind", "fork"}, {"pages", 200}}});
     },
     "phases[0].pages", "of a vCPU's share"},
    {"ForkFlips", [](Json& d) { d["phases"][8]["flips"] = 3; }, "phases[8].flips", "fork phase"},
    {"RewriteNoRounds", [](Json& d) { d["phases"][9]["rounds"] = 0; }, "phases[9].rounds", "1 to"},
    {"RewriteBadFlush", [](Json& d) { d["phases"][9]["flush"] = "tlb"; }, "phases[9].flush", "\"invlpg\" or \"cr3\""},
    {"Cr3NoProcesses", [](Json& d) { d["phases"][10]["processes"] = 0; }, "phases[10].processes", "1 to 64"},
    {"Cr3NoSwitches", [](Json& d) { d["phases"][10]["switches"] = 0; }, "phases[10].switches", "positive"},
    {"Cr3PcidNotBool", [](Json& d) { d["phases"][10]["pcid"] = "yes"; }, "phases[10].pcid", "true or false"},
    {"ShadowNotObject", [](Json& d) { d["vm"]["shadow"] = true; }, "vm.shadow", "JSON object"},
    {"UnknownShadowKey", [](Json& d) { d["vm"]["shadow"]["colour"] = 1; }, "vm.shadow.colour", "unknown key"},
    {"UnsyncNotBool", [](Json& d) { d["vm"]["shadow"]["unsync"] = "no"; }, "vm.shadow.unsync", "true or false"},
    {"NestedNptEptAd", [](Json& d) { d["vm"]["nested"] = {{"kind", "npt"}, {"ept_ad", false}}; }, "vm.nested.ept_ad",
     "no meaning under kind \"npt\""},
    {"NestedUnknownKind", [](Json& d) { d["vm"]["nested"] = "vmx"; }, "vm.nested", "\"ept\" or \"npt\""},
    {"NestedNotObject", [](Json& d) { d["vm"]["nested"] = 3; }, "vm.nested", "JSON object"},
    {"UnknownNestedKey", [](Json& d) { d["vm"]["nested"]["colour"] = 1; }, "vm.nested.colour", "unknown key"},
    {"NestedEptAdNotBool", [](Json& d) { d["vm"]["nested"]["ept_ad"] = "yes"; }, "vm.nested.ept_ad", "true or false"},
    // The default scenario's phases[2] is smep-storm, which needs guest paging L2 does not have.
    {"NestedWithGuestKernelPhase", [](Json& d) { d["vm"]["nested"] = "ept"; }, "phases[2]", "smep-storm"},
};

INSTANTIATE_TEST_SUITE_P(Scenario, BadScenario, ::testing::ValuesIn(kBadCases),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(ScenarioJson, NotJsonIsOneLineWithTheOrigin) {
  auto s = load_scenario("{\"format\": ", "broken.json", {});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().rfind("broken.json: not JSON", 0), 0u) << s.error();
  EXPECT_EQ(s.error().find('\n'), std::string::npos);
}

TEST(ScenarioJson, ErrorLineNamesOriginKeyAndExpectation) {
  std::string text(default_scenario_text());
  text.replace(text.find("\"vcpus\": 2"), 10, "\"vcpus\": 0");
  auto s = load_scenario(text, "built-in default scenario", {});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error(), "built-in default scenario: vm.vcpus: expected 1 to 64 vCPUs, got 0");
}

TEST(ScenarioJson, NotJsonKeepsTheParserLibraryOutOfTheMessage) {
  auto s = load_scenario("{\"format\": ", "broken.json", {});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().find("json.exception"), std::string::npos) << s.error();
  EXPECT_NE(s.error().find("line 1, column"), std::string::npos) << s.error();
}

TEST(ScenarioJson, DefaultReadsWithEveryPhaseKind) {
  auto s = read_scenario(default_doc());
  ASSERT_TRUE(s.has_value()) << s.error().key << ": " << s.error().message;
  std::vector<sim::PhaseKind> kinds;
  for (const sim::Phase& p : s->phases) kinds.push_back(p.kind());
  for (sim::PhaseKind k : sim::all_phase_kinds())
    EXPECT_NE(std::find(kinds.begin(), kinds.end(), k), kinds.end()) << sim::to_string(k);
  EXPECT_EQ(s->vm.vcpus, 2u);
  EXPECT_EQ(sim::total_memory(*s), 256u << 20);
}

TEST(ScenarioJson, SizesAcceptUnitsHexAndIntegers) {
  for (const auto& [text, bytes] : std::vector<std::pair<Json, std::uint64_t>>{{"16M", 16u << 20},
                                                                               {"16MiB", 16u << 20},
                                                                               {"16m", 16u << 20},
                                                                               {"0x1000000", 16u << 20},
                                                                               {16777216, 16u << 20},
                                                                               {"1G", 1u << 30},
                                                                               {"4096K", 4u << 20}}) {
    Json doc = default_doc();
    doc["memslots"][0] = {{"size", text}, {"backing_page_size", "4K"}};
    doc["phases"] = {"populate"};
    auto s = read_scenario(doc);
    ASSERT_TRUE(s.has_value()) << text.dump() << ": " << s.error().message;
    EXPECT_EQ(s->memslots[0].size, bytes) << text.dump();
  }
}

TEST(ScenarioJson, WritesBackWhatItReads) {
  const std::filesystem::path dir = std::filesystem::path(VMMU_TEST_SAMPLES_DIR) / "scenarios";
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    ++files;
    auto s = load_scenario(read_text(entry.path()), entry.path().string(), {});
    ASSERT_TRUE(s.has_value()) << s.error();
    const nlohmann::ordered_json written = scenario_to_json(*s);
    auto again = read_scenario(Json::parse(written.dump()));
    ASSERT_TRUE(again.has_value()) << entry.path() << ": " << again.error().key << ": " << again.error().message;
    EXPECT_EQ(scenario_to_json(*again), written) << entry.path();
  }
  EXPECT_GE(files, 7u);
}

TEST(ScenarioJson, DefaultSampleFileIsTheBuiltInDefault) {
  const auto file = std::filesystem::path(VMMU_TEST_SAMPLES_DIR) / "scenarios" / "default.json";
  EXPECT_EQ(Json::parse(read_text(file)), default_doc());
}

// ---- --set ------------------------------------------------------------------------------

struct SetCase {
  const char* assignment;
  std::function<bool(const sim::Scenario&)> holds;
};

TEST(ScenarioSet, ReachesEveryKindOfKey) {
  const SetCase cases[] = {
      {"vcpus=4", [](const sim::Scenario& s) { return s.vm.vcpus == 4; }},
      {"vm.levels=5", [](const sim::Scenario& s) { return s.vm.levels == 5; }},
      {"vm.ad_bits=false", [](const sim::Scenario& s) { return !s.vm.ad_bits; }},
      {"tdp=npt", [](const sim::Scenario& s) { return s.vm.tdp == tdp::TdpKind::Npt; }},
      {"split=lazy", [](const sim::Scenario& s) { return s.policies.split == tdp::SplitPolicy::Lazy; }},
      {"policies.roots=rebuild", [](const sim::Scenario& s) { return s.policies.roots == tdp::RootPolicy::Rebuild; }},
      {"seed=9", [](const sim::Scenario& s) { return s.seed == 9; }},
      {"name=hello world", [](const sim::Scenario& s) { return s.name == "hello world"; }},
      {"memslots[0].size=64M", [](const sim::Scenario& s) { return s.memslots[0].size == 64u << 20; }},
      {"memslots[0].gpa=0x40000000", [](const sim::Scenario& s) { return s.memslots[0].gpa == 1u << 30; }},
      {"phases[1].accesses=10",
       [](const sim::Scenario& s) { return std::get<sim::RandomAccessPhase>(s.phases[1].params).accesses == 10; }},
      {"phases.1.accesses=11",
       [](const sim::Scenario& s) { return std::get<sim::RandomAccessPhase>(s.phases[1].params).accesses == 11; }},
      {"migration.iterations=7",
       [](const sim::Scenario& s) { return std::get<sim::MigrationPhase>(s.phases[3].params).iterations == 7; }},
      {"phases[0].name=warm-up", [](const sim::Scenario& s) { return s.phases[0].name == "warm-up"; }},
      {"vm.shadow.unsync=false", [](const sim::Scenario& s) { return !s.vm.shadow_unsync; }},
      {"fork.pages=9", [](const sim::Scenario& s) { return std::get<sim::ForkPhase>(s.phases[8].params).pages == 9; }},
      {"rewrite-tables.flush=cr3",
       [](const sim::Scenario& s) {
         return std::get<sim::RewriteTablesPhase>(s.phases[9].params).flush == sim::RewriteFlush::Cr3;
       }},
      {"cr3-switch.pcid=false",
       [](const sim::Scenario& s) { return !std::get<sim::Cr3SwitchPhase>(s.phases[10].params).pcid; }},
  };
  for (const SetCase& c : cases) {
    Json doc = default_doc();
    auto applied = apply_set(doc, c.assignment);
    ASSERT_TRUE(applied) << c.assignment << ": " << applied.error().message;
    auto s = read_scenario(doc);
    ASSERT_TRUE(s.has_value()) << c.assignment << ": " << s.error().key << ": " << s.error().message;
    EXPECT_TRUE(c.holds(*s)) << c.assignment;
  }
}

TEST(ScenarioSet, ReachesTheNestedKeys) {
  const auto file = std::filesystem::path(VMMU_TEST_SAMPLES_DIR) / "scenarios" / "nested.json";
  const std::vector<std::string> sets = {"vm.nested.ept_ad=false", "vm.nested.prefault=true"};
  auto s = load_scenario(read_text(file), file.string(), sets);
  ASSERT_TRUE(s.has_value()) << s.error();
  ASSERT_TRUE(s->vm.nested.has_value());
  EXPECT_FALSE(s->vm.nested->ept_ad);
  EXPECT_TRUE(s->vm.nested->prefault);
  const std::vector<std::string> unset = {"nested=false"};
  auto off = load_scenario(read_text(file), file.string(), unset);
  ASSERT_TRUE(off.has_value()) << off.error();
  EXPECT_FALSE(off->vm.nested.has_value());
  // L1 on NPT: read, and written back without ept_ad (which it would refuse).
  const std::vector<std::string> npt_sets = {"vm.nested=npt"};
  auto npt = load_scenario(read_text(file), file.string(), npt_sets);
  ASSERT_TRUE(npt.has_value()) << npt.error();
  ASSERT_TRUE(npt->vm.nested.has_value());
  EXPECT_EQ(npt->vm.nested->kind, sim::NestedKind::Npt);
  const nlohmann::ordered_json written = scenario_to_json(*npt);
  EXPECT_FALSE(written["vm"]["nested"].contains("ept_ad")) << written["vm"]["nested"].dump();
  auto again = read_scenario(Json::parse(written.dump()));
  ASSERT_TRUE(again.has_value()) << again.error().key << ": " << again.error().message;
  EXPECT_EQ(scenario_to_json(*again), written);
}

TEST(ScenarioSet, AppliesToEveryPhaseOfAKind) {
  Json doc = default_doc();
  doc["phases"].push_back({{"kind", "conversion"}, {"ranges", 3}});
  set(doc, "conversion.ranges=5");
  auto s = read_scenario(doc);
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ(std::get<sim::ConversionPhase>(s->phases[7].params).ranges, 5u);
  EXPECT_EQ(std::get<sim::ConversionPhase>(s->phases[11].params).ranges, 5u);
}

TEST(ScenarioSet, GivesAStringPhaseParameters) {
  Json doc = default_doc();
  set(doc, "phases[0].name=first");
  EXPECT_EQ(doc["phases"][0], (Json{{"kind", "populate"}, {"name", "first"}}));
}

TEST(ScenarioSet, RefusesWhatItCannotPlace) {
  const std::pair<const char*, const char*> cases[] = {
      {"vcpus", "NAME=VALUE"},
      {"=4", "NAME=VALUE"},
      {"bogus=1", "unknown parameter"},
      {"phases[99].flips=1", "has 11 elements"},
      {"teleport.speed=1", "unknown key"},
      {"vm.vcpus.x=1", "not an object"},
      {"[0]=1", "key path"},
      {"phases[x].flips=1", "key path"},
  };
  for (const auto& [assignment, message] : cases) {
    Json doc = default_doc();
    auto s = apply_set(doc, assignment);
    ASSERT_FALSE(s) << assignment;
    EXPECT_NE(s.error().message.find(message), std::string::npos) << assignment << ": " << s.error().message;
  }
  Json doc = default_doc();
  doc["phases"] = {"populate"};
  auto s = apply_set(doc, "conversion.ranges=1");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("no conversion phase"), std::string::npos);
}

// Issue 15: a bad value placed by --set named the scenario file, which holds no such value.
TEST(ScenarioSet, BadValueNamesTheOptionAndItsKey) {
  auto s = load_scenario(default_scenario_text(), "x.json", std::vector<std::string>{"split=sideways"});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().rfind("--set split=sideways: policies.split: ", 0), 0u) << s.error();
  auto v = load_scenario(default_scenario_text(), "x.json", std::vector<std::string>{"seed=1", "vcpus=0"});
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error(), "--set vcpus=0: vm.vcpus: expected 1 to 64 vCPUs, got 0");
}

TEST(ScenarioSet, BadValueBelowAnOverriddenObjectNamesTheOption) {
  auto s = load_scenario(default_scenario_text(), "x.json", std::vector<std::string>{R"(vm={"vcpus": 0})"});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().rfind("--set vm={\"vcpus\": 0}: vm.vcpus: ", 0), 0u) << s.error();
}

TEST(ScenarioSet, ErrorElsewhereStillNamesTheFile) {
  std::string text(default_scenario_text());
  text.replace(text.find("\"vcpus\": 2"), 10, "\"vcpus\": 0");
  auto s = load_scenario(text, "x.json", std::vector<std::string>{"seed=7"});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().rfind("x.json: vm.vcpus: ", 0), 0u) << s.error();
}

TEST(ScenarioSet, BadAssignmentNamesTheOption) {
  auto s = load_scenario(default_scenario_text(), "x.json", std::vector<std::string>{"bogus=1"});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().rfind("--set bogus=1: bogus: unknown parameter", 0), 0u) << s.error();
}

// Found by scenario_fuzz: a value that is not UTF-8 made an error message (or later a report)
// throw from nlohmann::json::dump and ended the process.
TEST(ScenarioSet, ValueThatIsNotUtf8IsAnError) {
  for (const char* assignment : {"migration.iterations=\xa0\xa0\xa0\xa0\xa0" "10", "name=\xa0", "description=caf\xc3"}) {
    auto s = load_scenario(default_scenario_text(), "x.json", std::vector<std::string>{assignment});
    ASSERT_FALSE(s.has_value()) << assignment;
    EXPECT_NE(s.error().find("neither JSON nor UTF-8 text"), std::string::npos) << s.error();
  }
  auto utf8 = load_scenario(default_scenario_text(), "x.json", std::vector<std::string>{"description=caf\xc3\xa9"});
  EXPECT_TRUE(utf8.has_value()) << utf8.error();
}

// Found by scenario_fuzz: a number too large for a double is nlohmann's out_of_range, not a
// parse_error, and escaped the reader.
TEST(ScenarioText, NumberTooLargeForADoubleIsAnError) {
  for (const char* text : {"777777777e777", R"({"format": "vmmu-scenario/1", "vm": {"vcpus": 1e999}})"}) {
    auto doc = parse_scenario_text(text);
    ASSERT_FALSE(doc.has_value()) << text;
    EXPECT_NE(doc.error().message.find("not JSON"), std::string::npos) << doc.error().message;
  }
}

}  // namespace
}  // namespace vmmu::cli
