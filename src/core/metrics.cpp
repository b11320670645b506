#include "core/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace hopgate::core {
namespace {

// Prometheus text format numbers: shortest round-trip decimal, +Inf, -Inf, NaN.
void append_value(std::string& out, double v) {
    if (std::isnan(v)) {
        out += "NaN";
        return;
    }
    if (std::isinf(v)) {
        out += v > 0 ? "+Inf" : "-Inf";
        return;
    }
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

template <class T>
void append_int(std::string& out, T v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

void append_label_value(std::string& out, std::string_view v) {
    for (char c : v) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '"': out += "\\\""; break;
            case '\n': out += "\\n"; break;
            default: out += c;
        }
    }
}

void append_help(std::string& out, std::string_view v) {
    for (char c : v) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            default: out += c;
        }
    }
}

// `name{labels}` or `name` followed by a space.
void append_series(std::string& out, std::string_view name, std::string_view suffix,
                   std::string_view labels) {
    out += name;
    out += suffix;
    if (!labels.empty()) {
        out += '{';
        out += labels;
        out += '}';
    }
    out += ' ';
}

bool name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool name_char(char c) { return name_start(c) || (c >= '0' && c <= '9'); }

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool valid_metric_name(std::string_view n) {
    if (n.empty() || !(name_start(n[0]) || n[0] == ':')) {
        return false;
    }
    return std::all_of(n.begin(), n.end(), [](char c) { return name_char(c) || c == ':'; });
}

// [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved by Prometheus).
bool valid_label_name(std::string_view n) {
    if (n.empty() || !name_start(n[0]) || n.starts_with("__")) {
        return false;
    }
    return std::all_of(n.begin(), n.end(), name_char);
}

// Cuts at most kMaxLabelValueBytes, backing off so a UTF-8 sequence is never split.
std::string_view clamp_label_value(std::string_view v) {
    if (v.size() <= kMaxLabelValueBytes) {
        return v;
    }
    std::size_t n = kMaxLabelValueBytes;
    while (n > 0 && (static_cast<unsigned char>(v[n]) & 0xC0) == 0x80) {
        --n;
    }
    return v.substr(0, n);
}

template <class A, class B>
bool tuple_less(const A& a, const B& b) {
    return std::lexicographical_compare(
        a.begin(), a.end(), b.begin(), b.end(),
        [](std::string_view x, std::string_view y) { return x < y; });
}

}  // namespace

// ----- metric kinds

void Counter::render(std::string& out, std::string_view name, std::string_view labels) const {
    append_series(out, name, "", labels);
    append_int(out, value());
    out += '\n';
}

void DoubleCounter::render(std::string& out, std::string_view name,
                           std::string_view labels) const {
    append_series(out, name, "", labels);
    append_value(out, value());
    out += '\n';
}

void Gauge::render(std::string& out, std::string_view name, std::string_view labels) const {
    append_series(out, name, "", labels);
    append_int(out, value());
    out += '\n';
}

void DoubleGauge::render(std::string& out, std::string_view name, std::string_view labels) const {
    append_series(out, name, "", labels);
    append_value(out, value());
    out += '\n';
}

Histogram::Histogram(std::shared_ptr<const std::vector<double>> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_->size() + 1)) {}

void Histogram::observe(double v) {
    // NaN compares false with everything; route it to +Inf explicitly.
    const auto& b = *bounds_;
    const auto first_ge = std::lower_bound(b.begin(), b.end(), v);
    const std::size_t idx =
        std::isnan(v) ? b.size() : static_cast<std::size_t>(first_ge - b.begin());
    counts_[idx].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(v, std::memory_order_relaxed);
}

std::uint64_t Histogram::count() const {
    std::uint64_t total = 0;
    for (std::size_t i = 0; i <= bounds_->size(); ++i) {
        total += counts_[i].load(std::memory_order_relaxed);
    }
    return total;
}

std::vector<std::uint64_t> Histogram::bucket_counts() const {
    std::vector<std::uint64_t> out(bounds_->size() + 1);
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = counts_[i].load(std::memory_order_relaxed);
    }
    return out;
}

