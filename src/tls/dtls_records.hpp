// DTLS 1.2 application-data records protected without OpenSSL's record layer.
//
// Once OpenSSL has completed a DTLS 1.2 handshake with an AES-GCM suite, DtlsRecords derives the
// same epoch-1 keys (RFC 5246 §6.3 key block from the master secret) and seals/opens
// application-data records itself with one preinitialised EVP context per direction. The wire
// format is unchanged (RFC 6347 §4.1 record header, RFC 5288 explicit nonce), so a peer using
// OpenSSL's record layer interoperates. This skips OpenSSL 3.0's per-record overhead (OSSL_PARAM
// string lookups in EVP_CIPHER_CTX_ctrl, its copy of the plaintext into its write buffer and of
// each datagram into its read buffer): the ciphertext is written straight into the caller's
// buffer and the plaintext straight out of the received datagram.
//
// Only epoch-1 application data (and our own close_notify) goes through here; handshake records,
// received alerts and anything else still go through OpenSSL (which holds the same keys). Renegotiation must be off so that the
// epoch never changes.
//
// Sequence numbers: sealed records start at kFirstOwnSeq, far above anything OpenSSL's own writer
// uses in epoch 1 (its Finished and a few records), so the two writers never reuse a sequence
// number. The GCM explicit nonce comes from the provider's invocation counter (RFC 5288 allows any
// unique value). Opened records pass a 64-record sliding replay window (RFC 6347 §4.1.2.6) of
// their own.
//
// Not thread-safe; owned by one DtlsEngine.
#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace hopgate::tls {

class DtlsRecords {
public:
    static constexpr std::size_t kHeader = 13;       // type, version, epoch, seq48, length
    static constexpr std::size_t kExplicitNonce = 8;
    static constexpr std::size_t kTag = 16;
    static constexpr std::size_t kOverhead = kHeader + kExplicitNonce + kTag;
    static constexpr std::uint8_t kAlert = 21;
    static constexpr std::uint8_t kApplicationData = 23;
    static constexpr std::uint16_t kEpoch = 1;  // the only epoch without renegotiation
    static constexpr std::uint64_t kFirstOwnSeq = 1ULL << 32;

    // Keys for `ssl` (handshake complete, DTLS 1.2, AES-128/256-GCM, renegotiation off); null
    // when the session does not qualify (another cipher) or a library call fails, in which case
    // the caller keeps using OpenSSL's record layer.
    static std::unique_ptr<DtlsRecords> from_ssl(SSL* ssl);

    ~DtlsRecords();
    DtlsRecords(const DtlsRecords&) = delete;
    DtlsRecords& operator=(const DtlsRecords&) = delete;

    // Writes one record of `type` (application data; or an alert, so that a close_notify sent
    // after our records is not below the peer's replay window) carrying `plaintext` into `out`
    // (at least plaintext.size() + kOverhead bytes). Returns the record size, or 0 on a library
    // failure (nothing was consumed: the caller may fall back to OpenSSL).
    std::size_t seal(std::span<const std::uint8_t> plaintext, std::span<std::uint8_t> out,
                     std::uint8_t type = kApplicationData);
    // The same with the plaintext already in place: `n` bytes at buf[kHeader + kExplicitNonce]
    // (buf holds at least n + kOverhead bytes); the record is sealed around them.
    std::size_t seal_in_place(std::span<std::uint8_t> buf, std::size_t n,
                              std::uint8_t type = kApplicationData);

    // Whether every record in `datagram` is epoch-1 application data with a plausible length,
    // i.e. open() can take the whole datagram. Anything else goes to OpenSSL.
    static bool all_ours(std::span<const std::uint8_t> datagram);
    // Whether `datagram` (not all_ours()) still carries an application-data record among the
    // records that parse before anything malformed. Such a datagram never comes from a DTLS
    // peer (application records travel alone); handing it to OpenSSL would let a record that
    // our replay window already saw through OpenSSL's separate window, so it is dropped.
    static bool has_application_record(std::span<const std::uint8_t> datagram);

    // The size of the record at the start of `d` (header + body); precondition all_ours().
    static std::size_t record_size(std::span<const std::uint8_t> d);
    // The plaintext size of the record at the start of `d`; precondition all_ours().
    static std::size_t plaintext_size(std::span<const std::uint8_t> d) {
        return record_size(d) - kOverhead;
    }

    // Authenticates and decrypts the record at the start of `record` into `out` (at least
    // plaintext_size() bytes). Returns false for a forged, corrupted or replayed record (drop
    // it, as DTLS does); the replay window moves only on success.
    bool open(std::span<const std::uint8_t> record, std::span<std::uint8_t> out);

    std::uint64_t records_sealed() const { return next_seq_ - kFirstOwnSeq; }
    std::uint64_t records_rejected() const { return rejected_; }

private:
    DtlsRecords() = default;
    bool replay_ok(std::uint64_t seq) const;
    void replay_mark(std::uint64_t seq);

    EVP_CIPHER_CTX* enc_ = nullptr;
    EVP_CIPHER_CTX* dec_ = nullptr;
    std::array<std::uint8_t, 4> write_salt_{};
    std::array<std::uint8_t, 4> read_salt_{};
    std::uint64_t next_seq_ = kFirstOwnSeq;
    std::uint64_t max_seen_ = 0;
    std::uint64_t window_ = 0;  // bit i: max_seen_ - i was received
    bool seen_any_ = false;
    std::uint64_t rejected_ = 0;
};

}  // namespace hopgate::tls
