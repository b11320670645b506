#include "acme/crypto.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include <array>
#include <memory>
#include <nlohmann/json.hpp>

#include "acme/error.hpp"

namespace hopgate::acme {
namespace {

using json = nlohmann::json;

struct MdCtxDeleter {
    void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};
struct PkeyCtxDeleter {
    void operator()(EVP_PKEY_CTX* p) const noexcept { EVP_PKEY_CTX_free(p); }
};
struct ReqDeleter {
    void operator()(X509_REQ* p) const noexcept { X509_REQ_free(p); }
};
struct SigDeleter {
    void operator()(ECDSA_SIG* p) const noexcept { ECDSA_SIG_free(p); }
};
struct BnDeleter {
    void operator()(BIGNUM* p) const noexcept { BN_free(p); }
};
struct ExtsDeleter {
    void operator()(STACK_OF(X509_EXTENSION) * p) const noexcept {
        sk_X509_EXTENSION_pop_free(p, X509_EXTENSION_free);
    }
};
using BnPtr = std::unique_ptr<BIGNUM, BnDeleter>;

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string sha256(std::string_view in) {
    std::array<unsigned char, SHA256_DIGEST_LENGTH> d{};
    SHA256(reinterpret_cast<const unsigned char*>(in.data()), in.size(), d.data());
    return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

// Big-endian, left-padded to 32 bytes.
std::string bn32(const BIGNUM* bn) {
    std::string out(32, '\0');
    if (BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), 32) != 32) {
        return {};
    }
    return out;
}

bool is_p256(EVP_PKEY* key) {
    if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) {
        return false;
    }
    char group[64] = {0};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &len) != 1) {
        return false;
    }
    return std::string_view(group, len) == "prime256v1" || std::string_view(group, len) == "P-256";
}

// Bytes of the DER of an OpenSSL object via its i2d function.
template <class T, class F>
std::string to_der(T* obj, F i2d) {
    int n = i2d(obj, nullptr);
    if (n <= 0) {
        return {};
    }
    std::string out(static_cast<std::size_t>(n), '\0');
    auto* p = reinterpret_cast<unsigned char*>(out.data());
    i2d(obj, &p);
    return out;
}

std::string x509_pem(X509* x) {
    tls::BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(bio.get(), x);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace

std::string base64url(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    auto at = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
    for (; i + 3 <= bytes.size(); i += 3) {
        const std::uint32_t v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
        out += kB64[(v >> 18) & 63];
        out += kB64[(v >> 12) & 63];
        out += kB64[(v >> 6) & 63];
        out += kB64[v & 63];
    }
    const std::size_t rest = bytes.size() - i;
    if (rest == 1) {
        const std::uint32_t v = at(i) << 16;
        out += kB64[(v >> 18) & 63];
        out += kB64[(v >> 12) & 63];
    } else if (rest == 2) {
        const std::uint32_t v = (at(i) << 16) | (at(i + 1) << 8);
        out += kB64[(v >> 18) & 63];
        out += kB64[(v >> 12) & 63];
        out += kB64[(v >> 6) & 63];
    }
    return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
    while (!text.empty() && text.back() == '=') {
        text.remove_suffix(1);
    }
    if (text.size() % 4 == 1) {
        return std::nullopt;
    }
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : text) {
        int v = -1;
        if (c >= 'A' && c <= 'Z') {
            v = c - 'A';
        } else if (c >= 'a' && c <= 'z') {
            v = c - 'a' + 26;
        } else if (c >= '0' && c <= '9') {
            v = c - '0' + 52;
        } else if (c == '-') {
            v = 62;
        } else if (c == '_') {
            v = 63;
        } else {
            return std::nullopt;
        }
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    return out;
}

core::Result<tls::EvpPkeyPtr> generate_p256() {
    tls::EvpPkeyPtr key(EVP_EC_gen("P-256"));
    if (!key) {
        return Errc::kCrypto;
    }
    return key;
}

std::string private_key_pem(EVP_PKEY* key) {
    tls::BioPtr bio(BIO_new(BIO_s_mem()));
    if (PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
        return {};
    }
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

core::Result<tls::EvpPkeyPtr> p256_from_pem(std::string_view pem) {
    auto key = tls::load_private_key_pem(pem);
    if (!key || !is_p256(key->get())) {
        return Errc::kCrypto;
    }
    return std::move(*key);
}

std::string jwk_json(EVP_PKEY* key) {
    BIGNUM* x = nullptr;
    BIGNUM* y = nullptr;
    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x);
    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
    BnPtr xp(x), yp(y);
    if (!xp || !yp) {
        return {};
    }
    // RFC 7638: required members only, lexicographic order, no whitespace.
    return R"({"crv":"P-256","kty":"EC","x":")" + base64url(bn32(x)) + R"(","y":")" +
           base64url(bn32(y)) + "\"}";
}

