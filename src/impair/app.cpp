#include "impair/app.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <functional>
#include <memory>

#include "core/log.hpp"
#include "impair/address.hpp"
#include "impair/control.hpp"
#include "impair/tcp_relay.hpp"
#include "impair/udp_relay.hpp"

namespace hopgate::impair {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
// After stop(), pending operations complete as aborted and run() returns; this deadline only
// guards against a bug keeping the loop alive.
constexpr auto kShutdownDeadline = std::chrono::seconds(2);
}  // namespace

int run(const Options& options, std::FILE* out) {
    asio::io_context io(1);
    auto log_out = std::make_shared<core::LogOutput>(options.log_level);
    core::Logger log(log_out, "impair");

    std::unique_ptr<Relay> relay;
    std::string listen_text;
    if (options.mode == Mode::kUdp) {
        auto r = std::make_unique<UdpRelay>(io, options, log);
        listen_text = format_endpoint(r->local_endpoint());
        relay = std::move(r);
    } else {
        auto r = std::make_unique<TcpRelay>(io, options, log);
        listen_text = format_endpoint(r->local_endpoint());
        relay = std::move(r);
    }

    std::unique_ptr<ControlServer> control;
    std::string control_text = "null";
    if (options.control) {
        const asio::ip::tcp::endpoint ep(resolve_host(io, options.control->host),
                                         options.control->port);
        control = std::make_unique<ControlServer>(io, *relay, ep, log);
        control_text = "\"" + format_endpoint(control->local_endpoint()) + "\"";
    }

    asio::signal_set signals(io, SIGUSR1, SIGUSR2, SIGINT);
    signals.add(SIGTERM);
    bool stopping = false;
    std::function<void()> wait_signal = [&]() {
        signals.async_wait([&](const error_code& ec, int sig) {
            if (ec) {
                return;
            }
            if (sig == SIGUSR1) {
                relay->set_cut(!relay->cut());
            } else if (sig == SIGUSR2) {
                if (relay->rebind() < 0) {
                    log.warn("SIGUSR2 ignored: rebind is UDP-only");
                }
            } else {
                log.info("stopping", {{"signal", sig}});
                stopping = true;
                relay->stop();
                if (control) {
                    control->stop();
                }
                return;  // no new wait: the loop runs out of work
            }
            wait_signal();
        });
    };
    wait_signal();

    std::fprintf(out, "{\"listen\":\"%s\",\"control\":%s}\n", listen_text.c_str(),
                 control_text.c_str());
    std::fflush(out);

    while (!stopping && io.run_one() > 0) {
    }
    // Every socket and timer is closed: pending handlers complete as aborted. The deadline only
    // guards against a bug keeping the loop alive.
    io.run_for(kShutdownDeadline);

    std::fprintf(out, "{\"stats\":%s}\n", relay->stats_json().c_str());
    std::fflush(out);
    return 0;
}

}  // namespace hopgate::impair
