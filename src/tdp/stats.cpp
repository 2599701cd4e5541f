#include "vmmu/tdp/stats.hpp"

namespace vmmu::tdp {

FaultStats& FaultStats::operator+=(const FaultStats& o) {
  faults += o.faults;
  spurious += o.spurious;
  retried += o.retried;
  mmio += o.mmio;
  mmio_fast += o.mmio_fast;
  relaxed += o.relaxed;
  lazy_splits += o.lazy_splits;
  dirtied += o.dirtied;
  ring_full += o.ring_full;
  for (std::size_t i = 0; i < mapped.size(); ++i) mapped[i] += o.mapped[i];
  return *this;
}

}  // namespace vmmu::tdp
