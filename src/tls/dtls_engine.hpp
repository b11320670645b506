// One DTLS 1.2 peer as a sans-I/O state machine over in-memory datagram queues.
//
// The driver (src/net) owns the socket and the timer:
//   on_datagram(d)          for each datagram received from this peer; then
//   read(buf) until 0       to collect decrypted records (this also processes post-handshake
//                           records such as retransmitted Finished or alerts); then
//   pop_datagram(buf)       until 0, sending each result as one UDP datagram;
//   timeout()/on_timeout()  arm one timer at timeout(); when it fires call on_timeout(), then
//                           pop datagrams again (handshake retransmission).
// write(p) encrypts p into exactly one record, queued as one datagram (pop it).
//
// Threading: not thread-safe; use from the connection's strand. Never throws after
// construction (except std::bad_alloc). Fatal problems set failed() and error().
//
// Timer: OpenSSL measures DTLS handshake timers with the real clock (gettimeofday), so
// timeout() is a duration from *now*; it is not driven by a virtual clock.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "core/time.hpp"
#include "tls/context.hpp"
#include "tls/cookie.hpp"
#include "tls/datagram_bio.hpp"
#include "tls/detail.hpp"
#include "tls/dtls_records.hpp"
#include "tls/error.hpp"
#include "tls/ossl.hpp"

namespace hopgate::tls {

struct DtlsOptions {
    // UDP payload bytes per datagram; handshake flights are fragmented to fit. >= 256.
    std::size_t mtu = 1200;
    // First handshake retransmission timeout; doubles per timeout up to `max_retransmit`.
    // OpenSSL gives up (failed(), "read timeout expired") after 12 timeouts of one flight.
    // Both are clamped to >= 20 ms (OpenSSL treats < 15 ms left as expired).
    core::Duration initial_retransmit = std::chrono::seconds(1);
    core::Duration max_retransmit = std::chrono::seconds(60);
    // After the handshake, protect application-data records with the engine's own AES-GCM
    // record code (tls::DtlsRecords: same wire format, none of OpenSSL 3.0's per-record
    // overhead) when the suite allows it; false keeps OpenSSL's record layer for everything.
    bool own_records = true;
};

class DtlsEngine final : private detail::SslHooks {
  public:
    // Largest plaintext one DTLS record carries (OpenSSL refuses more).
    static constexpr std::size_t kMaxPlaintext = 16384;

    struct Stats {
        std::uint64_t in_dropped = 0;        // on_datagram with the inbound queue full
        std::uint64_t out_dropped = 0;       // OpenSSL wrote with the outbound queue full
        std::uint64_t oversize_dropped = 0;  // pop_datagram buffer smaller than the datagram
        std::uint64_t own_sealed = 0;        // records sealed by DtlsRecords (not OpenSSL)
        std::uint64_t own_opened = 0;        // records opened by DtlsRecords
        std::uint64_t own_rejected = 0;      // forged, corrupted, replayed or mixed: dropped
    };

    // A client connecting to `server_name` (DNS name or IP literal): sent as SNI (names only)
    // and verified against the certificate unless the context is insecure.
    static std::unique_ptr<DtlsEngine> client(ContextPtr ctx, std::string_view server_name,
                                              DtlsOptions opts = {});
    // A server for one peer. With `guard`, the engine runs DTLSv1_listen on its first
    // datagrams: it expects the cookie-bearing ClientHello that `guard` accepted from
    // `peer_addr` (same bytes as given to the guard) and answers anything else with a
    // HelloVerifyRequest or by dropping it. Without a guard it handshakes directly (tests).
    static std::unique_ptr<DtlsEngine> server(ContextPtr ctx, DtlsOptions opts = {},
                                              const CookieGuard* guard = nullptr,
                                              std::span<const std::uint8_t> peer_addr = {});

    ~DtlsEngine();
    DtlsEngine(const DtlsEngine&) = delete;
    DtlsEngine& operator=(const DtlsEngine&) = delete;

    // Feeds one received datagram (copied; bounded queue of DatagramQueue::kCapacity, excess
    // counted in stats().in_dropped). Drives the handshake while it is in progress.
    void on_datagram(std::span<const std::uint8_t> datagram);
    // Like on_datagram() but, once the handshake is done, without copying: the engine keeps a
    // view of `datagram`, which must stay valid until read() has returned 0 (or an error) or
    // the next on_datagram*() call. A view not yet read when the next datagram arrives is
    // copied into the queue first, so datagrams are always read in arrival order.
    void on_datagram_view(std::span<const std::uint8_t> datagram);

    // Copies the next datagram to send into `out` and returns its size; 0 when none. A
    // datagram larger than `out` is discarded (counted) — pass at least mtu() bytes, or 16 KiB
    // + 64 if records larger than the MTU are written.
    std::size_t pop_datagram(std::span<std::uint8_t> out);
    // Zero-copy variant: the next datagram (empty span when none) stays valid until
    // consume_datagram() or the next engine call.
    std::span<const std::uint8_t> next_datagram() const;
    void consume_datagram();
    std::size_t pending_datagrams() const { return out_.size(); }
    // With a sink, datagrams the engine writes (records, alerts, handshake flights) are offered
    // to it first, straight from OpenSSL's buffer, while the outbound queue is empty; a sink
    // that declines (would block) leaves them queued for pop_datagram(). The sink must outlive
    // its use; nullptr detaches it. Engine calls then run the sink synchronously.
    void set_sink(DatagramSink* sink) { bio_state_.sink = sink; }

