// Framing and head checks at the edge (http/framing.hpp): the answers the front door gives to
// hostile request heads and the response-head rules it enforces on the tunnel.
#include "http/framing.hpp"

#include <gtest/gtest.h>

#include <boost/asio/error.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <string>

namespace hopgate::http {
namespace {

namespace bh = boost::beast::http;

// What the front door answers to `raw`, parsed the way it parses (header limit `limit`, no body
// limit, the body read through a small buffer): the status of the error page, 0 when accepted.
int answer(const std::string& raw, std::uint32_t limit = 32 * 1024) {
    bh::request_parser<bh::buffer_body> p;
    p.header_limit(limit);
    p.body_limit(boost::none);
    boost::system::error_code ec;
    std::size_t off = 0;
    while (!p.is_header_done()) {
        off += p.put(boost::asio::buffer(raw.data() + off, raw.size() - off), ec);
        if (ec) {
            const auto v = verdict_for_parse_error(ec);
            return v.status;
        }
    }
    if (const auto v = check_request_head(p.get().base())) {
        return v.status;
    }
    char body[16];
    while (!p.is_done()) {
        p.get().body().data = body;
        p.get().body().size = sizeof body;
        const std::size_t n = p.put(boost::asio::buffer(raw.data() + off, raw.size() - off), ec);
        off += n;
        if (ec == bh::error::need_buffer) {
            ec = {};
            continue;
        }
        if (ec) {
            return verdict_for_parse_error(ec).status;
        }
        if (n == 0) {
            return -1;  // needs more input than the test gave
        }
    }
    return 0;
}

std::string get_with(const std::string& fields) {
    return "GET / HTTP/1.1\r\nHost: a.example\r\n" + fields + "\r\n";
}

std::string post_with(const std::string& fields, const std::string& body) {
    return "POST / HTTP/1.1\r\nHost: a.example\r\n" + fields + "\r\n" + body;
}

// Well-formed requests pass: plain, Content-Length, chunked (any case), chunk extensions.
TEST(Framing, AcceptsWellFormedRequests) {
    EXPECT_EQ(answer(get_with("")), 0);
    EXPECT_EQ(answer(post_with("Content-Length: 5\r\n", "hello")), 0);
    EXPECT_EQ(answer(post_with("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n")), 0);
    EXPECT_EQ(answer(post_with("Transfer-Encoding: Chunked\r\n", "5\r\nhello\r\n0\r\n\r\n")), 0);
    EXPECT_EQ(answer(post_with("Transfer-Encoding: chunked\r\n", "5;a=b\r\nhello\r\n0\r\n\r\n")),
              0);
    // Unknown but well-formed methods are forwarded.
    EXPECT_EQ(answer("PROPPATCH2 / HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
}

// Transfer-Encoding other than one "chunked" is refused: the body length would be ambiguous.
TEST(Framing, TransferEncodingOtherThanChunkedIs400) {
    for (const char* te : {"xchunked", "chunked, identity", "gzip, chunked", "identity", "gzip",
                           "chunked;q=1", ""}) {
        SCOPED_TRACE(te);
        EXPECT_EQ(answer(post_with(std::string("Transfer-Encoding: ") + te + "\r\n", "0\r\n\r\n")),
                  400);
    }
    // Two fields, whatever they say.
    EXPECT_EQ(answer(post_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                               "0\r\n\r\n")),
              400);
    EXPECT_EQ(
        answer(post_with("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n")),
        400);
    // HTTP/1.0 has no chunked coding (RFC 9112 §6.1).
    EXPECT_EQ(answer("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
              400);
}

// Content-Length with Transfer-Encoding, in either order and with any coding, is refused.
TEST(Framing, ContentLengthWithTransferEncodingIs400) {
    EXPECT_EQ(answer(post_with("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n")),
              400);
    EXPECT_EQ(answer(post_with("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n")),
              400);
    // Beast accepts these two (no "chunked" last): the front door's own check refuses them.
    EXPECT_EQ(answer(post_with("Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n", "hello")),
              400);
    EXPECT_EQ(
        answer(post_with("Content-Length: 5\r\nTransfer-Encoding: chunked, identity\r\n", "hello")),
        400);
}

// Several Content-Length values are refused, even equal ones; so is a malformed one.
TEST(Framing, ContentLengthMustBeOneNumber) {
    EXPECT_EQ(answer(post_with("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!")), 400);
    EXPECT_EQ(answer(post_with("Content-Length: 5\r\nContent-Length: 5\r\n", "hello")), 400);
    EXPECT_EQ(answer(post_with("Content-Length: 5, 5\r\n", "hello")), 400);
    EXPECT_EQ(answer(post_with("Content-Length: -5\r\n", "hello")), 400);
    EXPECT_EQ(answer(post_with("Content-Length: 0x5\r\n", "hello")), 400);
    EXPECT_EQ(answer(post_with("Content-Length: 99999999999999999999999\r\n", "hello")), 400);
}

// Bad chunk framing is a 400 (the front door then closes): sizes that are not hex, that
// overflow, a missing CRLF after the data, a malformed extension.
TEST(Framing, BadChunksAre400) {
    const std::string te = "Transfer-Encoding: chunked\r\n";
    EXPECT_EQ(answer(post_with(te, "zz\r\nhello\r\n0\r\n\r\n")), 400);
    EXPECT_EQ(answer(post_with(te, "fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n")), 400);
    EXPECT_EQ(answer(post_with(te, "5\r\nhelloXX0\r\n\r\n")), 400);
    EXPECT_EQ(answer(post_with(te, "5;=\r\nhello\r\n0\r\n\r\n")), 400);
    EXPECT_EQ(answer(post_with(te, "-1\r\nhello\r\n0\r\n\r\n")), 400);
}

// Line endings and folds: a bare LF ends nothing, an obs-fold never reaches the tunnel as CR/LF.
TEST(Framing, BareLfAndObsFold) {
    EXPECT_EQ(answer("GET / HTTP/1.1\nHost: a\n\n"), 400);
    EXPECT_EQ(answer("GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n"), 400);
    EXPECT_EQ(answer("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\r\n\r\n"), 400);
    // obs-fold: Beast either refuses it or folds it into spaces; never CR/LF in a value.
    bh::request_parser<bh::empty_body> p;
    boost::system::error_code ec;
    const std::string folded = "GET / HTTP/1.1\r\nHost: a\r\nX: one\r\n two\r\n\r\n";
    p.put(boost::asio::buffer(folded), ec);
    if (!ec) {
        const auto v = p.get()["X"];
        EXPECT_EQ(std::string_view(v.data(), v.size()).find_first_of("\r\n"),
                  std::string_view::npos);
    } else {
        EXPECT_EQ(verdict_for_parse_error(ec).status, 400);
    }
}

// Heads the tunnel cannot carry are the visitor's error: 431 for size and count, 501 for a
// method longer than any we forward (the old front door answered 502 to all of them).
TEST(Framing, OversizedHeadsAre431Or501) {
    EXPECT_EQ(answer(std::string(32, 'M') + " / HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    EXPECT_EQ(answer(std::string(33, 'M') + " / HTTP/1.1\r\nHost: a\r\n\r\n"), 501);
    std::string many;
    for (int i = 0; i < 99; ++i) {
        many += "X-" + std::to_string(i) + ": v\r\n";
    }
    EXPECT_EQ(answer(get_with(many)), 0);  // 100 fields with Host
    EXPECT_EQ(answer(get_with(many + "X-last: v\r\n")), 431);
    EXPECT_EQ(answer(get_with(std::string(1024, 'n') + ": v\r\n")), 0);
    EXPECT_EQ(answer(get_with(std::string(1025, 'n') + ": v\r\n")), 431);
    // The byte limit of the whole head.
    EXPECT_EQ(answer(get_with("X: " + std::string(2000, 'v') + "\r\n"), 1024), 431);
}

// Malformed request lines and fields are 400s.
TEST(Framing, MalformedHeadsAre400) {
    EXPECT_EQ(answer("G@T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    EXPECT_EQ(answer("GET / HTTP/9.9x\r\nHost: a\r\n\r\n"), 400);
    EXPECT_EQ(answer("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    EXPECT_EQ(answer(get_with("Bad Name: v\r\n")), 400);
    EXPECT_EQ(answer(get_with(std::string("X: a\0b\r\n", 8))), 400);
}

// Errors that are not about the request's syntax get no page: the connection just ends.
TEST(Framing, NonSyntaxErrorsGetNoPage) {
    EXPECT_FALSE(verdict_for_parse_error({}));
    EXPECT_FALSE(verdict_for_parse_error(bh::error::end_of_stream));
    EXPECT_FALSE(verdict_for_parse_error(bh::error::partial_message));
    EXPECT_FALSE(verdict_for_parse_error(boost::asio::error::operation_aborted));
    EXPECT_EQ(verdict_for_parse_error(bh::error::header_limit).status, 431);
}

proto::StreamMeta response(std::uint16_t status, std::vector<proto::Header> headers = {}) {
    proto::StreamMeta m;
    m.head = proto::HeadType::kResponse;
    m.status = status;
    m.headers = std::move(headers);
    return m;
}

ResponseHeadError check(const proto::StreamMeta& m, bool upgrade = false) {
    ResponseHeadInfo info;
    return check_response_head(m, upgrade, info);
}

// A normal response head passes, with obs-text and tabs in values, and reports its length.
TEST(Framing, ResponseHeadAccepted) {
    ResponseHeadInfo info;
    EXPECT_EQ(check_response_head(response(200, {{"Content-Type", "text/html"},
                                                 {"Content-Length", "10"},
                                                 {"X-Latin1", "caf\xe9\tok"},
                                                 {"Set-Cookie", "a=1"},
                                                 {"Set-Cookie", "b=2"},
                                                 {"X-Empty", ""}}),
                                  false, info),
              ResponseHeadError::kOk);
    EXPECT_EQ(info.content_length, 10u);
    EXPECT_EQ(check_response_head(response(204), false, info), ResponseHeadError::kOk);
    EXPECT_FALSE(info.content_length);
}

// Statuses: 200..599, and 101 only to an upgrade request; no interim (1xx) or odd codes.
TEST(Framing, ResponseStatusRange) {
    for (const std::uint16_t s :
         {std::uint16_t{200}, std::uint16_t{299}, std::uint16_t{404}, std::uint16_t{599}}) {
        EXPECT_EQ(check(response(s)), ResponseHeadError::kOk) << s;
    }
    for (const int code : {0, 1, 99, 100, 102, 103, 199, 600, 700, 999}) {
        const auto s = static_cast<std::uint16_t>(code);
        EXPECT_EQ(check(response(s)), ResponseHeadError::kBadStatus) << s;
        EXPECT_EQ(check(response(s), true), ResponseHeadError::kBadStatus) << s;
    }
    EXPECT_EQ(check(response(101)), ResponseHeadError::kBadStatus);
    EXPECT_EQ(check(response(101), true), ResponseHeadError::kOk);
    proto::StreamMeta req;
    req.head = proto::HeadType::kRequest;
    EXPECT_EQ(check(req), ResponseHeadError::kNotResponse);
}

// Names must be tokens (no CR/LF, ':', space, empty, over 1 KiB); values no CR/LF/NUL/CTL.
TEST(Framing, ResponseHeaderInjectionRefused) {
    for (const std::string& name :
         {std::string(""), std::string("X Y"), std::string("X:Y"), std::string("X\r\nY"),
          std::string("X\nY"), std::string("X\0", 2), std::string("\xe9"), std::string("X(1)")}) {
        EXPECT_EQ(check(response(200, {{name, "v"}})), ResponseHeadError::kBadHeaderName) << name;
    }
    EXPECT_EQ(check(response(200, {{std::string(1025, 'n'), "v"}})),
              ResponseHeadError::kBadHeaderName);
    EXPECT_EQ(check(response(200, {{std::string(1024, 'n'), "v"}})), ResponseHeadError::kOk);
    for (const std::string& value :
         {std::string("a\r\nSet-Cookie: x=1"), std::string("a\nb"), std::string("a\rb"),
          std::string("a\0b", 3), std::string("a\x7f"), std::string("\x01")}) {
        EXPECT_EQ(check(response(200, {{"X", value}})), ResponseHeadError::kBadHeaderValue);
    }
}

// Content-Length: exactly one decimal number.
TEST(Framing, ResponseContentLength) {
    for (const char* v : {"abc", "5, 5", "-1", "", "0x10", "99999999999999999999"}) {
        EXPECT_EQ(check(response(200, {{"Content-Length", v}})),
                  ResponseHeadError::kBadContentLength)
            << v;
    }
    EXPECT_EQ(check(response(200, {{"Content-Length", "5"}, {"content-length", "5"}})),
              ResponseHeadError::kBadContentLength);
}

// Limits: header count and total size.
TEST(Framing, ResponseHeadLimits) {
    std::vector<proto::Header> many(proto::kMaxMetaHeaders + 1, {"X", "v"});
    EXPECT_EQ(check(response(200, many)), ResponseHeadError::kTooManyHeaders);
    many.pop_back();
    EXPECT_EQ(check(response(200, many)), ResponseHeadError::kOk);
    std::vector<proto::Header> big(2, {"X", std::string(kMaxResponseHeaderBytes / 2, 'v')});
    EXPECT_EQ(check(response(200, big)), ResponseHeadError::kTooLarge);
    EXPECT_EQ(response_head_error_name(ResponseHeadError::kBadHeaderValue), "bad_header_value");
}

// The :80 redirect is built from the routed host and the path and query only.
TEST(Framing, HttpsRedirectLocation) {
    EXPECT_EQ(https_redirect_location("a.example", 443, "/x?y=1"), "https://a.example/x?y=1");
    EXPECT_EQ(https_redirect_location("a.example", 8443, "/x?y=1"), "https://a.example:8443/x?y=1");
    EXPECT_EQ(https_redirect_location("a.example", 8443, "http://a.example:80/p/q?r#frag"),
              "https://a.example:8443/p/q?r");
    EXPECT_EQ(https_redirect_location("a.example", 443, "HTTP://A.EXAMPLE"), "https://a.example/");
    EXPECT_EQ(https_redirect_location("a.example", 443, "http://a.example?q=1"),
              "https://a.example/?q=1");
    EXPECT_EQ(https_redirect_location("a.example", 443, "https://a.example/s"),
              "https://a.example/s");
    EXPECT_EQ(https_redirect_location("a.example", 443, "*"), "https://a.example/");
    EXPECT_EQ(https_redirect_location("::1", 8443, "/"), "https://[::1]:8443/");
}

}  // namespace
}  // namespace hopgate::http
