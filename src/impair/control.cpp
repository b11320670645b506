#include "impair/control.hpp"

#include <array>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <list>
#include <stdexcept>
#include <vector>

#include "impair/address.hpp"
#include "impair/options.hpp"

namespace hopgate::impair {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto kControlIdleTimeout = std::chrono::minutes(10);
constexpr auto kControlWriteTimeout = std::chrono::seconds(10);

std::vector<std::string_view> split(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) {
            ++i;
        }
        const std::size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t') {
            ++i;
        }
        if (i > start) {
            out.push_back(line.substr(start, i - start));
        }
    }
    return out;
}

// Echoing peer input back: printable ASCII only, bounded.
std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 64)) {
        out += (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    if (s.size() > 64) {
        out += "...";
    }
    return out;
}

CommandReply err(std::string why) { return {"err " + std::move(why), false}; }
CommandReply ok(std::string what) { return {what.empty() ? "ok" : "ok " + what, false}; }

CommandReply set_command(Relay& relay, const std::vector<std::string_view>& t) {
    // set [up|down|both] NAME VALUE
    if (t.size() != 3 && t.size() != 4) {
        return err("usage: set [up|down] NAME VALUE");
    }
    bool up = true;
    bool down = true;
    std::size_t i = 1;
    if (t.size() == 4) {
        if (t[1] == "up") {
            down = false;
        } else if (t[1] == "down") {
            up = false;
        } else if (t[1] != "both") {
            return err("direction must be up, down or both");
        }
        i = 2;
    }
    const std::string_view name = t[i];
    const std::string_view value = t[i + 1];
    if (!relay.supports(name)) {
        return err("'" + printable(name) + "' cannot be set in " + std::string(relay.mode()) +
                   " mode");
    }
    LinkParams pu = relay.params(Direction::kUp);
    LinkParams pd = relay.params(Direction::kDown);
    try {
        if (up) {
            apply_param(pu, name, value);
        }
        if (down) {
            apply_param(pd, name, value);
        }
    } catch (const std::invalid_argument& e) {
        return err(printable(e.what()));
    }
    // Validate both before changing either, so a failed set changes nothing.
    for (const auto* p : {&pu, &pd}) {
        if (auto why = p->validate(); !why.empty()) {
            return err(why);
        }
    }
    relay.set_params(Direction::kUp, pu);
    relay.set_params(Direction::kDown, pd);
    return ok("set");
}

}  // namespace

CommandReply execute_command(Relay& relay, std::string_view line) {
    if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
    }
    const auto t = split(line);
    if (t.empty()) {
        return err("empty command (try help)");
    }
    const std::string_view cmd = t[0];
    auto no_args = [&]() { return t.size() == 1; };
    if (cmd == "set") {
        return set_command(relay, t);
    }
    if (!no_args()) {
        if (cmd == "cut" || cmd == "restore" || cmd == "rebind" || cmd == "stats" || cmd == "get" ||
            cmd == "help" || cmd == "quit") {
            return err("'" + std::string(cmd) + "' takes no arguments");
        }
    }
    if (cmd == "cut") {
        relay.set_cut(true);
        return ok("cut");
    }
    if (cmd == "restore") {
        relay.set_cut(false);
        return ok("restore");
    }
    if (cmd == "rebind") {
        const long n = relay.rebind();
        if (n < 0) {
            return err("rebind is not supported in " + std::string(relay.mode()) + " mode");
        }
        return ok("rebind " + std::to_string(n));
    }
    if (cmd == "stats") {
        return ok(relay.stats_json());
    }
    if (cmd == "get") {
        return ok("{\"up\":" + params_json(relay.params(Direction::kUp)) +
                  ",\"down\":" + params_json(relay.params(Direction::kDown)) + "}");
    }
    if (cmd == "help") {
        return ok(
            "commands: cut | restore | rebind | stats | get | set [up|down] "
            "loss|dup|delay-ms|jitter-ms|rate-mbit|queue-kb VALUE | help | quit");
    }
    if (cmd == "quit") {
        return {"ok bye", true};
    }
    return err("unknown command '" + printable(cmd) + "' (try help)");
}

// ---- Asio driver ---------------------------------------------------------------------------

struct ControlShared {
    bool stopped = false;
    std::list<std::weak_ptr<void>> sessions;  // for stop(); pruned on accept
    std::size_t active = 0;
};

