#pragma once
// Options shared by the guest walker and the EPT walker.

namespace vmmu::x86 {

struct WalkOptions {
  // Write Accessed/Dirty bits back with compare-exchange (false: never write, e.g. images).
  bool update_accessed_dirty = true;
};

}  // namespace vmmu::x86
