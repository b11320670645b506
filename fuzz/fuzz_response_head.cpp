// libFuzzer target: a response head from the tunnel on its way to the visitor, as the front door
// handles it: proto::decode_meta, http::check_response_head (the gateway's rules for heads from
// a possibly hostile client), server::fill_response_headers, and Beast's response serializer.
// Links: hg_server_head.
//
// The stream kind of the decoded head stands for the request: kUpgrade = an upgrade request.
//
// Properties checked: no crash or sanitizer report; an accepted head serialises to a status line
// "HTTP/1.1 ddd ..." and one "name: value" line per field, every CR is followed by LF and every LF
// preceded by CR (no response splitting or header injection), names are RFC 9110 tokens, and the
// head ends with the empty line; a status outside 101/200..599 is never accepted.
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

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

bool is_tchar(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    proto::StreamMeta m;
    std::size_t consumed = 0;
    if (proto::decode_meta({data, size}, proto::kDefaultMaxMetaSize, m, consumed) !=
        proto::MetaParse::kOk) {
        return 0;
    }
    const bool upgrade = m.kind == proto::StreamKind::kUpgrade;
    http::ResponseHeadInfo info;
    if (http::check_response_head(m, upgrade, info) != http::ResponseHeadError::kOk) {
        return 0;
    }
    check(m.status == 101 ? upgrade : (m.status >= 200 && m.status <= 599));

    bh::response<bh::buffer_body> res;
    res.result(m.status);
    res.version(11);
    server::fill_response_headers(res, std::move(m.headers), m.status == 101, "max-age=60",
                                  "0123456789abcdef");
    if (!res.has_content_length() && m.status != 101) {
        res.chunked(true);
    }
    res.body().data = nullptr;
    res.body().size = 0;
    res.body().more = true;
    bh::response_serializer<bh::buffer_body> sr(res);
    sr.split(true);
    std::string out;
    boost::system::error_code ec;
    while (!sr.is_header_done()) {
        sr.next(ec, [&](boost::system::error_code&, const auto& buffers) {
            out += boost::beast::buffers_to_string(buffers);
            sr.consume(boost::asio::buffer_size(buffers));
        });
        check(!ec);
    }

    // Framing of the serialised head.
    check(out.size() >= 4 && out.ends_with("\r\n\r\n"));
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (out[i] == '\r') {
            check(i + 1 < out.size() && out[i + 1] == '\n');
        } else if (out[i] == '\n') {
            check(i > 0 && out[i - 1] == '\r');
        }
    }
    std::string_view rest(out);
    const std::size_t eol = rest.find("\r\n");
    const std::string_view status_line = rest.substr(0, eol);
    check(status_line.starts_with("HTTP/1.1 ") && status_line.size() >= 12);
    check(status_line.substr(9, 3) == std::to_string(m.status));
    rest.remove_prefix(eol + 2);
    std::size_t lines = 0;
    while (!rest.starts_with("\r\n")) {
        const std::size_t e = rest.find("\r\n");
        const std::string_view line = rest.substr(0, e);
        const std::size_t colon = line.find(": ");
        check(colon != std::string_view::npos && colon > 0);
        for (char c : line.substr(0, colon)) {
            check(is_tchar(c));
        }
        rest.remove_prefix(e + 2);
        ++lines;
    }
    std::size_t fields = 0;
    for (auto it = res.begin(); it != res.end(); ++it) {
        ++fields;
    }
    check(lines == fields);
    return 0;
}
