#include "tls/dtls_records.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <cstring>
#include <string>

namespace hopgate::tls {
namespace {

constexpr std::uint16_t kDtls12Version = 0xfefd;
constexpr std::size_t kRandomLen = SSL3_RANDOM_SIZE;  // 32
constexpr std::size_t kFixedIvLen = 4;                // RFC 5288 salt

void put_u16(std::uint8_t* p, std::uint64_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}
std::uint16_t get_u16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
// Epoch (16 bits) and sequence number (48 bits) as they appear in the header.
void put_epoch_seq(std::uint8_t* p, std::uint16_t epoch, std::uint64_t seq) {
    put_u16(p, epoch);
    for (int i = 0; i < 6; ++i) {
        p[2 + i] = static_cast<std::uint8_t>(seq >> (8 * (5 - i)));
    }
}
std::uint64_t get_seq(const std::uint8_t* p) {  // p points at the 6 sequence bytes
    std::uint64_t v = 0;
    for (int i = 0; i < 6; ++i) {
        v = (v << 8) | p[i];
    }
    return v;
}

// TLS 1.2 PRF (RFC 5246 §5) with the suite's hash, as OpenSSL's key expansion uses it.
bool tls12_prf(const EVP_MD* md, std::span<const std::uint8_t> secret,
               std::span<const std::uint8_t> seed, std::span<std::uint8_t> out) {
    EVP_KDF* kdf = EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_TLS1_PRF, nullptr);
    if (kdf == nullptr) {
        return false;
    }
    EVP_KDF_CTX* kctx = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    if (kctx == nullptr) {
        return false;
    }
    std::string md_name = EVP_MD_get0_name(md);
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, md_name.data(), 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET,
                                          const_cast<std::uint8_t*>(secret.data()), secret.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED,
                                          const_cast<std::uint8_t*>(seed.data()), seed.size()),
        OSSL_PARAM_construct_end(),
    };
    const bool ok = EVP_KDF_derive(kctx, out.data(), out.size(), params) == 1;
    EVP_KDF_CTX_free(kctx);
    return ok;
}

}  // namespace

