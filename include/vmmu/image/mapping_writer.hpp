#pragma once
// The line forms of `vmmu maps` (x86-maps.md), appended to a caller's buffer so a listing of
// hundreds of thousands of leaves is formatted without per-line allocation or flushing.
//
//   text:   ffffffff81000000: 0000000001000000 2M  user=0 write=1 nx=0  A D G
//   json:   {"gva": "0xffffffff81000000", "gpa": "0x1000000", "page_size": "2M", "user": false,
//            "write": true, "nx": false, "accessed": true, "dirty": true, "global": true,
//            "pwt": false, "pcd": false, "pat": false}
//   merged text:  ffff888000000000-ffff888000098000 0000000000098000 user=0 write=1 nx=1
//   merged json:  {"gva": "0xffff888000000000", "size": "0x98000", "user": false, "write": true,
//                  "nx": true}
//
// Each line ends with '\n'. Text flags after the permissions are the leaf's own bits that are
// set, in the order A D G PWT PCD PAT, then PK=<key> for a nonzero protection key. JSON adds
// "protection_key" only when it is nonzero.

#include <fmt/format.h>

#include "vmmu/image/guest_mappings.hpp"
#include "vmmu/image/mapping_merge.hpp"

namespace vmmu::image {

void append_text(fmt::memory_buffer& out, const GuestMapping& m);
void append_json(fmt::memory_buffer& out, const GuestMapping& m);
void append_text(fmt::memory_buffer& out, const MappedRange& r);
void append_json(fmt::memory_buffer& out, const MappedRange& r);

}  // namespace vmmu::image
