#include "core/log.h"

#include <spdlog/formatter.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <memory>
#include <optional>
#include <vector>

namespace netdist::log {
namespace {

// The tags of this thread's open scopes, outermost first.
struct Tags {
  std::string prompt_id;
  std::string worker;
};
thread_local std::vector<Tags> t_scopes;

std::atomic<Level> g_level{Level::info};

std::string_view level_name(Level level) {
  switch (level) {
    case Level::trace: return "trace";
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
    case Level::off: return "off";
  }
  return "?";
}

std::optional<Level> parse_level(std::string_view s) {
  for (Level l : {Level::trace, Level::debug, Level::info, Level::warn, Level::error, Level::off}) {
    if (s == level_name(l)) return l;
  }
  return std::nullopt;
}

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::trace: return spdlog::level::trace;
    case Level::debug: return spdlog::level::debug;
    case Level::info: return spdlog::level::info;
    case Level::warn: return spdlog::level::warn;
    case Level::error: return spdlog::level::err;
    case Level::off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

Level from_spdlog(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace: return Level::trace;
    case spdlog::level::debug: return Level::debug;
    case spdlog::level::info: return Level::info;
    case spdlog::level::warn: return Level::warn;
    case spdlog::level::err:
    case spdlog::level::critical: return Level::error;
    default: return Level::off;
  }
}

// The innermost non-empty value of each tag on this thread.
Tags current_tags() {
  Tags out;
  for (auto it = t_scopes.rbegin(); it != t_scopes.rend(); ++it) {
    if (out.prompt_id.empty() && !it->prompt_id.empty()) out.prompt_id = it->prompt_id;
    if (out.worker.empty() && !it->worker.empty()) out.worker = it->worker;
  }
  return out;
}

void append(spdlog::memory_buf_t& dest, std::string_view s) { dest.append(s.data(), s.data() + s.size()); }

// Length of the valid UTF-8 sequence starting at s[i], or 0 when the byte there does not start one.
size_t utf8_length(std::string_view s, size_t i) {
  auto b = static_cast<unsigned char>(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 0;
  }
  return n;
}

// A JSON string literal for s; bytes that are not valid UTF-8 become U+FFFD so every line parses.
void append_json_string(spdlog::memory_buf_t& dest, std::string_view s) {
  dest.push_back('"');
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    size_t n = utf8_length(s, i);
    if (n == 0) {
      append(dest, "\\ufffd");
      ++i;
      continue;
    }
    if (c == '"' || c == '\\') {
      dest.push_back('\\');
      dest.push_back(c);
    } else if (c == '\n') {
      append(dest, "\\n");
    } else if (c == '\t') {
      append(dest, "\\t");
    } else if (static_cast<unsigned char>(c) < 0x20) {
      append(dest, fmt::format("\\u{:04x}", static_cast<unsigned>(c)));
    } else {
      append(dest, s.substr(i, n));
    }
    i += n;
  }
  dest.push_back('"');
}

// 2026-12-07T12:00:00.123Z
std::string utc_time(spdlog::log_clock::time_point t) {
  auto since = t.time_since_epoch();
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(since);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since - secs).count();
  std::time_t tt = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms));
}

// Formats one line in the text or JSON format. Runs on the logging thread (the logger is synchronous), so
// it reads that thread's scopes.
class LineFormatter final : public spdlog::formatter {
 public:
  explicit LineFormatter(Format format) : format_(format) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    Tags tags = current_tags();
    std::string_view text(msg.payload.data(), msg.payload.size());
    std::string_view level = level_name(from_spdlog(msg.level));
    if (format_ == Format::json) {
      append(dest, "{\"time\":\"" + utc_time(msg.time) + "\",\"level\":\"");
      append(dest, level);
      append(dest, "\",\"msg\":");
      append_json_string(dest, text);
      if (!tags.prompt_id.empty()) append(dest, ",\"prompt_id\":"), append_json_string(dest, tags.prompt_id);
      if (!tags.worker.empty()) append(dest, ",\"worker\":"), append_json_string(dest, tags.worker);
      append(dest, "}\n");
      return;
    }
    append(dest, utc_time(msg.time));
    dest.push_back(' ');
    append(dest, level);
    dest.push_back(' ');
    if (!tags.prompt_id.empty() || !tags.worker.empty()) {
      std::string tag = "[";
      if (!tags.prompt_id.empty()) tag += "prompt=" + tags.prompt_id;
      if (!tags.worker.empty()) tag += std::string(tag.size() > 1 ? " " : "") + "worker=" + tags.worker;
      append(dest, tag + "] ");
    }
    append(dest, text);
    dest.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<LineFormatter>(format_); }

 private:
  Format format_;
};

// The process's logger: not in spdlog's registry, never destroyed (so messages from static destructors and
// ND_ASSERT during exit still go out). Its own level stays at trace; filtering happens in enabled().
spdlog::logger& logger() {
  static spdlog::logger* l = [] {
    auto* made = new spdlog::logger("netdist", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    made->set_level(spdlog::level::trace);
    made->set_formatter(std::make_unique<LineFormatter>(Format::text));
    return made;
  }();
  return *l;
}

}  // namespace

Status configure(std::string_view level, std::string_view format) {
  std::optional<Level> lv = parse_level(level);
  if (!lv) {
    return Status::invalid_argument("--log-level: '" + std::string(level) +
                                    "' is not one of trace, debug, info, warn, error, off");
  }
  Format fm;
  if (format == "text") {
    fm = Format::text;
  } else if (format == "json") {
    fm = Format::json;
  } else {
    return Status::invalid_argument("--log-format: '" + std::string(format) + "' is not one of text, json");
  }
  logger().set_formatter(std::make_unique<LineFormatter>(fm));
  g_level.store(*lv);
  return Status::ok();
}

Scope::Scope(std::string prompt_id, std::string worker) {
  t_scopes.push_back(Tags{std::move(prompt_id), std::move(worker)});
}

Scope::~Scope() { t_scopes.pop_back(); }

namespace detail {

bool enabled(Level level) {
  Level min = g_level.load(std::memory_order_relaxed);
  return level != Level::off && min != Level::off && level >= min;
}

void write(Level level, std::string_view message) {
  if (level == Level::off) return;
  logger().log(to_spdlog(level), spdlog::string_view_t(message.data(), message.size()));
  logger().flush();
}

}  // namespace detail
}  // namespace netdist::log
