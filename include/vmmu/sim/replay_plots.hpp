#pragma once
// `--plot DIR`: a replay's time series and a comparison's figures as SVG files and one
// index.html showing them together (vmmu/report draws them).
//
//   faults.svg         guest and MMU faults per interval
//   table-memory.svg   guest + MMU table pages at the end of each interval
//   tlb-miss-rate.svg  TLB misses / lookups per interval, in percent
//   dirty-pages.svg    data pages each migration round harvested (with dirty logging)
//   compare-*.svg      one bar per compared value: TLB misses, walk references, faults,
//                      table pages, pages logged, time
//
// A comparison draws every run's series in the same time-series plots.

#include <string>

#include "vmmu/core/result.hpp"
#include "vmmu/sim/compare.hpp"
#include "vmmu/sim/replay.hpp"
#include "vmmu/sim/replay_compare.hpp"

namespace vmmu::sim {

// Each writes its SVGs and index.html into `dir`, made when missing.
// Errors: the directory or file that could not be written, named.
Status<std::string> write_replay_plots(const std::string& dir, const ReplayReport& r);
Status<std::string> write_compare_plots(const std::string& dir, const ReplayCompareReport& r);
// The bar charts of a table over replay_metrics() keys (merged reports carry no series).
Status<std::string> write_table_plots(const std::string& dir, const CompareTable& t);

}  // namespace vmmu::sim
