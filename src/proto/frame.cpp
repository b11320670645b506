#include "proto/frame.hpp"

#include <algorithm>
#include <type_traits>

namespace hopgate::proto {
namespace {

constexpr std::uint64_t kStreamBitOff = 0x04;
constexpr std::uint64_t kStreamBitLen = 0x02;
constexpr std::uint64_t kStreamBitFin = 0x01;

constexpr std::uint64_t kParamIdle = 0x01;
constexpr std::uint64_t kParamMaxData = 0x03;
constexpr std::uint64_t kParamMaxStreamData = 0x04;
constexpr std::uint64_t kParamMaxStreams = 0x05;
constexpr std::uint64_t kParamMaxAckDelay = 0x06;
constexpr std::uint64_t kParamConnectionId = 0x07;

bool type(Writer& w, FrameType t) { return w.varint(static_cast<std::uint64_t>(t)); }

bool u64(Writer& w, std::uint64_t v) { return w.varint(v); }

bool fixed64(Writer& w, std::uint64_t v) {
    for (int i = 7; i >= 0; --i) {
        if (!w.u8(static_cast<std::uint8_t>(v >> (i * 8)))) {
            return false;
        }
    }
    return true;
}
bool fixed64(Reader& r, std::uint64_t& v) {
    std::span<const std::uint8_t> b;
    if (!r.bytes(8, b)) {
        return false;
    }
    v = 0;
    for (auto c : b) {
        v = (v << 8) | c;
    }
    return true;
}

struct Encoder {
    Writer& w;
    bool operator()(const PaddingFrame& f) { return w.zeros(f.length); }
    bool operator()(const PingFrame&) { return type(w, FrameType::kPing); }
    bool operator()(const AckFrame& f) {
        if (f.ranges.empty()) {
            return false;
        }
        const auto& first = f.ranges[0];
        if (!(type(w, FrameType::kAck) && u64(w, first.largest) && u64(w, f.ack_delay_us) &&
              u64(w, f.ranges.size() - 1) && u64(w, first.largest - first.smallest))) {
            return false;
        }
        std::uint64_t prev_smallest = first.smallest;
        for (std::size_t i = 1; i < f.ranges.size(); ++i) {
            const auto& rg = f.ranges[i];
            // gap: number of unacknowledged packets between ranges, minus one (RFC 9000 §19.3.1)
            const std::uint64_t gap = prev_smallest - rg.largest - 2;
            if (!(u64(w, gap) && u64(w, rg.largest - rg.smallest))) {
                return false;
            }
            prev_smallest = rg.smallest;
        }
        return true;
    }
    bool operator()(const ResetStreamFrame& f) {
        return type(w, FrameType::kResetStream) && u64(w, f.stream_id) && u64(w, f.error_code) &&
               u64(w, f.final_size);
    }
    bool operator()(const StopSendingFrame& f) {
        return type(w, FrameType::kStopSending) && u64(w, f.stream_id) && u64(w, f.error_code);
    }
    bool operator()(const StreamFrame& f) {
        std::uint64_t t = static_cast<std::uint64_t>(FrameType::kStream) | kStreamBitLen;
        if (f.offset != 0) {
            t |= kStreamBitOff;
        }
        if (f.fin) {
            t |= kStreamBitFin;
        }
        if (!(w.varint(t) && u64(w, f.stream_id))) {
            return false;
        }
        if (f.offset != 0 && !u64(w, f.offset)) {
            return false;
        }
        return u64(w, f.data.size()) && w.bytes(f.data);
    }
    bool operator()(const MaxDataFrame& f) {
        return type(w, FrameType::kMaxData) && u64(w, f.maximum);
    }
    bool operator()(const MaxStreamDataFrame& f) {
        return type(w, FrameType::kMaxStreamData) && u64(w, f.stream_id) && u64(w, f.maximum);
    }
    bool operator()(const MaxStreamsFrame& f) {
        return type(w, FrameType::kMaxStreams) && u64(w, f.maximum);
    }
    bool operator()(const DataBlockedFrame& f) {
        return type(w, FrameType::kDataBlocked) && u64(w, f.limit);
    }
    bool operator()(const StreamDataBlockedFrame& f) {
        return type(w, FrameType::kStreamDataBlocked) && u64(w, f.stream_id) && u64(w, f.limit);
    }
    bool operator()(const StreamsBlockedFrame& f) {
        return type(w, FrameType::kStreamsBlocked) && u64(w, f.limit);
    }
    bool operator()(const PathChallengeFrame& f) {
        return type(w, FrameType::kPathChallenge) && fixed64(w, f.data);
    }
    bool operator()(const PathResponseFrame& f) {
        return type(w, FrameType::kPathResponse) && fixed64(w, f.data);
    }
    bool operator()(const ConnectionCloseFrame& f) {
        const auto reason = f.reason.substr(0, kMaxReasonLen);
        return type(w, FrameType::kConnectionClose) && u64(w, f.error_code) &&
               w.length_prefixed(reason);
    }
    bool operator()(const AuthFrame& f) {
        return type(w, FrameType::kAuth) && u64(w, f.version) && w.length_prefixed(f.domain) &&
               w.length_prefixed(f.api_key) && w.length_prefixed(f.client_version) &&
               encode_transport_params(w, f.params);
    }
    bool operator()(const AuthOkFrame& f) {
        return type(w, FrameType::kAuthOk) && encode_transport_params(w, f.params);
    }
    bool operator()(const AuthFailFrame& f) {
        return type(w, FrameType::kAuthFail) && u64(w, f.reason_code) &&
               w.length_prefixed(f.message.substr(0, kMaxReasonLen));
    }
};

bool decode_ack(Reader& r, AckFrame& f) {
    std::uint64_t largest = 0, delay = 0, count = 0, first_len = 0;
    if (!(r.varint(largest) && r.varint(delay) && r.varint(count) && r.varint(first_len))) {
        return false;
    }
    if (count >= kMaxAckRanges || first_len > largest) {
        return false;
    }
    f.ack_delay_us = delay;
    f.ranges.clear();
    f.ranges.push_back({largest - first_len, largest});
    std::uint64_t smallest = largest - first_len;
    for (std::uint64_t i = 0; i < count; ++i) {
        std::uint64_t gap = 0, len = 0;
        if (!(r.varint(gap) && r.varint(len))) {
            return false;
        }
        // next largest = smallest - gap - 2; must not underflow
        if (smallest < gap + 2) {
            return false;
        }
        const std::uint64_t hi = smallest - gap - 2;
        if (len > hi) {
            return false;
        }
        f.ranges.push_back({hi - len, hi});
        smallest = hi - len;
    }
    return true;
}

}  // namespace

bool encode_transport_params(Writer& w, const TransportParams& p) {
    const bool cid = p.connection_id != 0;
    return w.varint(cid ? 6 : 5) && w.varint(kParamIdle) && w.varint(p.idle_timeout_ms) &&
           w.varint(kParamMaxData) && w.varint(p.initial_max_data) &&
           w.varint(kParamMaxStreamData) && w.varint(p.initial_max_stream_data) &&
           w.varint(kParamMaxStreams) && w.varint(p.initial_max_streams) &&
           w.varint(kParamMaxAckDelay) && w.varint(p.max_ack_delay_ms) &&
           (!cid || (w.varint(kParamConnectionId) && w.varint(p.connection_id)));
}

bool decode_transport_params(Reader& r, TransportParams& p) {
    std::uint64_t n = 0;
    if (!r.varint(n) || n > kMaxTransportParams) {
        return false;
    }
    for (std::uint64_t i = 0; i < n; ++i) {
        std::uint64_t id = 0, v = 0;
        if (!(r.varint(id) && r.varint(v))) {
            return false;
        }
        switch (id) {
            case kParamIdle: p.idle_timeout_ms = v; break;
            case kParamMaxData: p.initial_max_data = v; break;
            case kParamMaxStreamData: p.initial_max_stream_data = v; break;
            case kParamMaxStreams: p.initial_max_streams = v; break;
            case kParamMaxAckDelay:
                if (v >= (1u << 14)) {
                    return false;  // RFC 9000: values of 2^14 or more are invalid
                }
                p.max_ack_delay_ms = v;
                break;
            case kParamConnectionId: p.connection_id = v; break;
            default: break;  // unknown parameters are ignored (forward compatibility)
        }
    }
    return true;
}

bool encode_frame(Writer& w, const Frame& f) { return std::visit(Encoder{w}, f); }

bool decode_frame(Reader& r, Frame& out) {
    std::uint64_t t = 0;
    if (!r.varint(t)) {
        return false;
    }
    if (t == 0) {
        // Coalesce a run of padding bytes.
        std::size_t n = 1;
        auto rest = r.rest();
        while (n - 1 < rest.size() && rest[n - 1] == 0) {
            ++n;
        }
        std::span<const std::uint8_t> skip;
        r.bytes(n - 1, skip);
        out = PaddingFrame{n};
        return true;
    }
    if (t >= 0x08 && t <= 0x0f) {
        StreamFrame s;
        if (!r.varint(s.stream_id)) {
            return false;
        }
        if ((t & kStreamBitOff) && !r.varint(s.offset)) {
            return false;
        }
        std::uint64_t len = 0;
        if (t & kStreamBitLen) {
            if (!r.varint(len)) {
                return false;
            }
        } else {
            len = r.remaining();
        }
        if (len > r.remaining() || s.offset + len > kVarintMax) {
            return false;
        }
        if (!r.bytes(static_cast<std::size_t>(len), s.data)) {
            return false;
        }
        s.fin = (t & kStreamBitFin) != 0;
        out = s;
        return true;
    }
    switch (static_cast<FrameType>(t)) {
        case FrameType::kPing: out = PingFrame{}; return true;
        case FrameType::kAck: {
            if (!std::holds_alternative<AckFrame>(out)) {
                out = AckFrame{};
            }
            return decode_ack(r, std::get<AckFrame>(out));
        }
        case FrameType::kResetStream: {
            ResetStreamFrame f;
            if (!(r.varint(f.stream_id) && r.varint(f.error_code) && r.varint(f.final_size))) {
                return false;
            }
            out = f;
            return true;
        }
        case FrameType::kStopSending: {
            StopSendingFrame f;
            if (!(r.varint(f.stream_id) && r.varint(f.error_code))) {
                return false;
            }
            out = f;
            return true;
        }
        case FrameType::kMaxData: {
            MaxDataFrame f;
            if (!r.varint(f.maximum)) {
                return false;
            }
            out = f;
            return true;
        }
        case FrameType::kMaxStreamData: {
            MaxStreamDataFrame f;
            if (!(r.varint(f.stream_id) && r.varint(f.maximum))) {
                return false;
            }
            out = f;
            return true;
        }
        case FrameType::kMaxStreams: {
            MaxStreamsFrame f;
            if (!r.varint(f.maximum)) {
                return false;
            }
            out = f;
            return true;
        }
        case FrameType::kDataBlocked: {
            DataBlockedFrame f;
            if (!r.varint(f.limit)) {
                return false;
            }
            out = f;
            return true;
        }
        case FrameType::kStreamDataBlocked: {
            StreamDataBlockedFrame f;
            if (!(r.varint(f.stream_id) && r.varint(f.limit))) {
                return false;
            }
            out = f;
            return true;
        }
        case FrameType::kStreamsBlocked: {
            StreamsBlockedFrame f;
            if (!r.varint(f.limit)) {
                return false;
            }
            out = f;
            return true;
        }
        case FrameType::kPathChallenge: {
            PathChallengeFrame f;
            if (!fixed64(r, f.data)) {
                return false;
            }
            out = f;
            return true;
        }
        case FrameType::kPathResponse: {
            PathResponseFrame f;
            if (!fixed64(r, f.data)) {
                return false;
            }
            out = f;
            return true;
        }
        case FrameType::kConnectionClose: {
            ConnectionCloseFrame f;
            if (!(r.varint(f.error_code) && r.length_prefixed(kMaxReasonLen, f.reason))) {
                return false;
            }
            out = f;
            return true;
        }
        case FrameType::kAuth: {
            AuthFrame f;
            if (!(r.varint(f.version) && r.length_prefixed(kMaxDomainLen, f.domain) &&
                  r.length_prefixed(kMaxApiKeyLen, f.api_key) &&
                  r.length_prefixed(kMaxClientVersionLen, f.client_version) &&
                  decode_transport_params(r, f.params))) {
                return false;
            }
            out = f;
            return true;
        }
        case FrameType::kAuthOk: {
            AuthOkFrame f;
            if (!decode_transport_params(r, f.params)) {
                return false;
            }
            out = f;
            return true;
        }
        case FrameType::kAuthFail: {
            AuthFailFrame f;
            if (!(r.varint(f.reason_code) && r.length_prefixed(kMaxReasonLen, f.message))) {
                return false;
            }
            out = f;
            return true;
        }
        default: return false;  // unknown frame type: FRAME_ENCODING_ERROR
    }
}

bool is_ack_eliciting(const Frame& f) {
    return !(std::holds_alternative<PaddingFrame>(f) || std::holds_alternative<AckFrame>(f) ||
             std::holds_alternative<ConnectionCloseFrame>(f));
}

std::size_t stream_frame_overhead(std::uint64_t stream_id, std::uint64_t offset, std::size_t len) {
    return 1 + varint_size(stream_id) + (offset ? varint_size(offset) : 0) + varint_size(len);
}

bool frames_equal(const Frame& a, const Frame& b) {
    if (a.index() != b.index()) {
        return false;
    }
    return std::visit(
        [&b](const auto& x) -> bool {
            using T = std::decay_t<decltype(x)>;
            const T& y = std::get<T>(b);
            if constexpr (std::is_same_v<T, PaddingFrame>) {
                return x.length == y.length;
            } else if constexpr (std::is_same_v<T, PingFrame>) {
                return true;
            } else if constexpr (std::is_same_v<T, AckFrame>) {
                return x.ack_delay_us == y.ack_delay_us && x.ranges == y.ranges;
            } else if constexpr (std::is_same_v<T, ResetStreamFrame>) {
                return x.stream_id == y.stream_id && x.error_code == y.error_code &&
                       x.final_size == y.final_size;
            } else if constexpr (std::is_same_v<T, StopSendingFrame>) {
                return x.stream_id == y.stream_id && x.error_code == y.error_code;
            } else if constexpr (std::is_same_v<T, StreamFrame>) {
                return x.stream_id == y.stream_id && x.offset == y.offset && x.fin == y.fin &&
                       std::equal(x.data.begin(), x.data.end(), y.data.begin(), y.data.end());
            } else if constexpr (std::is_same_v<T, MaxDataFrame> ||
                                 std::is_same_v<T, MaxStreamsFrame>) {
                return x.maximum == y.maximum;
            } else if constexpr (std::is_same_v<T, MaxStreamDataFrame>) {
                return x.stream_id == y.stream_id && x.maximum == y.maximum;
            } else if constexpr (std::is_same_v<T, DataBlockedFrame> ||
                                 std::is_same_v<T, StreamsBlockedFrame>) {
                return x.limit == y.limit;
            } else if constexpr (std::is_same_v<T, StreamDataBlockedFrame>) {
                return x.stream_id == y.stream_id && x.limit == y.limit;
            } else if constexpr (std::is_same_v<T, PathChallengeFrame> ||
                                 std::is_same_v<T, PathResponseFrame>) {
                return x.data == y.data;
            } else if constexpr (std::is_same_v<T, ConnectionCloseFrame>) {
                return x.error_code == y.error_code && x.reason == y.reason;
            } else if constexpr (std::is_same_v<T, AuthFrame>) {
                return x.version == y.version && x.domain == y.domain &&
                       x.api_key == y.api_key && x.client_version == y.client_version &&
                       x.params == y.params;
            } else if constexpr (std::is_same_v<T, AuthOkFrame>) {
                return x.params == y.params;
            } else {
                static_assert(std::is_same_v<T, AuthFailFrame>);
                return x.reason_code == y.reason_code && x.message == y.message;
            }
        },
        a);
}

}  // namespace hopgate::proto
