// Every metric of the gateway, declared in one place (Prometheus names per STYLE.md).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "core/buffer_budget.hpp"
#include "core/metrics.hpp"
#include "net/tunnel.hpp"

namespace hopgate::server {

struct Metrics {
    explicit Metrics(core::MetricsRegistry& r);

    // A proxied or control-domain request finished.
    void request(const std::string& method, unsigned status,
                 std::chrono::steady_clock::duration took);
    // An error page was served instead of an upstream answer.
    void proxy_error(int status);
    // A response from the tunnel was refused (http::check_response_head's reason, or
    // "body_length" for a body that disagrees with its Content-Length).
    void bad_response(std::string_view reason);
    void handshake(const char* result, net::TransportKind kind);
    // Updates gauges from connection statistics (called periodically and on scrape).
    void set_tunnels(std::size_t dtls, std::size_t tls);
    // Updates the tunnel receive-window budget figures (on scrape).
    void set_window_budget(std::uint64_t reserved, std::uint64_t denied_total);
    // The proxy buffer budget refused an exchange (answered 503).
    void buffer_refused(core::BufferBudget::Refusal why);
    // Updates the DTLS half-open figures from the listener's totals (on scrape).
    void set_dtls_half_open(std::size_t open, std::uint64_t evicted_same_source,
                            std::uint64_t evicted_pressure, std::uint64_t refused_source,
                            std::uint64_t refused_full);

    core::MetricsRegistry& registry;
    core::Family<core::Counter>& http_requests;
    core::Family<core::Histogram>& http_duration;
    core::Family<core::Counter>& proxy_errors;
    core::Family<core::Counter>& bad_responses;
    core::Family<core::Counter>& handshakes;
    core::Family<core::Gauge>& tunnels_active;
    core::Family<core::Counter>& tunnel_bytes;
    core::Counter& retransmitted_bytes;
    core::Family<core::DoubleGauge>& tunnel_srtt;
    // Visitor connections (front door).
    core::Gauge& connections_open;
    core::Counter& connections_rejected;  // over HOP_SERVER_MAX_CONNECTIONS, closed at accept
    core::Counter& connections_rejected_per_source;  // over ..._PER_SOURCE, closed at accept
    core::Counter& upgrades;              // 101 pipes started
    core::Gauge& proxy_buffer_bytes;      // bytes leased from the proxy buffer budget
    core::Family<core::Counter>& proxy_buffer_refused;  // leases refused, by share
    core::Gauge& window_budget_bytes;     // tunnel receive-window growth reserved, all tunnels
    core::Counter& window_budget_denied;  // window growths refused by that budget
    // Plain HTTP (:80) connections and their cap (HOP_SERVER_HTTP_MAX_CONNECTIONS).
    core::Gauge& redirect_connections_open;
    core::Counter& redirect_connections_rejected;
    // Accept errors (EMFILE, ENFILE, ENOBUFS, ENOMEM, ...) that paused a listener, by listener.
    core::Family<core::Counter>& accept_pauses;
    // DTLS handshakes in progress and what the half-open table did (DtlsServer::stats()).
    core::Gauge& dtls_half_open;
    core::Family<core::Counter>& dtls_half_open_evicted;  // reason: same_source, pressure
    core::Family<core::Counter>& dtls_half_open_refused;  // reason: source_cap, full

private:
    // request() per request without a label lookup: the http_requests child of each (method,
    // status) pair, filled on first use. Index: method (kMethods, then OTHER) * 1000 + status.
    static constexpr std::size_t kMethodSlots = 10;
    std::unique_ptr<std::atomic<core::Counter*>[]> request_children_;
    core::Histogram& http_duration_child_;
};

}  // namespace hopgate::server
