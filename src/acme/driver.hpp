// The Asio/Beast driver of OrderFlow: an HTTPS client (one connection per request, a deadline
// on each, a 1 MiB body limit, trust = system roots plus an optional PEM file) that performs the
// flow's actions until the certificate is issued or the order fails.
//
// Threading: everything runs on the executor passed to async_obtain; the provisioner and the
// completion handler are called there.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "acme/order_flow.hpp"
#include "tls/ossl.hpp"

namespace hopgate::acme {

struct DriverOptions {
    std::string ca_roots_file;  // extra trust anchors (PEM), e.g. Pebble's root
    std::chrono::seconds request_timeout{30};
    std::chrono::seconds order_deadline{600};  // the whole order, polling included
};

// Makes a challenge answerable (add = true) or withdraws it (add = false). Called on the
// driver's executor; must not block.
using Provisioner = std::function<void(const ChallengeTask& task, bool add)>;

struct Issued {
    std::string cert_chain_pem;
    std::string key_pem;
    std::string account_url;
    std::string renewal_info_url;
    int bad_nonce_retries = 0;
};

struct IssueResult {
    std::error_code error;  // empty on success
    std::string message;    // one line when failed
    Issued issued;
};

// Runs one order for `cfg.domains` with the account `account_key`. Completion `done` is called
// exactly once. cancel() on the returned handle stops the order at its next step (done then
// gets Errc::kOrderFailed "cancelled"); the order keeps itself alive until it completes.
class OrderHandle {
  public:
    virtual ~OrderHandle() = default;
    virtual void cancel() = 0;
};
std::shared_ptr<OrderHandle> async_obtain(boost::asio::any_io_executor ex, DriverOptions opts,
                                          OrderConfig cfg, EVP_PKEY* account_key,
                                          Provisioner provision,
                                          std::function<void(IssueResult)> done);

// One HTTP exchange (used by async_obtain and for ARI's unauthenticated GET).
void async_http(boost::asio::any_io_executor ex, const DriverOptions& opts, HttpRequest req,
                std::function<void(std::error_code, std::string, HttpResponse)> done);

}  // namespace hopgate::acme
