// MemoryTrimmer: trims only after freed memory still resident grew by the threshold (also when
// malloc's free byte count did not change: memory reused and freed again), and returns the freed
// pages (RSS falls); interval 0 never trims.
#include "server/memory_trim.hpp"

#include <gtest/gtest.h>
#include <malloc.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace hopgate::server {
namespace {

using namespace std::chrono_literals;

// False under ASan or valgrind, whose allocators glibc's mallinfo2 does not see.
bool heap_stats_work() {
    static void* volatile sink = nullptr;
    const std::size_t before = ::mallinfo2().uordblks;
    sink = std::malloc(64 * 1024);
    const std::size_t during = ::mallinfo2().uordblks;
    std::free(sink);
    sink = nullptr;
    return during >= before + 32 * 1024;
}

std::size_t rss_kib() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            return std::stoul(line.substr(6));
        }
    }
    return 0;
}

// 48 MiB in 16 KiB blocks (heap, not mmap), touched, then every other block freed: the holes
// cannot go back by shrinking the heap's top, only by malloc_trim (whole pages inside them).
struct Holes {
    std::vector<void*> kept;
    Holes() {
        std::vector<void*> all;
        for (int i = 0; i < 3 * 1024; ++i) {
            void* p = std::malloc(16 * 1024);
            std::memset(p, 1, 16 * 1024);
            all.push_back(p);
        }
        for (std::size_t i = 0; i < all.size(); ++i) {
            if (i % 2 == 0) {
                std::free(all[i]);
            } else {
                kept.push_back(all[i]);
            }
        }
    }
    ~Holes() {
        for (void* p : kept) {
            std::free(p);
        }
    }
};

void run_for(boost::asio::io_context& io, std::chrono::milliseconds d) {
    io.restart();
    io.run_for(d);
}

// Pins: nothing freed, no trim; 24 MiB freed in holes -> one trim within an interval, and the
// process RSS drops by most of it.
TEST(MemoryTrimmer, TrimsWhenFreedMemoryGrew) {
    if (!heap_stats_work()) {
        GTEST_SKIP() << "mallinfo2 does not see this allocator (sanitizer)";
    }
    boost::asio::io_context io;
    MemoryTrimmer t(io, 1s, 8u * 1024 * 1024, core::Logger());
    t.start();
    run_for(io, 1500ms);
    EXPECT_EQ(t.trims(), 0u);
    {
        Holes h;
        const std::size_t before = rss_kib();
        run_for(io, 1500ms);
        EXPECT_EQ(t.trims(), 1u);
        const std::size_t after = rss_kib();
        EXPECT_LE(after + 12 * 1024, before) << "RSS " << before << " -> " << after << " KiB";
        run_for(io, 1500ms);
        EXPECT_EQ(t.trims(), 1u) << "the same free memory is not trimmed twice";

        // The holes are used again and freed again between two checks (malloc's free bytes end
        // where they were): their pages are resident again and must go back again.
        std::vector<void*> again;
        for (std::size_t i = 0; i < h.kept.size(); ++i) {
            void* p = std::malloc(16 * 1024);
            std::memset(p, 2, 16 * 1024);
            again.push_back(p);
        }
        for (void* p : again) {
            std::free(p);
        }
        const std::size_t touched = rss_kib();
        run_for(io, 1500ms);
        EXPECT_EQ(t.trims(), 2u);
        EXPECT_LE(rss_kib() + 12 * 1024, touched) << "RSS " << touched << " -> " << rss_kib();
    }
    t.stop();
}

// Pins: interval 0 = off.
TEST(MemoryTrimmer, ZeroIntervalNeverTrims) {
    boost::asio::io_context io;
    MemoryTrimmer t(io, 0s, 1, core::Logger());
    t.start();
    Holes h;
    run_for(io, 300ms);
    EXPECT_EQ(t.trims(), 0u);
}

}  // namespace
}  // namespace hopgate::server