    bool handshake_done() const { return done_; }
    bool failed() const { return failed_; }
    // One line describing the failure (verification result included); empty when !failed().
    const std::string& error() const { return error_; }
    // The peer sent close_notify.
    bool peer_closed() const { return peer_closed_; }

    // One decrypted application record into `out` (pass >= kMaxPlaintext to never split a
    // record; a smaller buffer returns the record in pieces). 0 when none is available.
    // Errors: kClosed (peer close_notify), kHandshake/kProtocol (failed()).
    core::Result<std::size_t> read(std::span<std::uint8_t> out);
    // Encrypts `plaintext` as exactly one record = one queued datagram of
    // plaintext.size() + record_overhead() bytes. The MTU is not enforced here (PMTU probes
    // may exceed it); keep plaintext <= max_plaintext() for ordinary packets.
    // Errors: kNotReady, kWouldBlock (outbound queue full), kTooLarge (> kMaxPlaintext),
    // kInvalidArgument (empty), kClosed (after close_notify()), kHandshake/kProtocol.
    core::Status write(std::span<const std::uint8_t> plaintext);

    // Zero-copy write for own records (own_records_sealing()): the caller has put `n` plaintext
    // bytes at buf[kSealOffset] and they are sealed in place into one record of
    // n + record_overhead() bytes at buf[0]; returns its size. 0 when the engine cannot do it
    // now (not sealing its own records, datagrams still queued before it, closed, or a library
    // failure): then pass the plaintext to write() instead.
    static constexpr std::size_t kSealOffset = DtlsRecords::kHeader + DtlsRecords::kExplicitNonce;
    std::size_t seal_in_place(std::span<std::uint8_t> buf, std::size_t n);

    // Time until on_timeout() should be called; nullopt when no timer runs (handshake done or
    // not started). Zero means "now".
    std::optional<core::Duration> timeout() const;
    // Retransmits the current flight when its timer expired (no-op otherwise).
    void on_timeout();

    // Bytes a record adds to its plaintext, from the negotiated cipher (AES-GCM: 13 header +
    // 8 explicit nonce + 16 tag = 37; ChaCha20-Poly1305: 29). Before the handshake completes,
    // the AES-GCM value.
    std::size_t record_overhead() const;
    std::size_t mtu() const { return mtu_; }
    // mtu() - record_overhead(): plaintext bytes that fill one datagram.
    std::size_t max_plaintext() const { return mtu_ - record_overhead(); }
    // Sets the datagram payload size used for handshake fragmentation (and max_plaintext()).
    // Errc::kInvalidArgument when below 256 or above 65507.
    core::Status set_mtu(std::size_t mtu);

    // Queues a close_notify alert (pop it). Later writes fail with kClosed.
    void close_notify();

    bool is_server() const { return server_; }
    // Negotiated ALPN protocol; empty before the handshake.
    std::string_view alpn() const;
    // Negotiated cipher suite name, e.g. "ECDHE-ECDSA-AES128-GCM-SHA256".
    std::string_view cipher() const;
    // Application records are sealed / opened by tls::DtlsRecords rather than OpenSSL (see
    // DtlsOptions::own_records). Sealing starts once the peer is known to have finished its
    // handshake: at once on a client, after the first application record on a server.
    bool own_records_sealing() const { return records_ != nullptr && seal_own_; }
    bool own_records_opening() const { return records_ != nullptr; }
    Stats stats() const;
    SSL* native() const { return ssl_.get(); }

    struct PrivateTag {};
    DtlsEngine(PrivateTag, ContextPtr ctx, bool server, DtlsOptions opts);

  private:
    int generate_cookie(unsigned char* cookie, unsigned int* len) noexcept override;
    int verify_cookie(const unsigned char* cookie, unsigned int len) noexcept override;
    static unsigned int timer_cb(SSL* ssl, unsigned int previous_us);

    void setup(std::string_view server_name);
    void apply_dtls_settings();
    void drive_handshake();
    core::Result<std::size_t> read_record(std::span<std::uint8_t> out);
    // One record opened by records_, or nullopt when OpenSSL must read the next datagram.
    std::optional<std::size_t> read_own(std::span<std::uint8_t> out);
    void pop_current_datagram();
    void on_handshake_complete();
    void fail(Errc code, std::string why);
    std::string describe_failure(const char* what) const;

    ContextPtr ctx_;
    bool server_;
    DtlsOptions opts_;
    const CookieGuard* guard_ = nullptr;
    std::array<std::uint8_t, CookieGuard::kMaxPeerAddr> peer_{};
    std::size_t peer_len_ = 0;

    DatagramQueue in_;
    DatagramQueue out_;
    DatagramBioState bio_state_;
    SslPtr ssl_;

    std::size_t mtu_;
    std::size_t overhead_ = 37;
    bool listening_ = false;
    bool done_ = false;
    bool failed_ = false;
    bool peer_closed_ = false;
    bool closed_ = false;
    Errc fail_code_ = Errc::kOk;
    std::string error_;
    std::uint64_t in_dropped_ = 0;
    std::uint64_t oversize_dropped_ = 0;

    std::unique_ptr<DtlsRecords> records_;
    bool seal_own_ = false;
    std::size_t own_off_ = 0;  // read offset into the current datagram (in_.front() or view)
    std::vector<std::uint8_t> seal_buf_;
    std::vector<std::uint8_t> spill_;  // an opened record larger than the caller's buffer
    std::size_t spill_off_ = 0;
    std::size_t spill_len_ = 0;
    std::uint64_t own_opened_ = 0;
    std::uint64_t mixed_dropped_ = 0;
};

}  // namespace hopgate::tls