std::string jwk_thumbprint(EVP_PKEY* key) { return base64url(sha256(jwk_json(key))); }

std::string key_authorization(std::string_view token, EVP_PKEY* account_key) {
    return std::string(token) + "." + jwk_thumbprint(account_key);
}

core::Result<std::string> jws_sign(EVP_PKEY* key, std::string_view kid, std::string_view nonce,
                                   std::string_view url, std::string_view payload) {
    if (!is_p256(key)) {
        return Errc::kCrypto;
    }
    std::string hdr = R"({"alg":"ES256",)";
    if (kid.empty()) {
        hdr += "\"jwk\":" + jwk_json(key) + ",";
    } else {
        hdr += "\"kid\":" + json(std::string(kid)).dump() + ",";
    }
    hdr += "\"nonce\":" + json(std::string(nonce)).dump() + ",";
    hdr += "\"url\":" + json(std::string(url)).dump() + "}";
    const std::string prot = base64url(hdr);
    const std::string pay = base64url(payload);
    const std::string input = prot + "." + pay;

    std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> md(EVP_MD_CTX_new());
    std::size_t der_len = 0;
    if (!md || EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
        EVP_DigestSign(md.get(), nullptr, &der_len,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
        return Errc::kCrypto;
    }
    std::string der(der_len, '\0');
    if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(der.data()), &der_len,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
        return Errc::kCrypto;
    }
    // JWS wants the fixed-size r||s, OpenSSL produces a DER ECDSA-Sig-Value.
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    std::unique_ptr<ECDSA_SIG, SigDeleter> sig(
        d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len)));
    if (!sig) {
        return Errc::kCrypto;
    }
    const std::string raw = bn32(ECDSA_SIG_get0_r(sig.get())) + bn32(ECDSA_SIG_get0_s(sig.get()));
    if (raw.size() != 64) {
        return Errc::kCrypto;
    }
    return R"({"protected":")" + prot + R"(","payload":")" + pay + R"(","signature":")" +
           base64url(raw) + "\"}";
}

bool jws_verify(std::string_view jws, EVP_PKEY* key) {
    auto doc = json::parse(jws.begin(), jws.end(), nullptr, false);
    if (!doc.is_object()) {
        return false;
    }
    auto str = [&](const char* k) -> std::string {
        auto it = doc.find(k);
        return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    const std::string prot = str("protected");
    const std::string pay = str("payload");
    auto sig = base64url_decode(str("signature"));
    if (prot.empty() || !sig || sig->size() != 64) {
        return false;
    }
    std::unique_ptr<ECDSA_SIG, SigDeleter> es(ECDSA_SIG_new());
    BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig->data()), 32, nullptr);
    BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig->data() + 32), 32, nullptr);
    if (!es || r == nullptr || s == nullptr || ECDSA_SIG_set0(es.get(), r, s) != 1) {
        BN_free(r);
        BN_free(s);
        return false;
    }
    const std::string der = to_der(es.get(), i2d_ECDSA_SIG);
    const std::string input = prot + "." + pay;
    std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> md(EVP_MD_CTX_new());
    return md && !der.empty() &&
           EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
           EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(der.data()),
                            der.size(), reinterpret_cast<const unsigned char*>(input.data()),
                            input.size()) == 1;
}

bool valid_dns_name(std::string_view name) {
    if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.' ||
        tls::is_ip_literal(name)) {
        return false;
    }
    std::size_t label = 0;
    char prev = '.';
    for (char c : name) {
        const bool alnum =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (c == '.') {
            if (prev == '.' || prev == '-') {
                return false;
            }
            label = 0;
        } else if (alnum || (c == '-' && prev != '.')) {
            if (++label > 63) {
                return false;
            }
        } else {
            return false;
        }
        prev = c;
    }
    return prev != '-';
}

namespace {

// Adds a subjectAltName extension of dNSNames to `exts`.
bool add_san(STACK_OF(X509_EXTENSION) * exts, const std::vector<std::string>& domains) {
    std::string san;
    for (const auto& d : domains) {
        if (!valid_dns_name(d)) {
            return false;
        }
        san += (san.empty() ? "DNS:" : ",DNS:") + d;
    }
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str());
    return ext != nullptr && sk_X509_EXTENSION_push(exts, ext) > 0;
}

}  // namespace