void Histogram::render(std::string& out, std::string_view name, std::string_view labels) const {
    std::string le_labels(labels);
    if (!le_labels.empty()) {
        le_labels += ',';
    }
    const std::size_t prefix = le_labels.size();
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= bounds_->size(); ++i) {
        cumulative += counts_[i].load(std::memory_order_relaxed);
        le_labels.resize(prefix);
        le_labels += "le=\"";
        if (i < bounds_->size()) {
            append_value(le_labels, (*bounds_)[i]);
        } else {
            le_labels += "+Inf";
        }
        le_labels += '"';
        append_series(out, name, "_bucket", le_labels);
        append_int(out, cumulative);
        out += '\n';
    }
    append_series(out, name, "_sum", labels);
    append_value(out, sum());
    out += '\n';
    // The same cumulative total as +Inf, so scrapers never see _count != +Inf bucket.
    append_series(out, name, "_count", labels);
    append_int(out, cumulative);
    out += '\n';
}

std::vector<double> default_buckets() {
    return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::vector<double> linear_buckets(double start, double width, std::size_t count) {
    std::vector<double> out;
    out.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        out.push_back(start + width * static_cast<double>(i));
    }
    return out;
}

std::vector<double> exponential_buckets(double start, double factor, std::size_t count) {
    std::vector<double> out;
    out.reserve(count);
    double v = start;
    for (std::size_t i = 0; i < count; ++i) {
        out.push_back(v);
        v *= factor;
    }
    return out;
}

// ----- families

bool FamilyBase::KeyLess::operator()(const std::vector<std::string>& a,
                                     const std::vector<std::string>& b) const {
    return tuple_less(a, b);
}
bool FamilyBase::KeyLess::operator()(const std::vector<std::string>& a,
                                     std::span<const std::string_view> b) const {
    return tuple_less(a, b);
}
bool FamilyBase::KeyLess::operator()(std::span<const std::string_view> a,
                                     const std::vector<std::string>& b) const {
    return tuple_less(a, b);
}

FamilyBase::FamilyBase(std::string name, std::string help, std::string_view type,
                       std::vector<std::string> label_names, std::size_t max_children,
                       Factory factory)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)),
      max_children_(std::max<std::size_t>(max_children, 1)),
      factory_(std::move(factory)) {}

std::size_t FamilyBase::child_count() const {
    std::shared_lock lock(mu_);
    return children_.size();
}

void FamilyBase::remove(std::initializer_list<std::string_view> values) {
    const std::span<const std::string_view> key(values.begin(), values.size());
    std::unique_lock lock(mu_);
    if (const auto it = children_.find(key); it != children_.end()) {
        const bool overflow = std::all_of(it->first.begin(), it->first.end(),
                                          [](const std::string& v) { return v == kOverflowLabelValue; });
        if (!(overflow && has_overflow_child_)) {
            children_.erase(it);
        }
    }
}

detail::Metric& FamilyBase::get_or_create(std::span<const std::string_view> values) {
    if (values.size() != label_names_.size()) {
        throw std::logic_error("metrics: " + name_ + " takes " +
                               std::to_string(label_names_.size()) + " label values, got " +
                               std::to_string(values.size()));
    }
    const bool needs_clamp = std::any_of(values.begin(), values.end(), [](std::string_view v) {
        return v.size() > kMaxLabelValueBytes;
    });
    if (!needs_clamp) {
        return find_or_insert(values);
    }
    std::vector<std::string_view> clamped(values.begin(), values.end());
    for (auto& v : clamped) {
        v = clamp_label_value(v);
    }
    return find_or_insert(clamped);
}

detail::Metric& FamilyBase::find_or_insert(std::span<const std::string_view> values) {
    {
        std::shared_lock lock(mu_);
        const auto it = children_.find(values);
        if (it != children_.end()) {
            return *it->second;
        }
    }
    std::unique_lock lock(mu_);
    if (const auto it = children_.find(values); it != children_.end()) {
        return *it->second;  // another thread inserted it meanwhile
    }
    const std::size_t regular = children_.size() - (has_overflow_child_ ? 1 : 0);
    if (regular < max_children_) {
        auto [it, inserted] = children_.emplace(
            std::vector<std::string>(values.begin(), values.end()), factory_());
        (void)inserted;
        return *it->second;
    }
    overflows_.fetch_add(1, std::memory_order_relaxed);
    std::vector<std::string> other(label_names_.size(), std::string(kOverflowLabelValue));
    auto it = children_.find(other);
    if (it == children_.end()) {
        it = children_.emplace(std::move(other), factory_()).first;
        has_overflow_child_ = true;
    }
    return *it->second;
}

void FamilyBase::render(std::string& out) const {
    out += "# HELP ";
    out += name_;
    out += ' ';
    append_help(out, help_);
    out += "\n# TYPE ";
    out += name_;
    out += ' ';
    out += type_;
    out += '\n';
    std::shared_lock lock(mu_);
    std::string labels;
    for (const auto& [values, metric] : children_) {
        labels.clear();
        for (std::size_t i = 0; i < values.size(); ++i) {
            if (i > 0) {
                labels += ',';
            }
            labels += label_names_[i];
            labels += "=\"";
            append_label_value(labels, values[i]);
            labels += '"';
        }
        metric->render(out, name_, labels);
    }
}

