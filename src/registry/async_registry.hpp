// AsyncRegistry: runs blocking Registry calls on a small, bounded worker pool and completes on the
// caller's executor, so network threads never wait for the database.
//
//   async.async_validate(strand, domain, key, [](core::Status st) { ... runs on strand ... });
//   co_await async.async_call(ex, [](Registry& r) { return r.exists(d); }, asio::use_awaitable);
//
// Completion signature: void(R) where R is what the function returns (core::Result<T> or
// core::Status). The handler runs on its associated executor, or on `ex` if it has none.
// Bound: at most `max_pending` calls are queued or running; beyond that a call completes at once
// with Errc::kOverloaded (explicit backpressure, never a silent drop or an unbounded queue).
// Lifetime: the destructor waits for queued and running calls (each bounded by the registry's own
// database timeouts). Destroy the AsyncRegistry before the execution contexts (io_contexts) it
// completes on: a pool thread may still hold a copy of the caller's executor for a moment after
// the handler has run.
#pragma once

#include <atomic>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>

#include "registry/error.hpp"
#include "registry/registry.hpp"

namespace hopgate::registry {

struct AsyncRegistryOptions {
    std::size_t threads = 2;        // database calls running at once
    std::size_t max_pending = 256;  // queued + running calls before kOverloaded
};

class AsyncRegistry {
  public:
    AsyncRegistry(Registry& registry, AsyncRegistryOptions options)
        : reg_(registry),
          max_pending_(options.max_pending == 0 ? 1 : options.max_pending),
          pool_(options.threads == 0 ? 1 : options.threads) {}
    ~AsyncRegistry() { pool_.join(); }
    AsyncRegistry(const AsyncRegistry&) = delete;
    AsyncRegistry& operator=(const AsyncRegistry&) = delete;

    template <class Executor, class Fn, class Token>
    auto async_call(const Executor& ex, Fn fn, Token&& token) {
        using R = std::invoke_result_t<Fn&, Registry&>;
        return boost::asio::async_initiate<Token, void(R)>(
            [this, ex](auto handler, Fn f) {
                auto work = boost::asio::make_work_guard(handler, ex);
                if (!try_reserve()) {
                    auto hex = work.get_executor();
                    boost::asio::post(hex, [h = std::move(handler), w = std::move(work)]() mutable {
                        std::move(h)(R(Errc::kOverloaded));
                    });
                    return;
                }
                boost::asio::post(pool_, [this, h = std::move(handler), f = std::move(f),
                                          w = std::move(work)]() mutable {
                    R result = f(reg_);
                    pending_.fetch_sub(1, std::memory_order_acq_rel);
                    auto hex = w.get_executor();
                    boost::asio::post(
                        hex, [h = std::move(h), r = std::move(result), w = std::move(w)]() mutable {
                            std::move(h)(std::move(r));
                        });
                });
            },
            token, std::move(fn));
    }

    // The tunnel handshake's check: completes with ok, kNotFound, kKeyMismatch, a kDomain*
    // reason, kDbUnavailable or kOverloaded.
    template <class Executor, class Token>
    auto async_validate(const Executor& ex, std::string domain, std::string key, Token&& token) {
        return async_call(
            ex,
            [d = std::move(domain), k = std::move(key)](Registry& r) { return r.validate(d, k); },
            std::forward<Token>(token));
    }

    std::size_t pending() const { return pending_.load(std::memory_order_acquire); }
    Registry& registry() { return reg_; }

  private:
    bool try_reserve() {
        std::size_t cur = pending_.load(std::memory_order_relaxed);
        while (cur < max_pending_) {
            if (pending_.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel)) {
                return true;
            }
        }
        return false;
    }

    Registry& reg_;
    const std::size_t max_pending_;
    std::atomic<std::size_t> pending_{0};
    boost::asio::thread_pool pool_;
};

}  // namespace hopgate::registry
