#include "admin/cidr.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>

namespace hopgate::admin {
namespace {

// Splits on commas and whitespace, skipping empty pieces.
std::vector<std::string_view> split_list(std::string_view text) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && (text[i] == ',' || text[i] == ' ' || text[i] == '\t' ||
                                   text[i] == '\n' || text[i] == '\r')) {
            ++i;
        }
        const std::size_t start = i;
        while (i < text.size() && text[i] != ',' && text[i] != ' ' && text[i] != '\t' &&
               text[i] != '\n' && text[i] != '\r') {
            ++i;
        }
        if (i > start) {
            out.push_back(text.substr(start, i - start));
        }
    }
    return out;
}

constexpr std::uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

std::optional<IpAddr> parse_ip(std::string_view text) {
    text = trim(text);
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
        text = text.substr(1, text.size() - 2);
    }
    if (text.empty() || text.size() > 45) {
        return std::nullopt;
    }
    char buf[46] = {};
    std::memcpy(buf, text.data(), text.size());
    if (std::strlen(buf) != text.size()) {
        return std::nullopt;  // embedded NUL
    }
    IpAddr ip;
    if (inet_pton(AF_INET, buf, ip.bytes.data()) == 1) {
        ip.v4 = true;
        return ip;
    }
    if (inet_pton(AF_INET6, buf, ip.bytes.data()) == 1) {
        if (std::memcmp(ip.bytes.data(), kMappedPrefix, sizeof kMappedPrefix) == 0) {
            IpAddr v4;
            v4.v4 = true;
            std::memcpy(v4.bytes.data(), ip.bytes.data() + 12, 4);
            return v4;
        }
        return ip;
    }
    return std::nullopt;
}

std::string to_string(const IpAddr& ip) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(ip.v4 ? AF_INET : AF_INET6, ip.bytes.data(), buf, sizeof buf);
    return buf;
}

std::string source_key(const IpAddr& ip) {
    std::string k(1, ip.v4 ? '4' : '6');
    k.append(reinterpret_cast<const char*>(ip.bytes.data()), ip.v4 ? 4 : 8);  // IPv6: the /64
    return k;
}

std::string source_key(std::string_view address) {
    if (auto ip = parse_ip(address)) {
        return source_key(*ip);
    }
    return "?" + std::string(address);
}

bool Cidr::contains(const IpAddr& ip) const {
    if (ip.v4 != net.v4) {
        return false;
    }
    unsigned bits = prefix;
    for (std::size_t i = 0; bits > 0; ++i) {
        const unsigned take = bits >= 8 ? 8 : bits;
        const auto mask = static_cast<std::uint8_t>(0xff00u >> take);
        if ((ip.bytes[i] & mask) != (net.bytes[i] & mask)) {
            return false;
        }
        bits -= take;
    }
    return true;
}

std::optional<Cidr> parse_cidr(std::string_view text) {
    text = trim(text);
    if (text.find_first_of(" \t") != std::string_view::npos) {
        return std::nullopt;
    }
    const auto slash = text.find('/');
    auto ip = parse_ip(text.substr(0, slash));
    if (!ip) {
        return std::nullopt;
    }
    Cidr c{*ip, static_cast<unsigned>(ip->bit_length())};
    if (slash != std::string_view::npos) {
        const auto len = text.substr(slash + 1);
        if (len.empty() || len.size() > 3 || (len.size() > 1 && len[0] == '0')) {
            return std::nullopt;
        }
        unsigned v = 0;
        for (char ch : len) {
            if (ch < '0' || ch > '9') {
                return std::nullopt;
            }
            v = v * 10 + static_cast<unsigned>(ch - '0');
        }
        if (v > ip->bit_length()) {
            return std::nullopt;
        }
        c.prefix = v;
    }
    // Host bits below the prefix must be zero.
    for (unsigned bit = c.prefix; bit < ip->bit_length(); ++bit) {
        if ((ip->bytes[bit / 8] >> (7 - bit % 8)) & 1u) {
            return std::nullopt;
        }
    }
    return c;
}

CidrList CidrList::parse(std::string_view text) {
    CidrList list;
    for (auto piece : split_list(text)) {
        auto c = parse_cidr(piece);
        if (!c) {
            throw std::invalid_argument("invalid CIDR '" + std::string(piece) +
                                        "' (expected e.g. 10.0.0.0/8 or 2001:db8::/32, host bits "
                                        "zero)");
        }
        list.cidrs_.push_back(*c);
    }
    return list;
}

bool CidrList::contains(const IpAddr& ip) const {
    for (const auto& c : cidrs_) {
        if (c.contains(ip)) {
            return true;
        }
    }
    return false;
}

std::vector<IpAddr> parse_ip_list(std::string_view text) {
    std::vector<IpAddr> out;
    for (auto piece : split_list(text)) {
        auto ip = parse_ip(piece);
        if (!ip) {
            throw std::invalid_argument("invalid IP address '" + std::string(piece) + "'");
        }
        out.push_back(*ip);
    }
    return out;
}

}  // namespace hopgate::admin