// ----- registry

template <class M>
Family<M>& MetricsRegistry::add(std::string name, std::string help, std::string_view type,
                                std::vector<std::string> label_names, std::size_t max_children,
                                std::function<std::unique_ptr<detail::Metric>()> factory,
                                std::vector<std::string> series_names) {
    if (!valid_metric_name(name)) {
        throw std::logic_error("metrics: invalid metric name \"" + name + "\"");
    }
    for (std::size_t i = 0; i < label_names.size(); ++i) {
        const auto& l = label_names[i];
        if (!valid_label_name(l) || (type == "histogram" && l == "le")) {
            throw std::logic_error("metrics: invalid label name \"" + l + "\" in " + name);
        }
        if (std::find(label_names.begin(), label_names.begin() + static_cast<long>(i), l) !=
            label_names.begin() + static_cast<long>(i)) {
            throw std::logic_error("metrics: duplicate label name \"" + l + "\" in " + name);
        }
    }
    std::lock_guard lock(mu_);
    for (const auto& s : series_names) {
        if (series_names_.contains(s)) {
            throw std::logic_error("metrics: duplicate registration of " + s);
        }
    }
    series_names_.insert(series_names.begin(), series_names.end());
    const bool unlabelled = label_names.empty();
    auto fam = std::unique_ptr<Family<M>>(new Family<M>(std::move(name), std::move(help), type,
                                                        std::move(label_names), max_children,
                                                        std::move(factory)));
    Family<M>& ref = *fam;
    families_.push_back(std::move(fam));
    if (unlabelled) {
        ref.get();  // an unlabelled metric exists (as 0) from registration on
    }
    return ref;
}

Family<Counter>& MetricsRegistry::counter(std::string name, std::string help,
                                          std::vector<std::string> label_names,
                                          std::size_t max_children) {
    std::vector<std::string> series{name};
    return add<Counter>(std::move(name), std::move(help), "counter", std::move(label_names),
                        max_children, [] { return std::make_unique<Counter>(); },
                        std::move(series));
}

Family<DoubleCounter>& MetricsRegistry::double_counter(std::string name, std::string help,
                                                       std::vector<std::string> label_names,
                                                       std::size_t max_children) {
    std::vector<std::string> series{name};
    return add<DoubleCounter>(std::move(name), std::move(help), "counter",
                              std::move(label_names), max_children,
                              [] { return std::make_unique<DoubleCounter>(); },
                              std::move(series));
}

Family<Gauge>& MetricsRegistry::gauge(std::string name, std::string help,
                                      std::vector<std::string> label_names,
                                      std::size_t max_children) {
    std::vector<std::string> series{name};
    return add<Gauge>(std::move(name), std::move(help), "gauge", std::move(label_names),
                      max_children, [] { return std::make_unique<Gauge>(); }, std::move(series));
}

Family<DoubleGauge>& MetricsRegistry::double_gauge(std::string name, std::string help,
                                                   std::vector<std::string> label_names,
                                                   std::size_t max_children) {
    std::vector<std::string> series{name};
    return add<DoubleGauge>(std::move(name), std::move(help), "gauge", std::move(label_names),
                            max_children, [] { return std::make_unique<DoubleGauge>(); },
                            std::move(series));
}

Family<Histogram>& MetricsRegistry::histogram(std::string name, std::string help,
                                              std::vector<double> buckets,
                                              std::vector<std::string> label_names,
                                              std::size_t max_children) {
    for (std::size_t i = 0; i < buckets.size(); ++i) {
        if (!std::isfinite(buckets[i]) || (i > 0 && !(buckets[i - 1] < buckets[i]))) {
            throw std::logic_error("metrics: buckets of " + name +
                                   " must be finite and strictly increasing");
        }
    }
    auto bounds = std::make_shared<const std::vector<double>>(std::move(buckets));
    std::vector<std::string> series{name, name + "_bucket", name + "_sum", name + "_count"};
    return add<Histogram>(std::move(name), std::move(help), "histogram", std::move(label_names),
                          max_children,
                          [bounds] { return std::make_unique<Histogram>(bounds); },
                          std::move(series));
}

std::string MetricsRegistry::render() const {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& f : families_) {
        f->render(out);
    }
    return out;
}

}  // namespace hopgate::core
