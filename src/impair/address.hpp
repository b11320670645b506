// Address helpers for the relay's start-up: resolving `HostPort`s and printing endpoints.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <string>

#include "impair/options.hpp"

namespace hopgate::impair {

// A literal address as is; otherwise the name is resolved (IPv4 preferred). Start-up only:
// resolution blocks. Throws std::runtime_error with a printable line if nothing is found.
boost::asio::ip::address resolve_host(boost::asio::io_context& io, const std::string& host);

// "127.0.0.1:5000" or "[::1]:5000".
std::string format_endpoint(const boost::asio::ip::address& addr, unsigned short port);

template <class Endpoint>
std::string format_endpoint(const Endpoint& ep) {
    return format_endpoint(ep.address(), ep.port());
}

}  // namespace hopgate::impair
