#include "tls/cookie.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>

namespace hopgate::tls {
namespace {

constexpr std::uint8_t kContentHandshake = 22;
constexpr std::uint8_t kClientHello = 1;
constexpr std::uint8_t kHelloVerifyRequest = 3;
constexpr std::size_t kRecordHeader = 13;
constexpr std::size_t kHandshakeHeader = 12;

std::uint32_t u16(const std::uint8_t* p) { return (std::uint32_t{p[0]} << 8) | p[1]; }
std::uint32_t u24(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2];
}

void fresh_key(std::array<std::uint8_t, 32>& k) {
    if (RAND_bytes(k.data(), static_cast<int>(k.size())) != 1) {
        // The DRBG failing is not recoverable; a predictable key would be worse than stopping.
        std::abort();
    }
}

}  // namespace

bool parse_client_hello(std::span<const std::uint8_t> d, ClientHelloView& out) {
    if (d.size() < kRecordHeader + kHandshakeHeader) {
        return false;
    }
    // Record: type, version (DTLS 1.0 or 1.2), epoch 0, 48-bit sequence, length.
    if (d[0] != kContentHandshake || d[1] != 0xfe || (d[2] != 0xff && d[2] != 0xfd) || d[3] != 0 ||
        d[4] != 0) {
        return false;
    }
    const std::size_t rlen = u16(&d[11]);
    if (rlen > d.size() - kRecordHeader || rlen < kHandshakeHeader) {
        return false;
    }
    auto rec = d.subspan(kRecordHeader, rlen);
    // Handshake: type, length, message_seq, fragment_offset, fragment_length.
    const std::size_t mlen = u24(&rec[1]);
    const std::size_t foff = u24(&rec[6]);
    const std::size_t flen = u24(&rec[9]);
    if (rec[0] != kClientHello || foff != 0 || flen != mlen || flen > rlen - kHandshakeHeader) {
        return false;
    }
    auto body = rec.subspan(kHandshakeHeader, flen);
    // client_version(2) random(32) session_id<0..32> cookie<0..255> cipher_suites<2..> ...
    std::size_t pos = 2 + 32;
    if (body.size() < pos + 1 || body[0] != 0xfe) {
        return false;
    }
    const std::size_t sid_len = body[pos];
    if (sid_len > 32 || body.size() < pos + 1 + sid_len + 1) {
        return false;
    }
    pos += 1 + sid_len;
    const std::size_t cookie_len = body[pos];
    if (body.size() < pos + 1 + cookie_len + 2) {
        return false;
    }
    auto cookie = body.subspan(pos + 1, cookie_len);
    pos += 1 + cookie_len;
    const std::size_t cs_len = u16(&body[pos]);
    if (cs_len < 2 || cs_len % 2 != 0 || body.size() < pos + 2 + cs_len + 1) {
        return false;
    }
    pos += 2 + cs_len;
    const std::size_t comp_len = body[pos];
    if (comp_len < 1 || body.size() < pos + 1 + comp_len) {
        return false;
    }
    out.record_seq = d.subspan(5, 6);
    out.cookie = cookie;
    return true;
}

CookieGuard::CookieGuard(core::Duration rotation_period, core::Instant now)
    : period_(rotation_period), last_rotation_(now) {
    fresh_key(current_.bytes);
    std::uint8_t g = 0;
    if (RAND_bytes(&g, 1) != 1) {
        std::abort();
    }
    current_.generation = g;  // random start: generations differ across restarts
}

void CookieGuard::rotate() {
    std::lock_guard lock(mu_);
    previous_ = current_;
    has_previous_ = true;
    fresh_key(current_.bytes);
    current_.generation = previous_.generation + 1;
}

bool CookieGuard::maybe_rotate(core::Instant now) {
    {
        std::lock_guard lock(mu_);
        if (now - last_rotation_ < period_) {
            return false;
        }
        // Two periods without a call: the old previous key must not survive, so rotate twice.
        bool twice = now - last_rotation_ >= 2 * period_;
        last_rotation_ = now;
        if (twice) {
            fresh_key(current_.bytes);
            ++current_.generation;
        }
    }
    rotate();
    return true;
}

