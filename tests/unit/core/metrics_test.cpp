#include "core/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace hopgate::core {
namespace {

// Full exposition (golden): HELP/TYPE, registration order, sorted children, histogram series.
TEST(Metrics, GoldenRendering) {
    MetricsRegistry reg;
    auto& req = reg.counter("hopgate_http_requests_total", "HTTP requests served.",
                            {"code", "method"});
    req.with({"404", "GET"}).inc();
    req.with({"200", "POST"}).inc(2);
    req.with({"200", "GET"}).inc(3);
    reg.gauge("hopgate_tunnel_connections", "Open tunnels.").get().set(7);
    reg.double_gauge("hopgate_cpu_ratio", "CPU use.").get().set(0.25);
    reg.double_counter("hopgate_cpu_seconds_total", "CPU time.").get().inc(1.5);
    auto& lat = reg.histogram("hopgate_proxy_latency_seconds", "Proxy latency.", {0.25, 0.5, 1},
                              {"route"});
    auto& api = lat.with({"api"});
    api.observe(0.125);
    api.observe(0.25);  // on the bound: counts in le="0.25"
    api.observe(0.75);
    api.observe(3);
    lat.with({"admin"});  // created, never observed
    reg.gauge("hopgate_unused", "Labelled, no children.", {"x"});

    EXPECT_EQ(reg.render(),
              "# HELP hopgate_http_requests_total HTTP requests served.\n"
              "# TYPE hopgate_http_requests_total counter\n"
              "hopgate_http_requests_total{code=\"200\",method=\"GET\"} 3\n"
              "hopgate_http_requests_total{code=\"200\",method=\"POST\"} 2\n"
              "hopgate_http_requests_total{code=\"404\",method=\"GET\"} 1\n"
              "# HELP hopgate_tunnel_connections Open tunnels.\n"
              "# TYPE hopgate_tunnel_connections gauge\n"
              "hopgate_tunnel_connections 7\n"
              "# HELP hopgate_cpu_ratio CPU use.\n"
              "# TYPE hopgate_cpu_ratio gauge\n"
              "hopgate_cpu_ratio 0.25\n"
              "# HELP hopgate_cpu_seconds_total CPU time.\n"
              "# TYPE hopgate_cpu_seconds_total counter\n"
              "hopgate_cpu_seconds_total 1.5\n"
              "# HELP hopgate_proxy_latency_seconds Proxy latency.\n"
              "# TYPE hopgate_proxy_latency_seconds histogram\n"
              "hopgate_proxy_latency_seconds_bucket{route=\"admin\",le=\"0.25\"} 0\n"
              "hopgate_proxy_latency_seconds_bucket{route=\"admin\",le=\"0.5\"} 0\n"
              "hopgate_proxy_latency_seconds_bucket{route=\"admin\",le=\"1\"} 0\n"
              "hopgate_proxy_latency_seconds_bucket{route=\"admin\",le=\"+Inf\"} 0\n"
              "hopgate_proxy_latency_seconds_sum{route=\"admin\"} 0\n"
              "hopgate_proxy_latency_seconds_count{route=\"admin\"} 0\n"
              "hopgate_proxy_latency_seconds_bucket{route=\"api\",le=\"0.25\"} 2\n"
              "hopgate_proxy_latency_seconds_bucket{route=\"api\",le=\"0.5\"} 2\n"
              "hopgate_proxy_latency_seconds_bucket{route=\"api\",le=\"1\"} 3\n"
              "hopgate_proxy_latency_seconds_bucket{route=\"api\",le=\"+Inf\"} 4\n"
              "hopgate_proxy_latency_seconds_sum{route=\"api\"} 4.125\n"
              "hopgate_proxy_latency_seconds_count{route=\"api\"} 4\n"
              "# HELP hopgate_unused Labelled, no children.\n"
              "# TYPE hopgate_unused gauge\n");
}

// Label values escape backslash, quote and newline; HELP escapes backslash and newline only.
TEST(Metrics, Escaping) {
    MetricsRegistry reg;
    reg.counter("c_total", "line1\nback\\slash \"q\"", {"v"}).with({"a\\b\"c\nd"}).inc();
    EXPECT_EQ(reg.render(),
              "# HELP c_total line1\\nback\\\\slash \"q\"\n"
              "# TYPE c_total counter\n"
              "c_total{v=\"a\\\\b\\\"c\\nd\"} 1\n");
}

// Special float values use Prometheus spellings; a histogram without buckets has only +Inf.
TEST(Metrics, SpecialValues) {
    MetricsRegistry reg;
    auto& g = reg.double_gauge("g", "g", {"k"});
    g.with({"a"}).set(std::numeric_limits<double>::infinity());
    g.with({"b"}).set(-std::numeric_limits<double>::infinity());
    g.with({"c"}).set(std::numeric_limits<double>::quiet_NaN());
    g.with({"d"}).set(1e21);
    g.with({"e"}).set(-0.001);
    reg.histogram("h", "h", {}).get().observe(5);
    EXPECT_EQ(reg.render(),
              "# HELP g g\n# TYPE g gauge\n"
              "g{k=\"a\"} +Inf\ng{k=\"b\"} -Inf\ng{k=\"c\"} NaN\ng{k=\"d\"} 1e+21\n"
              "g{k=\"e\"} -0.001\n"
              "# HELP h h\n# TYPE h histogram\n"
              "h_bucket{le=\"+Inf\"} 1\nh_sum 5\nh_count 1\n");
}

// Histogram placement: v <= bound picks the first such bucket; above the last and NaN go to +Inf.
TEST(Metrics, HistogramBuckets) {
    MetricsRegistry reg;
    auto& h = reg.histogram("h_seconds", "h", {1, 2, 4}).get();
    for (double v : {-5.0, 0.0, 1.0, 1.0000001, 2.0, 3.9, 4.0, 4.1, 1e300}) {
        h.observe(v);
    }
    h.observe(std::numeric_limits<double>::quiet_NaN());
    EXPECT_EQ(h.bucket_counts(), (std::vector<std::uint64_t>{3, 2, 2, 3}));
    EXPECT_EQ(h.count(), 10u);
    EXPECT_TRUE(std::isnan(h.sum()));
}

// remove() drops a child from the exposition and frees its slot under the family's bound; the
// overflow child stays; a later with() starts the series again from 0.
TEST(Metrics, RemoveChild) {
    MetricsRegistry reg;
    auto& f = reg.gauge("hopgate_x", "x", {"d"}, 2);
    f.with({"a"}).set(5);
    f.with({"b"}).set(6);
    f.with({"c"}).set(7);  // over the bound: lands on "_other"
    EXPECT_EQ(f.child_count(), 3u);
    f.remove({"a"});
    f.remove({"missing"});
    f.remove({"_other"});
    EXPECT_EQ(f.child_count(), 2u);
    std::string out;
    f.render(out);
    EXPECT_EQ(out.find("d=\"a\""), std::string::npos) << out;
    EXPECT_NE(out.find("hopgate_x{d=\"b\"} 6"), std::string::npos) << out;
    EXPECT_NE(out.find("hopgate_x{d=\"_other\"} 7"), std::string::npos) << out;
    f.with({"c"}).set(1);  // a's slot is free again
    out.clear();
    f.render(out);
    EXPECT_NE(out.find("hopgate_x{d=\"c\"} 1"), std::string::npos) << out;
    EXPECT_EQ(f.with({"a"}).value(), 7);  // full again: "a" lands on "_other"
}

// Gauges go up and down; integer counters add exact amounts.
TEST(Metrics, GaugeAndCounterArithmetic) {
    MetricsRegistry reg;
    auto& g = reg.gauge("g", "g").get();
    g.inc();
    g.inc();
    g.dec();
    g.add(-10);
    EXPECT_EQ(g.value(), -9);
    g.set(42);
    EXPECT_EQ(g.value(), 42);
    auto& c = reg.counter("c_total", "c").get();
    c.inc();
    c.inc(41);
    EXPECT_EQ(c.value(), 42u);
    auto& dc = reg.double_counter("dc_total", "dc").get();
    dc.inc(0.5);
    dc.inc(-3);  // ignored: counters never go down
    EXPECT_EQ(dc.value(), 0.5);
}

// Past max_children new label tuples land on one "_other" child; existing children still work.
TEST(Metrics, CardinalityCap) {
    MetricsRegistry reg;
    auto& fam = reg.counter("hostile_total", "h", {"host", "path"}, 3);
    for (int i = 0; i < 10; ++i) {
        fam.with({"h" + std::to_string(i), "/"}).inc();
    }
    fam.with({"h0", "/"}).inc(100);
    EXPECT_EQ(fam.child_count(), 4u);
    EXPECT_EQ(fam.overflow_count(), 7u);
    EXPECT_EQ(reg.render(),
              "# HELP hostile_total h\n# TYPE hostile_total counter\n"
              "hostile_total{host=\"_other\",path=\"_other\"} 7\n"
              "hostile_total{host=\"h0\",path=\"/\"} 101\n"
              "hostile_total{host=\"h1\",path=\"/\"} 1\n"
              "hostile_total{host=\"h2\",path=\"/\"} 1\n");
}

// The default cap holds under a flood of distinct values: memory stays bounded.
TEST(Metrics, DefaultCapBoundsFlood) {
    MetricsRegistry reg;
    auto& fam = reg.counter("flood_total", "f", {"v"});
    for (std::size_t i = 0; i < kDefaultMaxChildren + 500; ++i) {
        fam.with({std::to_string(i)}).inc();
    }
    EXPECT_EQ(fam.child_count(), kDefaultMaxChildren + 1);
    EXPECT_EQ(fam.overflow_count(), 500u);
}

// Huge label values are cut to kMaxLabelValueBytes without splitting a UTF-8 sequence.
TEST(Metrics, LongLabelValuesTruncated) {
    MetricsRegistry reg;
    auto& fam = reg.counter("t_total", "t", {"v"});
    const std::string long_a(100000, 'a');
    fam.with({long_a}).inc();
    fam.with({long_a + "different tail"}).inc();  // same truncated key
    EXPECT_EQ(fam.child_count(), 1u);
    EXPECT_EQ(fam.with({long_a.substr(0, kMaxLabelValueBytes)}).value(), 2u);
    std::string euro;  // 3-byte sequences; 256 is not a multiple of 3
    for (int i = 0; i < 200; ++i) {
        euro += "\xE2\x82\xAC";
    }
    fam.with({euro}).inc();
    const std::string out = reg.render();
    const std::string want = "t_total{v=\"" + euro.substr(0, 255) + "\"} 1\n";
    EXPECT_NE(out.find(want), std::string::npos);
}

// References from with() are stable while thousands of siblings are inserted.
TEST(Metrics, ChildReferencesAreStable) {
    MetricsRegistry reg;
    auto& fam = reg.gauge("s", "s", {"k"});
    Gauge* first = &fam.with({"first"});
    for (int i = 0; i < 5000; ++i) {
        fam.with({std::to_string(i)});
    }
    EXPECT_EQ(first, &fam.with({"first"}));
}

// Programming errors throw at registration or lookup: duplicates (also via histogram series),
// bad names, reserved labels, wrong label count, unordered or non-finite buckets.
TEST(Metrics, MisuseThrows) {
    MetricsRegistry reg;
    reg.counter("a_total", "a");
    EXPECT_THROW(reg.counter("a_total", "again"), std::logic_error);
    EXPECT_THROW(reg.gauge("a_total", "as gauge"), std::logic_error);
    reg.counter("lat_count", "clash");
    EXPECT_THROW(reg.histogram("lat", "h", {1}), std::logic_error);
    EXPECT_THROW(reg.counter("1bad", "x"), std::logic_error);
    EXPECT_THROW(reg.counter("bad-name", "x"), std::logic_error);
    EXPECT_THROW(reg.counter("x_total", "x", {"__reserved"}), std::logic_error);
    EXPECT_THROW(reg.counter("y_total", "x", {"a", "a"}), std::logic_error);
    EXPECT_THROW(reg.counter("z_total", "x", {"a-b"}), std::logic_error);
    EXPECT_THROW(reg.histogram("h1", "x", {1}, {"le"}), std::logic_error);
    EXPECT_THROW(reg.histogram("h2", "x", {2, 1}), std::logic_error);
    EXPECT_THROW(reg.histogram("h3", "x", {1, 1}), std::logic_error);
    EXPECT_THROW(reg.histogram("h4", "x", {1, std::numeric_limits<double>::infinity()}),
                 std::logic_error);
    auto& fam = reg.counter("l_total", "l", {"a", "b"});
    EXPECT_THROW(fam.with({"only one"}), std::logic_error);
    EXPECT_THROW(fam.get(), std::logic_error);
    // A failed registration leaves no trace: the name is still free.
    EXPECT_NO_THROW(reg.counter("x_total", "x", {"ok"}));
}

// Bucket helpers produce the documented sequences.
TEST(Metrics, BucketHelpers) {
    EXPECT_EQ(linear_buckets(1, 2, 3), (std::vector<double>{1, 3, 5}));
    EXPECT_EQ(exponential_buckets(0.5, 2, 4), (std::vector<double>{0.5, 1, 2, 4}));
    EXPECT_EQ(default_buckets().size(), 11u);
    EXPECT_EQ(default_buckets().front(), 0.005);
}

// Concurrent get-or-create and updates from many threads lose no increments, and render can run
// at the same time.
TEST(Metrics, ConcurrentUpdates) {
    MetricsRegistry reg;
    auto& fam = reg.counter("conc_total", "c", {"k"});
    auto& hist = reg.histogram("conc_seconds", "h", {0.5}).get();
    constexpr int kThreads = 8;
    constexpr int kIters = 20000;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kIters; ++i) {
                fam.with({std::to_string(i % 50)}).inc();
                fam.with({"t" + std::to_string(t)}).inc();
                hist.observe(i % 2 == 0 ? 0.25 : 1.0);
                if (i % 5000 == 0) {
                    (void)reg.render();
                }
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    std::uint64_t total = 0;
    for (int i = 0; i < 50; ++i) {
        total += fam.with({std::to_string(i)}).value();
    }
    EXPECT_EQ(total, static_cast<std::uint64_t>(kThreads) * kIters);
    EXPECT_EQ(fam.with({"t3"}).value(), static_cast<std::uint64_t>(kIters));
    EXPECT_EQ(hist.count(), static_cast<std::uint64_t>(kThreads) * kIters);
    EXPECT_EQ(hist.sum(), kThreads * kIters / 2 * 1.25);
    EXPECT_EQ(kPrometheusContentType, "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace
}  // namespace hopgate::core
