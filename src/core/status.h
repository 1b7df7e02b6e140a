// Status and Result<T>: how every fallible operation reports failure (LevelDB style).
//
// Anything a user, a file or the network can get wrong returns a Status (or Result<T>) whose message
// names the thing that is wrong ("model.safetensors: header is 12 bytes, file is 8"). Invariants use
// ND_ASSERT, which aborts with a message. No exceptions cross module boundaries.
// Thread-safety: Status and Result are values; distinct objects may be used from distinct threads.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace netdist {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // the caller's input is wrong (bad JSON, bad option value)
  kNotFound,         // a named thing does not exist (file, tensor, prompt id)
  kCorruption,       // stored data is malformed (truncated file, bad header)
  kIoError,          // the OS refused (open, read, write, disk full)
  kUnsupported,      // well-formed but not handled (unknown dtype, model family)
  kOutOfMemory,      // an allocation failed (CPU or GPU)
  kUnavailable,      // a peer is unreachable or gone
  kUnauthenticated,  // missing or wrong credentials
  kCancelled,        // interrupted by request
  kInternal,         // a bug or an unexpected library failure
};

std::string_view status_code_name(StatusCode code);

// Writes "netdist: <message>" as an error through core/log.h, whatever --log-level says (so the message
// always prints), and aborts. Used by ND_ASSERT and by Result's misuse checks.
[[noreturn]] void fatal(const std::string& message);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  static Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
  static Status io_error(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
  static Status out_of_memory(std::string m) { return {StatusCode::kOutOfMemory, std::move(m)}; }
  static Status unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status unauthenticated(std::string m) { return {StatusCode::kUnauthenticated, std::move(m)}; }
  static Status cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "corruption: model.safetensors: header length 9e9 exceeds 100000000"
  std::string to_string() const;

  // Returns a copy whose message is "context: message"; OK stays OK.
  Status with_context(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Result<T> holds either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (status_.is_ok()) fatal("Result constructed from an OK Status without a value");
  }

  bool is_ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Result*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &const_cast<Result*>(this)->checked(); }
  T& operator*() & { return checked(); }

 private:
  T& checked() {
    if (!value_) fatal("value() on a failed Result: " + status_.to_string());
    return *value_;
  }
  Status status_;
  std::optional<T> value_;
};

[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const std::string& message);

}  // namespace netdist

// Invariant check: aborts with the expression, location and a message. Not for user input.
#define ND_ASSERT(cond, msg)                                              \
  do {                                                                    \
    if (!(cond)) ::netdist::assert_fail(#cond, __FILE__, __LINE__, (msg)); \
  } while (0)

// Propagates a non-OK Status from an expression returning Status.
#define ND_RETURN_IF_ERROR(expr)                 \
  do {                                           \
    ::netdist::Status nd_status_ = (expr);       \
    if (!nd_status_.is_ok()) return nd_status_;  \
  } while (0)

#define ND_CONCAT_INNER(a, b) a##b
#define ND_CONCAT(a, b) ND_CONCAT_INNER(a, b)
// ND_ASSIGN_OR_RETURN(auto x, f()): binds the value of a Result or returns its Status.
#define ND_ASSIGN_OR_RETURN(lhs, expr) ND_ASSIGN_OR_RETURN_IMPL(ND_CONCAT(nd_result_, __LINE__), lhs, expr)
#define ND_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.is_ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
