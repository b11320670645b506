#include "server/memory_trim.hpp"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <cstdio>

namespace hopgate::server {

namespace asio = boost::asio;

namespace {

// Resident bytes of the process (/proc/self/statm), 0 if unreadable.
std::size_t resident_bytes() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) {
        return 0;
    }
    unsigned long size = 0;
    unsigned long resident = 0;
    const int n = std::fscanf(f, "%lu %lu", &size, &resident);
    std::fclose(f);
    return n == 2 ? resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

// Resident memory that malloc does not account as in use: freed memory still in RAM, plus the
// non-heap part (code, stacks), which is about constant.
std::size_t resident_slack() {
    const struct mallinfo2 mi = ::mallinfo2();
    const std::size_t in_use = mi.uordblks + mi.hblkhd;  // heap chunks + mmapped chunks
    const std::size_t rss = resident_bytes();
    return rss > in_use ? rss - in_use : 0;
}

}  // namespace

struct MemoryTrimmer::Impl : std::enable_shared_from_this<MemoryTrimmer::Impl> {
    asio::steady_timer timer;
    std::chrono::seconds interval;
    std::size_t threshold;
    core::Logger log;
    // The least resident slack seen since the last trim: slack that grew above it by the
    // threshold is freed memory still resident (memory reused and freed again counts too).
    std::size_t low = 0;
    std::uint64_t count = 0;
    bool running = false;

    Impl(asio::io_context& io, std::chrono::seconds i, std::size_t t, core::Logger l)
        : timer(io), interval(i), threshold(t), log(std::move(l)) {}

    void arm() {
        timer.expires_after(interval);
        timer.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
            auto self = weak.lock();
            if (!self || ec || !self->running) {
                return;
            }
            self->tick();
            self->arm();
        });
    }

    void tick() {
        const std::size_t slack = resident_slack();
        if (slack < low) {
            low = slack;
        }
        if (slack < low + threshold) {
            return;
        }
        const auto t0 = std::chrono::steady_clock::now();
        ::malloc_trim(0);
        ++count;
        low = resident_slack();
        log.debug("heap trimmed",
                  {{"released_bytes", static_cast<std::int64_t>(slack - std::min(slack, low))},
                   {"took_ms",
                    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                        .count()}});
    }
};

MemoryTrimmer::MemoryTrimmer(asio::io_context& io, std::chrono::seconds interval,
                             std::size_t threshold_bytes, core::Logger log)
    : impl_(std::make_shared<Impl>(io, interval, threshold_bytes, std::move(log))) {}

MemoryTrimmer::~MemoryTrimmer() { stop(); }

void MemoryTrimmer::start() {
    if (impl_->interval.count() <= 0 || impl_->running) {
        return;
    }
    impl_->running = true;
    impl_->low = resident_slack();
    impl_->arm();
}

void MemoryTrimmer::stop() {
    impl_->running = false;
    impl_->timer.cancel();
}

std::uint64_t MemoryTrimmer::trims() const { return impl_->count; }

}  // namespace hopgate::server