class ControlServer::Session : public std::enable_shared_from_this<Session> {
  public:
    Session(tcp::socket socket, Relay& relay, std::shared_ptr<ControlShared> shared,
            core::Logger log)
        : socket_(std::move(socket)),
          relay_(relay),
          shared_(std::move(shared)),
          log_(std::move(log)),
          buf_(kMaxControlLine + 1),
          timer_(socket_.get_executor()) {
        ++shared_->active;
    }
    ~Session() { --shared_->active; }

    void start() { do_read(); }

    void close() {
        error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_both, ignored);
        socket_.close(ignored);
        timer_.cancel();
    }

  private:
    // Sends FIN and discards what the peer still sends until it closes (or a deadline), so
    // closing with unread input does not turn into a RST that could destroy our last reply.
    void linger_close() {
        error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_send, ignored);
        arm(kControlWriteTimeout);
        buf_.consume(buf_.size());
        discard();
    }
    void discard() {
        socket_.async_read_some(asio::buffer(scratch_),
                                [self = shared_from_this()](const error_code& ec, std::size_t) {
                                    if (ec) {
                                        return self->close();
                                    }
                                    self->discard();
                                });
    }

    void arm(std::chrono::steady_clock::duration d) {
        timer_.expires_after(d);
        timer_.async_wait([self = shared_from_this()](const error_code& ec) {
            if (!ec) {
                self->close();  // deadline passed
            }
        });
    }

    void do_read() {
        if (shared_->stopped) {
            return close();
        }
        arm(kControlIdleTimeout);
        asio::async_read_until(socket_, buf_, '\n',
                               [self = shared_from_this()](const error_code& ec, std::size_t n) {
                                   self->on_read(ec, n);
                               });
    }

    void on_read(const error_code& ec, std::size_t n) {
        if (ec == asio::error::not_found) {
            return reply({"err line too long", true});
        }
        if (ec || shared_->stopped) {
            return close();
        }
        std::string line(asio::buffers_begin(buf_.data()),
                         asio::buffers_begin(buf_.data()) + static_cast<std::ptrdiff_t>(n - 1));
        buf_.consume(n);
        reply(execute_command(relay_, line));
    }

    void reply(CommandReply r) {
        out_ = std::move(r.line);
        out_ += '\n';
        const bool close_after = r.close;
        arm(kControlWriteTimeout);
        asio::async_write(
            socket_, asio::buffer(out_),
            [self = shared_from_this(), close_after](const error_code& ec, std::size_t) {
                if (ec) {
                    return self->close();
                }
                if (close_after) {
                    return self->linger_close();
                }
                self->do_read();
            });
    }

    tcp::socket socket_;
    Relay& relay_;
    std::shared_ptr<ControlShared> shared_;
    core::Logger log_;
    asio::streambuf buf_;
    asio::steady_timer timer_;
    std::string out_;
    std::array<char, 512> scratch_{};
};

ControlServer::ControlServer(asio::io_context& io, Relay& relay, const tcp::endpoint& endpoint,
                             core::Logger log)
    : relay_(relay),
      log_(std::move(log)),
      acceptor_(io),
      shared_(std::make_shared<ControlShared>()) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(static_cast<int>(kMaxControlSessions));
    do_accept();
    log_.info("control port listening", {{"control", format_endpoint(acceptor_.local_endpoint())}});
}

ControlServer::~ControlServer() { stop(); }

void ControlServer::stop() {
    if (stopped_) {
        return;
    }
    stopped_ = true;
    shared_->stopped = true;
    error_code ignored;
    acceptor_.close(ignored);
    for (auto& w : shared_->sessions) {
        if (auto s = std::static_pointer_cast<Session>(w.lock())) {
            s->close();
        }
    }
    shared_->sessions.clear();
}

void ControlServer::do_accept() {
    acceptor_.async_accept([this](const error_code& ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || stopped_) {
            return;
        }
        if (!ec) {
            shared_->sessions.remove_if([](const auto& w) { return w.expired(); });
            if (shared_->active >= kMaxControlSessions) {
                log_.warn("control connection refused: too many");
                error_code ignored;
                socket.close(ignored);
            } else {
                auto s = std::make_shared<Session>(std::move(socket), relay_, shared_, log_);
                shared_->sessions.push_back(s);
                s->start();
            }
        } else {
            log_.warn("control accept failed", {{"error", ec.message()}});
        }
        do_accept();
    });
}

}  // namespace hopgate::impair
