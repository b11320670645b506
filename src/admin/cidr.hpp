// IP addresses and CIDR allow-lists (HOP_ADMIN_ALLOW_CIDRS, HOP_ACME_EXPECT_IPS), IPv4 and IPv6.
// Plain value types over inet_pton; no Asio in this header.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hopgate::admin {

// An IPv4 or IPv6 address. IPv4-mapped IPv6 (::ffff:a.b.c.d) is stored as IPv4, so one rule
// matches a client whichever socket family accepted it.
struct IpAddr {
    bool v4 = false;
    std::array<std::uint8_t, 16> bytes{};  // IPv4 uses the first 4
    bool operator==(const IpAddr&) const = default;
    std::size_t bit_length() const { return v4 ? 32 : 128; }
};

// Parses "192.0.2.1", "2001:db8::1", "[2001:db8::1]" or "::ffff:192.0.2.1" (surrounding
// whitespace allowed). No zone ids, no ports, no shorthand like "10.1".
// `s` without leading and trailing spaces and tabs.
std::string_view trim(std::string_view s);

std::optional<IpAddr> parse_ip(std::string_view text);
std::string to_string(const IpAddr& ip);

// The key per-source limits count a visitor under: the address for IPv4 (IPv4-mapped IPv6
// included, so both socket families agree), the /64 for IPv6 (one host or home usually owns a
// whole /64, so per-address limits would be free to dodge). Binary, 5 or 9 bytes.
std::string source_key(const IpAddr& ip);
// The same from an address as text; text that does not parse as an address (e.g. with a zone
// id) is its own key.
std::string source_key(std::string_view address);

struct Cidr {
    IpAddr net;
    unsigned prefix = 0;  // 0..32 or 0..128
    bool contains(const IpAddr& ip) const;
    bool operator==(const Cidr&) const = default;
};

// "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128). Rejects prefix lengths out of
// range or with leading '+'/'-'/zeros beyond one digit, and host bits set below the prefix
// ("10.0.0.1/8" is almost always a typo for a host or a network; say which).
std::optional<Cidr> parse_cidr(std::string_view text);

class CidrList {
  public:
    CidrList() = default;
    // Comma- and/or whitespace-separated CIDRs; empty text = empty list. A configuration step:
    // throws std::invalid_argument naming the bad entry.
    static CidrList parse(std::string_view text);

    bool empty() const { return cidrs_.empty(); }
    bool contains(const IpAddr& ip) const;
    const std::vector<Cidr>& entries() const { return cidrs_; }
    void add(const Cidr& c) { cidrs_.push_back(c); }

  private:
    std::vector<Cidr> cidrs_;
};

// Comma/whitespace-separated addresses (HOP_ACME_EXPECT_IPS). Throws std::invalid_argument.
std::vector<IpAddr> parse_ip_list(std::string_view text);

}  // namespace hopgate::admin
