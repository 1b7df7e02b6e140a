// netdist::log: the one logging facility (spdlog underneath). Every diagnostic goes through it, to stderr.
//
// Levels: trace < debug < info < warn < error; `off` silences everything. configure() takes the spellings of
// --log-level (trace|debug|info|warn|error|off) and --log-format (text|json). Before configure() is called,
// messages go out at level info in the text format.
//
// Text lines:  2026-12-07T12:00:00.123Z warn [prompt=abc worker=w1] message
// JSON lines:  {"time":"2026-12-07T12:00:00.123Z","level":"warn","msg":"message","prompt_id":"abc","worker":"w1"}
//              (one object per line; prompt_id/worker only when tagged). Time is UTC, millisecond precision.
//
// Tags: a log::Scope tags every message logged on its thread while it lives. Scopes nest; for each tag the
// innermost scope with a non-empty value wins. Tags never cross threads (a thread a scope's owner starts is
// untagged unless it opens its own Scope).
//
// Thread-safety: every function may be called from any thread; lines never interleave. configure() may be
// called again at any time (it replaces level and format for all threads).
#pragma once

#include <spdlog/fmt/fmt.h>

#include <string>
#include <string_view>
#include <utility>

#include "core/status.h"

namespace netdist::log {

enum class Level { trace, debug, info, warn, error, off };
enum class Format { text, json };

// From --log-level (trace|debug|info|warn|error|off) and --log-format (text|json). invalid_argument naming
// the bad value. Safe to call again; messages before configure() go out at info, text.
Status configure(std::string_view level, std::string_view format);

// Tags every message logged on this thread while it lives (nested scopes: innermost non-empty wins).
class Scope {
 public:
  Scope(std::string prompt_id, std::string worker);  // either may be empty
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
};

namespace detail {
// True when a message at `level` would be written (so the formatting can be skipped otherwise).
bool enabled(Level level);
// Writes one message with this thread's tags, whatever the level (callers check enabled() first;
// ND_ASSERT's path calls it directly so that an assertion always prints before the abort).
void write(Level level, std::string_view message);
template <class... A>
void log(Level level, fmt::format_string<A...> f, A&&... a) {
  if (!enabled(level)) return;
  write(level, fmt::format(f, std::forward<A>(a)...));
}
}  // namespace detail

// fmt-style formatting (spdlog's bundled fmt): log::info("worker {} lost: {}", name, why);
template <class... A>
void trace(fmt::format_string<A...> f, A&&... a) { detail::log(Level::trace, f, std::forward<A>(a)...); }
template <class... A>
void debug(fmt::format_string<A...> f, A&&... a) { detail::log(Level::debug, f, std::forward<A>(a)...); }
template <class... A>
void info(fmt::format_string<A...> f, A&&... a) { detail::log(Level::info, f, std::forward<A>(a)...); }
template <class... A>
void warn(fmt::format_string<A...> f, A&&... a) { detail::log(Level::warn, f, std::forward<A>(a)...); }
template <class... A>
void error(fmt::format_string<A...> f, A&&... a) { detail::log(Level::error, f, std::forward<A>(a)...); }

}  // namespace netdist::log
