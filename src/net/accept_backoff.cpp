#include "net/accept_backoff.hpp"

#include <boost/asio/error.hpp>
#include <cerrno>

namespace hopgate::net {

AcceptErrorKind classify_accept_error(const boost::system::error_code& ec) {
    if (!ec) {
        return AcceptErrorKind::kNone;
    }
    if (ec == boost::asio::error::operation_aborted || ec == boost::asio::error::bad_descriptor) {
        return AcceptErrorKind::kAborted;
    }
    if (ec.category() == boost::system::system_category()) {
        switch (ec.value()) {
            // accept(2): "Linux accept() passes already-pending network errors on the new
            // socket as an error code from accept() ... treat them like EAGAIN by retrying".
            case ECONNABORTED:
            case EPROTO:
            case ENOPROTOOPT:
            case ENETDOWN:
            case EHOSTDOWN:
            case ENONET:
            case EHOSTUNREACH:
            case EOPNOTSUPP:
            case ENETUNREACH:
            case EPERM:  // a firewall rule refused that connection
            case EINTR:
            case EAGAIN:
                return AcceptErrorKind::kPerConnection;
            default:
                break;
        }
    }
    // EMFILE, ENFILE, ENOBUFS, ENOMEM, and anything unexpected: never spin on it.
    return AcceptErrorKind::kResource;
}

AcceptBackoff::AcceptBackoff(boost::asio::any_io_executor ex, std::string listener,
                             core::Logger log, std::chrono::milliseconds delay,
                             std::chrono::steady_clock::duration log_interval)
    : timer_(std::move(ex)),
      listener_(std::move(listener)),
      log_(std::move(log)),
      delay_(delay),
      log_interval_(log_interval) {}

void AcceptBackoff::next(const boost::system::error_code& ec, std::function<void()> rearm) {
    switch (classify_accept_error(ec)) {
        case AcceptErrorKind::kNone:
        case AcceptErrorKind::kPerConnection:
            rearm();
            return;
        case AcceptErrorKind::kAborted:
            return;
        case AcceptErrorKind::kResource:
            break;
    }
    ++pauses_;
    ++unlogged_;
    if (on_pause_) {
        on_pause_();
    }
    const auto now = std::chrono::steady_clock::now();
    if (!logged_ || now - last_log_ >= log_interval_) {
        log_.warn("accept failed: pausing the listener",
                  {{"listener", listener_},
                   {"error", ec.message()},
                   {"pause_ms", static_cast<std::int64_t>(delay_.count())},
                   {"failures", unlogged_}});
        logged_ = true;
        last_log_ = now;
        unlogged_ = 0;
    }
    timer_.expires_after(delay_);
    // The handler holds only `rearm`: a cancelled or destroyed timer completes it with an error.
    timer_.async_wait([rearm = std::move(rearm)](const boost::system::error_code& e) {
        if (!e) {
            rearm();
        }
    });
}

void AcceptBackoff::cancel() { timer_.cancel(); }

}  // namespace hopgate::net
