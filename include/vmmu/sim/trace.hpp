#pragma once
// Page-level access traces (../shared/formats/page-trace.md): one record per line,
// `<kind> <vpn> <count>`, plain or xz-compressed, read as a stream.
//
//   TraceReader::open(path) ── chunks (read(2), or liblzma's stream decoder for *.xz) ──►
//   lines ──► checked records; the first malformed line is an error "FILE:LINE: what"
//
//   TraceWriter: records in, adjacent ones of the same kind and page merged, text out.

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "vmmu/core/result.hpp"

namespace vmmu::sim {

enum class TraceKind : std::uint8_t {
  Fetch,   // F: instruction fetch
  Read,    // R: data read
  Write,   // W: data write
  Modify,  // M: read then write by one instruction (one access needing read and write)
};
char to_char(TraceKind k);

struct TraceRecord {
  TraceKind kind = TraceKind::Read;
  std::uint64_t vpn = 0;    // 4 KiB page number
  std::uint64_t count = 1;  // consecutive accesses of this kind to this page
  friend bool operator==(const TraceRecord&, const TraceRecord&) = default;
};

// Parses one line (without its newline). Errors: what is wrong, without the position.
Result<TraceRecord, std::string> parse_trace_line(std::string_view line);

class TraceReader {
 public:
  // Errors: "FILE: cannot open: REASON".
  static Result<std::unique_ptr<TraceReader>, std::string> open(const std::string& path);
  virtual ~TraceReader();
  TraceReader(const TraceReader&) = delete;
  TraceReader& operator=(const TraceReader&) = delete;

  // The next record in `out`: true, or false at the end of the trace.
  // Errors: "FILE:LINE: what" for a malformed line (also a record repeating its predecessor's
  // kind and page), "FILE: read error: ..." / "FILE: xz: ..." for the stream; the reader
  // stays failed.
  Result<bool, std::string> next(TraceRecord& out);
  [[nodiscard]] std::uint64_t line() const { return line_; }
  [[nodiscard]] const std::string& path() const { return path_; }

 protected:
  explicit TraceReader(std::string path) : path_(std::move(path)) {}
  // Fills `buf` with the next bytes of the decoded stream: how many (0 at the end).
  virtual Result<std::size_t, std::string> fill(char* buf, std::size_t size) = 0;

 private:
  bool refill();
  std::string path_;
  std::unique_ptr<char[]> buf_;
  std::size_t begin_ = 0, end_ = 0;
  bool eof_ = false;
  std::string partial_;  // a line cut by the end of a chunk
  std::string error_;
  std::uint64_t line_ = 0;
  TraceRecord last_{};
  bool have_last_ = false;
};

class TraceWriter {
 public:
  explicit TraceWriter(std::FILE* out) : out_(out) {}
  ~TraceWriter() { flush(); }
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;
  void add(TraceKind kind, std::uint64_t vpn, std::uint64_t count = 1);
  // Writes the record being merged. Errors: none reported here; check ferror(out).
  void flush();
  [[nodiscard]] std::uint64_t records() const { return records_; }

 private:
  std::FILE* out_;
  TraceRecord pending_{};
  bool have_ = false;
  std::uint64_t records_ = 0;
};

}  // namespace vmmu::sim
