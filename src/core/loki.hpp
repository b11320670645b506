// Loki push, the sans-I/O half: settings, a bounded line queue fed by the log sink, and the
// batch builder for POST /loki/api/v1/push. The HTTP side is net/loki_pusher.hpp.
//
//   LokiQueue q({.max_lines = 10000, .max_bytes = 4 << 20});
//   LogOutput out(level, q.tee(stderr_sink()));   // every log line also lands in q
//   auto batch = q.take(1000, 1 << 20);            // pusher: oldest lines first
//   std::string body = build_loki_push_body(labels, batch);
//
// Threads: LokiQueue is thread-safe; push() takes one short lock and never waits for I/O.
// Bounds: at most max_lines lines and max_bytes bytes of line text are held; a push to a full
// queue drops the oldest lines (counted by dropped()). A line longer than max_bytes is dropped.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "core/log.hpp"
#include "core/result.hpp"

namespace hopgate::core {

// Adds HOP_LOKI_ENABLE, HOP_LOKI_ENDPOINT, HOP_LOKI_TENANT_ID, HOP_LOKI_USERNAME,
// HOP_LOKI_PASSWORD (secret) and HOP_LOKI_STATIC_LABELS to a binary's schema.
void add_loki_options(ConfigSchema& schema);

// Where to push: http://host[:port][/path]. A base URL (no path or "/") gets /loki/api/v1/push.
struct LokiEndpoint {
    std::string host;
    std::uint16_t port = 80;
    std::string target;  // "/loki/api/v1/push"
};
// Errors: Errc::kInvalidArgument for anything but an http:// URL with a host (https:// is not
// supported: put a local TLS-terminating agent or the plain-HTTP port of Loki in front).
Result<LokiEndpoint> parse_loki_endpoint(std::string_view url);

// "k=v,k2=v2" -> labels. Names must match [a-zA-Z_][a-zA-Z0-9_]*; values are non-empty.
// Errors: Errc::kInvalidArgument.
Result<std::map<std::string, std::string>> parse_loki_labels(std::string_view text);

struct LokiSettings {
    LokiEndpoint endpoint;
    std::string tenant_id;  // X-Scope-OrgID when non-empty
    std::string username;   // Basic auth when non-empty
    std::string password;
    std::map<std::string, std::string> labels;  // app, component and the static labels
};
// From a loaded Config; std::nullopt when HOP_LOKI_ENABLE is off. Throws ConfigError naming the
// setting when it is on and a setting is invalid. `component` is "server" or "client".
std::optional<LokiSettings> loki_settings_from_config(const Config& cfg,
                                                      std::string_view component);

struct LokiEntry {
    std::int64_t ts_ns = 0;  // Unix time, nanoseconds
    std::string line;        // without the trailing '\n'
};

class LokiQueue {
public:
    struct Limits {
        std::size_t max_lines = 10'000;
        std::size_t max_bytes = 4 * 1024 * 1024;
    };
    explicit LokiQueue(Limits limits);

    // Appends every '\n'-terminated line of `text` (a sink may hand over several), stamped `ts`.
    // Drops the oldest lines when full.
    void push(std::string_view text, std::chrono::system_clock::time_point ts);
    // Removes and returns up to max_lines oldest lines whose text totals at most max_bytes (at
    // least one line when the queue is not empty).
    std::vector<LokiEntry> take(std::size_t max_lines, std::size_t max_bytes);

    std::size_t size() const;
    std::size_t bytes() const;
    // Lines dropped because the queue was full (or a line was larger than max_bytes).
    std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

    // `fn` is called (under the queue's lock: it must be quick and must not touch the queue or
    // log; posting to an event loop is fine) whenever a push makes the queue reach
    // `threshold` lines, so a pusher can send a full batch before its timer fires. Empty = none.
    void set_on_full_batch(std::size_t threshold, std::function<void()> fn);

    // A log sink that hands each write to `next` and then to this queue. The queue must outlive
    // the sink (hold it in a shared_ptr).
    static LogSink tee(std::shared_ptr<LokiQueue> q, LogSink next);

private:
    const Limits limits_;
    mutable std::mutex mu_;
    std::deque<LokiEntry> lines_;  // guarded by mu_
    std::size_t bytes_ = 0;        // guarded by mu_
    std::size_t notify_at_ = 0;           // guarded by mu_
    std::function<void()> on_full_batch_;  // guarded by mu_
    std::atomic<std::uint64_t> dropped_{0};
};

// {"streams":[{"stream":{labels},"values":[["<ns>","<line>"],...]}]}
std::string build_loki_push_body(const std::map<std::string, std::string>& labels,
                                 const std::vector<LokiEntry>& entries);

// Retry delay after `failures` consecutive failures: base * 2^(failures-1), capped.
std::chrono::milliseconds loki_backoff(unsigned failures, std::chrono::milliseconds base,
                                       std::chrono::milliseconds cap);

}  // namespace hopgate::core