bool CookieGuard::mac(const Key& key, std::span<const std::uint8_t> peer_addr,
                      std::uint8_t out[kCookieSize]) {
    std::uint8_t msg[8 + kMaxPeerAddr];
    for (int i = 0; i < 8; ++i) {
        msg[i] = static_cast<std::uint8_t>(key.generation >> (56 - 8 * i));
    }
    if (!peer_addr.empty()) {
        std::memcpy(msg + 8, peer_addr.data(), peer_addr.size());
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (HMAC(EVP_sha256(), key.bytes.data(), static_cast<int>(key.bytes.size()), msg,
             8 + peer_addr.size(), md, &md_len) == nullptr ||
        md_len < kCookieSize - 1) {
        return false;  // never compare against an unset MAC
    }
    out[0] = static_cast<std::uint8_t>(key.generation);
    std::memcpy(out + 1, md, kCookieSize - 1);
    return true;
}

std::size_t CookieGuard::make_cookie(std::span<const std::uint8_t> peer_addr,
                                     std::span<std::uint8_t> out) const {
    if (out.size() < kCookieSize || peer_addr.size() > kMaxPeerAddr) {
        return 0;
    }
    Key k;
    {
        std::lock_guard lock(mu_);
        k = current_;
    }
    return mac(k, peer_addr, out.data()) ? kCookieSize : 0;
}

bool CookieGuard::verify_cookie(std::span<const std::uint8_t> cookie,
                                std::span<const std::uint8_t> peer_addr) const {
    if (cookie.size() != kCookieSize || peer_addr.size() > kMaxPeerAddr) {
        return false;
    }
    Key k;
    {
        std::lock_guard lock(mu_);
        if (cookie[0] == static_cast<std::uint8_t>(current_.generation)) {
            k = current_;
        } else if (has_previous_ && cookie[0] == static_cast<std::uint8_t>(previous_.generation)) {
            k = previous_;
        } else {
            return false;
        }
    }
    std::uint8_t want[kCookieSize];
    if (!mac(k, peer_addr, want)) {
        return false;
    }
    return CRYPTO_memcmp(want, cookie.data(), kCookieSize) == 0;
}

CookieGuard::Decision CookieGuard::check_client_hello(std::span<const std::uint8_t> datagram,
                                                      std::span<const std::uint8_t> peer_addr,
                                                      std::vector<std::uint8_t>& reply) {
    reply.clear();
    ClientHelloView ch;
    if (peer_addr.size() > kMaxPeerAddr || !parse_client_hello(datagram, ch)) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return Decision::kDrop;
    }
    if (!ch.cookie.empty() && verify_cookie(ch.cookie, peer_addr)) {
        accepted_.fetch_add(1, std::memory_order_relaxed);
        return Decision::kAccept;
    }
    // HelloVerifyRequest, laid out as OpenSSL's DTLSv1_listen does: DTLS 1.0 version in the
    // record and the body, the ClientHello's record sequence number, message_seq 0.
    constexpr std::size_t kBody = 2 + 1 + kCookieSize;
    constexpr std::size_t kTotal = kRecordHeader + kHandshakeHeader + kBody;
    if (datagram.size() < kTotal) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return Decision::kDrop;  // answering would amplify
    }
    std::uint8_t cookie[kCookieSize];
    if (make_cookie(peer_addr, cookie) != kCookieSize) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return Decision::kDrop;
    }
    reply.resize(kTotal);
    std::uint8_t* p = reply.data();
    *p++ = kContentHandshake;
    *p++ = 0xfe;
    *p++ = 0xff;
    *p++ = 0;
    *p++ = 0;
    std::memcpy(p, ch.record_seq.data(), 6);
    p += 6;
    constexpr std::size_t kRecLen = kHandshakeHeader + kBody;
    *p++ = static_cast<std::uint8_t>(kRecLen >> 8);
    *p++ = static_cast<std::uint8_t>(kRecLen);
    *p++ = kHelloVerifyRequest;
    for (int rep = 0; rep < 2; ++rep) {  // length, then (after message_seq) fragment_length
        if (rep == 1) {
            *p++ = 0;  // message_seq
            *p++ = 0;
            *p++ = 0;  // fragment_offset
            *p++ = 0;
            *p++ = 0;
        }
        *p++ = 0;
        *p++ = 0;
        *p++ = static_cast<std::uint8_t>(kBody);
    }
    *p++ = 0xfe;
    *p++ = 0xff;
    *p++ = static_cast<std::uint8_t>(kCookieSize);
    std::memcpy(p, cookie, kCookieSize);
    replied_.fetch_add(1, std::memory_order_relaxed);
    return Decision::kReplyAndDrop;
}

CookieGuard::Stats CookieGuard::stats() const {
    return Stats{accepted_.load(std::memory_order_relaxed),
                 replied_.load(std::memory_order_relaxed),
                 dropped_.load(std::memory_order_relaxed)};
}

}  // namespace hopgate::tls
