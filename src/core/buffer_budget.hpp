// A process-wide bound on bytes held in proxy I/O buffers.
//
// Every proxied exchange (an HTTP request/response or an upgraded pipe) needs a fixed pair of
// I/O buffers while it runs. Instead of every connection owning them for its whole life, an
// exchange leases them from one BufferBudget: the lease allocates the memory, and returns both the
// memory and the accounting when it is destroyed. When the budget cannot cover a new lease,
// try_acquire() fails and the caller refuses the exchange (the front door answers 503); nothing
// waits, so a flood of slow visitors cannot make memory grow past the budget.
//
// Released memory is kept for the next lease of the same size (at most kSpareBytes in all, not
// counted in in_use()): an exchange per request would otherwise malloc and free 128 KiB each
// time, which glibc serves with heap growth/trimming and chunk consolidation.
//
// Ownership: a Lease keeps the budget's shared state alive, so leases may outlive the
// BufferBudget object. Threading: not thread-safe; use from one thread (the gateway's
// io_context thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace hopgate::core {

class BufferBudget {
    struct State {
        std::size_t limit = 0;
        std::size_t in_use = 0;
        std::size_t peak = 0;
        std::uint64_t refused = 0;
        // Released blocks kept for reuse: (size, memory), at most kSpareBytes together.
        std::vector<std::pair<std::size_t, std::unique_ptr<std::uint8_t[]>>> spare;
        std::size_t spare_bytes = 0;
    };

public:
    static constexpr std::size_t kSpareBytes = 8 * 1024 * 1024;

    // `limit_bytes` is the most all live leases may hold together.
    explicit BufferBudget(std::size_t limit_bytes);

    // Move-only handle on `size()` bytes of uninitialised memory, counted against the budget
    // until destroyed.
    class Lease {
    public:
        Lease() = default;
        Lease(Lease&&) noexcept = default;
        Lease& operator=(Lease&& other) noexcept;
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        ~Lease();

        std::span<std::uint8_t> bytes() const { return {data_.get(), size_}; }
        std::size_t size() const { return size_; }

    private:
        friend class BufferBudget;
        void release();
        std::shared_ptr<State> state_;
        std::unique_ptr<std::uint8_t[]> data_;
        std::size_t size_ = 0;
    };

    // A lease of `bytes`, or nullopt (counted in refused()) if it would exceed the limit.
    std::optional<Lease> try_acquire(std::size_t bytes);

    std::size_t limit() const { return state_->limit; }
    std::size_t in_use() const { return state_->in_use; }
    std::size_t peak() const { return state_->peak; }
    std::uint64_t refused() const { return state_->refused; }

private:
    std::shared_ptr<State> state_;
};

}  // namespace hopgate::core
