#include "proto/meta.hpp"

#include "proto/wire.hpp"

namespace hopgate::proto {
namespace {
constexpr std::uint8_t kMetaVersion = 1;

std::size_t str_size(const std::string& s) { return varint_size(s.size()) + s.size(); }

bool valid_enum(std::uint8_t kind, std::uint8_t head) {
    return kind <= static_cast<std::uint8_t>(StreamKind::kRaw) &&
           head <= static_cast<std::uint8_t>(HeadType::kResponse);
}
}  // namespace

bool encode_meta(const StreamMeta& m, std::vector<std::uint8_t>& out, std::size_t max_size) {
    if (m.request_id.size() > kMaxRequestIdLen || m.method.size() > kMaxMethodLen ||
        m.headers.size() > kMaxMetaHeaders || m.status > 999) {
        return false;
    }
    std::size_t body = 2 + str_size(m.request_id) + 1;
    if (m.head == HeadType::kRequest) {
        body += str_size(m.method) + str_size(m.target);
    } else if (m.head == HeadType::kResponse) {
        body += varint_size(m.status);
    }
    body += varint_size(m.headers.size());
    for (const auto& h : m.headers) {
        if (h.name.size() > kMaxHeaderNameLen) {
            return false;
        }
        body += str_size(h.name) + str_size(h.value);
    }
    const std::size_t total = varint_size(body) + body;
    if (total > max_size) {
        return false;
    }
    const std::size_t start = out.size();
    out.resize(start + total);
    Writer w(std::span<std::uint8_t>(out).subspan(start));
    w.varint(body);
    w.u8(kMetaVersion);
    w.u8(static_cast<std::uint8_t>(m.kind));
    w.length_prefixed(m.request_id);
    w.u8(static_cast<std::uint8_t>(m.head));
    if (m.head == HeadType::kRequest) {
        w.length_prefixed(m.method);
        w.length_prefixed(m.target);
    } else if (m.head == HeadType::kResponse) {
        w.varint(m.status);
    }
    w.varint(m.headers.size());
    for (const auto& h : m.headers) {
        w.length_prefixed(h.name);
        w.length_prefixed(h.value);
    }
    return w.ok() && w.size() == total;
}

MetaParse decode_meta(std::span<const std::uint8_t> prefix, std::size_t max_size, StreamMeta& out,
                      std::size_t& consumed) {
    Reader lr(prefix);
    std::uint64_t body = 0;
    if (!lr.varint(body)) {
        // A varint needs at most 8 bytes; fewer available means we must wait.
        return prefix.size() >= 8 ? MetaParse::kMalformed : MetaParse::kNeedMore;
    }
    if (body > max_size || lr.position() + body > max_size) {
        return MetaParse::kTooLarge;
    }
    if (lr.remaining() < body) {
        return MetaParse::kNeedMore;
    }
    std::span<const std::uint8_t> b;
    lr.bytes(static_cast<std::size_t>(body), b);
    Reader r(b);
    std::uint8_t version = 0, kind = 0, head = 0;
    std::string_view rid, method, target;
    if (!(r.u8(version) && r.u8(kind) && r.length_prefixed(kMaxRequestIdLen, rid) && r.u8(head))) {
        return MetaParse::kMalformed;
    }
    if (version != kMetaVersion || !valid_enum(kind, head)) {
        return MetaParse::kMalformed;
    }
    StreamMeta m;
    m.kind = static_cast<StreamKind>(kind);
    m.head = static_cast<HeadType>(head);
    m.request_id.assign(rid);
    if (m.head == HeadType::kRequest) {
        if (!(r.length_prefixed(kMaxMethodLen, method) && r.length_prefixed(max_size, target))) {
            return MetaParse::kMalformed;
        }
        m.method.assign(method);
        m.target.assign(target);
    } else if (m.head == HeadType::kResponse) {
        std::uint64_t status = 0;
        if (!r.varint(status) || status > 999) {
            return MetaParse::kMalformed;
        }
        m.status = static_cast<std::uint16_t>(status);
    }
    std::uint64_t count = 0;
    if (!r.varint(count) || count > kMaxMetaHeaders) {
        return MetaParse::kMalformed;
    }
    m.headers.reserve(static_cast<std::size_t>(count));
    for (std::uint64_t i = 0; i < count; ++i) {
        std::string_view name, value;
        if (!(r.length_prefixed(kMaxHeaderNameLen, name) && r.length_prefixed(max_size, value))) {
            return MetaParse::kMalformed;
        }
        m.headers.push_back({std::string(name), std::string(value)});
    }
    if (!r.empty()) {
        return MetaParse::kMalformed;
    }
    out = std::move(m);
    consumed = lr.position();
    return MetaParse::kOk;
}

}  // namespace hopgate::proto
