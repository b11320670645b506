// Loki push, the I/O half: takes batches from a core::LokiQueue and POSTs them to Loki's push
// API (plain HTTP, Beast) on the process's io_context.
//
//   auto q = std::make_shared<core::LokiQueue>(core::LokiQueue::Limits{});
//   auto out = std::make_shared<core::LogOutput>(level, core::LokiQueue::tee(q, stderr_sink()));
//   ...
//   auto pusher = std::make_shared<net::LokiPusher>(io, settings, q, log);
//   pusher->bind_metrics(registry);   // optional: hopgate_loki_* families
//   pusher->start();
//   io.run();
//   pusher->finish(std::chrono::seconds(2));   // after the loop: bounded final flush
//
// Behaviour: every `interval`, and as soon as batch_lines lines wait, one request carries up to
// batch_lines lines / batch_bytes bytes. A failed push (connection error, timeout, 5xx, 408,
// 429) is retried with the same batch after an exponential backoff (backoff_base doubling up to
// backoff_cap); lines that arrive meanwhile wait in the bounded queue, which drops its oldest
// lines when full. Any other 4xx drops the batch (Loki refused its content; retrying cannot
// help), counted as dropped. Every request has a deadline (request_timeout).
// Threads: start() and the pushes run on the io_context's thread; finish() runs after the loop
// has stopped, on the caller's thread, with its own io_context. The log sink never waits for it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/log.hpp"
#include "core/loki.hpp"
#include "core/metrics.hpp"

namespace hopgate::net {

class LokiPusher : public std::enable_shared_from_this<LokiPusher> {
public:
    // What main() gives finish() at shutdown (SIGTERM): a stop is never held up longer.
    static constexpr std::chrono::milliseconds kFinalFlush{2000};
    struct Options {
        std::chrono::milliseconds interval{1000};
        std::size_t batch_lines = 1000;
        std::size_t batch_bytes = 1024 * 1024;
        std::chrono::milliseconds request_timeout{5000};
        std::chrono::milliseconds backoff_base{500};
        std::chrono::milliseconds backoff_cap{30000};
    };

    LokiPusher(boost::asio::io_context& io, core::LokiSettings settings,
               std::shared_ptr<core::LokiQueue> queue, core::Logger log, Options opt);
    LokiPusher(boost::asio::io_context& io, core::LokiSettings settings,
               std::shared_ptr<core::LokiQueue> queue, core::Logger log)
        : LokiPusher(io, std::move(settings), std::move(queue), std::move(log), Options{}) {}

    ~LokiPusher();
    LokiPusher(const LokiPusher&) = delete;
    LokiPusher& operator=(const LokiPusher&) = delete;

    // Registers hopgate_loki_pushed_lines_total, hopgate_loki_dropped_lines_total,
    // hopgate_loki_push_failures_total and hopgate_loki_queue_lines. Before start().
    void bind_metrics(core::MetricsRegistry& reg);
    void start();
    // Stops the timer; an in-flight request's batch is kept for finish().
    void stop();
    // After the io_context has stopped: pushes the pending batch and the queue for at most
    // `budget` in total (each request's deadline is what is left of it). Returns true when
    // everything queued went out.
    bool finish(std::chrono::milliseconds budget);

    std::uint64_t pushed_lines() const { return pushed_; }
    std::uint64_t failures() const { return failures_total_; }

private:
    void tick();
    void send();
    void on_sent(int status, const std::string& error);
    void arm(std::chrono::milliseconds after);
    void sync_metrics();

    boost::asio::io_context& io_;
    core::LokiSettings settings_;
    std::shared_ptr<core::LokiQueue> queue_;
    core::Logger log_;
    Options opt_;
    boost::asio::steady_timer timer_;
    std::vector<core::LokiEntry> batch_;  // taken from the queue, not yet accepted by Loki
    std::string authorization_;           // "Basic ..." or empty
    bool in_flight_ = false;
    bool stopped_ = false;
    unsigned failures_ = 0;  // consecutive
    std::uint64_t pushed_ = 0;
    std::uint64_t failures_total_ = 0;
    std::uint64_t rejected_ = 0;      // lines in batches Loki refused with a 4xx
    std::uint64_t dropped_seen_ = 0;  // queue drops + rejected_ already added to the counter
    core::Counter* m_pushed_ = nullptr;
    core::Counter* m_dropped_ = nullptr;
    core::Counter* m_failures_ = nullptr;
    core::Gauge* m_queue_ = nullptr;
};

}  // namespace hopgate::net
