// Metrics registry with Prometheus text exposition (format 0.0.4).
//
//   MetricsRegistry reg;
//   auto& bytes = reg.counter("hopgate_proxy_bytes_total", "Bytes proxied.", {"direction"});
//   Counter& up = bytes.with({"up"});     // cache this reference on hot paths
//   up.inc(n);
//   auto& rtt = reg.histogram("hopgate_tunnel_rtt_seconds", "Tunnel RTT.", {0.01, 0.1, 1});
//   rtt.get().observe(0.042);
//   std::string body = reg.render();      // serve with kPrometheusContentType
//
// Ownership and threads: the registry owns families, families own children. References returned
// by counter()/with()/get() stay valid for the registry's lifetime (children are never freed).
// Every operation is thread-safe: metric updates are relaxed atomics, child lookup takes a shared
// lock (exclusive only to insert), render() may run concurrently with updates (a histogram's _sum
// may be a few observations apart from its buckets; _count always equals the +Inf bucket).
//
// Bounds: each family holds at most `max_children` label tuples; lookups of further new tuples
// all land on one child whose every label value is "_other" (counted by overflow_count()).
// Label values longer than kMaxLabelValueBytes are truncated (at a UTF-8 boundary) before lookup.
//
// Errors: invalid names, label-count mismatches, bad buckets and duplicate registration are
// programming errors and throw std::logic_error (at start-up, in practice).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hopgate::core {

inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";
inline constexpr std::size_t kDefaultMaxChildren = 10'000;
inline constexpr std::size_t kMaxLabelValueBytes = 256;
inline constexpr std::string_view kOverflowLabelValue = "_other";

namespace detail {
// A child of a family: one time series (or, for histograms, one set of series).
class Metric {
public:
    virtual ~Metric() = default;
    // Appends this child's sample lines; `labels` is the rendered `a="x",b="y"` (maybe empty).
    virtual void render(std::string& out, std::string_view name,
                        std::string_view labels) const = 0;
};
}  // namespace detail

// Monotonic integer counter.
class Counter final : public detail::Metric {
public:
    void inc(std::uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t value() const { return v_.load(std::memory_order_relaxed); }
    void render(std::string& out, std::string_view name, std::string_view labels) const override;

private:
    std::atomic<std::uint64_t> v_{0};
};

// Monotonic floating-point counter (e.g. seconds of CPU). inc() of a negative value is ignored.
class DoubleCounter final : public detail::Metric {
public:
    void inc(double v = 1.0) {
        if (v > 0) {
            v_.fetch_add(v, std::memory_order_relaxed);
        }
    }
    double value() const { return v_.load(std::memory_order_relaxed); }
    void render(std::string& out, std::string_view name, std::string_view labels) const override;

private:
    std::atomic<double> v_{0.0};
};

// Integer gauge.
class Gauge final : public detail::Metric {
public:
    void set(std::int64_t v) { v_.store(v, std::memory_order_relaxed); }
    void add(std::int64_t d) { v_.fetch_add(d, std::memory_order_relaxed); }
    void inc() { add(1); }
    void dec() { add(-1); }
    std::int64_t value() const { return v_.load(std::memory_order_relaxed); }
    void render(std::string& out, std::string_view name, std::string_view labels) const override;

private:
    std::atomic<std::int64_t> v_{0};
};

// Floating-point gauge.
class DoubleGauge final : public detail::Metric {
public:
    void set(double v) { v_.store(v, std::memory_order_relaxed); }
    void add(double d) { v_.fetch_add(d, std::memory_order_relaxed); }
    double value() const { return v_.load(std::memory_order_relaxed); }
    void render(std::string& out, std::string_view name, std::string_view labels) const override;

private:
    std::atomic<double> v_{0.0};
};

// Histogram over fixed upper bounds (a value v lands in the first bucket with v <= bound; NaN and
// values above the last bound land in +Inf).
class Histogram final : public detail::Metric {
public:
    explicit Histogram(std::shared_ptr<const std::vector<double>> bounds);
    void observe(double v);
    std::uint64_t count() const;
    double sum() const { return sum_.load(std::memory_order_relaxed); }
    // Non-cumulative count per bucket; the last entry is the +Inf bucket.
    std::vector<std::uint64_t> bucket_counts() const;
    void render(std::string& out, std::string_view name, std::string_view labels) const override;

private:
    std::shared_ptr<const std::vector<double>> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_->size() + 1
    std::atomic<double> sum_{0.0};
};

// Bucket helpers. Prometheus' default latency buckets: .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10.
std::vector<double> default_buckets();
std::vector<double> linear_buckets(double start, double width, std::size_t count);
std::vector<double> exponential_buckets(double start, double factor, std::size_t count);

// A metric family: name, help, type, fixed label names and one child per label-value tuple.
class FamilyBase {
public:
    virtual ~FamilyBase() = default;
    FamilyBase(const FamilyBase&) = delete;
    FamilyBase& operator=(const FamilyBase&) = delete;

