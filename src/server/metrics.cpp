#include "server/metrics.hpp"

namespace hopgate::server {

Metrics::Metrics(core::MetricsRegistry& r)
    : registry(r),
      http_requests(r.counter("hopgate_http_requests_total", "HTTP requests served, by method and status",
                              {"method", "status"}, 1000)),
      http_duration(r.histogram("hopgate_http_request_duration_seconds",
                                "Time from request head to the end of the response",
                                core::default_buckets())),
      proxy_errors(r.counter("hopgate_proxy_errors_total", "Error pages served instead of an upstream answer, by type",
                             {"type"})),
      bad_responses(r.counter("hopgate_proxy_bad_responses_total",
                              "Responses from a tunnel refused at the edge (502 page or cut), by reason",
                              {"reason"})),
      handshakes(r.counter("hopgate_tunnel_handshakes_total", "Tunnel authentications, by result and transport",
                           {"result", "transport"})),
      tunnels_active(r.gauge("hopgate_tunnels_active", "Authenticated tunnels, by transport",
                             {"transport"})),
      tunnel_bytes(r.counter("hopgate_tunnel_bytes_total", "Tunnel bytes, by direction", {"direction"})),
      retransmitted_bytes(r.counter("hopgate_tunnel_retransmitted_bytes_total",
                                    "Stream bytes sent again after loss").get()),
      tunnel_srtt(r.double_gauge("hopgate_tunnel_smoothed_rtt_seconds",
                                 "Smoothed RTT of the most recently sampled tunnel", {"transport"})),
      connections_open(r.gauge("hopgate_http_connections_open", "Open visitor connections (HTTPS)").get()),
      connections_rejected(r.counter("hopgate_http_connections_rejected_total",
                                     "Visitor connections closed at accept: over the connection cap")
                               .get()),
      connections_rejected_per_source(
          r.counter("hopgate_http_connections_rejected_per_source_total",
                    "Visitor connections closed at accept: over the per-source connection cap")
              .get()),
      upgrades(r.counter("hopgate_http_upgrades_total", "Upgraded (101) byte pipes started").get()),
      proxy_buffer_bytes(r.gauge("hopgate_proxy_buffer_bytes",
                                 "Bytes of proxy I/O buffers leased from the server-wide budget")
                             .get()),
      proxy_buffer_refused(r.counter("hopgate_proxy_buffer_refused_total",
                                     "Exchanges refused (503) by the proxy buffer budget, by the "
                                     "share that was spent: source, domain or total",
                                     {"share"})),
      window_budget_bytes(r.gauge("hopgate_tunnel_window_budget_bytes",
                                  "Receive-window growth reserved by all tunnels from the shared budget")
                              .get()),
      window_budget_denied(r.counter("hopgate_tunnel_window_budget_denied_total",
                                     "Tunnel receive-window growths refused by the shared budget")
                               .get()),
      redirect_connections_open(
          r.gauge("hopgate_http_redirect_connections_open",
                  "Open plain-HTTP connections (redirects to HTTPS, ACME HTTP-01)")
              .get()),
      redirect_connections_rejected(
          r.counter("hopgate_http_redirect_connections_rejected_total",
                    "Plain-HTTP connections closed at accept: over HOP_SERVER_HTTP_MAX_CONNECTIONS")
              .get()),
      accept_pauses(r.counter("hopgate_accept_pauses_total",
                              "Accept errors (out of descriptors or memory) that paused a "
                              "listener for 50 ms, by listener",
                              {"listener"})),
      dtls_half_open(r.gauge("hopgate_dtls_half_open",
                             "DTLS handshakes in progress after the cookie exchange")
                         .get()),
      dtls_half_open_evicted(r.counter("hopgate_dtls_half_open_evicted_total",
                                       "DTLS handshakes in progress ended to admit a newer one, "
                                       "by reason (same_source: oldest of a source at its cap; "
                                       "pressure: table over half full)",
                                       {"reason"})),
      dtls_half_open_refused(r.counter("hopgate_dtls_half_open_refused_total",
                                       "New DTLS handshakes dropped, by reason (source_cap, full)",
                                       {"reason"})),
      request_children_(new std::atomic<core::Counter*>[kMethodSlots * 1000]()),
      http_duration_child_(http_duration.get()) {
    for (const char* share : {"source", "domain", "total"}) {
        proxy_buffer_refused.with({share});  // exported as 0 from the start
    }
}

void Metrics::request(const std::string& method, unsigned status,
                      std::chrono::steady_clock::duration took) {
    // Methods are bounded to the standard ones so hostile methods cannot grow the label set.
    static constexpr std::string_view kKnown[kMethodSlots - 1] = {
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"};
    std::size_t mi = kMethodSlots - 1;  // OTHER
    for (std::size_t i = 0; i < kMethodSlots - 1; ++i) {
        if (method == kKnown[i]) {
            mi = i;
            break;
        }
    }
    const std::string_view m = mi < kMethodSlots - 1 ? kKnown[mi] : std::string_view("OTHER");
    core::Counter* c = nullptr;
    std::atomic<core::Counter*>* slot =
        status < 1000 ? &request_children_[mi * 1000 + status] : nullptr;
    if (slot != nullptr) {
        c = slot->load(std::memory_order_acquire);
    }
    if (c == nullptr) {
        const auto overflows = http_requests.overflow_count();
        c = &http_requests.with({m, std::to_string(status)});
        // The "_other" child of a full family is not cached: each such lookup stays counted.
        if (slot != nullptr && http_requests.overflow_count() == overflows) {
            slot->store(c, std::memory_order_release);
        }
    }
    c->inc();
    http_duration_child_.observe(std::chrono::duration<double>(took).count());
}

void Metrics::proxy_error(int status) {
    const char* type = status == 404   ? "unknown_host"
                       : status == 502 ? "bad_gateway"
                       : status == 504 ? "timeout"
                       : status == 525 ? "tunnel_failure"
                       : status == 400 ? "bad_request"
                       : status == 431 ? "headers_too_large"
                       : status == 501 ? "not_implemented"
                       : status == 503 ? "overloaded"
                                       : "other";
    proxy_errors.with({type}).inc();
}

void Metrics::buffer_refused(core::BufferBudget::Refusal why) {
    using Refusal = core::BufferBudget::Refusal;
    proxy_buffer_refused
        .with({why == Refusal::kSource   ? "source"
               : why == Refusal::kDomain ? "domain"
                                         : "total"})
        .inc();
}

void Metrics::bad_response(std::string_view reason) {
    bad_responses.with({reason}).inc();
}

void Metrics::handshake(const char* result, net::TransportKind kind) {
    handshakes.with({result, net::transport_name(kind)}).inc();
}

void Metrics::set_tunnels(std::size_t dtls, std::size_t tls) {
    tunnels_active.with({"dtls"}).set(static_cast<std::int64_t>(dtls));
    tunnels_active.with({"tls"}).set(static_cast<std::int64_t>(tls));
}

void Metrics::set_window_budget(std::uint64_t reserved, std::uint64_t denied_total) {
    window_budget_bytes.set(static_cast<std::int64_t>(reserved));
    // A counter only goes up: add what was refused since the last scrape.
    const std::uint64_t seen = window_budget_denied.value();
    if (denied_total > seen) {
        window_budget_denied.inc(denied_total - seen);
    }
}

namespace {

// A counter only goes up: add what happened since the last update.
void catch_up(core::Counter& c, std::uint64_t total) {
    const std::uint64_t seen = c.value();
    if (total > seen) {
        c.inc(total - seen);
    }
}

}  // namespace

void Metrics::set_dtls_half_open(std::size_t open, std::uint64_t evicted_same_source,
                                 std::uint64_t evicted_pressure, std::uint64_t refused_source,
                                 std::uint64_t refused_full) {
    dtls_half_open.set(static_cast<std::int64_t>(open));
    catch_up(dtls_half_open_evicted.with({"same_source"}), evicted_same_source);
    catch_up(dtls_half_open_evicted.with({"pressure"}), evicted_pressure);
    catch_up(dtls_half_open_refused.with({"source_cap"}), refused_source);
    catch_up(dtls_half_open_refused.with({"full"}), refused_full);
}

}  // namespace hopgate::server
