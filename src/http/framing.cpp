#include "http/framing.hpp"

#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>

#include "http/forwarding.hpp"

namespace hopgate::http {
namespace {

namespace bh = boost::beast::http;

// One decimal number of at most 19 digits (fits in uint64), nothing else.
std::optional<std::uint64_t> parse_length(std::string_view s) {
    s = trim_ows(s);
    if (s.empty() || s.size() > 19) {
        return std::nullopt;
    }
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return v;
}

}  // namespace

Verdict verdict_for_parse_error(const boost::system::error_code& ec) {
    if (!ec || ec.category() != bh::make_error_code(bh::error::bad_target).category()) {
        return {};  // I/O error, timeout, TLS error: nothing to answer
    }
    switch (static_cast<bh::error>(ec.value())) {
        case bh::error::header_limit:
            return {431, "header_section_too_large"};
        case bh::error::end_of_stream:    // the visitor closed between requests
        case bh::error::partial_message:  // ... or in the middle of one
        case bh::error::need_more:
        case bh::error::need_buffer:
        case bh::error::end_of_chunk:
        case bh::error::buffer_overflow:
        case bh::error::body_limit:  // the front door handles its own body limits
        case bh::error::bad_alloc:
        case bh::error::stale_parser:
        case bh::error::short_read:
            return {};
        case bh::error::bad_chunk:
        case bh::error::bad_chunk_extension:
            return {400, "bad_chunk"};
        case bh::error::bad_content_length:
        case bh::error::multiple_content_length:
            return {400, "bad_content_length"};
        case bh::error::bad_transfer_encoding:
            return {400, "bad_transfer_encoding"};
        default:
            return {400, "malformed_request"};
    }
}

Verdict check_request_head(const bh::request_header<>& req) {
    if (req.method_string().size() > kMaxMethodLength) {
        return {501, "method_too_long"};
    }
    std::size_t count = 0;
    std::size_t te_fields = 0;
    std::size_t cl_fields = 0;
    std::string_view te;
    std::string_view cl;
    for (const auto& f : req) {
        if (++count > kMaxRequestHeaders) {
            return {431, "too_many_headers"};
        }
        if (f.name_string().size() > kMaxHeaderNameLength) {
            return {431, "header_name_too_long"};
        }
        if (f.name() == bh::field::transfer_encoding) {
            ++te_fields;
            te = std::string_view(f.value().data(), f.value().size());
        } else if (f.name() == bh::field::content_length) {
            ++cl_fields;
            cl = std::string_view(f.value().data(), f.value().size());
        }
    }
    // Request smuggling (RFC 9112 §6.1, §6.3): the only body framings accepted are one
    // Content-Length with one number, or exactly "Transfer-Encoding: chunked" on HTTP/1.1. Beast
    // reads a request whose last coding is not chunked ("chunked, identity", "xchunked") as
    // having no body, so the body would be read as the next request; and a proxy that forwards a
    // coding list ("gzip, chunked") hands its interpretation to the next hop.
    if (te_fields > 0) {
        if (cl_fields > 0) {
            return {400, "content_length_and_transfer_encoding"};
        }
        if (te_fields > 1 || req.version() < 11 || !iequals(trim_ows(te), "chunked")) {
            return {400, "bad_transfer_encoding"};
        }
    }
    if (cl_fields > 1 || (cl_fields == 1 && !parse_length(cl))) {
        return {400, "bad_content_length"};  // several values, even equal ones ("5, 5")
    }
    return {};
}

std::string_view response_head_error_name(ResponseHeadError e) {
    switch (e) {
        case ResponseHeadError::kOk:
            return "ok";
        case ResponseHeadError::kNotResponse:
            return "not_response";
        case ResponseHeadError::kBadStatus:
            return "bad_status";
        case ResponseHeadError::kTooManyHeaders:
            return "too_many_headers";
        case ResponseHeadError::kTooLarge:
            return "too_large";
        case ResponseHeadError::kBadHeaderName:
            return "bad_header_name";
        case ResponseHeadError::kBadHeaderValue:
            return "bad_header_value";
        case ResponseHeadError::kBadContentLength:
            return "bad_content_length";
    }
    return "unknown";
}

ResponseHeadError check_response_head(const proto::StreamMeta& m, bool upgrade_request,
                                      ResponseHeadInfo& info) {
    info = {};
    if (m.head != proto::HeadType::kResponse) {
        return ResponseHeadError::kNotResponse;
    }
    // The client never relays interim responses (100, 103): a 1xx head would be followed by no
    // final one. 101 only answers an upgrade request.
    if (m.status == 101 ? !upgrade_request : (m.status < 200 || m.status > 599)) {
        return ResponseHeadError::kBadStatus;
    }
    if (m.headers.size() > proto::kMaxMetaHeaders) {
        return ResponseHeadError::kTooManyHeaders;
    }
    std::size_t total = 0;
    bool seen_length = false;
    for (const auto& h : m.headers) {
        total += h.name.size() + h.value.size();
        if (total > kMaxResponseHeaderBytes) {
            return ResponseHeadError::kTooLarge;
        }
        if (h.name.empty() || h.name.size() > kMaxHeaderNameLength) {
            return ResponseHeadError::kBadHeaderName;
        }
        for (char c : h.name) {
            if (!is_tchar(c)) {
                return ResponseHeadError::kBadHeaderName;
            }
        }
        for (char c : h.value) {
            const auto u = static_cast<unsigned char>(c);
            if ((u < 0x20 && c != '\t') || u == 0x7f) {
                return ResponseHeadError::kBadHeaderValue;
            }
        }
        if (iequals(h.name, "content-length")) {
            // Exactly one: the visitor (and any cache in front of it) must read the same body
            // length as we do.
            auto v = parse_length(h.value);
            if (!v || seen_length) {
                return ResponseHeadError::kBadContentLength;
            }
            seen_length = true;
            info.content_length = v;
        }
    }
    return ResponseHeadError::kOk;
}

std::string https_redirect_location(std::string_view host, std::uint16_t https_port,
                                    std::string_view target) {
    std::string_view path = target;
    for (std::string_view scheme : {"http://", "https://"}) {
        if (target.size() >= scheme.size() && iequals(target.substr(0, scheme.size()), scheme)) {
            const std::string_view rest = target.substr(scheme.size());
            const std::size_t p = rest.find_first_of("/?#");
            path = p == std::string_view::npos ? std::string_view() : rest.substr(p);
        }
    }
    if (const std::size_t h = path.find('#'); h != std::string_view::npos) {
        path = path.substr(0, h);
    }
    std::string loc = "https://";
    if (host.find(':') != std::string_view::npos) {
        loc += '[';
        loc += host;
        loc += ']';
    } else {
        loc += host;
    }
    if (https_port != 443) {
        loc += ':';
        loc += std::to_string(https_port);
    }
    if (path.empty() || path.front() != '/') {
        loc += '/';
        if (!path.empty() && path.front() == '?') {
            loc += path;
        }
    } else {
        loc += path;
    }
    return loc;
}

}  // namespace hopgate::http
