// JSON-lines logging: one JSON object per line,
//   {"ts":"2026-11-22T19:30:00.123Z","level":"info","msg":"tunnel up","component":"server",
//    "domain":"a.example","rtt_ms":12.5}
//
// Usage:
//   auto out = std::make_shared<LogOutput>(LogLevel::kInfo);      // stderr
//   Logger log(out, "server");
//   log.info("tunnel up", {{"domain", d}, {"rtt_ms", 12.5}, {"streams", n}});
//
// A disabled level costs one relaxed atomic load: fields are non-owning views and nothing is
// formatted. Guard genuinely expensive argument computations with `log.enabled(level)`.
// Thread-safe: the line is formatted without a lock, then written to the sink in one call under
// LogOutput's mutex, so lines never interleave. The sink must not log itself.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/result.hpp"

namespace hopgate::core {

enum class LogLevel : std::uint8_t { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// "debug", "info", "warn", "error".
std::string_view to_string(LogLevel level);
// Case-insensitive "debug" | "info" | "warn" | "warning" | "error" (HOP_LOG_LEVEL).
// Errors: Errc::kInvalidArgument; the caller reports it (e.g. as a ConfigError).
Result<LogLevel> parse_log_level(std::string_view text);

// Appends `s` as a JSON string literal (with quotes). Escapes '"', '\\' and control characters
// (\n \r \t \b \f, others \u00XX); valid UTF-8 passes through; each maximal invalid UTF-8
// subsequence (including surrogates and overlongs) becomes U+FFFD.
void append_json_string(std::string& out, std::string_view s);

// RFC 3339 UTC with milliseconds, e.g. "2026-11-22T19:30:00.123Z" (truncated, not rounded).
std::string format_rfc3339_ms(std::chrono::system_clock::time_point t);

// One key/value pair. Non-owning: views must outlive the logging call (true for temporaries in
// the call's full-expression). Integral values keep their signedness; char and pointers other than
// C strings are rejected at compile time.
class LogField {
public:
    enum class Kind : std::uint8_t { kString, kInt, kUint, kDouble, kBool };

    LogField(std::string_view key, std::string_view v) : key_(key), kind_(Kind::kString), s_(v) {}
    LogField(std::string_view key, const char* v)
        : key_(key), kind_(Kind::kString), s_(v != nullptr ? v : "") {}
    LogField(std::string_view key, const std::string& v)
        : key_(key), kind_(Kind::kString), s_(v) {}
    template <class T>
        requires std::same_as<T, bool>
    LogField(std::string_view key, T v) : key_(key), kind_(Kind::kBool), b_(v) {}
    template <class T>
        requires std::signed_integral<T> && (!std::same_as<T, char>)
    LogField(std::string_view key, T v)
        : key_(key), kind_(Kind::kInt), i_(static_cast<std::int64_t>(v)) {}
    template <class T>
        requires std::unsigned_integral<T> && (!std::same_as<T, bool>) &&
                 (!std::same_as<T, char>)
    LogField(std::string_view key, T v)
        : key_(key), kind_(Kind::kUint), u_(static_cast<std::uint64_t>(v)) {}
    template <class T>
        requires std::floating_point<T>
    LogField(std::string_view key, T v)
        : key_(key), kind_(Kind::kDouble), d_(static_cast<double>(v)) {}

