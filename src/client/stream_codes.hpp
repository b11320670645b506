// Application error codes the client agent puts in RESET_STREAM / STOP_SENDING frames when it
// cannot complete an HTTP exchange with the local service. The server maps them to error pages
// (see http_status_for_stream_code). They live in 0x100..0x1ff, away from the protocol's own
// wire errors (0x0..0x15; proto resets streams with 0x14 kMetaTooLarge), so a code says who
// gave up and why. Documented in docs/protocol.md's stream-code table.
#pragma once

#include <cstdint>

namespace hopgate::client {

// The local service could not be reached: connection refused, name not resolved, or the TCP
// connect did not complete within the connect timeout (5 s). Server renders 502.
inline constexpr std::uint64_t kLocalUnreachable = 0x101;
// The local service accepted the request but sent no response head within the head timeout
// (default 60 s), or a body stalled past the idle timeout. Server renders 504 (if no head yet).
inline constexpr std::uint64_t kLocalTimeout = 0x102;
// The local service answered with something that is not a valid HTTP/1.x response (bad head,
// 101 to a non-upgrade request, header section over the limit, body cut short). Server: 502.
inline constexpr std::uint64_t kLocalBadResponse = 0x103;
// The local connection failed after the exchange started (reset, I/O error while streaming a
// request body or an upgraded pipe). Server: 502 if no head was sent, else drop the visitor.
inline constexpr std::uint64_t kLocalIoError = 0x104;
// The client abandoned the exchange because the server reset the stream or asked it to stop
// sending (the visitor went away), or the agent is shutting down. Informational.
inline constexpr std::uint64_t kCancelled = 0x105;

// Status the server should render for a stream reset by the client with `code`, before any
// response head arrived: 504 for kLocalTimeout, 502 otherwise.
inline constexpr unsigned http_status_for_stream_code(std::uint64_t code) {
    return code == kLocalTimeout ? 504U : 502U;
}

// A short name for logs ("local_unreachable", ...); "unknown" for other codes.
inline constexpr const char* stream_code_name(std::uint64_t code) {
    switch (code) {
        case kLocalUnreachable: return "local_unreachable";
        case kLocalTimeout: return "local_timeout";
        case kLocalBadResponse: return "local_bad_response";
        case kLocalIoError: return "local_io_error";
        case kCancelled: return "cancelled";
        default: return "unknown";
    }
}

}  // namespace hopgate::client
