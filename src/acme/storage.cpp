#include "acme/storage.hpp"

#include <fcntl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "acme/crypto.hpp"
#include "acme/messages.hpp"
#include "core/error.hpp"
#include "tls/certs.hpp"

namespace hopgate::acme {
namespace fs = std::filesystem;
using json = nlohmann::json;

core::Status write_file_atomic(const std::string& path, const std::string& data, unsigned mode) {
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    int fd =
        ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, static_cast<mode_t>(mode));
    if (fd < 0) {
        return core::Errc::kIo;
    }
    ::fchmod(fd, static_cast<mode_t>(mode));
    std::size_t off = 0;
    while (off < data.size()) {
        const auto n = ::write(fd, data.data() + off, data.size() - off);
        if (n <= 0) {
            ::close(fd);
            ::unlink(tmp.c_str());
            return core::Errc::kIo;
        }
        off += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
        ::unlink(tmp.c_str());
        return core::Errc::kIo;
    }
    return {};
}

core::Result<AccountInfo> load_or_create_account(const std::string& dir,
                                                 const std::string& directory) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    ::chmod(dir.c_str(), 0700);
    const std::string kp = (fs::path(dir) / "account.key").string();
    AccountInfo info;
    if (auto pem = tls::read_pem_file(kp)) {
        auto key = p256_from_pem(*pem);
        if (!key) {
            return core::Errc::kParse;
        }
        info.key = std::move(*key);
        if (auto js = tls::read_pem_file((fs::path(dir) / "account.json").string())) {
            auto doc = json::parse(*js, nullptr, false);
            if (doc.is_object() && doc.value("directory", "") == directory) {
                info.url = doc.value("url", "");
            }
        }
        return info;
    }
    auto key = generate_p256();
    if (!key) {
        return key.error();
    }
    if (auto st = write_file_atomic(kp, private_key_pem(key->get()), 0600); !st) {
        return st.error();
    }
    info.key = std::move(*key);
    return info;
}

core::Status save_account_url(const std::string& dir, const std::string& directory,
                              const std::string& url) {
    return write_file_atomic((fs::path(dir) / "account.json").string(),
                             json{{"directory", directory}, {"url", url}}.dump() + "\n", 0600);
}

std::string cert_path(const std::string& dir, const std::string& domain) {
    return (fs::path(dir) / (domain + ".crt")).string();
}
std::string key_path(const std::string& dir, const std::string& domain) {
    return (fs::path(dir) / (domain + ".key")).string();
}

namespace {

std::chrono::system_clock::time_point to_tp(const ASN1_TIME* t) {
    std::tm tm{};
    if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
        return {};
    }
    return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace

core::Result<CertInfo> cert_info(const std::string& chain_pem) {
    auto certs = tls::load_certificates_pem(chain_pem);
    if (!certs || certs->empty()) {
        return core::Errc::kParse;
    }
    X509* leaf = (*certs)[0].get();
    CertInfo ci;
    ci.not_before = to_tp(X509_get0_notBefore(leaf));
    ci.not_after = to_tp(X509_get0_notAfter(leaf));
    char buf[256] = {0};
    X509_NAME_oneline(X509_get_issuer_name(leaf), buf, sizeof buf);
    ci.issuer = buf;
    const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(leaf);
    const ASN1_INTEGER* serial = X509_get0_serialNumber(leaf);
    if (aki != nullptr && serial != nullptr) {
        // DER INTEGER content bytes (two's complement, leading zero kept).
        unsigned char* der = nullptr;
        const int n = i2d_ASN1_INTEGER(serial, &der);
        if (n > 2) {
            std::string s(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
            std::size_t hdr = 2;
            if ((static_cast<unsigned char>(s[1]) & 0x80) != 0) {
                hdr += static_cast<unsigned char>(s[1]) & 0x7f;
            }
            ci.ari_cert_id = base64url(std::string_view(
                                 reinterpret_cast<const char*>(ASN1_STRING_get0_data(aki)),
                                 static_cast<std::size_t>(ASN1_STRING_length(aki)))) +
                             "." + base64url(s.substr(std::min(hdr, s.size())));
        }
        OPENSSL_free(der);
    }
    return ci;
}

std::vector<CertInfo> list_certificates(const std::string& dir) {
    std::vector<CertInfo> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        if (e.path().extension() != ".crt") {
            continue;
        }
        auto pem = tls::read_pem_file(e.path().string());
        if (!pem) {
            continue;
        }
        if (auto ci = cert_info(*pem)) {
            ci->domain = e.path().stem().string();
            out.push_back(std::move(*ci));
        }
    }
    std::sort(out.begin(), out.end(),
              [](const CertInfo& a, const CertInfo& b) { return a.domain < b.domain; });
    return out;
}

std::chrono::system_clock::time_point renewal_time(std::chrono::system_clock::time_point nb,
                                                   std::chrono::system_clock::time_point na,
                                                   std::chrono::seconds before) {
    if (before.count() > 0) {
        return na - before;
    }
    const auto third = (na - nb) / 3;
    return na - std::min<std::chrono::system_clock::duration>(third, std::chrono::hours(24 * 30));
}

}  // namespace hopgate::acme