    std::string_view key() const { return key_; }
    Kind kind() const { return kind_; }
    // Appends `"key":value` (NaN and infinities become null).
    void append_to(std::string& out) const;

private:
    std::string_view key_;
    Kind kind_;
    union {
        std::string_view s_;
        std::int64_t i_;
        std::uint64_t u_;
        double d_;
        bool b_;
    };
};

// Receives one complete line, '\n' included.
using LogSink = std::function<void(std::string_view line)>;
using WallClock = std::function<std::chrono::system_clock::time_point()>;

// Writes to stderr (unbuffered) with a single fwrite.
LogSink stderr_sink();

// Formats one line (with trailing '\n'). Exposed for tests and for sinks that re-frame.
std::string format_log_line(std::chrono::system_clock::time_point ts, LogLevel level,
                            std::string_view component, std::string_view msg,
                            std::span<const LogField> fields);
// The same, appended to `out`.
void append_log_line(std::string& out, std::chrono::system_clock::time_point ts, LogLevel level,
                     std::string_view component, std::string_view msg,
                     std::span<const LogField> fields);

// Shared destination of many Loggers: threshold, sink, clock and the write mutex.
// Sink and clock are fixed at construction; the threshold can change at any time.
class LogOutput {
public:
    // Empty sink = stderr_sink(); empty clock = std::chrono::system_clock::now.
    explicit LogOutput(LogLevel threshold = LogLevel::kInfo, LogSink sink = {},
                       WallClock clock = {});
    // Flushes deferred lines.
    ~LogOutput();
    LogOutput(const LogOutput&) = delete;
    LogOutput& operator=(const LogOutput&) = delete;

    void set_level(LogLevel level) { level_.store(level, std::memory_order_relaxed); }
    LogLevel level() const { return level_.load(std::memory_order_relaxed); }
    bool enabled(LogLevel level) const { return level >= this->level(); }

    std::chrono::system_clock::time_point now() const { return clock_(); }
    // Hands `line` to the sink under the mutex (or, deferred, to the buffer). `urgent` lines
    // (warnings and errors) are never deferred: they flush the buffer and go out at once.
    // Exceptions from the sink are swallowed: logging never takes the process down.
    void write(std::string_view line, bool urgent = true);

    // Deferred writing, for a process that logs from one event loop (an access-log line per
    // request): lines collect in a buffer that goes to the sink in one call, so a burst of
    // requests costs one write(2) instead of one each. `schedule` is called, outside the lock,
    // when a line lands in an empty buffer; it must make flush() run soon (post it to the event
    // loop). The buffer is also flushed at 64 KiB, by an urgent line and on destruction. An empty
    // `schedule` flushes and goes back to writing each line at once (call it when the loop ends).
    void set_deferred(std::function<void()> schedule);
    // Hands the buffered lines to the sink.
    void flush();

private:
    static constexpr std::size_t kDeferredLimit = 64 * 1024;
    void flush_locked();

    std::atomic<LogLevel> level_;
    LogSink sink_;
    WallClock clock_;
    std::mutex mu_;
    std::function<void()> schedule_;  // guarded by mu_; empty = not deferred
    std::string pending_;             // guarded by mu_; deferred lines
};

// A cheap, copyable handle: an output plus a component name. A default-constructed Logger
// discards everything (handy for tests of other components).
class Logger {
public:
    Logger() = default;
    Logger(std::shared_ptr<LogOutput> out, std::string component)
        : out_(std::move(out)), component_(std::move(component)) {}

    // Same output, another component name.
    Logger with_component(std::string component) const {
        return Logger(out_, std::move(component));
    }
    const std::string& component() const { return component_; }

    bool enabled(LogLevel level) const { return out_ != nullptr && out_->enabled(level); }

    void log(LogLevel level, std::string_view msg, std::span<const LogField> fields) const {
        if (enabled(level)) {
            emit(level, msg, fields);
        }
    }
    void log(LogLevel level, std::string_view msg,
             std::initializer_list<LogField> fields = {}) const {
        log(level, msg, std::span<const LogField>(fields.begin(), fields.size()));
    }
    void debug(std::string_view msg, std::initializer_list<LogField> fields = {}) const {
        log(LogLevel::kDebug, msg, fields);
    }
    void info(std::string_view msg, std::initializer_list<LogField> fields = {}) const {
        log(LogLevel::kInfo, msg, fields);
    }
    void warn(std::string_view msg, std::initializer_list<LogField> fields = {}) const {
        log(LogLevel::kWarn, msg, fields);
    }
    void error(std::string_view msg, std::initializer_list<LogField> fields = {}) const {
        log(LogLevel::kError, msg, fields);
    }

private:
    void emit(LogLevel level, std::string_view msg, std::span<const LogField> fields) const;

    std::shared_ptr<LogOutput> out_;
    std::string component_;
};

}  // namespace hopgate::core
