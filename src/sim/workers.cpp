#include "workers.hpp"

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace vmmu::sim {

PhaseProgress::PhaseProgress(const RunOptions& options, std::string_view phase, std::size_t index, std::size_t phases)
    : options_(options), phase_(phase), index_(index), phases_(phases), start_(std::chrono::steady_clock::now()) {}

void PhaseProgress::step(std::string step, std::uint64_t total) {
  step_ = std::move(step);
  total_ = total;
  done_.store(0, std::memory_order_relaxed);
  report();
}

void PhaseProgress::tick() {
  if (options_.progress && std::chrono::steady_clock::now() - last_report_ >= options_.progress_interval) report();
}

void PhaseProgress::report() {
  if (!options_.progress) return;
  last_report_ = std::chrono::steady_clock::now();
  Progress p;
  p.phase = phase_;
  p.index = index_;
  p.phases = phases_;
  p.step = step_;
  p.done = done_.load(std::memory_order_relaxed);
  p.total = total_;
  p.elapsed = std::chrono::steady_clock::now() - start_;
  p.variant = options_.variant;
  p.finished = finished_;
  options_.progress(p);
}

void PhaseProgress::finish() {
  if (!options_.progress) return;
  done_.store(total_, std::memory_order_relaxed);
  finished_ = true;
  report();
}

void PhaseProgress::parallel(unsigned n, const std::function<void(unsigned)>& fn) {
  std::mutex m;
  std::condition_variable cv;
  unsigned running = n;
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (unsigned i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      fn(i);
      std::lock_guard lock(m);
      if (--running == 0) cv.notify_one();
    });
  }
  {
    std::unique_lock lock(m);
    while (running != 0) {
      if (!options_.progress) {
        cv.wait(lock, [&] { return running == 0; });
        break;
      }
      if (cv.wait_for(lock, options_.progress_interval, [&] { return running == 0; })) break;
      lock.unlock();
      report();
      lock.lock();
    }
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace vmmu::sim
