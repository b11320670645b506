#include "tls/certs.hpp"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <ctime>
#include <fstream>
#include <limits>
#include <sstream>

#include "tls/error.hpp"

namespace hopgate::tls {
namespace {

constexpr std::size_t kMaxPemFile = 1 << 20;

[[noreturn]] void fail(const std::string& what) {
    throw Error("self-signed certificate: " + what + ": " + drain_openssl_errors());
}

BioPtr mem_bio(std::string_view s) {
    if (s.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
        return nullptr;
    }
    return BioPtr(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
}

std::string bio_to_string(BIO* bio) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(n));
}

bool add_ext(X509* cert, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (ext == nullptr) {
        return false;
    }
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1;
}

void set_why(std::string* why, std::string text) {
    if (why != nullptr) {
        *why = std::move(text);
    }
}

}  // namespace

bool is_ip_literal(std::string_view name) {
    if (name.empty() || name.size() > 64) {
        return false;
    }
    std::string s(name);
    ASN1_OCTET_STRING* ip = a2i_IPADDRESS(s.c_str());
    if (ip == nullptr) {
        ERR_clear_error();
        return false;
    }
    ASN1_OCTET_STRING_free(ip);
    return true;
}

std::string unfit_for(const CertifiedKey& ck, const std::vector<std::string>& names,
                      std::chrono::seconds margin) {
    X509* leaf = ck.leaf();
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
        return "not valid yet";
    }
    std::time_t horizon = std::time(nullptr) + static_cast<std::time_t>(margin.count());
    if (X509_cmp_time(X509_get0_notAfter(leaf), &horizon) <= 0) {
        return margin.count() > 0 ? "expired or expiring within " +
                                        std::to_string(margin.count() / 86400) + " days"
                                  : "expired";
    }
    for (const auto& n : names) {
        // A wildcard name is covered when a name under it would be.
        const std::string probe = n.starts_with("*.") ? "hopgate-probe" + n.substr(1) : n;
        const int hit = is_ip_literal(n)
                            ? X509_check_ip_asc(leaf, n.c_str(), 0)
                            : X509_check_host(leaf, probe.data(), probe.size(), 0, nullptr);
        if (hit != 1) {
            ERR_clear_error();
            return "does not cover " + n;
        }
    }
    return {};
}

PemPair generate_self_signed(std::vector<std::string> names, std::chrono::seconds validity) {
    if (names.empty()) {
        throw Error("self-signed certificate: no names given");
    }
    std::string san;
    for (const auto& n : names) {
        bool ok = !n.empty() && n.size() <= 253 && std::all_of(n.begin(), n.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-' ||
                   c == '*' || c == ':';
        });
        if (!ok) {
            throw Error("self-signed certificate: invalid name '" + n + "'");
        }
        if (!san.empty()) {
            san += ',';
        }
        san += (is_ip_literal(n) ? "IP:" : "DNS:") + n;
    }

    EvpPkeyPtr key(EVP_EC_gen("P-256"));
    if (!key) {
        fail("key generation");
    }
    X509Ptr cert(X509_new());
    if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
        fail("X509_new");
    }
    unsigned char serial_bytes[16];
    if (RAND_bytes(serial_bytes, sizeof serial_bytes) != 1) {
        fail("serial");
    }
    serial_bytes[0] &= 0x7f;  // positive
    BIGNUM* bn = BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr);
    ASN1_INTEGER* serial = bn != nullptr ? BN_to_ASN1_INTEGER(bn, nullptr) : nullptr;
    BN_free(bn);
    if (serial == nullptr || X509_set_serialNumber(cert.get(), serial) != 1) {
        ASN1_INTEGER_free(serial);
        fail("serial");
    }
    ASN1_INTEGER_free(serial);
    // Back-date by a minute to tolerate small clock differences between the two ends.
    if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60) == nullptr ||
        X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(validity.count())) ==
            nullptr) {
        fail("validity");
    }
    X509_NAME* subject = X509_get_subject_name(cert.get());
    std::string cn = names.front().substr(0, 64);
    if (X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(cert.get(), subject) != 1 ||
        X509_set_pubkey(cert.get(), key.get()) != 1) {
        fail("subject");
    }
    // Self-signed and used as its own trust anchor (--ca-file), hence CA:TRUE like `openssl req`.
    if (!add_ext(cert.get(), NID_basic_constraints, "critical,CA:TRUE") ||
        !add_ext(cert.get(), NID_key_usage, "critical,digitalSignature,keyCertSign") ||
        !add_ext(cert.get(), NID_ext_key_usage, "serverAuth,clientAuth") ||
        !add_ext(cert.get(), NID_subject_key_identifier, "hash") ||
        !add_ext(cert.get(), NID_subject_alt_name, san)) {
        fail("extensions");
    }
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) {
        fail("signing");
    }

    BioPtr cbio(BIO_new(BIO_s_mem()));
    BioPtr kbio(BIO_new(BIO_s_mem()));
    if (!cbio || !kbio || PEM_write_bio_X509(cbio.get(), cert.get()) != 1 ||
        PEM_write_bio_PrivateKey(kbio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
            1) {
        fail("PEM encoding");
    }
    return PemPair{bio_to_string(cbio.get()), bio_to_string(kbio.get())};
}

