// Stateless DTLS cookie exchange (RFC 6347 §4.2.1) in front of the server's DTLS engines.
//
// The UDP listener calls check_client_hello() for every datagram from an address that has no
// engine yet. A ClientHello without a valid cookie is answered with a HelloVerifyRequest that
// is never larger than the request (no amplification) and nothing is stored; only a
// ClientHello echoing a valid cookie is accepted, and only then does the caller create a
// DtlsEngine (server, same guard, same peer address) and feed it that same datagram.
//
// Cookie = 1 byte key generation || first 16 bytes of HMAC-SHA256(key, generation || peer
// address). Keys are random, rotated by maybe_rotate(); the previous key stays valid for one
// rotation period, so a cookie lives between one and two periods.
//
// Thread-safe: the keys are behind a mutex (copied out, HMAC computed outside the lock); the
// guard holds no per-peer state at all, only the two keys and counters.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "core/time.hpp"

namespace hopgate::tls {

class CookieGuard {
  public:
    enum class Decision {
        kAccept,  // a ClientHello with a valid cookie: create the engine, feed it this datagram
        kReplyAndDrop,  // send `reply` (a HelloVerifyRequest) to the peer, keep nothing
        kDrop,          // not a usable ClientHello (garbage, fragment, other record): ignore
    };

    static constexpr std::size_t kCookieSize = 17;
    static constexpr std::size_t kMaxPeerAddr = 64;  // longer addresses are dropped

    struct Stats {
        std::uint64_t accepted = 0;
        std::uint64_t replied = 0;
        std::uint64_t dropped = 0;
    };

    // `now` starts the first rotation period.
    explicit CookieGuard(core::Duration rotation_period = std::chrono::seconds(60),
                         core::Instant now = core::kInstantZero);

    // `peer_addr` is any stable byte encoding of the peer's address and port (e.g. the raw
    // sockaddr). `reply` is overwritten (cleared unless kReplyAndDrop); reuse one vector to
    // avoid allocation. The parser is bounds-checked against arbitrary input.
    Decision check_client_hello(std::span<const std::uint8_t> datagram,
                                std::span<const std::uint8_t> peer_addr,
                                std::vector<std::uint8_t>& reply);

    // Rotates (current becomes previous, a fresh random key becomes current) when a full
    // period has passed since the last rotation. Returns true when it rotated.
    bool maybe_rotate(core::Instant now);
    // Unconditional rotation.
    void rotate();

    // Writes a cookie for `peer_addr` into `out`; returns kCookieSize, or 0 when `out` is too
    // small or the address too long.
    std::size_t make_cookie(std::span<const std::uint8_t> peer_addr,
                            std::span<std::uint8_t> out) const;
    // True when `cookie` was made for `peer_addr` under the current or the previous key.
    bool verify_cookie(std::span<const std::uint8_t> cookie,
                       std::span<const std::uint8_t> peer_addr) const;

    Stats stats() const;

  private:
    struct Key {
        std::array<std::uint8_t, 32> bytes{};
        std::uint64_t generation = 0;
    };

    static bool mac(const Key& key, std::span<const std::uint8_t> peer_addr,
                    std::uint8_t out[kCookieSize]);

    const core::Duration period_;
    mutable std::mutex mu_;
    Key current_;
    Key previous_;
    bool has_previous_ = false;
    core::Instant last_rotation_;
    std::atomic<std::uint64_t> accepted_{0};
    std::atomic<std::uint64_t> replied_{0};
    std::atomic<std::uint64_t> dropped_{0};
};

// Bounds-checked view of an unfragmented DTLS ClientHello in the first record of a datagram.
struct ClientHelloView {
    std::span<const std::uint8_t> record_seq;  // 6 bytes, echoed in the HelloVerifyRequest
    std::span<const std::uint8_t> cookie;      // may be empty
};
// False when the datagram does not start with a well-formed, unfragmented ClientHello.
bool parse_client_hello(std::span<const std::uint8_t> datagram, ClientHelloView& out);

}  // namespace hopgate::tls
