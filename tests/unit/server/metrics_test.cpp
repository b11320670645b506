// server::Metrics: the per-domain families stay bounded (first kMaxDomainLabels domains with a
// tunnel, the rest and unknown hosts as "other"), admin traffic is counted apart, build info and
// process metrics are exported, the per-domain tunnel gauge drops to 0 for a domain whose clients left and is
// removed for an unregistered one.
#include "server/metrics.hpp"

#include <gtest/gtest.h>

#include <string>

#include "core/version.hpp"

namespace hopgate::server {
namespace {

using namespace std::chrono_literals;

bool has_line(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos;
}

TEST(ServerMetrics, DomainLabelsBounded) {
    core::MetricsRegistry reg;
    Metrics m(reg);
    for (int i = 0; i < 70; ++i) {
        m.request_domain(Metrics::Kind::kProxy, "d" + std::to_string(i) + ".example.com", true,
                         200, 1ms, 10, 20);
    }
    m.request_domain(Metrics::Kind::kProxy, "d0.example.com", true, 502, 1ms, 0, 0);
    m.request_domain(Metrics::Kind::kProxy, "junk.invalid", false, 404, 1ms, 0, 0);
    m.request_domain(Metrics::Kind::kAdmin, "localhost", false, 201, 1ms, 5, 7);
    const std::string text = reg.render();
    EXPECT_TRUE(has_line(text,
        "hopgate_http_domain_requests_total{kind=\"proxy\",domain=\"d0.example.com\",code=\"2xx\"} 1"));
    EXPECT_TRUE(has_line(text,
        "hopgate_http_domain_requests_total{kind=\"proxy\",domain=\"d0.example.com\",code=\"5xx\"} 1"));
    EXPECT_TRUE(has_line(text,
        "hopgate_http_domain_requests_total{kind=\"proxy\",domain=\"d49.example.com\",code=\"2xx\"} 1"));
    EXPECT_EQ(text.find("d50.example.com"), std::string::npos);
    EXPECT_EQ(text.find("junk.invalid"), std::string::npos);
    EXPECT_TRUE(has_line(text,
        "hopgate_http_domain_requests_total{kind=\"proxy\",domain=\"other\",code=\"2xx\"} 20"));
    EXPECT_TRUE(has_line(text,
        "hopgate_http_domain_requests_total{kind=\"proxy\",domain=\"other\",code=\"4xx\"} 1"));
    EXPECT_TRUE(has_line(text,
        "hopgate_http_domain_requests_total{kind=\"admin\",domain=\"localhost\",code=\"2xx\"} 1"));
    EXPECT_TRUE(has_line(text,
        "hopgate_http_domain_bytes_total{kind=\"admin\",domain=\"localhost\",direction=\"out\"} 7"));
    EXPECT_TRUE(has_line(text,
        "hopgate_http_domain_bytes_total{kind=\"proxy\",domain=\"other\",direction=\"in\"} 200"));
    EXPECT_TRUE(has_line(text,
        "hopgate_http_domain_request_duration_seconds_count{kind=\"proxy\",domain=\"other\"} 21"));
}

TEST(ServerMetrics, BuildInfoProcessAndTunnels) {
    core::MetricsRegistry reg;
    Metrics m(reg);
    m.update_process();
    std::map<std::string, std::size_t, std::less<>> live{{"a.example.com", 2},
                                                         {"b.example.com", 1}};
    m.set_domain_tunnels(live);
    live["b.example.com"] = 0;
    m.set_domain_tunnels(live);
    EXPECT_TRUE(has_line(reg.render(), "hopgate_domain_tunnels{domain=\"a.example.com\"} 2"));
    live.erase("a.example.com");
    m.set_domain_tunnels(live);
    m.set_tunnels(3, 1);
    m.handshake("ok", net::TransportKind::kDtls);
    m.handshake("ok", net::TransportKind::kDtls);
    m.update_aliases();
    const std::string text = reg.render();
    EXPECT_TRUE(has_line(text, "hopgate_build_info{version=\"" + std::string(core::version()) +
                                   "\",protocol=\"1\"} 1"));
    EXPECT_EQ(text.find("a.example.com"), std::string::npos);  // unregistered: series gone
    EXPECT_TRUE(has_line(text, "hopgate_domain_tunnels{domain=\"b.example.com\"} 0"));
    EXPECT_TRUE(has_line(text, "hopgate_dtls_handshakes_total{result=\"ok\"} 2"));
    EXPECT_TRUE(has_line(text, "hopgate_dtls_sessions_active 3"));
#ifdef __linux__
    EXPECT_GT(m.process_rss.value(), 0);
    EXPECT_GT(m.process_vsize.value(), m.process_rss.value());
    EXPECT_GT(m.process_open_fds.value(), 2);
    EXPECT_GT(m.process_max_fds.value(), m.process_open_fds.value());
    EXPECT_GT(m.process_start_time.value(), 1.6e9);
    EXPECT_GE(m.process_cpu.value(), 0.0);
#endif
}

}  // namespace
}  // namespace hopgate::server
