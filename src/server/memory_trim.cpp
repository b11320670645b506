#include "server/memory_trim.hpp"

#include <malloc.h>

#include <boost/asio/steady_timer.hpp>
#include <cstdint>

namespace hopgate::server {

namespace asio = boost::asio;

namespace {

// Bytes free inside malloc's arenas (free chunks and fast bins).
std::size_t free_heap_bytes() {
    const struct mallinfo2 mi = ::mallinfo2();
    return mi.fordblks + mi.fsmblks;
}

}  // namespace

struct MemoryTrimmer::Impl : std::enable_shared_from_this<MemoryTrimmer::Impl> {
    asio::steady_timer timer;
    std::chrono::seconds interval;
    std::size_t threshold;
    core::Logger log;
    // The least free bytes seen since the last trim: free memory that grew above it by the
    // threshold was released since (reused memory lowers it again).
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
        const std::size_t free_now = free_heap_bytes();
        if (free_now < low) {
            low = free_now;
        }
        if (free_now < low + threshold) {
            return;
        }
        const auto t0 = std::chrono::steady_clock::now();
        ::malloc_trim(0);
        ++count;
        // The trimmed pages stay free chunks in the arenas (only their memory went back).
        low = free_heap_bytes();
        log.debug("heap trimmed",
                  {{"free_heap_bytes", static_cast<std::int64_t>(free_now)},
                   {"took_ms", std::chrono::duration<double, std::milli>(
                                   std::chrono::steady_clock::now() - t0)
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
    impl_->low = free_heap_bytes();
    impl_->arm();
}

void MemoryTrimmer::stop() {
    impl_->running = false;
    impl_->timer.cancel();
}

std::uint64_t MemoryTrimmer::trims() const { return impl_->count; }

}  // namespace hopgate::server
