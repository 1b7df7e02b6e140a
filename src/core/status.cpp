#include "core/status.h"

#include <cstdlib>

#include "core/log.h"

namespace netdist {

std::string_view status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kCorruption: return "corruption";
    case StatusCode::kIoError: return "I/O error";
    case StatusCode::kUnsupported: return "unsupported";
    case StatusCode::kOutOfMemory: return "out of memory";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kUnauthenticated: return "unauthenticated";
    case StatusCode::kCancelled: return "cancelled";
    case StatusCode::kInternal: return "internal error";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  std::string out(status_code_name(code_));
  out += ": ";
  out += message_;
  return out;
}

Status Status::with_context(std::string_view context) const {
  if (is_ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return Status(code_, std::move(m));
}

void fatal(const std::string& message) {
  // Through the log whatever --log-level says (the message always prints before the abort), in its format.
  log::detail::write(log::Level::error, "netdist: " + message);
  std::abort();
}

void assert_fail(const char* expr, const char* file, int line, const std::string& message) {
  fatal(std::string("assertion failed: ") + expr + " (" + file + ":" + std::to_string(line) + "): " + message);
}

}  // namespace netdist
