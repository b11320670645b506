#include "impair/options.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace hopgate::impair {
namespace {

[[noreturn]] void fail(std::string msg) { throw std::invalid_argument(std::move(msg)); }

double parse_double(std::string_view text, std::string_view what) {
    double v = 0.0;
    const char* end = text.data() + text.size();
    auto [p, ec] = std::from_chars(text.data(), end, v);
    if (text.empty() || ec != std::errc() || p != end || !std::isfinite(v)) {
        fail(std::string(what) + ": not a number: '" + std::string(text) + "'");
    }
    return v;
}

std::uint64_t parse_u64(std::string_view text, std::string_view what) {
    std::uint64_t v = 0;
    const char* end = text.data() + text.size();
    auto [p, ec] = std::from_chars(text.data(), end, v);
    if (text.empty() || ec != std::errc() || p != end) {
        fail(std::string(what) + ": not a non-negative integer: '" + std::string(text) + "'");
    }
    return v;
}

std::uint64_t parse_u64_in(std::string_view text, std::string_view what, std::uint64_t lo,
                           std::uint64_t hi) {
    const std::uint64_t v = parse_u64(text, what);
    if (v < lo || v > hi) {
        fail(std::string(what) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
             "]");
    }
    return v;
}

core::Duration ms_to_duration(double ms, std::string_view what) {
    if (!(ms >= 0.0 && ms <= 3'600'000.0)) {
        fail(std::string(what) + " must be in [0, 3600000]");
    }
    return core::Duration(static_cast<std::int64_t>(std::llround(ms * 1000.0)));
}

std::string format_number(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

}  // namespace

HostPort parse_host_port(std::string_view text, std::string_view what) {
    HostPort hp;
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            fail(std::string(what) + ": expected [v6]:port, got '" + std::string(text) + "'");
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) {
            fail(std::string(what) + ": expected host:port, got '" + std::string(text) + "'");
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    if (host.empty()) {
        fail(std::string(what) + ": missing host in '" + std::string(text) + "'");
    }
    hp.host = std::string(host);
    hp.port = static_cast<std::uint16_t>(parse_u64_in(port, std::string(what) + " port", 0, 65535));
    return hp;
}

void apply_param(LinkParams& p, std::string_view name, std::string_view value) {
    if (name == "loss") {
        p.loss_pct = parse_double(value, "loss");
    } else if (name == "dup") {
        p.dup_pct = parse_double(value, "dup");
    } else if (name == "delay-ms") {
        p.delay = ms_to_duration(parse_double(value, "delay-ms"), "delay-ms");
    } else if (name == "jitter-ms") {
        p.jitter = ms_to_duration(parse_double(value, "jitter-ms"), "jitter-ms");
    } else if (name == "rate-mbit") {
        p.rate_mbit = parse_double(value, "rate-mbit");
    } else if (name == "queue-kb") {
        p.queue_bytes =
            static_cast<std::size_t>(parse_u64_in(value, "queue-kb", 1, 1u << 20)) * 1024;
    } else {
        fail("unknown parameter '" + std::string(name) + "'");
    }
}

std::string params_json(const LinkParams& p) {
    std::string out = "{\"loss\":" + format_number(p.loss_pct);
    out += ",\"dup\":" + format_number(p.dup_pct);
    out += ",\"delay_ms\":" + format_number(static_cast<double>(p.delay.count()) / 1000.0);
    out += ",\"jitter_ms\":" + format_number(static_cast<double>(p.jitter.count()) / 1000.0);
    out += ",\"rate_mbit\":" + format_number(p.rate_mbit);
    out += ",\"queue_kb\":" + std::to_string(p.queue_bytes / 1024);
    out += '}';
    return out;
}

Options parse_options(std::span<const std::string_view> args) {
    Options o;
    bool have_mode = false;
    bool have_listen = false;
    bool have_target = false;
    // Both-direction values first, then per-direction overrides, whatever the flag order.
    std::vector<std::pair<std::string, std::string>> both;
    std::vector<std::pair<std::string, std::string>> up_only;
    std::vector<std::pair<std::string, std::string>> down_only;

    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view arg = args[i];
        if (arg.size() < 3 || arg.substr(0, 2) != "--") {
            fail("unexpected argument '" + std::string(arg) + "' (see --help)");
        }
        std::string name(arg.substr(2));
        std::optional<std::string> inline_value;
        if (auto eq = name.find('='); eq != std::string::npos) {
            inline_value = name.substr(eq + 1);
            name.resize(eq);
        }
        auto flag = [&](bool is_flag) {
            if (is_flag && inline_value) {
                fail("--" + name + " takes no value");
            }
        };
        auto value = [&]() -> std::string {
            if (inline_value) {
                return *inline_value;
            }
            if (i + 1 >= args.size()) {
                fail("--" + name + " needs a value");
            }
            return std::string(args[++i]);
        };

        if (name == "help") {
            flag(true);
            o.help = true;
        } else if (name == "udp" || name == "tcp") {
            flag(true);
            const Mode m = name == "udp" ? Mode::kUdp : Mode::kTcp;
            if (have_mode && o.mode != m) {
                fail("--udp and --tcp are exclusive");
            }
            o.mode = m;
            have_mode = true;
        } else if (name == "listen") {
            o.listen = parse_host_port(value(), "--listen");
            have_listen = true;
        } else if (name == "target") {
            o.target = parse_host_port(value(), "--target");
            have_target = true;
        } else if (name == "control") {
            o.control = parse_host_port(value(), "--control");
        } else if (name == "seed") {
            o.seed = parse_u64(value(), "--seed");
        } else if (name == "loss" || name == "dup" || name == "delay-ms" || name == "jitter-ms" ||
                   name == "rate-mbit" || name == "queue-kb") {
            both.emplace_back(name, value());
        } else if (name.starts_with("up-")) {
            up_only.emplace_back(name.substr(3), value());
        } else if (name.starts_with("down-")) {
            down_only.emplace_back(name.substr(5), value());
        } else if (name == "max-mappings") {
            o.max_mappings = parse_u64_in(value(), "--max-mappings", 1, 1'000'000);
        } else if (name == "mapping-idle-s") {
            o.mapping_idle =
                std::chrono::seconds(parse_u64_in(value(), "--mapping-idle-s", 1, 86'400));
        } else if (name == "inflight-kb") {
            o.inflight_bytes = parse_u64_in(value(), "--inflight-kb", 64, 4u << 20) * 1024;
        } else if (name == "socket-buffer-kb") {
            o.socket_buffer_bytes = parse_u64_in(value(), "--socket-buffer-kb", 0, 1u << 20) * 1024;
        } else if (name == "tcp-buffer-kb") {
            o.tcp_buffer_bytes = parse_u64_in(value(), "--tcp-buffer-kb", 4, 1u << 20) * 1024;
        } else if (name == "max-conns") {
            o.max_connections = parse_u64_in(value(), "--max-conns", 1, 100'000);
        } else if (name == "connect-timeout-ms") {
            o.connect_timeout = std::chrono::milliseconds(
                parse_u64_in(value(), "--connect-timeout-ms", 1, 600'000));
        } else if (name == "log-level") {
            auto level = core::parse_log_level(value());
            if (!level) {
                fail("--log-level: expected debug, info, warn or error");
            }
            o.log_level = *level;
        } else {
            fail("unknown flag --" + name + " (see --help)");
        }
    }
    if (o.help) {
        return o;
    }
    auto apply_all = [](LinkParams& p, const auto& list, std::string_view prefix) {
        for (const auto& [n, v] : list) {
            try {
                apply_param(p, n, v);
            } catch (const std::invalid_argument& e) {
                fail("--" + std::string(prefix) + n + ": " + e.what());
            }
        }
    };
    apply_all(o.up, both, "");
    apply_all(o.down, both, "");
    apply_all(o.up, up_only, "up-");
    apply_all(o.down, down_only, "down-");
    for (const auto* p : {&o.up, &o.down}) {
        if (auto why = p->validate(); !why.empty()) {
            fail(p == &o.up ? "up: " + why : "down: " + why);
        }
    }
    if (!have_mode) {
        fail("one of --udp or --tcp is required");
    }
    if (!have_listen) {
        fail("--listen HOST:PORT is required");
    }
    if (!have_target) {
        fail("--target HOST:PORT is required");
    }
    if (o.target.port == 0) {
        fail("--target port must not be 0");
    }
    if (o.mode == Mode::kTcp) {
        for (const auto* p : {&o.up, &o.down}) {
            if (p->loss_pct > 0.0 || p->dup_pct > 0.0) {
                fail(
                    "--loss and --dup are UDP-only: TCP cannot lose or duplicate bytes (use "
                    "`cut` for an outage)");
            }
        }
    }
    return o;
}

std::string help_text() {
    return R"(hopgate-impair: a UDP/TCP relay that impairs traffic, for tests on loopback.

Usage:
  hopgate-impair --udp|--tcp --listen HOST:PORT --target HOST:PORT [options]

It listens on --listen and relays to --target. "up" is client -> target, "down" is
target -> client; every impairment applies to both directions independently (each has its
own random generator, queue and timer). On start it prints one line to stdout and flushes:
  {"listen":"127.0.0.1:PORT","control":"127.0.0.1:PORT"}      ("control":null without --control)
so port 0 can be used everywhere. On exit (SIGTERM/SIGINT) it prints {"stats":{...}} to stdout.
Logs are JSON lines on stderr.

Modes:
  --udp                 Relay datagrams. Each distinct client address gets its own upstream
                        socket (like a NAT); replies go back to that client. Mappings are
                        bounded (--max-mappings; the least recently used is evicted when full)
                        and expire after --mapping-idle-s without traffic.
  --tcp                 Relay TCP connections: accept, connect to the target, copy bytes both
                        ways. Only --delay-ms, --jitter-ms (never reorders: release times stay
                        monotonic), --rate-mbit apply. TCP cannot lose, duplicate or reorder
                        bytes, so --loss/--dup are rejected; an outage is `cut`, which stops
                        relaying (bytes stay buffered and senders feel backpressure) until
                        `restore`. Buffers are bounded (--tcp-buffer-kb per direction); a full
                        buffer stops reading from that side.

Addresses:
  --listen HOST:PORT    Where to listen (port 0 = any free port; see the start line).
  --target HOST:PORT    Where to relay to.
  --control HOST:PORT   Optional control port (TCP, line commands; see below).

Impairments (both directions; prefix with up- or down- for one direction only, e.g.
--up-loss 5 --down-delay-ms 20; per-direction flags override the shared ones):
  --loss PCT            Random loss in percent, fractional allowed (e.g. 0.5). UDP only.
  --dup PCT             Percent of delivered datagrams that arrive twice. UDP only.
  --delay-ms MS         One-way delay per direction (RTT grows by twice this).
  --jitter-ms MS        Extra delay, uniform in [0, MS] per datagram; reorders datagrams.
  --rate-mbit N         Serialize at N Mbit/s (10^6 bit/s); 0 = unlimited (default).
  --queue-kb KB         Queue in front of the rate limiter (default 256); tail drop when
                        full (UDP). Only used with --rate-mbit.
  --seed N              Seed of the random generators (default 1). The n-th datagram's fate
                        (loss, dup, jitter) depends only on the seed and n, never on timing;
                        only rate-limiter tail drops depend on timing.

Limits:
  --max-mappings N      UDP client mappings (default 1024).
  --mapping-idle-s S    UDP mapping idle expiry (default 60).
  --inflight-kb KB      UDP bytes waiting in each direction's delay queue (default 65536);
                        beyond it datagrams are dropped and counted as dropped_overflow.
  --socket-buffer-kb KB SO_RCVBUF/SO_SNDBUF asked for (default 4096; the kernel may cap it).
  --tcp-buffer-kb KB    TCP buffer per connection and direction (default 1024).
  --max-conns N         TCP connections (default 256); more are accepted and closed.
  --connect-timeout-ms MS  TCP connect timeout to the target (default 10000).
  --log-level LEVEL     debug, info (default), warn, error.

Run-time control:
  SIGUSR1               Toggle cut (UDP: drop everything, including datagrams in flight;
                        TCP: stop relaying).
  SIGUSR2               Rebind (UDP): every mapping gets a new upstream socket, so the target
                        sees a new source port (simulated NAT rebinding).
  SIGTERM, SIGINT       Print stats and exit.
  Control port: one command per line, one reply line per command, "ok ..." or "err ...":
    cut | restore       ok cut / ok restore
    rebind              ok rebind <mappings>        (err in TCP mode)
    stats               ok {"mode":"udp","cut":false,"up":{...},"down":{...},...}
    get                 ok {"up":{params},"down":{params}}
    set [up|down] NAME VALUE
                        NAME: loss, dup, delay-ms, jitter-ms, rate-mbit, queue-kb; without
                        a direction both change. ok set, or err <reason> (nothing changes).
    help                ok <command list>
    quit                ok bye, then the connection closes.
  Lines are at most 1024 bytes; a longer line gets "err line too long" and the connection
  closes. At most 16 control connections.
)";
}

}  // namespace hopgate::impair
