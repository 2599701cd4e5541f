#include "vmmu/tdp/tdp_format.hpp"

namespace vmmu::tdp {

std::string_view to_string(TdpKind k) { return k == TdpKind::Ept ? "ept" : "npt"; }

TdpFormat::TdpFormat(const TdpFormatOptions& o)
    : o_(o), geometry_(pt::Geometry::uniform(o.levels, 12, 9, 9, 8)) {
  if (o.kind == TdpKind::Ept) {
    namespace e = x86::ept;
    present_ = e::Rwx::mask;
    read_ = e::R::mask;
    write_ = e::W::mask;
    exec_ = e::X::mask;
    if (o.ad_bits) {
      accessed_ = e::A::mask;
      dirty_ = e::D::mask;
    }
    leaf_fixed_ = e::MemType::set(0, e::kMemTypeWb);
    table_fixed_ = e::R::mask | e::W::mask | e::X::mask;
    mmio_fixed_ = e::SuppressVe::mask;
  } else {
    namespace g = x86::gpte;
    o_.ad_bits = true;  // NPT always maintains A/D
    present_ = g::P::mask;
    read_ = g::P::mask;
    write_ = g::RW::mask;
    no_exec_ = g::XD::mask;
    accessed_ = g::A::mask;
    dirty_ = g::D::mask;
    leaf_fixed_ = g::US::mask;
    // Non-leaf entries grant everything (the leaf decides) and are marked accessed, as the
    // hardware would after the first walk.
    table_fixed_ = g::P::mask | g::RW::mask | g::US::mask | g::A::mask;
  }
}

std::uint64_t TdpFormat::root_pointer(Hpa root) const {
  if (o_.kind == TdpKind::Npt) return root.raw() & kAddr;  // nCR3
  namespace p = x86::ept::eptp;
  std::uint64_t eptp = p::Addr::bits(root.raw());
  eptp = p::MemType::set(eptp, x86::ept::kMemTypeWb);
  eptp = p::WalkLengthMinus1::set(eptp, o_.levels - 1);
  return p::AccessedDirty::set(eptp, o_.ad_bits);
}

}  // namespace vmmu::tdp
