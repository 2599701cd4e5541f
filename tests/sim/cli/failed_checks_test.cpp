// `vmmu run` when a check fails or the host cannot hold the VM: a lost dirty page or wrong data
// after a conversion ends in status 1 with the failure named, and a memslot beyond the host's
// memory is one line naming the key, before anything is mapped.
//
// This program defines vmmu::sim::injected_fault() (include/vmmu/sim/fault_injection.hpp), so
// a test can break one result on purpose; every other test here runs with InjectedFault::None.

#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "run_command.hpp"
#include "sim/support/run_cli.hpp"
#include "vmmu/core/page_size.hpp"
#include "vmmu/sim/fault_injection.hpp"
#include "vmmu/sim/host_capacity.hpp"

namespace vmmu::sim {
namespace {
InjectedFault g_fault = InjectedFault::None;  // set by one test at a time (gtest runs them in turn)
}  // namespace

InjectedFault injected_fault() { return g_fault; }

}  // namespace vmmu::sim

namespace vmmu::cli {
namespace {

Ran run_default(std::vector<std::string> sets, sim::InjectedFault fault = sim::InjectedFault::None) {
  RunCommandOptions o;
  o.sets = std::move(sets);
  std::ostringstream out, err;
  sim::g_fault = fault;
  Ran r;
  r.status = run_run(o, out, err);
  sim::g_fault = sim::InjectedFault::None;
  r.out = out.str();
  r.err = err.str();
  return r;
}

// The default scenario, small.
const std::vector<std::string> kSmallSets = {"memslots[0].size=16M", "random-access.accesses=1000",
                                         "smep-storm.flips=10",  "migration.iterations=2",
                                         "conversion.ranges=2"};


TEST(RunFailures, SmallDefaultScenarioPasses) {
  const Ran r = run_default(kSmallSets);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("result: ok"), std::string::npos) << r.out;
}

TEST(RunFailures, ALostDirtyPageIsStatus1AndNamed) {
  const Ran r = run_default(kSmallSets, sim::InjectedFault::LoseDirtyPage);
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("vmmu run: FAILED: migration: iteration 1: 1 of 4096 pages written are missing"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("Iteration 1 dirty pages lost +1\n"))) << r.out;
  EXPECT_NE(r.out.find("result: FAILED"), std::string::npos) << r.out;
}

TEST(RunFailures, WrongDataAfterAConversionIsStatus1AndNamed) {
  const Ran r = run_default(kSmallSets, sim::InjectedFault::CorruptWord);
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("vmmu run: FAILED: conversion: 2 words read back wrong after conversions"), std::string::npos)
      << r.err;
  EXPECT_NE(r.out.find("result: FAILED"), std::string::npos) << r.out;
}

// 1 TiB is within the format's limit; no host this runs on can give it.
TEST(RunFailures, MemslotBeyondTheHostIsOneLineNamingTheKey) {
  const auto host = sim::host_capacity();
  ASSERT_TRUE(host.has_value());
  if (host->available >= TiB) GTEST_SKIP() << "this host has 1 TiB available";
  const Ran r = run_default({"memslots[0].size=1T"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_EQ(r.err.rfind("vmmu run: memslots[0].size: memslots[0] need 1T of host memory", 0), 0u) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

}  // namespace
}  // namespace vmmu::cli
