// hopgate-client's agent: keeps one tunnel to the server up (reconnecting forever with
// exponential backoff and jitter, 1 s to 30 s; an auth rejection is retried slowly) and serves
// every stream it carries through the LocalForwarder.
//
// Threading: the io_context's single thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>

#include "client/local_forwarder.hpp"
#include "core/log.hpp"
#include "net/transport.hpp"

namespace hopgate::client {

enum class TransportChoice { kDtls, kTls, kAuto };

struct AgentConfig {
    std::string server_host = "localhost";
    std::uint16_t dtls_port = 443;
    std::uint16_t tls_port = 7443;
    std::string server_name;  // for certificate verification; default server_host
    std::string domain;
    std::string api_key;
    std::string local_target = "127.0.0.1:8080";
    TransportChoice transport = TransportChoice::kAuto;
    std::string ca_file;
    bool insecure_skip_verify = false;
    std::chrono::seconds auto_dtls_timeout{3};  // auto: fall back to TLS after this
    std::chrono::seconds auth_retry{30};
};

class Agent {
public:
    Agent(boost::asio::io_context& io, AgentConfig cfg, core::Logger log);
    ~Agent();
    void start();
    void stop();
    bool connected() const;
    std::size_t attempts() const;

private:
    void connect();
    void dial(net::TransportKind kind);
    void on_dial(net::TransportKind kind, std::shared_ptr<net::Tunnel> t, const std::string& err);
    void on_event(net::Tunnel& t, proto::Event& ev);
    void schedule_retry(std::chrono::milliseconds delay, const std::string& why);
    std::chrono::milliseconds next_backoff();

    boost::asio::io_context& io_;
    AgentConfig cfg_;
    core::Logger log_;
    tls::ContextPtr dtls_ctx_;
    tls::ContextPtr tls_ctx_;
    std::unique_ptr<LocalForwarder> forwarder_;
    std::shared_ptr<net::Tunnel> tunnel_;
    boost::asio::steady_timer retry_;
    std::chrono::milliseconds backoff_{0};
    std::size_t attempts_ = 0;
    bool established_ = false;
    bool auth_rejected_ = false;
    bool stopped_ = false;
    std::uint64_t rng_state_;
};

}  // namespace hopgate::client
