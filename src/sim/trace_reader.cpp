// Trace files: checked line parsing and the streaming reader (plain read(2) or liblzma).

#include <fcntl.h>
#include <lzma.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "vmmu/sim/trace.hpp"

namespace vmmu::sim {
namespace {

constexpr std::size_t kChunk = std::size_t{1} << 16;

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

class FdReader : public TraceReader {
 public:
  FdReader(std::string path, int fd) : TraceReader(std::move(path)), fd_(fd) {}
  ~FdReader() override { ::close(fd_); }

 protected:
  Result<std::size_t, std::string> read_raw(char* buf, std::size_t size) {
    for (;;) {
      const ssize_t n = ::read(fd_, buf, size);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) return Unexpected{path() + ": read error: " + std::strerror(errno)};
    }
  }
  Result<std::size_t, std::string> fill(char* buf, std::size_t size) override { return read_raw(buf, size); }

 private:
  int fd_;
};

// xz: liblzma's stream decoder over chunks of the file (concatenated streams accepted, as xz does).
class XzReader : public FdReader {
 public:
  XzReader(std::string path, int fd) : FdReader(std::move(path), fd), in_(new std::uint8_t[kChunk]) {}
  ~XzReader() override { lzma_end(&strm_); }
  bool start() { return lzma_stream_decoder(&strm_, UINT64_MAX, LZMA_CONCATENATED) == LZMA_OK; }

 protected:
  Result<std::size_t, std::string> fill(char* buf, std::size_t size) override {
    strm_.next_out = reinterpret_cast<std::uint8_t*>(buf);  // lzma's byte type for the same bytes
    strm_.avail_out = size;
    while (strm_.avail_out == size && !done_) {
      lzma_action action = LZMA_RUN;
      if (strm_.avail_in == 0 && !input_end_) {
        auto n = read_raw(reinterpret_cast<char*>(in_.get()), kChunk);
        if (!n) return Unexpected{n.error()};
        strm_.next_in = in_.get();
        strm_.avail_in = *n;
        input_end_ = *n == 0;
      }
      if (input_end_) action = LZMA_FINISH;
      const lzma_ret r = lzma_code(&strm_, action);
      if (r == LZMA_STREAM_END) {
        done_ = true;
      } else if (r != LZMA_OK) {
        return Unexpected{path() + ": xz: " + message(r)};
      }
    }
    return size - strm_.avail_out;
  }

 private:
  static std::string message(lzma_ret r) {
    switch (r) {
      case LZMA_FORMAT_ERROR: return "not in the .xz format";
      case LZMA_DATA_ERROR: return "compressed data is corrupt";
      case LZMA_BUF_ERROR: return "compressed data is truncated";
      case LZMA_MEM_ERROR: return "out of memory";
      case LZMA_OPTIONS_ERROR: return "unsupported compression options";
      default: return "decoder error " + std::to_string(static_cast<int>(r));
    }
  }
  lzma_stream strm_ = LZMA_STREAM_INIT;
  std::unique_ptr<std::uint8_t[]> in_;
  bool input_end_ = false;
  bool done_ = false;
};

}  // namespace

char to_char(TraceKind k) {
  switch (k) {
    case TraceKind::Fetch: return 'F';
    case TraceKind::Read: return 'R';
    case TraceKind::Write: return 'W';
    case TraceKind::Modify: return 'M';
  }
  return '?';
}

