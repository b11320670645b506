// Automatic certificates for the gateway: decides which domains need one (control domain, proxy
// domains, every registered domain), obtains and renews them through the ACME client with a rate
// limit and exponential backoff, stores them in the cache directory and swaps them into the
// CertStore (new handshakes get the new certificate; open connections keep theirs). Answers
// HTTP-01 (via the plain HTTP listener) and TLS-ALPN-01 (via the HTTPS listener's CertStore).
//
// Threading: every member runs on the io_context thread given at construction, except
// http01_response(), which may be called from any thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/log.hpp"
#include "core/metrics.hpp"
#include "tls/context.hpp"

namespace hopgate::server {

inline constexpr const char* kLetsEncryptDirectory =
    "https://acme-v02.api.letsencrypt.org/directory";
inline constexpr const char* kLetsEncryptStagingDirectory =
    "https://acme-staging-v02.api.letsencrypt.org/directory";

struct AcmeConfig {
    bool enabled = false;
    std::string directory_url;  // HOP_ACME_CA_DIR
    std::string email;          // HOP_ACME_EMAIL
    std::string cache_dir = "acme-cache";
    std::string ca_roots;  // HOP_ACME_CA_ROOTS: extra trust anchors for the CA's HTTPS
    std::vector<std::string> challenges = {"http-01", "tls-alpn-01"};
    std::chrono::seconds renew_before{0};       // 0: min(lifetime / 3, 30 days) before expiry
    std::chrono::seconds check_interval{3600};  // domain set and renewal re-check
    std::chrono::seconds retry_base{60};        // first backoff after a failure
    std::chrono::seconds retry_max{6 * 3600};
    int max_orders_per_hour = 30;  // new orders, all domains together
    std::chrono::seconds request_timeout{30};
};

// Lists registered domains asynchronously; `done` runs on the io_context thread (empty list
// on error).
using DomainLister = std::function<void(std::function<void(std::vector<std::string>)> done)>;

class AcmeService {
  public:
    // Loads the account (creating its key) and any cached certificates into `store`. Throws on
    // an unusable cache directory (start-up error).
    // Metrics (in `metrics`, which must outlive the service; may be null):
    //   hopgate_acme_orders_total{result="ok"|"failed"}
    //   hopgate_acme_certificate_expiry_timestamp_seconds{domain}
    AcmeService(boost::asio::io_context& io, AcmeConfig cfg, std::shared_ptr<tls::CertStore> store,
                core::Logger log, std::vector<std::string> static_domains, DomainLister lister,
                core::MetricsRegistry* metrics = nullptr);
    ~AcmeService();

    // Starts the background loop.
    void start();
    // Re-checks the domain set now (a domain was registered).
    void kick();
    void stop();
    // The key authorization for an HTTP-01 token being validated, if any. Any thread.
    std::optional<std::string> http01_response(std::string_view token) const;

    struct Impl;

  private:
    std::shared_ptr<Impl> impl_;
};

// `hopgate-server cert obtain|renew|list ...`: a one-shot run of the same client, serving
// HTTP-01 on `http_listen` itself (the server must not hold that port). Returns the exit code.
int run_cert_cli(const std::vector<std::string>& args, const AcmeConfig& cfg,
                 const std::string& http_listen, std::ostream& out, std::ostream& err);

}  // namespace hopgate::server
