// A process-wide bound on bytes held in proxy I/O buffers, with fair shares per domain and per
// source.
//
// Every proxied exchange (an HTTP request/response or an upgraded pipe) needs a fixed pair of
// I/O buffers while it runs. Instead of every connection owning them for its whole life, an
// exchange leases them from one BufferBudget: the lease allocates the memory, and returns both the
// memory and the accounting when it is destroyed. When the budget cannot cover a new lease,
// try_acquire() fails and the caller refuses the exchange (the front door answers 503); nothing
// waits, so a flood of slow visitors cannot make memory grow past the budget.
//
// Shares: a lease is taken for an Owner (the exchange's domain and its visitor's source
// address). The leases of one domain may hold at most `Shares::per_domain` bytes together, those
// of one source at most `Shares::per_source`, so one visitor (or one attacked domain) cannot
// spend the budget that everybody else needs. A key that holds nothing may always take one lease
// (within the total), so a share smaller than one lease still lets every key make progress.
// Per-key accounts exist only while the key holds a lease (erased when they drop to zero): the
// number of accounts is at most the number of live leases.
//
// Released memory is kept for the next lease of the same size (at most kSpareBytes in all, not
// counted in in_use()): an exchange per request would otherwise malloc and free 128 KiB each
// time, which glibc serves with heap growth/trimming and chunk consolidation.
//
// Ownership: a Lease keeps the budget's shared state alive, so leases may outlive the
// BufferBudget object. Threading: not thread-safe; use from one thread (the gateway's
// io_context thread).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hopgate::core {

class BufferBudget {
    // Bytes held per key; looked up by string_view without a temporary string.
    struct KeyHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const {
            return std::hash<std::string_view>{}(s);
        }
    };
    using Accounts = std::unordered_map<std::string, std::size_t, KeyHash, std::equal_to<>>;

    struct State {
        std::size_t limit = 0;
        std::size_t per_domain = 0;
        std::size_t per_source = 0;
        std::size_t in_use = 0;
        std::size_t peak = 0;
        Accounts domains;
        Accounts sources;
        std::array<std::uint64_t, 3> refused{};  // by Refusal
        // Released blocks kept for reuse: (size, memory), at most kSpareBytes together.
        std::vector<std::pair<std::size_t, std::unique_ptr<std::uint8_t[]>>> spare;
        std::size_t spare_bytes = 0;
    };

public:
    static constexpr std::size_t kSpareBytes = 8 * 1024 * 1024;
    static constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();

    // The most bytes the leases of one key may hold together (kUnlimited: no share).
    struct Shares {
        std::size_t per_domain = kUnlimited;
        std::size_t per_source = kUnlimited;
    };
    // Who a lease is for. An empty key is counted against no share.
    struct Owner {
        std::string_view domain;
        std::string_view source;
    };
    // Why try_acquire() refused, the most specific reason first.
    enum class Refusal {
        kSource = 0,  // the owner's source already holds its share
        kDomain = 1,  // the owner's domain already holds its share
        kTotal = 2,   // the budget as a whole is spent
    };

    // `limit_bytes` is the most all live leases may hold together; `shares` what one domain / one
    // source may hold of it (none by default).
    explicit BufferBudget(std::size_t limit_bytes);
    BufferBudget(std::size_t limit_bytes, Shares shares);

    // Move-only handle on `size()` bytes of uninitialised memory, counted against the budget
    // (and its owner's shares) until destroyed.
    class Lease {
    public:
        Lease() = default;
        Lease(Lease&& other) noexcept;
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
        // The owner's accounts (stable: unordered_map nodes do not move), null if not counted.
        Accounts::value_type* domain_ = nullptr;
        Accounts::value_type* source_ = nullptr;
    };

    // A lease of `bytes` for `owner`, or nullopt if it would exceed the limit or a share of the
    // owner (counted in refused(); the reason in last_refusal()).
    std::optional<Lease> try_acquire(std::size_t bytes, Owner owner = {});

    std::size_t limit() const { return state_->limit; }
    Shares shares() const { return {state_->per_domain, state_->per_source}; }
    std::size_t in_use() const { return state_->in_use; }
    std::size_t peak() const { return state_->peak; }
    std::uint64_t refused() const;
    std::uint64_t refused(Refusal why) const { return state_->refused[index(why)]; }
    Refusal last_refusal() const { return last_refusal_; }
    // Bytes the live leases of a domain / a source hold (0 if none).
    std::size_t held_by_domain(std::string_view domain) const;
    std::size_t held_by_source(std::string_view source) const;
    // Keys with live leases (the size of the per-key accounts).
    std::size_t domains() const { return state_->domains.size(); }
    std::size_t sources() const { return state_->sources.size(); }

private:
    static std::size_t index(Refusal r) { return static_cast<std::size_t>(r); }
    std::optional<Lease> refuse(Refusal why);

    std::shared_ptr<State> state_;
    Refusal last_refusal_ = Refusal::kTotal;
};

}  // namespace hopgate::core
