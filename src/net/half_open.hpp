// Admission of DTLS handshakes in progress ("half-open" sessions) on the server: the decision
// part of DtlsServer, without sockets or OpenSSL (unit-tested on its own).
//
// The stateless cookie exchange proves only that a peer receives at its address; one host with
// many source ports passes it once per port. Without more, 1024 silent ports of one address
// fill the server's half-open table for a whole handshake timeout and every other client's
// handshake is dropped. The table therefore bounds:
//   - half-open sessions per source (IPv4 /32, IPv6 /64): at the cap, the source's oldest
//     session is evicted when it is at least `same_source_min_age` old (a stale or abandoned
//     attempt of that source makes room for its newest one), otherwise the newcomer is refused
//     (a burst of genuine clients behind one NAT finishes within that time, and the refused
//     ones retransmit their ClientHello);
//   - all half-open sessions: from half full on, sessions older than `pressure_age` are evicted,
//     oldest first, before a newcomer is admitted (shorter handshake timeouts under pressure, so
//     many sources that each stay under their cap cannot hold every slot for long either); when
//     it is still full, the newcomer is refused.
// A refused peer's ClientHello is dropped; its DTLS stack retransmits it (1 s, then doubling).
//
// Ids are the caller's (the session's connection ID). Threading: not thread-safe; one strand.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "core/time.hpp"

namespace hopgate::net {

// The part of a peer address a per-source limit counts: IPv4 /32 (also when it arrives as an
// IPv4-mapped IPv6 address on a dual-stack socket), IPv6 /64. Other families map to one key.
struct SourceKey {
    std::array<std::uint8_t, 9> bytes{};  // family tag, then 4 or 8 address bytes
    bool operator==(const SourceKey&) const = default;
};

struct SourceKeyHash {
    std::size_t operator()(const SourceKey& k) const;
};

SourceKey source_key(const sockaddr_storage& addr);

struct HalfOpenLimits {
    std::size_t max_total = 1024;
    std::size_t max_per_source = 16;
    // From half full on, sessions at least this old are evicted to admit a newcomer.
    core::Duration pressure_age = std::chrono::seconds(2);
    // At the per-source cap, the source's oldest session is evicted only when at least this old.
    core::Duration same_source_min_age = std::chrono::seconds(1);
};

class HalfOpenTable {
  public:
    enum class Verdict {
        kAdmit,         // evict `evict` (if any), then add() the newcomer
        kRefuseSource,  // the source is at its cap with only young sessions
        kRefuseFull,    // the table is full of sessions younger than `pressure_age`
    };

    struct Admission {
        Verdict verdict = Verdict::kAdmit;
        // Sessions the caller must end (and remove()) before add(); oldest first.
        std::vector<std::uint64_t> evict;
    };

    struct Stats {
        std::uint64_t evicted_same_source = 0;  // oldest of a source at its cap
        std::uint64_t evicted_pressure = 0;     // older than pressure_age, table over half full
        std::uint64_t refused_source = 0;
        std::uint64_t refused_full = 0;
    };

    explicit HalfOpenTable(HalfOpenLimits limits) : limits_(limits) {}

    // Decides on a new handshake from `src` at `now`. Nothing changes in the table: the caller
    // ends the sessions in `evict` (each calling remove()) and then calls add().
    Admission admit(const SourceKey& src, core::Instant now);
    // Records a half-open session. `now` must not be earlier than that of the previous add()
    // (the list is kept in start order).
    void add(std::uint64_t id, const SourceKey& src, core::Instant now);
    // The session completed its handshake or ended. Unknown ids are ignored.
    void remove(std::uint64_t id);

    std::size_t size() const { return by_id_.size(); }
    std::size_t of_source(const SourceKey& src) const;
    const Stats& stats() const { return stats_; }
    const HalfOpenLimits& limits() const { return limits_; }

  private:
    struct Entry {
        std::uint64_t id;
        SourceKey src;
        core::Instant started;
    };
    HalfOpenLimits limits_;
    std::list<Entry> by_age_;  // oldest first
    std::unordered_map<std::uint64_t, std::list<Entry>::iterator> by_id_;
    std::unordered_map<SourceKey, std::size_t, SourceKeyHash> per_source_;
    Stats stats_;
};

}  // namespace hopgate::net
