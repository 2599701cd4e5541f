#include "batch.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <ostream>
#include <system_error>

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json_writer.hpp"

namespace vmmu::cli {

std::string to_string(const CaseLocation& where) {
  if (where.line == 0) return std::string(where.file);
  return fmt::format("{}:{}", where.file, where.line);
}

std::string to_string(const InputError& error) {
  switch (error.kind) {
    case InputErrorKind::CannotOpen: return fmt::format("{}: cannot open: {}", error.file, error.detail);
    case InputErrorKind::IsDirectory: return fmt::format("{}: is a directory, not a case file", error.file);
    case InputErrorKind::ReadFailed: return fmt::format("{}: cannot read: {}", error.file, error.detail);
  }
  return error.file;
}

bool is_batch_path(std::string_view path) {
  constexpr std::string_view kExt = ".jsonl";
  return path.size() >= kExt.size() && path.substr(path.size() - kExt.size()) == kExt;
}

Result<std::string, InputError> read_file(const std::string& path) {
  struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  const bool stdin_path = path == "-";
  std::unique_ptr<std::FILE, FileCloser> f(stdin_path ? fdopen(dup(STDIN_FILENO), "rb") : std::fopen(path.c_str(), "rb"));
  if (!f) return Unexpected{InputError{InputErrorKind::CannotOpen, path, std::strerror(errno)}};
  struct stat st {};
  if (fstat(fileno(f.get()), &st) == 0 && S_ISDIR(st.st_mode)) {
    return Unexpected{InputError{InputErrorKind::IsDirectory, path, ""}};
  }
  std::string contents;
  if (st.st_size > 0) contents.reserve(static_cast<std::size_t>(st.st_size));
  char buf[1 << 16];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) contents.append(buf, n);
  if (std::ferror(f.get()) != 0) {
    const int e = errno;
    if (e == EISDIR) return Unexpected{InputError{InputErrorKind::IsDirectory, path, ""}};
    return Unexpected{InputError{InputErrorKind::ReadFailed, path, std::strerror(e)}};
  }
  return contents;
}

void for_each_case(std::string_view file, std::string_view contents, bool batch,
                   const std::function<void(const CaseLocation&, std::string_view text)>& visit) {
  if (!batch) {
    visit(CaseLocation{file, 0}, contents);
    return;
  }
  std::size_t line = 0;
  while (!contents.empty()) {
    ++line;
    const std::size_t nl = contents.find('\n');
    std::string_view text = contents.substr(0, nl);
    contents.remove_prefix(nl == std::string_view::npos ? contents.size() : nl + 1);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    visit(CaseLocation{file, line}, text);
  }
}

std::string error_line(std::string_view message) {
  JsonWriter w;
  w.begin_object().key("error").string(message).end_object();
  return w.take();
}

Result<std::string, std::string> answer_case_text(std::string_view text, const CaseLocation& where,
                                                  const CaseAnswerer& answer) {
  auto fail = [&](const CaseError& e) { return Unexpected{fmt::format("{}: {}", to_string(where), to_string(e))}; };
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return fail(CaseError{CaseErrorKind::Syntax, "", where.line == 0 ? "empty file" : "empty line"});
  }
  auto doc = parse_case_text(text);
  if (!doc) return fail(doc.error());
  auto result = answer(*doc);
  if (!result) return fail(result.error());
  return std::move(*result);
}

AnswerCounts visit_answers(std::span<const std::string> paths, const LocatedAnswerer& answer,
                           const CaseOutput& answered, const CaseOutput& failed, std::ostream& err,
                           std::string_view command) {
  AnswerCounts counts;
  for (const std::string& path : paths) {
    auto contents = read_file(path);
    if (!contents) {
      ++counts.unreadable_files;
      err << "vmmu " << command << ": " << to_string(contents.error()) << '\n';
      failed(CaseLocation{path, 0}, to_string(contents.error()));
      continue;
    }
    for_each_case(path, *contents, is_batch_path(path), [&](const CaseLocation& where, std::string_view text) {
      auto line = answer_case_text(text, where, [&](const Json& doc) { return answer(doc, where); });
      if (line) {
        ++counts.answered;
        answered(where, *line);
        return;
      }
      ++counts.malformed;
      err << "vmmu " << command << ": " << line.error() << '\n';
      failed(where, line.error());
    });
  }
  return counts;
}

AnswerCounts answer_cases(std::span<const std::string> paths, const CaseAnswerer& answer, std::ostream& out,
                          std::ostream& err, std::string_view command) {
  const AnswerCounts counts = visit_answers(
      paths, [&](const Json& doc, const CaseLocation&) { return answer(doc); },
      [&](const CaseLocation&, const std::string& line) { out << line << '\n'; },
      [&](const CaseLocation&, const std::string& message) { out << error_line(message) << '\n'; }, err, command);
  out.flush();
  return counts;
}

}  // namespace vmmu::cli
