// A bounded pool of database connections (internal to the registry layer).
//
// At most `max_open` connections exist; acquire() waits up to a deadline for one to be free and
// returns kDbUnavailable when it expires, so a stuck database never piles up blocked threads
// without bound. Connections are created lazily and outside the lock. A lease that saw its
// connection break calls discard(); the next acquire() opens a fresh one (that is how PgRegistry
// reconnects after a database restart). Idle connections are checked with `healthy` before reuse.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "core/result.hpp"
#include "registry/error.hpp"

namespace hopgate::registry::detail {

template <class Conn>
class ConnPool {
  public:
    using Factory = std::function<core::Result<std::unique_ptr<Conn>>()>;
    using Healthy = std::function<bool(Conn&)>;

    class Lease {
      public:
        Lease(ConnPool* pool, std::unique_ptr<Conn> conn) : pool_(pool), conn_(std::move(conn)) {}
        Lease(Lease&& o) noexcept
            : pool_(std::exchange(o.pool_, nullptr)), conn_(std::move(o.conn_)) {}
        Lease& operator=(Lease&&) = delete;
        Lease(const Lease&) = delete;
        ~Lease() {
            if (pool_ != nullptr) {
                pool_->give_back(std::move(conn_));
            }
        }
        Conn& operator*() const { return *conn_; }
        Conn* operator->() const { return conn_.get(); }
        // The connection is broken: close it instead of returning it to the pool.
        void discard() { conn_.reset(); }

      private:
        ConnPool* pool_;
        std::unique_ptr<Conn> conn_;
    };

    ConnPool(std::size_t max_open, Factory factory, Healthy healthy)
        : max_open_(max_open == 0 ? 1 : max_open),
          factory_(std::move(factory)),
          healthy_(std::move(healthy)) {}

    core::Result<Lease> acquire(std::chrono::milliseconds timeout) {
        std::unique_lock lock(mu_);
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            while (!idle_.empty()) {
                std::unique_ptr<Conn> c = std::move(idle_.back());
                idle_.pop_back();
                if (!healthy_ || healthy_(*c)) {
                    return Lease(this, std::move(c));
                }
                --open_;  // dropped outside the check; a fresh one may be created below
                lock.unlock();
                c.reset();
                lock.lock();
            }
            if (open_ < max_open_) {
                ++open_;
                lock.unlock();
                auto made = factory_();
                if (!made) {
                    lock.lock();
                    --open_;
                    cv_.notify_one();
                    return made.error();
                }
                return Lease(this, std::move(*made));
            }
            if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
                open_ >= max_open_) {
                return Errc::kDbUnavailable;
            }
        }
    }

    // Closes idle connections (e.g. before shutdown). Leased ones close when returned.
    void close_idle() {
        std::vector<std::unique_ptr<Conn>> drop;
        {
            std::lock_guard lock(mu_);
            open_ -= idle_.size();
            drop.swap(idle_);
        }
    }

    std::size_t open_count() const {
        std::lock_guard lock(mu_);
        return open_;
    }

  private:
    void give_back(std::unique_ptr<Conn> c) {
        {
            std::lock_guard lock(mu_);
            if (c) {
                idle_.push_back(std::move(c));
            } else {
                --open_;
            }
        }
        cv_.notify_one();
    }

    const std::size_t max_open_;
    Factory factory_;
    Healthy healthy_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<Conn>> idle_;
    std::size_t open_ = 0;
};

}  // namespace hopgate::registry::detail
