// The ACME cache directory (HOP_ACME_CACHE_DIR):
//   account.key   the P-256 account key (PKCS#8 PEM, 0600)
//   account.json  {"directory": url, "url": account URL}
//   <domain>.crt  the certificate chain, leaf first
//   <domain>.key  its private key (0600)
// Every file is written atomically (temporary file in the same directory, fsync, rename).
// Blocking file I/O: call off the network threads when latency matters (files are small).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "tls/ossl.hpp"

namespace hopgate::acme {

// Writes `data` to `path` atomically with permission `mode`. Errc::kHttp never; core::Errc::kIo.
core::Status write_file_atomic(const std::string& path, const std::string& data, unsigned mode);

struct AccountInfo {
    tls::EvpPkeyPtr key;
    std::string url;  // empty when not registered with `directory` yet
};

// Loads the account for `directory` from `dir`, creating a new key (and the directory, 0700)
// when there is none. A cached URL registered with another directory is not returned.
core::Result<AccountInfo> load_or_create_account(const std::string& dir,
                                                 const std::string& directory);
core::Status save_account_url(const std::string& dir, const std::string& directory,
                              const std::string& url);

std::string cert_path(const std::string& dir, const std::string& domain);
std::string key_path(const std::string& dir, const std::string& domain);

struct CertInfo {
    std::string domain;
    std::chrono::system_clock::time_point not_before;
    std::chrono::system_clock::time_point not_after;
    std::string issuer;
    std::string ari_cert_id;  // base64url(AKI) "." base64url(serial), RFC 9773 §4.1
};
// Validity of the leaf certificate in a PEM chain. core::Errc::kParse.
core::Result<CertInfo> cert_info(const std::string& chain_pem);

// Lists every <domain>.crt in `dir` with its validity (unparsable files skipped).
std::vector<CertInfo> list_certificates(const std::string& dir);

// When to renew a certificate valid over [nb, na]. `before` zero (automatic): when less than a
// third of its lifetime remains, and at least 30 days before expiry when the lifetime allows it
// (min(lifetime / 3, 30 days) before). `before` positive: exactly that long before expiry (an
// operator's or a test's threshold).
std::chrono::system_clock::time_point renewal_time(std::chrono::system_clock::time_point nb,
                                                   std::chrono::system_clock::time_point na,
                                                   std::chrono::seconds before);

}  // namespace hopgate::acme
