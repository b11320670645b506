// Every metric of the gateway, declared in one place (Prometheus names per STYLE.md).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <mutex>
#include <vector>
#include <map>

#include "core/buffer_budget.hpp"
#include "core/metrics.hpp"
#include "net/tunnel.hpp"

namespace hopgate::server {

struct Metrics {
    explicit Metrics(core::MetricsRegistry& r);

    // A proxied or control-domain request finished.
    void request(const std::string& method, unsigned status,
                 std::chrono::steady_clock::duration took);
    // The same request, counted by domain: `kind` admin (the control domain: admin API, status,
    // metrics) or proxy. `known`: the domain has (had) a tunnel; only known domains get their own
    // label (the first kMaxDomainLabels seen), every other one counts as "other".
    enum class Kind { kProxy, kAdmin };
    void request_domain(Kind kind, std::string_view domain, bool known, unsigned status,
                        std::chrono::steady_clock::duration took, std::uint64_t bytes_in,
                        std::uint64_t bytes_out);
    // Live tunnels per known domain (on scrape; `live` holds 0 for a known domain whose clients
    // left); a domain missing from `live` (unregistered) is no longer exported.
    void set_domain_tunnels(const std::map<std::string, std::size_t, std::less<>>& live);
    // Tunnel stream bytes since start-up (live tunnels plus closed ones; on scrape).
    void set_tunnel_bytes(std::uint64_t sent_total, std::uint64_t received_total);
    // Reads /proc/self and updates the process_* metrics (on scrape; Linux only, else no-op).
    void update_process();
    // Updates the aliases kept for the original project's names (on scrape).
    void update_aliases();
    static constexpr std::size_t kMaxDomainLabels = 50;
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

    core::Family<core::Gauge>& build_info;  // hopgate_build_info{version,protocol} 1
    core::Family<core::Counter>& domain_requests;    // {kind,domain,code}: code 1xx..5xx
    core::Family<core::Histogram>& domain_duration;  // {kind,domain}
    core::Family<core::Counter>& domain_bytes;       // {kind,domain,direction}
    core::Family<core::Gauge>& domain_tunnels;       // {domain}
    core::DoubleCounter& process_cpu;
    core::Gauge& process_rss;
    core::Gauge& process_vsize;
    core::Gauge& process_open_fds;
    core::Gauge& process_max_fds;
    core::DoubleGauge& process_start_time;
    core::Family<core::Counter>& dtls_handshakes_alias;  // hopgate_dtls_handshakes_total{result}
    core::Gauge& dtls_sessions_alias;                    // hopgate_dtls_sessions_active

private:
    // Per domain slot (0..kMaxDomainLabels-1 own domains, then "other", then the admin kind):
    // the children used by request_domain(), filled on first use.
    struct DomainSlot {
        std::string name;
        core::Counter* codes[6] = {};  // 0: unknown class, 1..5: 1xx..5xx
        core::Histogram* duration = nullptr;
        core::Counter* bytes_in = nullptr;
        core::Counter* bytes_out = nullptr;
    };
    void read_proc();
    DomainSlot& slot_for(Kind kind, std::string_view domain, bool known);
    std::mutex domain_mu_;  // guards domain_slots_ / domain_index_ / tunnel_domains_
    std::vector<std::unique_ptr<DomainSlot>> domain_slots_;  // own domains
    std::map<std::string, DomainSlot*, std::less<>> domain_index_;
    DomainSlot other_slot_;
    DomainSlot admin_slot_;
    std::vector<std::string> tunnel_domains_;  // domains exported by set_domain_tunnels

    // request() per request without a label lookup: the http_requests child of each (method,
    // status) pair, filled on first use. Index: method (kMethods, then OTHER) * 1000 + status.
    static constexpr std::size_t kMethodSlots = 10;
    std::unique_ptr<std::atomic<core::Counter*>[]> request_children_;
    core::Histogram& http_duration_child_;
};

}  // namespace hopgate::server
