// Stream OPEN metadata: the first bytes of each stream direction (docs/protocol.md §4).
//
// The opener writes a request head, the responder a response head, each as one length-prefixed
// record at stream offset 0, so "open before data" holds by construction and the metadata is
// delivered reliably and in order like any stream byte.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace hopgate::proto {

inline constexpr std::size_t kDefaultMaxMetaSize = 64 * 1024;
inline constexpr std::size_t kMaxMetaHeaders = 256;
inline constexpr std::size_t kMaxMethodLen = 32;
inline constexpr std::size_t kMaxRequestIdLen = 64;
inline constexpr std::size_t kMaxHeaderNameLen = 1024;

enum class StreamKind : std::uint8_t {
    kHttp = 0,     // one HTTP exchange
    kUpgrade = 1,  // HTTP Upgrade (e.g. WebSocket): a raw byte pipe after a 101 response head
    kRaw = 2,      // raw bytes, no HTTP semantics
};

enum class HeadType : std::uint8_t { kNone = 0, kRequest = 1, kResponse = 2 };

struct Header {
    std::string name;
    std::string value;
    friend bool operator==(const Header&, const Header&) = default;
};

struct StreamMeta {
    StreamKind kind = StreamKind::kHttp;
    std::string request_id;
    HeadType head = HeadType::kNone;
    std::string method;       // request
    std::string target;       // request
    std::uint16_t status = 0;  // response
    std::vector<Header> headers;
    friend bool operator==(const StreamMeta&, const StreamMeta&) = default;
};

// Appends the length-prefixed encoding to `out`. Returns false if the encoding would exceed
// `max_size` or a field exceeds its limit.
bool encode_meta(const StreamMeta& m, std::vector<std::uint8_t>& out,
                 std::size_t max_size = kDefaultMaxMetaSize);

enum class MetaParse {
    kNeedMore,   // the prefix holds only part of the record
    kOk,         // decoded; `consumed` bytes make up the record
    kMalformed,  // not a valid record
    kTooLarge,   // the declared length exceeds `max_size`
};

// Decodes the record at the start of `prefix` (bytes from stream offset 0).
MetaParse decode_meta(std::span<const std::uint8_t> prefix, std::size_t max_size, StreamMeta& out,
                      std::size_t& consumed);

}  // namespace hopgate::proto
