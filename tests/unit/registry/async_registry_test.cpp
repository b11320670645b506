// AsyncRegistry: database calls run on the worker pool and complete on the caller's executor;
// the pending bound turns overload into an immediate kOverloaded.
#include "registry/async_registry.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "registry/memory_registry.hpp"

namespace hopgate::registry {
namespace {

namespace asio = boost::asio;

// The registry call runs on a pool thread; the handler on the io_context's (this) thread.
TEST(AsyncRegistry, CompletesOnCallerExecutor) {
    MemoryRegistry mem;
    auto reg = mem.register_domain("a.example.com", "");
    ASSERT_TRUE(reg.ok());
    asio::io_context ioc;  // outlives the pool, which is joined first
    AsyncRegistry async(mem, {2, 16});
    const auto me = std::this_thread::get_id();
    std::thread::id worker;
    int done = 0;
    async.async_call(
        ioc.get_executor(),
        [&](Registry& r) {
            worker = std::this_thread::get_id();
            return r.exists("a.example.com");
        },
        [&](core::Result<bool> r) {
            EXPECT_EQ(std::this_thread::get_id(), me);
            ASSERT_TRUE(r.ok());
            EXPECT_TRUE(*r);
            ++done;
        });
    auto strand = asio::make_strand(ioc);
    async.async_validate(strand, "a.example.com", reg->client_api_key, [&](core::Status st) {
        EXPECT_TRUE(strand.running_in_this_thread());
        EXPECT_TRUE(st.ok());
        ++done;
    });
    async.async_validate(ioc.get_executor(), "a.example.com", std::string(64, '0'),
                         [&](core::Status st) {
                             EXPECT_EQ(st.error(), Errc::kKeyMismatch);
                             ++done;
                         });
    ioc.run();  // returns once every handler ran: the pending work keeps it alive until then
    EXPECT_EQ(done, 3);
    EXPECT_NE(worker, me);
    EXPECT_EQ(async.pending(), 0u);
}

// With max_pending calls in flight the next one completes at once with kOverloaded; the others
// still complete once the database answers.
TEST(AsyncRegistry, OverloadIsExplicit) {
    MemoryRegistry mem;
    asio::io_context ioc;
    AsyncRegistry async(mem, {1, 2});
    std::mutex mu;
    std::condition_variable cv;
    bool release = false;
    const auto blocking = [&](Registry& r) {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return release; });
        return r.exists("x.example.com");
    };
    int ok = 0;
    int overloaded = 0;
    for (int i = 0; i < 3; ++i) {
        async.async_call(ioc.get_executor(), blocking, [&](core::Result<bool> r) {
            if (r.ok()) {
                ++ok;
            } else {
                EXPECT_EQ(r.error(), Errc::kOverloaded);
                ++overloaded;
            }
        });
    }
    ioc.run_one();  // the overload answer is ready before the database answers
    EXPECT_EQ(overloaded, 1);
    EXPECT_EQ(ok, 0);
    {
        std::lock_guard lock(mu);
        release = true;
    }
    cv.notify_all();
    ioc.run();
    EXPECT_EQ(ok, 2);
}

// Completion tokens work: use_future gives a std::future of the result.
TEST(AsyncRegistry, UseFuture) {
    MemoryRegistry mem;
    asio::io_context ioc;
    AsyncRegistry async(mem, {1, 4});
    auto work = asio::make_work_guard(ioc);
    std::thread runner([&] { ioc.run(); });
    auto f = async.async_call(
        ioc.get_executor(), [](Registry& r) { return r.register_domain("f.example.com", ""); },
        asio::use_future);
    auto r = f.get();
    EXPECT_TRUE(r.ok());
    work.reset();
    runner.join();
}

}  // namespace
}  // namespace hopgate::registry
