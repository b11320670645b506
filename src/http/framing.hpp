// Message framing and head checks at the public edge, shared by the front door, its unit tests
// and the fuzz targets (fuzz_request_head, fuzz_response_head), so all three run the same code.
//
// Visitor -> server (request heads): Beast's request_parser does the syntax (request line,
// field names and values, CRLF line endings, Content-Length lists, chunk sizes and
// extensions); check_request_head() adds what Beast lets through but a reverse proxy must not:
// ambiguous body framing (request smuggling) and heads the tunnel cannot carry. Everything is
// answered with an error page before anything goes into the tunnel:
//   400  malformed request line or field, bad Content-Length, several Content-Length values,
//        any Transfer-Encoding other than a single "chunked", Content-Length together with
//        Transfer-Encoding, bad chunk framing (RFC 9112 §6.1, §6.3; then the connection closes);
//   431  header section over the byte limit, more than kMaxRequestHeaders fields, or a field name
//        over kMaxHeaderNameLength (RFC 6585 §5);
//   501  a method longer than kMaxMethodLength: longer than any method we could forward
//        (RFC 9112 §3). Unknown but well-formed methods are forwarded (the local service decides).
//
// Tunnel -> server (response heads, from a possibly hostile hopgate-client): check_response_head()
// enforces the wire contract of docs/protocol.md §4 before anything reaches the visitor.
//
// Pure functions; no I/O.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proto/meta.hpp"

namespace hopgate::http {

// Request header fields a visitor may send (Apache's and Envoy's default); the tunnel carries up
// to proto::kMaxMetaHeaders, which leaves room for the forwarding headers the proxy adds.
inline constexpr std::size_t kMaxRequestHeaders = 100;
// The longest method and field name the tunnel metadata carries.
inline constexpr std::size_t kMaxMethodLength = proto::kMaxMethodLen;
inline constexpr std::size_t kMaxHeaderNameLength = proto::kMaxHeaderNameLen;

// An answer to a visitor request: 0 = go on, else the status of the error page to send.
// `reason` is a short stable snake_case word for logs and metrics ("" when status is 0).
struct Verdict {
    int status = 0;
    std::string_view reason;
    explicit operator bool() const { return status != 0; }
};

// The error page for an error of Beast's request parser (a head or a chunked body):
// header_limit -> 431, every other syntax or framing error of the request -> 400. Errors that
// say nothing about the request's syntax (end of stream, partial message, I/O errors,
// timeouts) give {0}: the connection just ends.
Verdict verdict_for_parse_error(const boost::system::error_code& ec);

// Checks a head Beast accepted (see the file comment). Run before routing and before anything
// is sent into the tunnel.
Verdict check_request_head(const boost::beast::http::request_header<>& req);

// What is wrong with a response head from the tunnel; kOk when it may be forwarded.
enum class ResponseHeadError {
    kOk = 0,
    kNotResponse,      // the metadata is not a response head
    kBadStatus,        // status outside 200..599, or 1xx other than 101 to an upgrade request
    kTooManyHeaders,   // more than proto::kMaxMetaHeaders fields
    kTooLarge,         // names + values over kMaxResponseHeaderBytes
    kBadHeaderName,    // empty, over kMaxHeaderNameLength, or not an RFC 9110 token
    kBadHeaderValue,   // CR, LF, NUL or another control character (HTAB allowed) in a value
    kBadContentLength  // not one decimal number, or several different ones
};

inline constexpr std::size_t kMaxResponseHeaderBytes = proto::kDefaultMaxMetaSize;

// Stable snake_case name of `e` (metric label "reason").
std::string_view response_head_error_name(ResponseHeadError e);

struct ResponseHeadInfo {
    // The Content-Length of the response, if it has one (identical duplicates count once).
    std::optional<std::uint64_t> content_length;
};

// Checks a response head from the tunnel (`upgrade_request`: the request asked for an upgrade,
// so 101 is allowed). Field values may hold obs-text (bytes 0x80-0xFF, RFC 9110 §5.5) and HTAB,
// no other control character. On success fills `info`.
ResponseHeadError check_response_head(const proto::StreamMeta& m, bool upgrade_request,
                                      ResponseHeadInfo& info);

// The Location of the plain-HTTP listener's redirect: "https://" + host (bracketed when it is an
// IPv6 address) + ":port" unless 443 + the path and query of `target` (origin-form or the part
// after the authority of an absolute-form target; "/" when it has none, e.g. "*" or
// "http://host"). A fragment is dropped. `host` is a route key (route_host_value()).
std::string https_redirect_location(std::string_view host, std::uint16_t https_port,
                                    std::string_view target);

}  // namespace hopgate::http
