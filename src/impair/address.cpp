#include "impair/address.hpp"

#include <boost/asio/ip/udp.hpp>
#include <stdexcept>

namespace hopgate::impair {

namespace asio = boost::asio;

asio::ip::address resolve_host(asio::io_context& io, const std::string& host) {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(host, ec);
    if (!ec) {
        return addr;
    }
    asio::ip::udp::resolver resolver(io);
    auto results = resolver.resolve(host, "", ec);
    if (ec || results.empty()) {
        throw std::runtime_error("cannot resolve '" + host +
                                 "': " + (ec ? ec.message() : std::string("no addresses")));
    }
    for (const auto& r : results) {
        if (r.endpoint().address().is_v4()) {
            return r.endpoint().address();
        }
    }
    return results.begin()->endpoint().address();
}

std::string format_endpoint(const asio::ip::address& addr, unsigned short port) {
    if (addr.is_v6()) {
        return "[" + addr.to_string() + "]:" + std::to_string(port);
    }
    return addr.to_string() + ":" + std::to_string(port);
}

}  // namespace hopgate::impair
