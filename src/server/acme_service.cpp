#include "server/acme_service.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <deque>
#include <iomanip>
#include <map>
#include <mutex>
#include <ostream>
#include <set>
#include <sstream>

#include "acme/crypto.hpp"
#include "acme/driver.hpp"
#include "acme/storage.hpp"
#include "core/config.hpp"
#include "core/error.hpp"
#include "net/accept_backoff.hpp"

namespace hopgate::server {

namespace asio = boost::asio;
using SysClock = std::chrono::system_clock;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kHttp01Prefix = "/.well-known/acme-challenge/";

std::string lower(std::string s) {
    for (auto& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

// Names a public CA can issue for: a valid DNS name with at least one dot.
bool issuable(const std::string& d) {
    return acme::valid_dns_name(d) && d.find('.') != std::string::npos;
}

long long secs(std::chrono::nanoseconds d) {
    return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

// Challenge bookkeeping shared by the service and the CLI: HTTP-01 tokens (read from any
// thread) and TLS-ALPN-01 certificates in the CertStore.
class Challenges {
  public:
    explicit Challenges(std::shared_ptr<tls::CertStore> store) : store_(std::move(store)) {}

    void provision(const acme::ChallengeTask& t, bool add, core::Logger& log) {
        log.info(add ? "acme: challenge provisioned" : "acme: challenge withdrawn",
                 {{"domain", t.domain}, {"type", t.type}});
        if (t.type == "http-01") {
            std::lock_guard lock(mu_);
            if (add) {
                tokens_[t.token] = t.key_authz;
            } else {
                tokens_.erase(t.token);
            }
        } else if (t.type == "tls-alpn-01" && store_) {
            if (!add) {
                store_->remove_challenge(t.domain);
                return;
            }
            auto pem = acme::make_tls_alpn_cert(t.domain, t.key_authz);
            std::string why;
            auto ck = pem ? tls::CertifiedKey::from_pem(pem->cert_pem, pem->key_pem, &why)
                          : core::Result<std::shared_ptr<const tls::CertifiedKey>>(pem.error());
            if (ck) {
                store_->set_challenge(t.domain, *ck);
            } else {
                log.error("acme: cannot build the TLS-ALPN-01 certificate", {{"domain", t.domain}});
            }
        }
    }

    std::optional<std::string> http01(std::string_view token) const {
        std::lock_guard lock(mu_);
        auto it = tokens_.find(std::string(token));
        if (it == tokens_.end()) {
            return std::nullopt;
        }
        return it->second;
    }

  private:
    std::shared_ptr<tls::CertStore> store_;
    mutable std::mutex mu_;
    std::map<std::string, std::string> tokens_;
};

acme::DriverOptions driver_options(const AcmeConfig& cfg) {
    acme::DriverOptions o;
    o.ca_roots_file = cfg.ca_roots;
    o.request_timeout = cfg.request_timeout;
    return o;
}

acme::OrderConfig order_config(const AcmeConfig& cfg, const std::string& account_url,
                               const std::string& domain) {
    acme::OrderConfig oc;
    oc.directory_url = cfg.directory_url;
    oc.account_url = account_url;
    oc.email = cfg.email;
    oc.domains = {domain};
    oc.challenge_types = cfg.challenges;
    return oc;
}

// Writes key then chain, each atomically; the key is 0600.
core::Status store_files(const std::string& dir, const std::string& domain,
                         const acme::Issued& is) {
    if (auto st = acme::write_file_atomic(acme::key_path(dir, domain), is.key_pem, 0600); !st) {
        return st;
    }
    return acme::write_file_atomic(acme::cert_path(dir, domain), is.cert_chain_pem, 0644);
}

}  // namespace

struct AcmeService::Impl : std::enable_shared_from_this<AcmeService::Impl> {
    struct DomainState {
        bool have_cert = false;
        SysClock::time_point renew_at{};
        std::string ari_cert_id;  // RFC 9773 certificate identifier of the current cert
        SteadyClock::time_point ari_checked{};  // last ARI query (one per check interval)
        SteadyClock::time_point next_attempt{};
        int failures = 0;
    };

    asio::io_context& io;
    AcmeConfig cfg;
    std::shared_ptr<tls::CertStore> store;
    core::Logger log;
    std::vector<std::string> static_domains;
    DomainLister lister;
    Challenges challenges;
    tls::EvpPkeyPtr account_key;
    std::string account_url;
    std::map<std::string, DomainState> domains;
    std::deque<SteadyClock::time_point> recent_orders;  // bounded by max_orders_per_hour
    asio::steady_timer check_timer;
    asio::steady_timer retry_timer;
    std::shared_ptr<acme::OrderHandle> current;
    core::Family<core::Counter>* orders = nullptr;  // metrics, null when not exported
    core::Family<core::Gauge>* expiry = nullptr;
    std::string ari_url;  // the directory's renewalInfo, when offered
    bool directory_read = false;
    bool busy = false;
    bool stopped = false;

    Impl(asio::io_context& io_, AcmeConfig c, std::shared_ptr<tls::CertStore> s, core::Logger l,
         std::vector<std::string> sd, DomainLister dl)
        : io(io_),
          cfg(std::move(c)),
          store(std::move(s)),
          log(std::move(l)),
          static_domains(std::move(sd)),
          lister(std::move(dl)),
          challenges(store),
          check_timer(io_),
          retry_timer(io_) {}

    void load() {
        auto acc = acme::load_or_create_account(cfg.cache_dir, cfg.directory_url);
        if (!acc) {
            throw std::runtime_error("HOP_ACME_CACHE_DIR " + cfg.cache_dir +
                                     ": cannot load or create the ACME account key (" +
                                     acc.error().message() + ")");
        }
        account_key = std::move(acc->key);
        account_url = acc->url;
        for (const auto& d : static_domains) {
            add_domain(d);
        }
        // Registered domains are only known once the registry answers: serve their cached
        // certificates from the first handshake on (renewal starts when the domain set is read).
        for (const auto& ci : acme::list_certificates(cfg.cache_dir)) {
            if (domains.count(ci.domain) != 0 || !issuable(ci.domain)) {
                continue;
            }
            auto ck = tls::CertifiedKey::from_files(acme::cert_path(cfg.cache_dir, ci.domain),
                                                    acme::key_path(cfg.cache_dir, ci.domain));
            if (ck) {
                store->set(ci.domain, *ck);
            }
        }
    }

    void record_expiry(const std::string& domain, SysClock::time_point not_after) {
        if (expiry != nullptr) {
            expiry->with({domain}).set(SysClock::to_time_t(not_after));
        }
    }

    void add_domain(const std::string& raw) {
        const std::string d = lower(raw);
        if (!issuable(d) || domains.count(d) != 0) {
            return;
        }
        DomainState st;
        // A cached certificate is served at once, and renewed when due.
        std::string why;
        auto ck = tls::CertifiedKey::from_files(acme::cert_path(cfg.cache_dir, d),
                                                acme::key_path(cfg.cache_dir, d), &why);
        if (ck) {
            auto pem = tls::read_pem_file(acme::cert_path(cfg.cache_dir, d));
            auto info = pem ? acme::cert_info(*pem) : core::Result<acme::CertInfo>(pem.error());
            if (info) {
                store->set(d, *ck);
                record_expiry(d, info->not_after);
                st.have_cert = true;
                st.ari_cert_id = info->ari_cert_id;
                st.renew_at =
                    acme::renewal_time(info->not_before, info->not_after, cfg.renew_before);
                log.info("acme: cached certificate loaded",
                         {{"domain", d}, {"renew_in_s", secs(st.renew_at - SysClock::now())}});
            }
        }
        domains.emplace(d, st);
    }

    void tick() {
        if (stopped) {
            return;
        }
        std::weak_ptr<Impl> weak = shared_from_this();
        check_ari();
        if (lister) {
            lister([weak](std::vector<std::string> regs) {
                if (auto self = weak.lock(); self && !self->stopped) {
                    for (const auto& d : regs) {
                        self->add_domain(d);
                    }
                    self->process();
                }
            });
        } else {
            process();
        }
        check_timer.expires_after(cfg.check_interval);
        check_timer.async_wait([weak](const boost::system::error_code& ec) {
            if (auto self = weak.lock(); self && !ec) {
                self->tick();
            }
        });
    }

    // ARI (RFC 9773): asks the CA when to renew each certificate, at most once per check
    // interval; a window that has started makes the certificate due now. Unauthenticated GETs.
    void check_ari() {
        std::weak_ptr<Impl> weak = shared_from_this();
        if (!directory_read) {
            acme::async_http(io.get_executor(), driver_options(cfg),
                             {"GET", cfg.directory_url, "", "", "application/json"},
                             [weak](std::error_code ec, std::string, acme::HttpResponse r) {
                                 auto self = weak.lock();
                                 if (!self || ec || r.status != 200) {
                                     return;
                                 }
                                 if (auto d = acme::parse_directory(r.body)) {
                                     self->directory_read = true;
                                     self->ari_url = d->renewal_info;
                                     self->check_ari();
                                 }
                             });
            return;
        }
        if (ari_url.empty()) {
            return;
        }
        const auto now = SteadyClock::now();
        for (auto& [d, st] : domains) {
            if (!st.have_cert || st.ari_cert_id.empty() ||
                (st.ari_checked != SteadyClock::time_point{} &&
                 now - st.ari_checked < cfg.check_interval)) {
                continue;
            }
            st.ari_checked = now;
            std::string url = ari_url;
            if (url.empty() || url.back() != '/') {
                url += '/';
            }
            acme::async_http(
                io.get_executor(), driver_options(cfg),
                {"GET", url + st.ari_cert_id, "", "", "application/json"},
                [weak, domain = d](std::error_code ec, std::string, acme::HttpResponse r) {
                    auto self = weak.lock();
                    if (!self || ec || r.status != 200) {
                        return;
                    }
                    auto w = acme::parse_renewal_info(r.body);
                    auto it = self->domains.find(domain);
                    if (!w || it == self->domains.end()) {
                        return;
                    }
                    if (w->start < it->second.renew_at) {
                        it->second.renew_at = w->start;
                        self->log.info(
                            "acme: renewal window from the CA (ARI)",
                            {{"domain", domain}, {"renew_in_s", secs(w->start - SysClock::now())}});
                        self->process();
                    }
                });
        }
    }

    void wake_at(SteadyClock::time_point t) {
        const auto now = SteadyClock::now();
        if (t < now) {
            t = now;
        }
        if (retry_timer.expiry() > now && retry_timer.expiry() <= t) {
            return;  // an earlier wake-up is already armed
        }
        retry_timer.expires_at(t);
        std::weak_ptr<Impl> weak = shared_from_this();
        retry_timer.async_wait([weak](const boost::system::error_code& ec) {
            if (auto self = weak.lock(); self && !ec) {
                self->process();
            }
        });
    }

    void process() {
        if (busy || stopped) {
            return;
        }
        const auto now_sys = SysClock::now();
        const auto now = SteadyClock::now();
        std::string pick;
        auto earliest = SteadyClock::time_point::max();
        for (auto& [d, st] : domains) {
            const bool due = !st.have_cert || now_sys >= st.renew_at;
            if (!due) {
                earliest = std::min(earliest, now + (st.renew_at - now_sys));
                continue;
            }
            if (now < st.next_attempt) {
                earliest = std::min(earliest, st.next_attempt);
                continue;
            }
            if (pick.empty()) {
                pick = d;
            }
        }
        if (pick.empty()) {
            if (earliest != SteadyClock::time_point::max()) {
                wake_at(std::min(earliest, now + cfg.check_interval));
            }
            return;
        }
        while (!recent_orders.empty() && now - recent_orders.front() > std::chrono::hours(1)) {
            recent_orders.pop_front();
        }
        if (static_cast<int>(recent_orders.size()) >= cfg.max_orders_per_hour) {
            log.warn("acme: order rate limit reached, waiting",
                     {{"max_orders_per_hour", cfg.max_orders_per_hour}});
            wake_at(recent_orders.front() + std::chrono::hours(1));
            return;
        }
        recent_orders.push_back(now);
        obtain(pick);
    }

    void obtain(const std::string& domain) {
        busy = true;
        const bool renewal = domains[domain].have_cert;
        log.info(renewal ? "acme: renewing certificate" : "acme: obtaining certificate",
                 {{"domain", domain}, {"ca", cfg.directory_url}});
        const auto started = SteadyClock::now();
        std::weak_ptr<Impl> weak = shared_from_this();
        current = acme::async_obtain(
            io.get_executor(), driver_options(cfg), order_config(cfg, account_url, domain),
            account_key.get(),
            [weak](const acme::ChallengeTask& t, bool add) {
                if (auto self = weak.lock()) {
                    self->challenges.provision(t, add, self->log);
                }
            },
            [weak, domain, started](acme::IssueResult r) {
                if (auto self = weak.lock()) {
                    self->on_issued(domain, started, std::move(r));
                }
            });
    }

    void on_issued(const std::string& domain, SteadyClock::time_point started,
                   acme::IssueResult r) {
        busy = false;
        current.reset();
        auto& st = domains[domain];
        const auto took_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started)
                .count();
        if (!r.issued.account_url.empty() && r.issued.account_url != account_url) {
            account_url = r.issued.account_url;
            (void)acme::save_account_url(cfg.cache_dir, cfg.directory_url, account_url);
        }
        std::string why;
        std::shared_ptr<const tls::CertifiedKey> ck;
        if (!r.error) {
            auto c = tls::CertifiedKey::from_pem(r.issued.cert_chain_pem, r.issued.key_pem, &why);
            auto info = acme::cert_info(r.issued.cert_chain_pem);
            if (c && info && store_files(cfg.cache_dir, domain, r.issued)) {
                ck = *c;
                record_expiry(domain, info->not_after);
                st.ari_cert_id = info->ari_cert_id;
                st.ari_checked = {};
                st.renew_at =
                    acme::renewal_time(info->not_before, info->not_after, cfg.renew_before);
            } else {
                r.error = make_error_code(core::Errc::kIo);
                r.message = "storing the certificate failed: " + (why.empty() ? "write" : why);
            }
        }
        if (orders != nullptr) {
            orders->with({ck ? "ok" : "failed"}).inc();
        }
        if (ck) {
            store->set(domain, ck);  // new handshakes only; open connections keep theirs
            st.have_cert = true;
            st.failures = 0;
            st.next_attempt = {};
            log.info("acme: certificate installed",
                     {{"domain", domain},
                      {"took_ms", took_ms},
                      {"renew_in_s", secs(st.renew_at - SysClock::now())},
                      {"bad_nonce_retries", r.issued.bad_nonce_retries}});
        } else {
            ++st.failures;
            auto backoff = cfg.retry_base * (1LL << std::min(st.failures - 1, 16));
            backoff = std::min<std::chrono::seconds>(backoff, cfg.retry_max);
            st.next_attempt = SteadyClock::now() + backoff;
            log.error("acme: order failed", {{"domain", domain},
                                             {"error", r.message},
                                             {"code", r.error.message()},
                                             {"failures", st.failures},
                                             {"retry_in_s", backoff.count()}});
        }
        asio::post(io, [weak = std::weak_ptr<Impl>(shared_from_this())] {
            if (auto self = weak.lock()) {
                self->process();
            }
        });
    }
};

AcmeService::AcmeService(asio::io_context& io, AcmeConfig cfg,
                         std::shared_ptr<tls::CertStore> store, core::Logger log,
                         std::vector<std::string> static_domains, DomainLister lister,
                         core::MetricsRegistry* metrics)
    : impl_(std::make_shared<Impl>(io, std::move(cfg), std::move(store), std::move(log),
                                   std::move(static_domains), std::move(lister))) {
    if (metrics != nullptr) {
        impl_->orders = &metrics->counter("hopgate_acme_orders_total",
                                          "ACME certificate orders by result.", {"result"});
        impl_->expiry = &metrics->gauge("hopgate_acme_certificate_expiry_timestamp_seconds",
                                        "Expiry (Unix time) of each ACME certificate served.",
                                        {"domain"});
    }
    impl_->load();
}

AcmeService::~AcmeService() { stop(); }

void AcmeService::start() {
    asio::post(impl_->io, [self = impl_] { self->tick(); });
}

void AcmeService::kick() {
    asio::post(impl_->io, [self = impl_] {
        self->check_timer.cancel();
        self->tick();
    });
}

void AcmeService::stop() {
    impl_->stopped = true;
    impl_->check_timer.cancel();
    impl_->retry_timer.cancel();
    if (impl_->current) {
        impl_->current->cancel();
    }
}

std::optional<std::string> AcmeService::http01_response(std::string_view token) const {
    return impl_->challenges.http01(token);
}

// ---------------------------------------------------------------- CLI

namespace {

// A minimal HTTP-01 responder for the CLI: answers /.well-known/acme-challenge/<token>.
asio::awaitable<void> serve_http01(asio::ip::tcp::acceptor& acc, const Challenges& ch) {
    namespace beast = boost::beast;
    namespace http = beast::http;
    for (;;) {
        auto [ec, sock] = co_await acc.async_accept(asio::as_tuple(asio::use_awaitable));
        if (const auto kind = net::classify_accept_error(ec); kind != net::AcceptErrorKind::kNone) {
            if (kind == net::AcceptErrorKind::kAborted) {
                co_return;
            }
            if (kind == net::AcceptErrorKind::kResource) {
                // Out of descriptors or memory: pause instead of spinning on the same error.
                asio::steady_timer pause(acc.get_executor(), net::AcceptBackoff::kDefaultDelay);
                (void)co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
            }
            continue;
        }
        asio::co_spawn(
            acc.get_executor(),
            [s = std::move(sock), &ch]() mutable -> asio::awaitable<void> {
                beast::tcp_stream stream(std::move(s));
                stream.expires_after(std::chrono::seconds(10));
                beast::flat_buffer buf;
                http::request_parser<http::empty_body> p;
                p.header_limit(16 * 1024);
                auto [rec, n] =
                    co_await http::async_read(stream, buf, p, asio::as_tuple(asio::use_awaitable));
                if (rec) {
                    co_return;
                }
                const std::string_view target = p.get().target();
                http::response<http::string_body> res{http::status::not_found, 11};
                if (target.starts_with(kHttp01Prefix)) {
                    if (auto v = ch.http01(target.substr(kHttp01Prefix.size()))) {
                        res.result(http::status::ok);
                        res.body() = *v;
                    }
                }
                res.set(http::field::content_type, "text/plain");
                res.keep_alive(false);
                res.prepare_payload();
                (void)co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
            },
            asio::detached);
    }
}

std::string fmt_time(SysClock::time_point t) {
    const auto tt = SysClock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    std::ostringstream os;
    os << std::put_time(&tm, "%Y-%m-%dT%H:%M:%SZ");
    return os.str();
}

}  // namespace

int run_cert_cli(const std::vector<std::string>& args, const AcmeConfig& cfg,
                 const std::string& http_listen, std::ostream& out, std::ostream& err) {
    const std::string usage =
        "usage: hopgate-server cert list\n"
        "       hopgate-server cert obtain DOMAIN...   (order now; serves HTTP-01 itself)\n"
        "       hopgate-server cert renew [DOMAIN...]  (renew cached certificates now)\n";
    if (args.empty() || args[0] == "--help" || args[0] == "-h") {
        (args.empty() ? err : out) << usage;
        return args.empty() ? 2 : 0;
    }
    if (args[0] == "list") {
        const auto now = SysClock::now();
        for (const auto& ci : acme::list_certificates(cfg.cache_dir)) {
            const auto renew = acme::renewal_time(ci.not_before, ci.not_after, cfg.renew_before);
            out << ci.domain << "\tnot_after=" << fmt_time(ci.not_after)
                << "\trenew_at=" << fmt_time(renew) << (now >= renew ? " (due)" : "")
                << "\tissuer=" << ci.issuer << "\n";
        }
        return 0;
    }
    if (args[0] != "obtain" && args[0] != "renew") {
        err << usage;
        return 2;
    }
    if (cfg.directory_url.empty()) {
        err << "hopgate-server cert: set HOP_ACME_CA_DIR (or HOP_ACME_USE_STAGING)\n";
        return 1;
    }
    std::vector<std::string> targets(args.begin() + 1, args.end());
    if (targets.empty() && args[0] == "renew") {
        for (const auto& ci : acme::list_certificates(cfg.cache_dir)) {
            targets.push_back(ci.domain);
        }
    }
    if (targets.empty()) {
        err << usage;
        return 2;
    }
    for (const auto& d : targets) {
        if (!issuable(d)) {
            err << "hopgate-server cert: \"" << d << "\" is not a domain name a CA can issue for\n";
            return 2;
        }
    }
    auto acc = acme::load_or_create_account(cfg.cache_dir, cfg.directory_url);
    if (!acc) {
        err << "hopgate-server cert: cannot load the account in " << cfg.cache_dir << "\n";
        return 1;
    }
    asio::io_context io;
    std::string why;
    auto listen = core::parse_listen_address(http_listen, &why);
    if (!listen) {
        err << "hopgate-server cert: HOP_SERVER_HTTP_LISTEN: " << why << "\n";
        return 1;
    }
    asio::ip::tcp::acceptor acceptor(io);
    try {
        asio::ip::tcp::endpoint ep(
            asio::ip::make_address(listen->host.empty() ? "0.0.0.0" : listen->host), listen->port);
        acceptor.open(ep.protocol());
        acceptor.set_option(asio::socket_base::reuse_address(true));
        acceptor.bind(ep);
        acceptor.listen();
    } catch (const std::exception& e) {
        err << "hopgate-server cert: cannot listen on " << http_listen
            << " for HTTP-01 (is the server running? it renews by itself): " << e.what() << "\n";
        return 1;
    }
    Challenges ch(nullptr);
    asio::co_spawn(io, serve_http01(acceptor, ch), asio::detached);
    auto cfg2 = cfg;
    cfg2.challenges = {"http-01"};
    std::string account_url = acc->url;
    auto log = core::Logger(std::make_shared<core::LogOutput>(core::LogLevel::kWarn), "acme");
    int failures = 0;
    std::size_t next = 0;
    std::function<void()> run_next = [&] {
        if (next >= targets.size()) {
            acceptor.close();
            return;
        }
        const std::string domain = targets[next++];
        const auto started = SteadyClock::now();
        acme::async_obtain(
            io.get_executor(), driver_options(cfg2), order_config(cfg2, account_url, domain),
            acc->key.get(),
            [&](const acme::ChallengeTask& t, bool add) { ch.provision(t, add, log); },
            [&, domain, started](acme::IssueResult r) {
                if (!r.issued.account_url.empty() && r.issued.account_url != account_url) {
                    account_url = r.issued.account_url;
                    (void)acme::save_account_url(cfg.cache_dir, cfg.directory_url, account_url);
                }
                if (!r.error && store_files(cfg.cache_dir, domain, r.issued)) {
                    out << domain << ": issued in "
                        << std::chrono::duration_cast<std::chrono::milliseconds>(
                               SteadyClock::now() - started)
                               .count()
                        << " ms -> " << acme::cert_path(cfg.cache_dir, domain) << "\n";
                } else {
                    ++failures;
                    err << domain << ": failed: " << (r.message.empty() ? "write" : r.message)
                        << "\n";
                }
                run_next();
            });
    };
    run_next();
    io.run();
    return failures == 0 ? 0 : 1;
}

}  // namespace hopgate::server
