// libFuzzer target for the Loki pieces that read text: HOP_LOKI_ENDPOINT
// (core::parse_loki_endpoint), HOP_LOKI_STATIC_LABELS (core::parse_loki_labels), and the queue +
// push-body builder fed arbitrary log bytes.
//
// Checks on every input: an accepted endpoint has a host, a non-zero port and a target starting
// with '/'; accepted labels have valid names and non-empty values; the queue never holds more
// than its bounds; the push body is JSON that parses back to the lines taken.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/loki.hpp"

namespace {

void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (auto ep = hopgate::core::parse_loki_endpoint(text)) {
        check(!ep->host.empty() && ep->port != 0 && !ep->target.empty() &&
              ep->target.front() == '/');
    }
    if (auto labels = hopgate::core::parse_loki_labels(text)) {
        for (const auto& [k, v] : *labels) {
            check(!k.empty() && !v.empty() && !(k.front() >= '0' && k.front() <= '9'));
        }
    }
    hopgate::core::LokiQueue q({.max_lines = 8, .max_bytes = 256});
    q.push(text, std::chrono::system_clock::time_point(std::chrono::seconds(1)));
    check(q.size() <= 8 && q.bytes() <= 256);
    const auto batch = q.take(8, 256);
    const std::string body = hopgate::core::build_loki_push_body({{"app", "hopgate"}}, batch);
    const auto j = nlohmann::json::parse(body, nullptr, false);
    check(!j.is_discarded());
    check(j["streams"][0]["values"].size() == batch.size());
    return 0;
}
