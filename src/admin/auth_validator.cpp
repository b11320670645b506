#include "admin/auth_validator.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cstring>
#include <memory>

#include "core/error.hpp"
#include "registry/async_registry.hpp"
#include "registry/domain.hpp"
#include "registry/error.hpp"
#include "registry/key.hpp"

namespace hopgate::admin {

namespace asio = boost::asio;

// ---- AsioResolver ----

namespace {

IpAddr from_asio(const asio::ip::address& a) {
    IpAddr ip;
    if (a.is_v4()) {
        ip.v4 = true;
        const auto b = a.to_v4().to_bytes();
        std::memcpy(ip.bytes.data(), b.data(), 4);
        return ip;
    }
    const auto v6 = a.to_v6();
    if (v6.is_v4_mapped()) {
        return from_asio(asio::ip::make_address_v4(asio::ip::v4_mapped, v6));
    }
    const auto b = v6.to_bytes();
    std::memcpy(ip.bytes.data(), b.data(), 16);
    return ip;
}

}  // namespace

void AsioResolver::resolve(const std::string& host,
                           std::function<void(core::Result<Addresses>)> done) {
    auto resolver = std::make_shared<asio::ip::tcp::resolver>(ex_);
    // No address_configured flag: the gate asks what DNS says, not what this host can reach.
    resolver->async_resolve(
        host, "", static_cast<asio::ip::resolver_base::flags>(0),
        [resolver, done = std::move(done)](const boost::system::error_code& ec,
                                           const asio::ip::tcp::resolver::results_type& results) {
            if (ec) {
                done(core::Errc::kNotFound);
                return;
            }
            Addresses out;
            for (const auto& entry : results) {
                out.push_back(from_asio(entry.endpoint().address()));
            }
            done(std::move(out));
        });
}

// ---- AuthValidator ----

AuthValidator::AuthValidator(registry::AsyncRegistry& registry, Resolver* resolver,
                             AuthOptions options, Clock clock)
    : registry_(registry),
      resolver_(resolver),
      options_(std::move(options)),
      clock_(clock ? std::move(clock) : Clock(core::steady_now)),
      limiter_(options_.limiter) {
    if (!options_.expect_ips.empty() && resolver_ == nullptr) {
        throw std::invalid_argument("HOP_ACME_EXPECT_IPS is set but no DNS resolver was given");
    }
}

void AuthValidator::check(const IpAddr& source, std::string domain, std::string key,
                          asio::any_io_executor ex, std::function<void(AuthResult)> done) {
    const auto finish = [&ex, &done](AuthResult r) {
        asio::post(ex, [d = std::move(done), r = std::move(r)]() mutable { d(std::move(r)); });
    };
    const core::Instant now = clock_();
    if (!limiter_.allowed(source, now)) {
        finish({AuthCode::kRateLimited, "",
                "too many failed attempts from this address; retry later"});
        return;
    }
    auto name = registry::normalize_domain(domain);
    if (!name) {
        limiter_.record_failure(source, now);
        finish({AuthCode::kInvalidDomain, "", name.error().message()});
        return;
    }
    if (!registry::is_well_formed_key(key)) {
        limiter_.record_failure(source, now);
        finish({AuthCode::kBadKey, *name, "client API key must be 64 hex characters"});
        return;
    }
    registry_.async_validate(
        ex, *name, std::move(key),
        [this, source, ex, name = *name, done = std::move(done)](core::Status st) mutable {
            namespace reg = hopgate::registry;
            if (st.ok()) {
                limiter_.record_success(source);
                AuthResult ok{AuthCode::kAccepted, name, "accepted"};
                if (options_.expect_ips.empty()) {
                    done(std::move(ok));
                } else {
                    dns_gate(std::move(ok), ex, std::move(done));
                }
                return;
            }
            const std::error_code ec = st.error();
            if (ec == reg::Errc::kNotFound) {
                limiter_.record_failure(source, clock_());
                done({AuthCode::kUnknownDomain, name, "domain is not registered on this server"});
            } else if (ec == reg::Errc::kKeyMismatch) {
                limiter_.record_failure(source, clock_());
                done({AuthCode::kBadKey, name, "client API key does not match the domain"});
            } else if (reg::is_invalid_domain(ec)) {
                done({AuthCode::kInvalidDomain, name, ec.message()});
            } else {
                done({AuthCode::kUnavailable, name, "registry unavailable; retry later"});
            }
        });
}

void AuthValidator::dns_gate(AuthResult accepted, asio::any_io_executor ex,
                             std::function<void(AuthResult)> done) {
    // Resolver answer and deadline race on a private strand; the winner posts `done` to `ex`.
    struct State {
        explicit State(asio::strand<asio::any_io_executor> s) : strand(s), timer(s) {}
        asio::strand<asio::any_io_executor> strand;
        asio::steady_timer timer;
        bool finished = false;
        AuthResult accepted;
        asio::any_io_executor ex;
        std::function<void(AuthResult)> done;
        void finish(AuthResult r) {
            if (std::exchange(finished, true)) {
                return;
            }
            timer.cancel();
            asio::post(ex, [d = std::move(done), r = std::move(r)]() mutable { d(std::move(r)); });
        }
    };
    auto st = std::make_shared<State>(asio::make_strand(ex));
    st->accepted = std::move(accepted);
    st->ex = ex;
    st->done = std::move(done);
    st->timer.expires_after(options_.dns_timeout);
    st->timer.async_wait([st](const boost::system::error_code& ec) {
        if (!ec) {
            st->finish(
                {AuthCode::kDnsError, st->accepted.domain, "DNS lookup of the domain timed out"});
        }
    });
    const auto expect = options_.expect_ips;
    resolver_->resolve(st->accepted.domain, [st, expect](core::Result<Resolver::Addresses> r) {
        asio::post(st->strand, [st, expect, r = std::move(r)] {
            if (!r) {
                st->finish({AuthCode::kDnsError, st->accepted.domain,
                            "the domain does not resolve (no A/AAAA records)"});
                return;
            }
            for (const auto& a : *r) {
                for (const auto& e : expect) {
                    if (a == e) {
                        st->finish(st->accepted);
                        return;
                    }
                }
            }
            st->finish({AuthCode::kDnsMismatch, st->accepted.domain,
                        "the domain's A/AAAA records do not point to this server"});
        });
    });
}

}  // namespace hopgate::admin
