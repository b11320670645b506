// Command line of hopgate-impair. `parse_options` throws std::invalid_argument with one printable
// line on bad input (start-up errors are exceptions, caught once in main).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/log.hpp"
#include "core/time.hpp"
#include "impair/link_model.hpp"

namespace hopgate::impair {

enum class Mode : std::uint8_t { kUdp, kTcp };

// A `host:port` as given; resolved by the relay at start-up.
struct HostPort {
    std::string host;  // IPv6 literals without brackets
    std::uint16_t port = 0;
};

struct Options {
    Mode mode = Mode::kUdp;
    HostPort listen;
    HostPort target;
    std::optional<HostPort> control;
    LinkParams up;    // client -> target
    LinkParams down;  // target -> client
    std::uint64_t seed = 1;

    // UDP
    std::size_t max_mappings = 1024;
    core::Duration mapping_idle = std::chrono::seconds(60);
    std::size_t inflight_bytes = 64u << 20;  // per direction, datagrams waiting in the delay queue
    std::size_t socket_buffer_bytes = 4u << 20;  // SO_RCVBUF/SO_SNDBUF requested (kernel may cap)

    // TCP
    std::size_t tcp_buffer_bytes = 1u << 20;  // per connection and direction
    std::size_t max_connections = 256;
    core::Duration connect_timeout = std::chrono::seconds(10);

    core::LogLevel log_level = core::LogLevel::kInfo;
    bool help = false;
};

// `args` excludes argv[0]. Flags take `--name value` or `--name=value`.
Options parse_options(std::span<const std::string_view> args);

// Parses `host:port` / `[v6]:port`; port 0..65535. Throws std::invalid_argument.
HostPort parse_host_port(std::string_view text, std::string_view what);

// The --help text.
std::string help_text();

// Applies a value of the impairment named `name` ("loss", "dup", "delay-ms", "jitter-ms",
// "rate-mbit", "queue-kb") to `p`. Throws std::invalid_argument on a bad name or number (the
// caller validates the result with LinkParams::validate()). Shared by flags and the control port.
void apply_param(LinkParams& p, std::string_view name, std::string_view value);

// `{"loss":..,"dup":..,"delay_ms":..,"jitter_ms":..,"rate_mbit":..,"queue_kb":..}`
std::string params_json(const LinkParams& p);

}  // namespace hopgate::impair
