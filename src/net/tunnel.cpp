#include "net/tunnel.hpp"

namespace hopgate::net {

const char* transport_name(TransportKind k) { return k == TransportKind::kDtls ? "dtls" : "tls"; }

void Tunnel::dispatch_events() {
    if (!conn_) {
        return;
    }
    proto::Event ev;
    while (conn_->poll_event(ev)) {
        if (on_transport_event(ev)) {
            continue;
        }
        if (events_) {
            events_->on_tunnel_event(*this, ev);
        }
    }
}

}  // namespace hopgate::net