core::Result<std::vector<X509Ptr>> load_certificates_pem(std::string_view pem) {
    BioPtr bio = mem_bio(pem);
    if (!bio) {
        return Errc::kBadPem;
    }
    std::vector<X509Ptr> out;
    while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
        out.emplace_back(x);
    }
    // The loop always ends with a "no start line" error; only an empty result is a failure.
    ERR_clear_error();
    if (out.empty()) {
        return Errc::kBadPem;
    }
    return out;
}

core::Result<EvpPkeyPtr> load_private_key_pem(std::string_view pem) {
    BioPtr bio = mem_bio(pem);
    if (!bio) {
        return Errc::kBadPem;
    }
    EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key) {
        ERR_clear_error();
        return Errc::kBadPem;
    }
    return key;
}

core::Result<std::string> read_pem_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return Errc::kIo;
    }
    std::string data;
    char buf[8192];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        data.append(buf, static_cast<std::size_t>(in.gcount()));
        if (data.size() > kMaxPemFile) {
            return Errc::kTooLarge;
        }
    }
    if (in.bad()) {
        return Errc::kIo;
    }
    return data;
}

core::Result<std::shared_ptr<const CertifiedKey>> CertifiedKey::from_pem(
    std::string_view cert_chain_pem, std::string_view key_pem, std::string* why) {
    auto certs = load_certificates_pem(cert_chain_pem);
    if (!certs) {
        set_why(why, "no certificate found in PEM");
        return certs.error();
    }
    auto key = load_private_key_pem(key_pem);
    if (!key) {
        set_why(why, "no private key found in PEM");
        return key.error();
    }
    X509* leaf = certs->front().get();
    if (X509_check_private_key(leaf, key->get()) != 1) {
        set_why(why, "private key does not match certificate: " + drain_openssl_errors());
        return Errc::kKeyMismatch;
    }
    X509StackPtr chain(sk_X509_new_null());
    if (!chain) {
        return Errc::kInternal;
    }
    for (std::size_t i = 1; i < certs->size(); ++i) {
        if (sk_X509_push(chain.get(), (*certs)[i].get()) <= 0) {
            return Errc::kInternal;
        }
        (void)(*certs)[i].release();  // now owned by the stack
    }
    return std::make_shared<const CertifiedKey>(std::move(certs->front()), std::move(chain),
                                                std::move(*key));
}

namespace {
// "cannot read PATH: REASON", with the operating system's reason when there is one.
std::string read_problem(const std::string& what, const std::string& path, std::error_code ec) {
    if (path.empty()) {
        return what + ": no file given";
    }
    std::string reason = ec.message();
    if (ec == make_error_code(Errc::kIo)) {
        std::error_code fs_ec;
        const auto st = std::filesystem::status(path, fs_ec);
        if (fs_ec) {
            reason = fs_ec.message();
        } else if (std::filesystem::is_directory(st)) {
            reason = "is a directory";
        } else if (::access(path.c_str(), R_OK) != 0) {
            reason = std::strerror(errno);
        }
    }
    return "cannot read " + what + " " + path + ": " + reason;
}
}  // namespace

core::Result<std::shared_ptr<const CertifiedKey>> CertifiedKey::from_files(
    const std::string& cert_path, const std::string& key_path, std::string* why) {
    auto cert = read_pem_file(cert_path);
    if (!cert) {
        set_why(why, read_problem("certificate", cert_path, cert.error()));
        return cert.error();
    }
    auto key = read_pem_file(key_path);
    if (!key) {
        set_why(why, read_problem("key", key_path, key.error()));
        return key.error();
    }
    return from_pem(*cert, *key, why);
}

std::vector<std::string> CertifiedKey::dns_names() const {
    std::vector<std::string> out;
    auto* sans = static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(leaf_.get(), NID_subject_alt_name, nullptr, nullptr));
    if (sans == nullptr) {
        return out;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
        const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type == GEN_DNS) {
            const ASN1_IA5STRING* s = gn->d.dNSName;
            std::string name(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                             static_cast<std::size_t>(ASN1_STRING_length(s)));
            std::transform(name.begin(), name.end(), name.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            out.push_back(std::move(name));
        }
    }
    GENERAL_NAMES_free(sans);
    return out;
}

}  // namespace hopgate::tls
