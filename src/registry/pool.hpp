// A bounded pool of database connections (internal to the registry layer).
//
// At most `max_open` connections exist; acquire() waits up to a deadline for one to be free and
// returns kDbUnavailable when it expires, so a stuck database never piles up blocked threads
// without bound. Connections are created lazily and outside the lock. A lease that saw its
// connection break calls discard(); the next acquire() opens a fresh one (that is how PgRegistry
// reconnects after a database restart). Idle connections are checked with `healthy` before reuse.
// Like Go's database/sql (HOP_DB_MAX_IDLE_CONNS, HOP_DB_CONN_MAX_LIFETIME): at most `max_idle`
// connections are kept while unused (the rest close when returned), and a connection older than
// `max_lifetime` (0 = unlimited) is closed instead of being reused, so a database fail-over or a
// proxy's connection limits are picked up without a restart.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
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
        void discard() {
            if (pool_ != nullptr && conn_) {
                pool_->forget(conn_.get());
            }
            conn_.reset();
        }

      private:
        ConnPool* pool_;
        std::unique_ptr<Conn> conn_;
    };

    using Clock = std::chrono::steady_clock;

    ConnPool(std::size_t max_open, Factory factory, Healthy healthy,
             std::size_t max_idle = static_cast<std::size_t>(-1),
             std::chrono::seconds max_lifetime = std::chrono::seconds(0))
        : max_open_(max_open == 0 ? 1 : max_open),
          max_idle_(max_idle),
          max_lifetime_(max_lifetime),
          factory_(std::move(factory)),
          healthy_(std::move(healthy)) {}

    core::Result<Lease> acquire(std::chrono::milliseconds timeout) {
        std::unique_lock lock(mu_);
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            while (!idle_.empty()) {
                std::unique_ptr<Conn> c = std::move(idle_.back());
                idle_.pop_back();
                if (!expired(c.get()) && (!healthy_ || healthy_(*c))) {
                    return Lease(this, std::move(c));
                }
                born_.erase(c.get());
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
                lock.lock();
                born_[made->get()] = Clock::now();
                lock.unlock();
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
            for (const auto& c : idle_) {
                born_.erase(c.get());
            }
            drop.swap(idle_);
        }
    }

    std::size_t open_count() const {
        std::lock_guard lock(mu_);
        return open_;
    }

  private:
    void give_back(std::unique_ptr<Conn> c) {
        std::unique_ptr<Conn> drop;
        {
            std::lock_guard lock(mu_);
            if (c && idle_.size() < max_idle_ && !expired(c.get())) {
                idle_.push_back(std::move(c));
            } else {
                --open_;
                if (c) {
                    born_.erase(c.get());
                }
                drop = std::move(c);  // closed outside the lock
            }
        }
        cv_.notify_one();
    }

    void forget(const Conn* c) {
        std::lock_guard lock(mu_);
        born_.erase(c);
    }

    // Under mu_.
    bool expired(const Conn* c) const {
        if (max_lifetime_.count() <= 0) {
            return false;
        }
        auto it = born_.find(c);
        return it != born_.end() && Clock::now() - it->second >= max_lifetime_;
    }

    const std::size_t max_open_;
    const std::size_t max_idle_;
    const std::chrono::seconds max_lifetime_;
    std::unordered_map<const Conn*, Clock::time_point> born_;  // every open connection
    Factory factory_;
    Healthy healthy_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<Conn>> idle_;
    std::size_t open_ = 0;
};

}  // namespace hopgate::registry::detail
