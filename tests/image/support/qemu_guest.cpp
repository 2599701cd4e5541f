#include "image/support/qemu_guest.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace vmmu::image::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (executable(candidate)) return candidate;
  }
  return {};
}

// A running QEMU: killed and reaped however the test leaves.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& log) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    const int rc = posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  [[nodiscard]] bool running() {
    if (pid_ <= 0) return false;
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) pid_ = -1;
    return pid_ > 0;
  }
  // Waits up to `limit` for a clean exit, then kills.
  void finish(std::chrono::seconds limit) {
    const auto until = Clock::now() + limit;
    while (running() && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

 private:
  pid_t pid_ = -1;
};

// The human monitor over a unix socket. Each command's answer ends with the next "(qemu) "
// prompt; the first line of it is the monitor echoing the command (with terminal escapes).
class Monitor {
 public:
  Monitor(const std::string& socket_path, Process& qemu) {
    const auto until = Clock::now() + std::chrono::seconds(10);
    for (;;) {
      fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
      if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) break;
      ::close(fd_);
      fd_ = -1;
      if (!qemu.running() || Clock::now() > until) throw std::runtime_error("QEMU monitor socket did not open");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    read_until_prompt(std::chrono::seconds(10));  // the greeting
  }
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;
  ~Monitor() {
    if (fd_ >= 0) ::close(fd_);
  }

  std::string command(const std::string& line, std::chrono::seconds limit = std::chrono::seconds(30)) {
    send(line + "\n");
    std::string answer = read_until_prompt(limit);
    const auto eol = answer.find('\n');
    answer = eol == std::string::npos ? std::string() : answer.substr(eol + 1);
    answer.erase(std::remove(answer.begin(), answer.end(), '\r'), answer.end());
    return answer;
  }
  void send(const std::string& text) {
    if (::write(fd_, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
      throw std::runtime_error("writing to the QEMU monitor failed");
    }
  }

 private:
  std::string read_until_prompt(std::chrono::seconds limit) {
    static constexpr std::string_view kPrompt = "(qemu) ";
    std::string out;
    const auto until = Clock::now() + limit;
    char buf[65536];
    while (out.size() < kPrompt.size() || out.compare(out.size() - kPrompt.size(), kPrompt.size(), kPrompt) != 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
      if (left <= 0) throw std::runtime_error("the QEMU monitor did not answer in time");
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) throw std::runtime_error("the QEMU monitor closed the connection");
      out.append(buf, static_cast<std::size_t>(n));
    }
    out.resize(out.size() - kPrompt.size());
    return out;
  }

  int fd_ = -1;
};

}  // namespace

std::optional<QemuGuestSetup> find_qemu_guest(std::string& why) {
  QemuGuestSetup s;
  const char* env_qemu = std::getenv("VMMU_QEMU");
  s.qemu = env_qemu != nullptr && *env_qemu != 0 ? env_qemu : find_in_path("qemu-system-x86_64");
  if (s.qemu.empty() || !executable(s.qemu)) {
    why = "qemu-system-x86_64 not found (install qemu-system-x86 or set VMMU_QEMU)";
    return std::nullopt;
  }
  if (const char* k = std::getenv("VMMU_GUEST_KERNEL"); k != nullptr && *k != 0) {
    s.kernel = k;
  } else {
    std::vector<std::string> kernels;
    std::error_code ec;
    for (fs::directory_iterator it("/boot", ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.rfind("vmlinuz-", 0) == 0) kernels.push_back(it->path().string());
    }
    std::sort(kernels.begin(), kernels.end());
    if (!kernels.empty()) s.kernel = kernels.back();
  }
  if (s.kernel.empty() || ::access(s.kernel.c_str(), R_OK) != 0) {
    why = "no readable guest kernel (/boot/vmlinuz-*; install linux-image-amd64 or set VMMU_GUEST_KERNEL)";
    return std::nullopt;
  }
  return s;
}

QemuGuestState run_qemu_guest(const QemuGuestSetup& setup, const std::string& dir, const std::string& ready_line,
                              std::chrono::seconds max_wait) {
  const std::string console = dir + "/console.log";
  const std::string socket_path = dir + "/monitor.sock";
  QemuGuestState state;
  state.dump_path = dir + "/guest.elf";
  // panic=0: a kernel that finds no root file system panics and stays there, page tables
  // intact (panic=-1 would reboot it into real mode).
  const std::vector<std::string> argv{setup.qemu,
                                      "-accel", "tcg",
                                      "-m", "256",
                                      "-nodefaults", "-display", "none",
                                      "-kernel", setup.kernel,
                                      "-append", "console=ttyS0 panic=0 loglevel=4",
                                      "-serial", "file:" + console,
                                      "-monitor", "unix:" + socket_path + ",server=on,wait=off",
                                      "-no-reboot"};
  const auto start = Clock::now();
  Process qemu(argv, dir + "/qemu.log");
  Monitor monitor(socket_path, qemu);
  while (Clock::now() - start < max_wait && qemu.running()) {
    if (slurp(console).find(ready_line) != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (!qemu.running()) throw std::runtime_error("QEMU exited early: " + slurp(dir + "/qemu.log"));
  monitor.command("stop");
  state.boot_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  state.registers = monitor.command("info registers");
  state.tlb = monitor.command("info tlb");
  state.mem = monitor.command("info mem");
  const std::string dumped = monitor.command("dump-guest-memory " + state.dump_path, std::chrono::seconds(60));
  if (!fs::exists(state.dump_path)) throw std::runtime_error("dump-guest-memory wrote nothing: " + dumped);
  monitor.send("quit\n");
  qemu.finish(std::chrono::seconds(10));
  state.console = slurp(console);
  return state;
}

}  // namespace vmmu::image::testing
