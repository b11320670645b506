#include "client/local_pool.hpp"

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>

namespace hopgate::client {

using boost::system::error_code;
using tcp = asio::ip::tcp;

LocalPool::LocalPool(asio::any_io_executor ex, PoolOptions opts)
    : ex_(std::move(ex)), opts_(std::move(opts)), sweep_timer_(ex_) {
    error_code ec;
    const auto addr = asio::ip::make_address(opts_.host, ec);
    if (!ec) {
        literal_ = tcp::endpoint(addr, opts_.port);
    }
}

LocalPool::~LocalPool() { shutdown(); }

void LocalPool::acquire(AcquireHandler handler) {
    if (shut_) {
        asio::post(ex_, [h = std::move(handler), ex = ex_]() mutable {
            h(asio::error::operation_aborted, Socket(ex), false);
        });
        return;
    }
    // Most recently used first: the likeliest to still be open on the service's side.
    while (!idle_.empty()) {
        Idle it = std::move(idle_.back());
        idle_.pop_back();
        const auto idle_for = std::chrono::steady_clock::now() - it.since;
        // A connection idle for less than kTrustIdle is used without the liveness peek (one
        // system call per request under load): a service closing (or sending a 408) on an idle
        // connection does so after its keep-alive timeout, not within milliseconds of a
        // response, and one that closes anyway is caught as a stale connection and retried.
        if (idle_for < opts_.idle_timeout && (idle_for < kTrustIdle || alive(it.sock))) {
            ++st_.reuses_total;
            asio::post(ex_, [h = std::move(handler), s = std::move(it.sock)]() mutable {
                h({}, std::move(s), true);
            });
            return;
        }
        error_code ignored;
        it.sock.close(ignored);
        --open_;
        ++st_.discarded_total;
    }
    if (open_ >= opts_.max_connections) {
        waiters_.push_back(std::move(handler));
        return;
    }
    dial(std::move(handler));
}

// A pooled connection is dead if the service closed it (readable EOF) or sent stray bytes
// (a keep-alive connection must be silent between exchanges). Non-blocking peek, no syscall
// beyond one recv.
bool LocalPool::alive(Socket& s) {
    char byte = 0;
    const ssize_t n = ::recv(s.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void LocalPool::dial(AcquireHandler handler) {
    ++open_;
    struct Attempt {
        Attempt(const asio::any_io_executor& e) : resolver(e), sock(e), timer(e) {}
        tcp::resolver resolver;
        Socket sock;
        asio::steady_timer timer;
        bool finished = false;
        AcquireHandler handler;
    };
    auto a = std::make_shared<Attempt>(ex_);
    a->handler = std::move(handler);
    std::weak_ptr<LocalPool> weak = weak_from_this();
    auto finish = [weak, a](error_code ec) {
        if (a->finished) {
            return;
        }
        a->finished = true;
        a->timer.cancel();
        a->resolver.cancel();
        auto self = weak.lock();
        if (ec) {
            error_code ignored;
            a->sock.close(ignored);
            if (self) {
                --self->open_;
                ++self->st_.connect_failures_total;
                self->serve_waiters();
            }
            a->handler(ec, std::move(a->sock), false);
            return;
        }
        if (self) {
            ++self->st_.connects_total;
        }
        error_code ignored;
        a->sock.set_option(tcp::no_delay(true), ignored);
        a->handler({}, std::move(a->sock), false);
    };
    a->timer.expires_after(opts_.connect_timeout);
    a->timer.async_wait([a, finish](error_code ec) {
        if (!ec) {
            error_code ignored;
            a->sock.close(ignored);
            finish(asio::error::timed_out);
        }
    });
    if (literal_) {
        // An IP literal needs no resolver (getaddrinfo runs on a helper thread).
        a->sock.async_connect(*literal_, [finish](error_code cec) { finish(cec); });
        return;
    }
    a->resolver.async_resolve(
        opts_.host, std::to_string(opts_.port),
        [a, finish](error_code ec, const tcp::resolver::results_type& results) {
            if (a->finished) {
                return;
            }
            if (ec) {
                finish(ec);
                return;
            }
            asio::async_connect(a->sock, results,
                                [finish](error_code cec, const tcp::endpoint&) { finish(cec); });
        });
}

void LocalPool::release(Socket sock, bool reusable) {
    if (reusable && !shut_ && sock.is_open() && (idle_.size() < opts_.max_idle || !waiters_.empty())) {
        if (!waiters_.empty()) {
            // Hand it straight to the oldest waiter (it stays counted in open_).
            auto h = std::move(waiters_.front());
            waiters_.pop_front();
            ++st_.reuses_total;
            asio::post(ex_, [h = std::move(h), s = std::move(sock)]() mutable {
                h({}, std::move(s), true);
            });
            return;
        }
        idle_.push_back(Idle{std::move(sock), std::chrono::steady_clock::now()});
        arm_sweep();
        return;
    }
    error_code ignored;
    sock.close(ignored);
    --open_;
    ++st_.discarded_total;
    serve_waiters();
}

void LocalPool::serve_waiters() {
    while (!waiters_.empty() && open_ < opts_.max_connections && !shut_) {
        auto h = std::move(waiters_.front());
        waiters_.pop_front();
        dial(std::move(h));
    }
}

void LocalPool::arm_sweep() {
    if (sweep_armed_ || idle_.empty()) {
        return;
    }
    sweep_armed_ = true;
    // Half the idle timeout: an idle connection lives at most 1.5x idle_timeout.
    sweep_timer_.expires_after(std::max<std::chrono::milliseconds>(
        opts_.idle_timeout / 2, std::chrono::milliseconds(100)));
    std::weak_ptr<LocalPool> weak = weak_from_this();
    sweep_timer_.async_wait([weak](error_code ec) {
        auto self = weak.lock();
        if (!self) {
            return;
        }
        self->sweep_armed_ = false;
        if (!ec) {
            self->sweep();
        }
    });
}

void LocalPool::sweep() {
    const auto now = std::chrono::steady_clock::now();
    std::deque<Idle> keep;
    for (auto& it : idle_) {
        if (now - it.since < opts_.idle_timeout && alive(it.sock)) {
            keep.push_back(std::move(it));
        } else {
            error_code ignored;
            it.sock.close(ignored);
            --open_;
            ++st_.discarded_total;
        }
    }
    idle_ = std::move(keep);
    serve_waiters();
    arm_sweep();
}

void LocalPool::shutdown() {
    shut_ = true;
    error_code ignored;
    sweep_timer_.cancel();
    for (auto& it : idle_) {
        it.sock.close(ignored);
        --open_;
    }
    idle_.clear();
    auto waiters = std::move(waiters_);
    waiters_.clear();
    for (auto& h : waiters) {
        asio::post(ex_, [h = std::move(h), ex = ex_]() mutable {
            h(asio::error::operation_aborted, Socket(ex), false);
        });
    }
}

PoolStats LocalPool::stats() const {
    PoolStats s = st_;
    s.open = open_;
    s.idle = idle_.size();
    s.waiting = waiters_.size();
    return s;
}

}  // namespace hopgate::client