core::Result<std::string> make_csr(const std::vector<std::string>& domains, EVP_PKEY* key) {
    if (domains.empty()) {
        return Errc::kInvalidArgument;
    }
    std::unique_ptr<X509_REQ, ReqDeleter> req(X509_REQ_new());
    std::unique_ptr<STACK_OF(X509_EXTENSION), ExtsDeleter> exts(sk_X509_EXTENSION_new_null());
    if (!req || !exts) {
        return Errc::kCrypto;
    }
    if (!add_san(exts.get(), domains)) {
        return Errc::kInvalidArgument;
    }
    X509_NAME* name = X509_REQ_get_subject_name(req.get());
    if (X509_REQ_set_version(req.get(), 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(domains[0].c_str()), -1,
                                   -1, 0) != 1 ||
        X509_REQ_add_extensions(req.get(), exts.get()) != 1 ||
        X509_REQ_set_pubkey(req.get(), key) != 1 ||
        X509_REQ_sign(req.get(), key, EVP_sha256()) <= 0) {
        return Errc::kCrypto;
    }
    std::string der = to_der(req.get(), i2d_X509_REQ);
    if (der.empty()) {
        return Errc::kCrypto;
    }
    return der;
}

core::Result<tls::PemPair> make_tls_alpn_cert(std::string_view domain, std::string_view key_authz) {
    if (!valid_dns_name(domain)) {
        return Errc::kInvalidArgument;
    }
    auto key = generate_p256();
    if (!key) {
        return key.error();
    }
    tls::X509Ptr x(X509_new());
    if (!x) {
        return Errc::kCrypto;
    }
    const std::string d(domain);
    std::array<unsigned char, 16> serial{};
    const std::string h = sha256(std::string(key_authz) + d);
    std::copy_n(reinterpret_cast<const unsigned char*>(h.data()), serial.size(), serial.begin());
    serial[0] &= 0x7f;
    BnPtr sn(BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr));
    X509_NAME* name = X509_get_subject_name(x.get());
    bool ok = X509_set_version(x.get(), 2) == 1 && sn &&
              BN_to_ASN1_INTEGER(sn.get(), X509_get_serialNumber(x.get())) != nullptr &&
              X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600) != nullptr &&
              X509_gmtime_adj(X509_getm_notAfter(x.get()), 7 * 24 * 3600) != nullptr &&
              X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                         reinterpret_cast<const unsigned char*>(d.c_str()), -1, -1,
                                         0) == 1 &&
              X509_set_issuer_name(x.get(), name) == 1 && X509_set_pubkey(x.get(), key->get()) == 1;
    if (!ok) {
        return Errc::kCrypto;
    }
    std::unique_ptr<STACK_OF(X509_EXTENSION), ExtsDeleter> exts(sk_X509_EXTENSION_new_null());
    if (!exts || !add_san(exts.get(), {d})) {
        return Errc::kCrypto;
    }
    // id-pe-acmeIdentifier (RFC 8737 §3): critical, extnValue = DER OCTET STRING (32 bytes).
    const std::string digest = sha256(key_authz);
    std::string inner = std::string("\x04\x20", 2) + digest;
    ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    ASN1_OCTET_STRING* val = ASN1_OCTET_STRING_new();
    X509_EXTENSION* acme_ext = nullptr;
    if (oid != nullptr && val != nullptr &&
        ASN1_OCTET_STRING_set(val, reinterpret_cast<const unsigned char*>(inner.data()),
                              static_cast<int>(inner.size())) == 1) {
        acme_ext = X509_EXTENSION_create_by_OBJ(nullptr, oid, 1, val);
    }
    ASN1_OBJECT_free(oid);
    ASN1_OCTET_STRING_free(val);
    if (acme_ext == nullptr || sk_X509_EXTENSION_push(exts.get(), acme_ext) <= 0) {
        X509_EXTENSION_free(acme_ext);
        return Errc::kCrypto;
    }
    for (int i = 0; i < sk_X509_EXTENSION_num(exts.get()); ++i) {
        if (X509_add_ext(x.get(), sk_X509_EXTENSION_value(exts.get(), i), -1) != 1) {
            return Errc::kCrypto;
        }
    }
    if (X509_sign(x.get(), key->get(), EVP_sha256()) <= 0) {
        return Errc::kCrypto;
    }
    return tls::PemPair{x509_pem(x.get()), private_key_pem(key->get())};
}

}  // namespace hopgate::acme
