#include "server/metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/version.hpp"
#include "proto/frame.hpp"

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
      tunnel_bytes(r.counter("hopgate_tunnel_bytes_total",
                                       "Tunnel stream payload bytes, by direction (out: server "
                                       "to clients, in: clients to server)",
                                       {"direction"})),
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
      build_info(r.gauge("hopgate_build_info",
                         "Always 1; the labels name the build's version and tunnel protocol",
                         {"version", "protocol"})),
      domain_requests(r.counter("hopgate_http_domain_requests_total",
                                "HTTP requests by kind (proxy, admin), domain (the first 50 "
                                "domains with a tunnel; others: \"other\") and status class",
                                {"kind", "domain", "code"})),
      domain_duration(r.histogram("hopgate_http_domain_request_duration_seconds",
                                  "Time from request head to the end of the response, by kind "
                                  "and domain",
                                  core::default_buckets(), {"kind", "domain"})),
      domain_bytes(r.counter("hopgate_http_domain_bytes_total",
                             "Visitor body bytes, by kind, domain and direction (in: from the "
                             "visitor, out: to the visitor)",
                             {"kind", "domain", "direction"})),
      domain_tunnels(r.gauge("hopgate_domain_tunnels",
                             "Live tunnels per domain that authenticated a tunnel since start-up",
                             {"domain"})),
      process_cpu(r.double_counter("process_cpu_seconds_total",
                                   "Total user and system CPU time spent in seconds")
                      .get()),
      process_rss(r.gauge("process_resident_memory_bytes", "Resident memory size in bytes").get()),
      process_vsize(r.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes").get()),
      process_open_fds(r.gauge("process_open_fds", "Number of open file descriptors").get()),
      process_max_fds(r.gauge("process_max_fds", "Maximum number of open file descriptors").get()),
      process_start_time(r.double_gauge("process_start_time_seconds",
                                        "Start time of the process since unix epoch in seconds")
                             .get()),
      dtls_handshakes_alias(r.counter("hopgate_dtls_handshakes_total",
                                      "Alias of hopgate_tunnel_handshakes_total{transport=\"dtls\"} "
                                      "(the original project's name), by result",
                                      {"result"})),
      dtls_sessions_alias(r.gauge("hopgate_dtls_sessions_active",
                                  "Alias of hopgate_tunnels_active{transport=\"dtls\"} (the "
                                  "original project's name)")
                              .get()),
      request_children_(new std::atomic<core::Counter*>[kMethodSlots * 1000]()),
      http_duration_child_(http_duration.get()) {
    for (const char* share : {"source", "domain", "total"}) {
        proxy_buffer_refused.with({share});  // exported as 0 from the start
    }
    build_info.with({core::version(), std::to_string(proto::kProtocolVersion)}).set(1);
    for (const char* result : {"ok", "rejected"}) {
        handshakes.with({result, "dtls"});
        handshakes.with({result, "tls"});
        dtls_handshakes_alias.with({result});
    }
    set_tunnels(0, 0);
    set_tunnel_bytes(0, 0);
    other_slot_.name = "other";
    update_process();
}

Metrics::DomainSlot& Metrics::slot_for(Kind kind, std::string_view domain, bool known) {
    std::lock_guard lock(domain_mu_);
    if (kind == Kind::kAdmin) {
        if (admin_slot_.name.empty()) {
            admin_slot_.name = std::string(domain);
        }
        return admin_slot_;
    }
    if (!known || domain.empty()) {
        return other_slot_;
    }
    auto it = domain_index_.find(domain);
    if (it != domain_index_.end()) {
        return *it->second;
    }
    if (domain_slots_.size() >= kMaxDomainLabels) {
        return other_slot_;
    }
    auto& s = domain_slots_.emplace_back(std::make_unique<DomainSlot>());
    s->name = std::string(domain);
    domain_index_.emplace(s->name, s.get());
    return *s;
}

void Metrics::request_domain(Kind kind, std::string_view domain, bool known, unsigned status,
                             std::chrono::steady_clock::duration took, std::uint64_t bytes_in,
                             std::uint64_t bytes_out) {
    DomainSlot& s = slot_for(kind, domain, known);
    const std::string_view k = kind == Kind::kAdmin ? "admin" : "proxy";
    const std::size_t cls = status >= 100 && status < 600 ? status / 100 : 0;
    static constexpr std::string_view kCodes[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    // Children are looked up once per slot and kept (a slot's name never changes); the
    // families' own bounds stay in force for anything unexpected.
    core::Counter* c = nullptr;
    core::Histogram* h = nullptr;
    core::Counter* in = nullptr;
    core::Counter* out = nullptr;
    {
        std::lock_guard lock(domain_mu_);
        if (s.codes[cls] == nullptr) {
            s.codes[cls] = &domain_requests.with({k, s.name, kCodes[cls]});
        }
        if (s.duration == nullptr) {
            s.duration = &domain_duration.with({k, s.name});
            s.bytes_in = &domain_bytes.with({k, s.name, "in"});
            s.bytes_out = &domain_bytes.with({k, s.name, "out"});
        }
        c = s.codes[cls];
        h = s.duration;
        in = s.bytes_in;
        out = s.bytes_out;
    }
    c->inc();
    h->observe(std::chrono::duration<double>(took).count());
    in->inc(bytes_in);
    out->inc(bytes_out);
}

void Metrics::set_domain_tunnels(const std::map<std::string, std::size_t, std::less<>>& live) {
    std::lock_guard lock(domain_mu_);
    // A domain no longer in `live` was unregistered: its series goes (a stale 0 would keep the
    // "no tunnel for a domain" alert firing). Nobody keeps references to these children.
    for (const auto& name : tunnel_domains_) {
        if (!live.contains(name)) {
            domain_tunnels.remove({name});
        }
    }
    tunnel_domains_.clear();
    for (const auto& [name, n] : live) {
        domain_tunnels.with({name}).set(static_cast<std::int64_t>(n));
        tunnel_domains_.push_back(name);
    }
}

void Metrics::update_process() {
#ifdef __linux__
    try {
        read_proc();
    } catch (const std::exception&) {
        // A malformed /proc line leaves the figures of the previous scrape.
    }
#endif
}

void Metrics::read_proc() {
#ifdef __linux__
    // /proc/self/stat: fields after the parenthesised command name; utime (14), stime (15),
    // starttime (22), vsize (23), rss pages (24), numbered from 1.
    std::ifstream stat("/proc/self/stat");
    std::string line;
    if (std::getline(stat, line)) {
        const auto close = line.rfind(')');
        if (close != std::string::npos) {
            std::istringstream in(line.substr(close + 2));
            std::vector<std::string> f;
            std::string tok;
            while (in >> tok) {
                f.push_back(tok);
            }
            // f[0] is field 3 (state).
            if (f.size() > 21) {
                const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
                const double cpu =
                    (std::stod(f[11]) + std::stod(f[12])) / (ticks > 0 ? ticks : 100.0);
                process_cpu.inc(cpu - process_cpu.value());
                process_vsize.set(std::stoll(f[20]));
                process_rss.set(std::stoll(f[21]) * sysconf(_SC_PAGESIZE));
                if (process_start_time.value() == 0.0) {
                    std::ifstream sys("/proc/stat");
                    std::string key;
                    double btime = 0;
                    while (sys >> key) {
                        if (key == "btime") {
                            sys >> btime;
                            break;
                        }
                    }
                    process_start_time.set(btime + std::stod(f[19]) / (ticks > 0 ? ticks : 100.0));
                }
            }
        }
    }
    if (DIR* dir = opendir("/proc/self/fd")) {
        std::int64_t n = 0;
        while (const dirent* e = readdir(dir)) {
            if (e->d_name[0] != '.') {
                ++n;
            }
        }
        closedir(dir);
        process_open_fds.set(n - 1);  // not the directory's own descriptor
    }
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
        process_max_fds.set(lim.rlim_cur == RLIM_INFINITY
                                ? -1
                                : static_cast<std::int64_t>(lim.rlim_cur));
    }
#endif
}

void Metrics::set_tunnel_bytes(std::uint64_t sent_total, std::uint64_t received_total) {
    for (auto [dir, total] : {std::pair<const char*, std::uint64_t>{"out", sent_total},
                              std::pair<const char*, std::uint64_t>{"in", received_total}}) {
        auto& c = tunnel_bytes.with({dir});
        if (total > c.value()) {
            c.inc(total - c.value());
        }
    }
}

void Metrics::update_aliases() {
    for (const char* result : {"ok", "rejected"}) {
        auto& alias = dtls_handshakes_alias.with({result});
        const std::uint64_t total = handshakes.with({result, "dtls"}).value();
        if (total > alias.value()) {
            alias.inc(total - alias.value());
        }
    }
    dtls_sessions_alias.set(tunnels_active.with({"dtls"}).value());
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
