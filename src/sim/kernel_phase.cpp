#include "kernel_phase.hpp"

namespace vmmu::sim {

Result<std::vector<KernelVcpu>, std::string> boot_kernels(PhaseContext& c, std::uint64_t frames, unsigned spaces,
                                                          std::uint64_t user_pages) {
  std::vector<KernelVcpu> out;
  for (unsigned v = 0; v < c.vm.vcpus(); ++v) {
    std::vector<Gpa> mine;
    const std::uint64_t first = c.vm.share(v).first;
    for (std::uint64_t i = 0; i < frames; ++i) mine.push_back(c.vm.gpa_of_page(first + i));
    auto pool = c.vm.add_table_pool(GuestMm::pool_pages(frames, spaces, user_pages));
    if (!pool) return Unexpected{pool.error()};
    auto mm = GuestMm::boot(c.vm.vm(), c.vm.vcpu(v), *pool, mine);
    if (!mm) return Unexpected{fmt::format("vCPU {}: {}", v, mm.error())};
    out.push_back(KernelVcpu{std::move(*mm), std::move(mine), {}});
  }
  return out;
}

void settle_kernels(PhaseContext& c, const std::vector<KernelVcpu>& kernels) {
  for (std::size_t v = 0; v < kernels.size(); ++v) {
    const KernelLog& log = kernels[v].log;
    for (const std::string& f : log.failures) c.fail(fmt::format("vCPU {}: {}", v, f));
    if (log.count > log.failures.size())
      c.fail(fmt::format("vCPU {}: {} more failures", v, log.count - log.failures.size()));
  }
}

}  // namespace vmmu::sim