Result<TraceRecord, std::string> parse_trace_line(std::string_view line) {
  if (line.empty()) return Unexpected{std::string("blank line")};
  TraceRecord r;
  switch (line[0]) {
    case 'F': r.kind = TraceKind::Fetch; break;
    case 'R': r.kind = TraceKind::Read; break;
    case 'W': r.kind = TraceKind::Write; break;
    case 'M': r.kind = TraceKind::Modify; break;
    default: return Unexpected{"unknown kind '" + std::string(line.substr(0, 1)) + "' (expected F, R, W or M)"};
  }
  if (line.size() < 2 || line[1] != ' ') return Unexpected{std::string("expected one space after the kind")};
  std::string_view rest = line.substr(2);
  const std::size_t space = rest.find(' ');
  if (space == std::string_view::npos) return Unexpected{std::string("expected '<kind> <vpn> <count>'")};
  const std::string_view vpn = rest.substr(0, space);
  const std::string_view count = rest.substr(space + 1);
  // By hand: this runs once per record, and std::from_chars accepts upper case.
  bool hex_ok = !vpn.empty() && vpn.size() <= 16;
  for (char ch : vpn) {
    unsigned digit;
    if (ch >= '0' && ch <= '9') {
      digit = static_cast<unsigned>(ch - '0');
    } else if (ch >= 'a' && ch <= 'f') {
      digit = static_cast<unsigned>(ch - 'a' + 10);
    } else {
      hex_ok = false;
      break;
    }
    r.vpn = (r.vpn << 4) | digit;
  }
  if (!hex_ok)
    return Unexpected{"bad vpn '" + std::string(vpn) + "' (expected lower-case hex, no 0x, at most 16 digits)"};
  if (vpn.size() > 1 && vpn[0] == '0') return Unexpected{"bad vpn '" + std::string(vpn) + "' (leading zero)"};
  if (count.find(' ') != std::string_view::npos) return Unexpected{std::string("extra field after the count")};
  const auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), r.count, 10);
  if (count.empty() || ec != std::errc() || end != count.data() + count.size() || count[0] == '0')
    return Unexpected{"bad count '" + std::string(count) + "' (expected a decimal number of at least 1)"};
  return r;
}

Result<std::unique_ptr<TraceReader>, std::string> TraceReader::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Unexpected{path + ": cannot open: " + std::strerror(errno)};
  std::unique_ptr<TraceReader> r;
  if (ends_with(path, ".xz")) {
    auto xz = std::make_unique<XzReader>(path, fd);
    if (!xz->start()) return Unexpected{path + ": xz: cannot start the decoder"};
    r = std::move(xz);
  } else {
    r = std::make_unique<FdReader>(path, fd);
  }
  r->buf_.reset(new char[kChunk]);
  return r;
}

TraceReader::~TraceReader() = default;

bool TraceReader::refill() {
  auto n = fill(buf_.get(), kChunk);
  if (!n) {
    error_ = n.error();
    return false;
  }
  begin_ = 0;
  end_ = *n;
  eof_ = *n == 0;
  return true;
}

Result<bool, std::string> TraceReader::next(TraceRecord& out) {
  if (!error_.empty()) return Unexpected{error_};
  std::string_view text;
  for (;;) {
    const char* start = buf_.get() + begin_;
    const void* nl = std::memchr(start, '\n', end_ - begin_);
    if (nl != nullptr) {
      const std::size_t len = static_cast<std::size_t>(static_cast<const char*>(nl) - start);
      begin_ += len + 1;
      if (partial_.empty()) {
        text = std::string_view(start, len);
      } else {
        partial_.append(start, len);
        text = partial_;
      }
      break;
    }
    partial_.append(start, end_ - begin_);
    begin_ = end_;
    if (partial_.size() > 4096) {
      error_ = path_ + ":" + std::to_string(line_ + 1) + ": line too long";
      return Unexpected{error_};
    }
    if (eof_ || !refill()) {
      if (!error_.empty()) return Unexpected{error_};
      if (partial_.empty()) return false;  // the end, after a complete last line
      text = partial_;                     // a last line without its newline
      break;
    }
  }
  ++line_;
  auto r = parse_trace_line(text);
  partial_.clear();
  if (!r) {
    error_ = path_ + ":" + std::to_string(line_) + ": " + r.error();
    return Unexpected{error_};
  }
  if (have_last_ && r->kind == last_.kind && r->vpn == last_.vpn) {
    error_ = path_ + ":" + std::to_string(line_) + ": repeats the previous record's kind and page (add the counts)";
    return Unexpected{error_};
  }
  last_ = *r;
  have_last_ = true;
  out = *r;
  return true;
}

void TraceWriter::add(TraceKind kind, std::uint64_t vpn, std::uint64_t count) {
  if (have_ && pending_.kind == kind && pending_.vpn == vpn) {
    pending_.count += count;
    return;
  }
  flush();
  pending_ = {kind, vpn, count};
  have_ = true;
}

void TraceWriter::flush() {
  if (!have_) return;
  std::fprintf(out_, "%c %llx %llu\n", to_char(pending_.kind), static_cast<unsigned long long>(pending_.vpn),
               static_cast<unsigned long long>(pending_.count));
  ++records_;
  have_ = false;
}

}  // namespace vmmu::sim
