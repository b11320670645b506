#include <string>

#include "impair/relay.hpp"

namespace hopgate::impair {

std::string DirectionStats::to_json() const {
    std::string out = "{";
    auto field = [&out](std::string_view key, std::uint64_t v) {
        if (out.size() > 1) {
            out += ',';
        }
        out += '"';
        out += key;
        out += "\":";
        out += std::to_string(v);
    };
    field("rx_datagrams", rx_datagrams);
    field("rx_bytes", rx_bytes);
    field("tx_datagrams", tx_datagrams);
    field("tx_bytes", tx_bytes);
    field("dropped_loss", dropped_loss);
    field("dropped_queue", dropped_queue);
    field("dropped_cut", dropped_cut);
    field("dropped_overflow", dropped_overflow);
    field("dropped_send", dropped_send);
    field("duplicated", duplicated);
    out += '}';
    return out;
}

}  // namespace hopgate::impair