    const std::string& name() const { return name_; }
    const std::string& help() const { return help_; }
    std::string_view type() const { return type_; }
    const std::vector<std::string>& label_names() const { return label_names_; }
    // Children currently held, including the "_other" overflow child once it exists.
    std::size_t child_count() const;
    // How many lookups were diverted to the "_other" child because the family was full.
    std::uint64_t overflow_count() const { return overflows_.load(std::memory_order_relaxed); }

    // Drops the child of these label values (no-op if absent), so it is no longer exported.
    // Only for children nobody holds a reference to (look them up with with() each time):
    // references to a removed child dangle. Not for the "_other" overflow child.
    void remove(std::initializer_list<std::string_view> values);

    // Appends # HELP, # TYPE and every child's samples, children sorted by label values.
    void render(std::string& out) const;

protected:
    using Factory = std::function<std::unique_ptr<detail::Metric>()>;
    FamilyBase(std::string name, std::string help, std::string_view type,
               std::vector<std::string> label_names, std::size_t max_children, Factory factory);

    // Finds or creates the child for `values` (one per label name, else std::logic_error).
    detail::Metric& get_or_create(std::span<const std::string_view> values);

private:
    struct KeyLess {
        using is_transparent = void;
        bool operator()(const std::vector<std::string>& a,
                        const std::vector<std::string>& b) const;
        bool operator()(const std::vector<std::string>& a,
                        std::span<const std::string_view> b) const;
        bool operator()(std::span<const std::string_view> a,
                        const std::vector<std::string>& b) const;
    };
    detail::Metric& find_or_insert(std::span<const std::string_view> values);

    std::string name_;
    std::string help_;
    std::string_view type_;
    std::vector<std::string> label_names_;
    std::size_t max_children_;
    Factory factory_;
    mutable std::shared_mutex mu_;
    std::map<std::vector<std::string>, std::unique_ptr<detail::Metric>, KeyLess> children_;
    bool has_overflow_child_ = false;  // guarded by mu_
    std::atomic<std::uint64_t> overflows_{0};
};

template <class M>
class Family final : public FamilyBase {
public:
    // The child for these label values, created on first use.
    M& with(std::initializer_list<std::string_view> values) {
        return with(std::span<const std::string_view>(values.begin(), values.size()));
    }
    M& with(std::span<const std::string_view> values) {
        return static_cast<M&>(get_or_create(values));
    }
    // The only child of a family without labels.
    M& get() { return with({}); }

private:
    friend class MetricsRegistry;
    Family(std::string name, std::string help, std::string_view type,
           std::vector<std::string> label_names, std::size_t max_children, Factory factory)
        : FamilyBase(std::move(name), std::move(help), type, std::move(label_names),
                     max_children, std::move(factory)) {}
};

class MetricsRegistry {
public:
    MetricsRegistry() = default;
    MetricsRegistry(const MetricsRegistry&) = delete;
    MetricsRegistry& operator=(const MetricsRegistry&) = delete;

    // Registers a family. Names follow hopgate_<subsystem>_<name>_<unit> (counters end in _total).
    // Throws std::logic_error on an invalid or already registered name (including a histogram's
    // _bucket/_sum/_count series), invalid or duplicate label names, or bad buckets.
    Family<Counter>& counter(std::string name, std::string help,
                             std::vector<std::string> label_names = {},
                             std::size_t max_children = kDefaultMaxChildren);
    Family<DoubleCounter>& double_counter(std::string name, std::string help,
                                          std::vector<std::string> label_names = {},
                                          std::size_t max_children = kDefaultMaxChildren);
    Family<Gauge>& gauge(std::string name, std::string help,
                         std::vector<std::string> label_names = {},
                         std::size_t max_children = kDefaultMaxChildren);
    Family<DoubleGauge>& double_gauge(std::string name, std::string help,
                                      std::vector<std::string> label_names = {},
                                      std::size_t max_children = kDefaultMaxChildren);
    // `buckets`: finite, strictly increasing upper bounds; +Inf is implicit.
    Family<Histogram>& histogram(std::string name, std::string help, std::vector<double> buckets,
                                 std::vector<std::string> label_names = {},
                                 std::size_t max_children = kDefaultMaxChildren);

    // The whole exposition, families in registration order.
    std::string render() const;

private:
    template <class M>
    Family<M>& add(std::string name, std::string help, std::string_view type,
                   std::vector<std::string> label_names, std::size_t max_children,
                   std::function<std::unique_ptr<detail::Metric>()> factory,
                   std::vector<std::string> series_names);

    mutable std::mutex mu_;
    std::vector<std::unique_ptr<FamilyBase>> families_;
    std::set<std::string, std::less<>> series_names_;
};

}  // namespace hopgate::core