std::unique_ptr<DtlsRecords> DtlsRecords::from_ssl(SSL* ssl) {
    if (ssl == nullptr || SSL_version(ssl) != DTLS1_2_VERSION ||
        (SSL_get_options(ssl) & SSL_OP_NO_RENEGOTIATION) == 0) {
        return nullptr;
    }
    const SSL_CIPHER* suite = SSL_get_current_cipher(ssl);
    const SSL_SESSION* session = SSL_get_session(ssl);
    if (suite == nullptr || session == nullptr) {
        return nullptr;
    }
    const char* cipher_name = nullptr;
    std::size_t key_len = 0;
    switch (SSL_CIPHER_get_cipher_nid(suite)) {
        case NID_aes_128_gcm:
            cipher_name = "AES-128-GCM";
            key_len = 16;
            break;
        case NID_aes_256_gcm:
            cipher_name = "AES-256-GCM";
            key_len = 32;
            break;
        default:
            return nullptr;  // e.g. ChaCha20-Poly1305: OpenSSL keeps the record layer
    }
    const EVP_MD* md = SSL_CIPHER_get_handshake_digest(suite);
    if (md == nullptr) {
        return nullptr;
    }
    std::array<std::uint8_t, SSL_MAX_MASTER_KEY_LENGTH> master{};
    const std::size_t master_len = SSL_SESSION_get_master_key(session, master.data(), master.size());
    // Seed: "key expansion" + server_random + client_random (RFC 5246 §6.3).
    static constexpr char kLabel[] = "key expansion";
    constexpr std::size_t kLabelLen = sizeof kLabel - 1;
    std::array<std::uint8_t, kLabelLen + 2 * kRandomLen> seed{};
    std::memcpy(seed.data(), kLabel, kLabelLen);
    if (master_len == 0 ||
        SSL_get_server_random(ssl, seed.data() + kLabelLen, kRandomLen) != kRandomLen ||
        SSL_get_client_random(ssl, seed.data() + kLabelLen + kRandomLen, kRandomLen) !=
            kRandomLen) {
        return nullptr;
    }
    // AEAD suites have no MAC keys: client key, server key, client salt, server salt.
    std::array<std::uint8_t, 2 * 32 + 2 * kFixedIvLen> block{};
    const std::size_t block_len = 2 * key_len + 2 * kFixedIvLen;
    const bool derived = tls12_prf(md, {master.data(), master_len}, seed, {block.data(), block_len});
    OPENSSL_cleanse(master.data(), master.size());
    if (!derived) {
        ERR_clear_error();
        OPENSSL_cleanse(block.data(), block.size());
        return nullptr;
    }
    const std::uint8_t* client_key = block.data();
    const std::uint8_t* server_key = block.data() + key_len;
    const std::uint8_t* client_salt = block.data() + 2 * key_len;
    const std::uint8_t* server_salt = client_salt + kFixedIvLen;
    const bool server = SSL_is_server(ssl) == 1;

    std::unique_ptr<DtlsRecords> r(new DtlsRecords());
    EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, cipher_name, nullptr);
    r->enc_ = EVP_CIPHER_CTX_new();
    r->dec_ = EVP_CIPHER_CTX_new();
    bool ok = cipher != nullptr && r->enc_ != nullptr && r->dec_ != nullptr &&
              EVP_EncryptInit_ex2(r->enc_, cipher, server ? server_key : client_key, nullptr,
                                  nullptr) == 1 &&
              EVP_DecryptInit_ex2(r->dec_, cipher, server ? client_key : server_key, nullptr,
                                  nullptr) == 1;
    EVP_CIPHER_free(cipher);
    std::memcpy(r->write_salt_.data(), server ? server_salt : client_salt, kFixedIvLen);
    std::memcpy(r->read_salt_.data(), server ? client_salt : server_salt, kFixedIvLen);
    // The provider's TLS mode: the salt is fixed once; each record then costs one parameter
    // call (its AAD, or its explicit nonce and tag) instead of an IV re-initialisation (which
    // in OpenSSL 3.0 queries the IV length through OSSL_PARAM lookups) plus a tag control.
    // Sealing draws the explicit nonce from the provider's counter (a random start, +1 per
    // record: unique for the key).
    if (ok) {
        const OSSL_PARAM wfix[] = {
            OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED,
                                              r->write_salt_.data(), kFixedIvLen),
            OSSL_PARAM_construct_end()};
        const OSSL_PARAM rfix[] = {
            OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED,
                                              r->read_salt_.data(), kFixedIvLen),
            OSSL_PARAM_construct_end()};
        ok = EVP_CIPHER_CTX_set_params(r->enc_, wfix) == 1 &&
             EVP_CIPHER_CTX_set_params(r->dec_, rfix) == 1;
    }
    OPENSSL_cleanse(block.data(), block.size());
    if (!ok) {
        ERR_clear_error();
        return nullptr;
    }
    return r;
}

DtlsRecords::~DtlsRecords() {
    EVP_CIPHER_CTX_free(enc_);
    EVP_CIPHER_CTX_free(dec_);
}

std::size_t DtlsRecords::seal(std::span<const std::uint8_t> plaintext,
                              std::span<std::uint8_t> out, std::uint8_t type) {
    const std::size_t n = plaintext.size();
    if (n == 0 || n + kOverhead > out.size()) {
        return 0;
    }
    std::memmove(out.data() + kHeader + kExplicitNonce, plaintext.data(), n);
    return seal_in_place(out, n, type);
}

std::size_t DtlsRecords::seal_in_place(std::span<std::uint8_t> buf, std::size_t n,
                                       std::uint8_t type) {
    if (n == 0 || n + kOverhead > buf.size() || n + kExplicitNonce + kTag > 0xffff) {
        return 0;
    }
    const std::uint64_t seq = next_seq_;
    std::uint8_t* h = buf.data();
    h[0] = type;
    put_u16(h + 1, kDtls12Version);
    put_epoch_seq(h + 3, kEpoch, seq);
    put_u16(h + 11, n + kExplicitNonce + kTag);
    // AAD: epoch+seq, type, version, length (RFC 5246 §6.2.3.3, RFC 6347 §4.1.2.1); in the
    // provider's TLS mode the length given includes the explicit nonce, which it subtracts.
    std::array<std::uint8_t, 13> aad{};
    std::memcpy(aad.data(), h + 3, 8);
    aad[8] = type;
    put_u16(aad.data() + 9, kDtls12Version);
    put_u16(aad.data() + 11, n + kExplicitNonce);
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_AAD, aad.data(),
                                          aad.size()),
        OSSL_PARAM_construct_end()};
    // In place over explicit nonce (written by the provider) + plaintext + tag (appended).
    std::uint8_t* body = h + kHeader;
    const int len = static_cast<int>(kExplicitNonce + n + kTag);
    if (EVP_CIPHER_CTX_set_params(enc_, params) != 1 ||
        EVP_Cipher(enc_, body, body, static_cast<unsigned int>(len)) != len) {
        ERR_clear_error();
        return 0;
    }
    ++next_seq_;
    return n + kOverhead;
}

