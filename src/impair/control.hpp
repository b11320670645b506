// The control port: a TCP line protocol to drive a Relay at run time (see --help for the
// commands). `execute_command` is the whole protocol, without I/O; ControlServer is its Asio
// driver.
//
// Bounds: at most kMaxControlSessions connections (more are closed on accept), lines of at most
// kMaxControlLine bytes (a longer line gets "err line too long" and the connection closes), and
// an idle deadline per connection. Replies are one line each, "ok ..." or "err ...".
// Threads: the relay's io_context thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "core/log.hpp"
#include "impair/relay.hpp"

namespace hopgate::impair {

inline constexpr std::size_t kMaxControlLine = 1024;
inline constexpr std::size_t kMaxControlSessions = 16;

struct ControlShared;

struct CommandReply {
    std::string line;    // without the trailing '\n'
    bool close = false;  // close the connection after sending (quit)
};

// Executes one command line (without its '\n'; a trailing '\r' is ignored). Never throws on
// input: bad commands produce "err <reason>".
CommandReply execute_command(Relay& relay, std::string_view line);

class ControlServer {
  public:
    // Binds and starts accepting. Throws on bind failure.
    ControlServer(boost::asio::io_context& io, Relay& relay,
                  const boost::asio::ip::tcp::endpoint& endpoint, core::Logger log);
    ~ControlServer();

    boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

    // Stops accepting and closes every control connection.
    void stop();

  private:
    class Session;

    void do_accept();

    Relay& relay_;
    core::Logger log_;
    boost::asio::ip::tcp::acceptor acceptor_;
    // Shared with sessions, so a session can tell the server has stopped.
    std::shared_ptr<ControlShared> shared_;
    bool stopped_ = false;
};

}  // namespace hopgate::impair
