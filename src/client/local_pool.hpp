// Keep-alive connection pool to the local HTTP service (plain TCP).
//
// acquire() hands out an idle connection (most recently used first, after a liveness peek unless
// it was released less than kTrustIdle ago) or dials a new one within `connect_timeout`. At most
// `max_connections` are open (handed out, dialing or idle); further acquires wait in FIFO order,
// bounded by the number of exchanges.
// Every acquired socket is given back exactly once with release(): reusable ones join the idle
// list (at most `max_idle`, closed after `idle_timeout`), the rest are closed.
//
// Threading: single-threaded; every call and completion runs on `ex` (the io_context thread
// that also drives the tunnel). Handlers are never invoked inline from acquire().
// Errors: the acquire handler gets the resolve/connect error, or asio::error::timed_out.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace hopgate::client {

namespace asio = boost::asio;

struct PoolOptions {
    std::string host = "127.0.0.1";
    std::uint16_t port = 80;
    std::size_t max_idle = 64;
    std::size_t max_connections = 256;
    std::chrono::milliseconds idle_timeout{30'000};
    std::chrono::milliseconds connect_timeout{5'000};
};

struct PoolStats {
    std::uint64_t connects_total = 0;       // TCP connections established
    std::uint64_t connect_failures_total = 0;
    std::uint64_t reuses_total = 0;         // acquires served from the idle list
    std::uint64_t discarded_total = 0;      // released as not reusable, or idle and dead/expired
    std::size_t open = 0;                   // handed out + dialing + idle
    std::size_t idle = 0;
    std::size_t waiting = 0;
};

class LocalPool : public std::enable_shared_from_this<LocalPool> {
public:
    using Socket = asio::ip::tcp::socket;
    // (error, socket, reused). On error the socket is closed and must not be released.
    using AcquireHandler = std::function<void(boost::system::error_code, Socket, bool)>;

    LocalPool(asio::any_io_executor ex, PoolOptions opts);
    ~LocalPool();
    LocalPool(const LocalPool&) = delete;
    LocalPool& operator=(const LocalPool&) = delete;

    void acquire(AcquireHandler handler);
    // Gives back a socket obtained from acquire(); `reusable` = a complete keep-alive exchange.
    void release(Socket sock, bool reusable);
    // Closes idle connections and fails waiters with operation_aborted.
    void shutdown();

    PoolStats stats() const;
    const PoolOptions& options() const { return opts_; }

private:
    static constexpr std::chrono::milliseconds kTrustIdle{50};
    struct Idle {
        Socket sock;
        std::chrono::steady_clock::time_point since;
    };
    void dial(AcquireHandler handler);
    void serve_waiters();
    void arm_sweep();
    void sweep();
    static bool alive(Socket& s);

    asio::any_io_executor ex_;
    PoolOptions opts_;
    std::deque<Idle> idle_;                 // back = most recently released
    std::deque<AcquireHandler> waiters_;    // bounded by the exchanges in flight
    std::optional<asio::ip::tcp::endpoint> literal_;  // host is an IP address: no resolving
    asio::steady_timer sweep_timer_;
    bool sweep_armed_ = false;
    bool shut_ = false;
    std::size_t open_ = 0;
    PoolStats st_;
};

}  // namespace hopgate::client