std::size_t DtlsRecords::record_size(std::span<const std::uint8_t> d) {
    return kHeader + get_u16(d.data() + 11);
}

bool DtlsRecords::all_ours(std::span<const std::uint8_t> d) {
    if (d.empty()) {
        return false;
    }
    while (!d.empty()) {
        if (d.size() < kOverhead + 1 || d[0] != kApplicationData ||
            get_u16(d.data() + 1) != kDtls12Version || get_u16(d.data() + 3) != kEpoch) {
            return false;
        }
        const std::size_t size = record_size(d);
        if (size < kOverhead + 1 || size > d.size()) {
            return false;
        }
        d = d.subspan(size);
    }
    return true;
}

bool DtlsRecords::has_application_record(std::span<const std::uint8_t> d) {
    while (d.size() >= kHeader) {
        if (d[0] == kApplicationData) {
            return true;
        }
        const std::size_t size = record_size(d);
        if (size > d.size()) {
            return false;
        }
        d = d.subspan(size);
    }
    return false;
}

bool DtlsRecords::replay_ok(std::uint64_t seq) const {
    if (!seen_any_ || seq > max_seen_) {
        return true;
    }
    const std::uint64_t behind = max_seen_ - seq;
    return behind < 64 && (window_ & (1ULL << behind)) == 0;
}

void DtlsRecords::replay_mark(std::uint64_t seq) {
    if (!seen_any_) {
        seen_any_ = true;
        max_seen_ = seq;
        window_ = 1;
        return;
    }
    if (seq > max_seen_) {
        const std::uint64_t shift = seq - max_seen_;
        window_ = shift >= 64 ? 0 : window_ << shift;
        window_ |= 1;
        max_seen_ = seq;
        return;
    }
    window_ |= 1ULL << (max_seen_ - seq);
}

bool DtlsRecords::open(std::span<const std::uint8_t> record, std::span<std::uint8_t> out) {
    const std::size_t size = record_size(record);
    const std::size_t n = size - kOverhead;
    const std::uint64_t seq = get_seq(record.data() + 5);
    if (n > out.size() || !replay_ok(seq)) {
        ++rejected_;
        return false;
    }
    const std::uint8_t* h = record.data();
    std::array<std::uint8_t, 13> aad{};
    std::memcpy(aad.data(), h + 3, 8);
    aad[8] = h[0];
    put_u16(aad.data() + 9, kDtls12Version);
    put_u16(aad.data() + 11, n);
    const std::uint8_t* body = h + kHeader + kExplicitNonce;
    std::array<std::uint8_t, kExplicitNonce> explicit_nonce{};
    std::memcpy(explicit_nonce.data(), h + kHeader, kExplicitNonce);
    std::array<std::uint8_t, kTag> tag{};
    std::memcpy(tag.data(), body + n, kTag);
    // One parameter call sets the nonce (salt + explicit part) and the expected tag.
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag.data(), tag.size()),
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_SET_IV_INV,
                                          explicit_nonce.data(), explicit_nonce.size()),
        OSSL_PARAM_construct_end()};
    int len = 0;
    int fin = 0;
    const bool ok =
        EVP_CIPHER_CTX_set_params(dec_, params) == 1 &&
        EVP_DecryptUpdate(dec_, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1 &&
        EVP_DecryptUpdate(dec_, out.data(), &len, body, static_cast<int>(n)) == 1 &&
        EVP_DecryptFinal_ex(dec_, out.data() + len, &fin) == 1;
    if (!ok) {
        ERR_clear_error();
        ++rejected_;
        return false;
    }
    replay_mark(seq);
    return true;
}

}  // namespace hopgate::tls
