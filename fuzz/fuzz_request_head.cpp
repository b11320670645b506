// libFuzzer target: the visitor-side HTTP head path of the front door, end to end: Beast's
// request_parser with the front door's limits (header limit 32 KiB, no body limit), fed in two
// pieces like a socket would; then http::verdict_for_parse_error / check_request_head (the
// framing checks), route_host and server::request_head() (the head that goes into the tunnel);
// then the body (Content-Length or chunked) through a small buffer, as read_body() does.
// Links: hg_server_head.
//
// The first input byte chooses where the input is split; the rest is the visitor's bytes.
//
// Properties checked: no crash or sanitizer report; every refusal is a 400, 431 or 501 page;
// an accepted head has one unambiguous body framing (no Content-Length with Transfer-Encoding, at
// most one of each, the coding exactly "chunked"), and its tunnel head has a method of at most
// 32 bytes, a target without CR, LF or NUL, headers that pass http::check_headers (tokens, no
// CR/LF/NUL in values) and it encodes within the metadata limits; a body error is a 400.
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "http/forwarding.hpp"
#include "http/framing.hpp"
#include "proto/meta.hpp"
#include "server/request_head.hpp"

namespace {

namespace bh = boost::beast::http;
using namespace hopgate;

void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}

bool page_status(int s) { return s == 400 || s == 431 || s == 501; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    const std::size_t split = in.size() * data[0] / 256;

    bh::request_parser<bh::buffer_body> p;
    p.header_limit(32 * 1024);
    p.body_limit(boost::none);
    boost::system::error_code ec;
    // As a socket delivers it: the first piece, then everything; Beast asks for more input by
    // consuming nothing.
    std::size_t off = 0;
    std::size_t avail = split;
    while (!p.is_header_done()) {
        const std::size_t n = p.put(boost::asio::buffer(in.data() + off, avail - off), ec);
        off += n;
        if (ec == bh::error::need_more) {
            ec = {};
            if (avail == in.size()) {
                return 0;  // an incomplete head: the front door waits (then times out)
            }
            avail = in.size();
            continue;
        }
        if (ec) {
            const auto v = http::verdict_for_parse_error(ec);
            check(v.status == 0 || page_status(v.status));
            return 0;
        }
        if (n == 0 && avail == in.size()) {
            return 0;
        }
        if (n == 0) {
            avail = in.size();
        }
    }
    const auto& req = p.get();
    if (const auto v = http::check_request_head(req.base())) {
        check(page_status(v.status));
        return 0;
    }

    // Accepted: one unambiguous body framing.
    std::size_t te = 0;
    std::size_t cl = 0;
    for (const auto& f : req) {
        if (f.name() == bh::field::transfer_encoding) {
            ++te;
            check(http::iequals(std::string_view(f.value().data(), f.value().size()), "chunked"));
        }
        cl += f.name() == bh::field::content_length ? 1 : 0;
    }
    check(te <= 1 && cl <= 1 && !(te == 1 && cl == 1));
    check(req.method_string().size() <= http::kMaxMethodLength);

    // The tunnel head, as the front door builds it: only for a request whose Host checks pass
    // (the others get a 400 page).
    const auto route = server::route_request(req);
    if (!route) {
        return 0;
    }
    const proto::StreamMeta meta = server::request_head(
        req, *route, server::RequestOrigin{"203.0.113.7", false}, "0123456789abcdef");
    check(meta.method.size() <= proto::kMaxMethodLen);
    check(meta.target.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
    check(http::check_headers(meta.headers, {.max_count = proto::kMaxMetaHeaders,
                                             .max_total_bytes = proto::kDefaultMaxMetaSize})
              .ok());
    std::vector<std::uint8_t> enc;
    check(proto::encode_meta(meta, enc));

    // The body, as read_body() reads it.
    char buf[512];
    while (!p.is_done()) {
        p.get().body().data = buf;
        p.get().body().size = sizeof buf;
        const std::size_t n = p.put(boost::asio::buffer(in.data() + off, in.size() - off), ec);
        off += n;
        if (ec == bh::error::need_buffer) {
            ec = {};
            continue;
        }
        if (ec == bh::error::need_more) {
            return 0;
        }
        if (ec) {
            check(http::verdict_for_parse_error(ec).status == 400);
            return 0;
        }
        if (n == 0) {
            return 0;  // the rest has not arrived
        }
    }
    return 0;
}
