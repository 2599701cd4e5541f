// A small real program for the lackey test: writes then reads 64 pages of a heap buffer, so
// its trace must show at least 64 pages written.

#include <cstdlib>

int main() {
  constexpr int kPages = 64;
  auto* buf = static_cast<volatile char*>(std::malloc(kPages * 4096));
  if (buf == nullptr) return 1;
  for (int i = 0; i < kPages * 4096; i += 4096) buf[i] = static_cast<char>(i / 4096);
  int sum = 0;
  for (int i = 0; i < kPages * 4096; i += 4096) sum += buf[i];
  std::free(const_cast<char*>(buf));
  return sum == (kPages - 1) * kPages / 2 ? 0 : 1;
}
