#include "net/accept_backoff.hpp"

#include <gtest/gtest.h>

#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

namespace hopgate::net {
namespace {

using boost::system::error_code;
using boost::system::system_category;

// Errors about one connection re-arm at once; running out of descriptors or memory pauses.
TEST(AcceptBackoff, ClassifiesErrors) {
    EXPECT_EQ(classify_accept_error({}), AcceptErrorKind::kNone);
    EXPECT_EQ(classify_accept_error(boost::asio::error::operation_aborted),
              AcceptErrorKind::kAborted);
    for (int e : {ECONNABORTED, EPROTO, EPERM, ENETUNREACH, EINTR}) {
        EXPECT_EQ(classify_accept_error(error_code(e, system_category())),
                  AcceptErrorKind::kPerConnection)
            << e;
    }
    for (int e : {EMFILE, ENFILE, ENOBUFS, ENOMEM, EINVAL}) {
        EXPECT_EQ(classify_accept_error(error_code(e, system_category())),
                  AcceptErrorKind::kResource)
            << e;
    }
}

struct Captured {
    std::shared_ptr<std::vector<std::string>> lines = std::make_shared<std::vector<std::string>>();
    std::shared_ptr<core::LogOutput> out = std::make_shared<core::LogOutput>(
        core::LogLevel::kInfo, [l = lines](std::string_view s) { l->emplace_back(s); });
    core::Logger log{out, "server"};
};

// EMFILE: the re-arm waits for the pause (not called inline), a success re-arms inline, and
// repeated failures log one line per interval that counts them.
TEST(AcceptBackoff, PausesOnEmfileAndLogsOncePerInterval) {
    boost::asio::io_context io;
    Captured cap;
    AcceptBackoff b(io.get_executor(), "http", cap.log, std::chrono::milliseconds(20),
                    std::chrono::seconds(3600));
    int rearmed = 0;
    b.next({}, [&] { ++rearmed; });
    EXPECT_EQ(rearmed, 1);
    const error_code emfile(EMFILE, system_category());
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) {
        b.next(emfile, [&] { ++rearmed; });
        EXPECT_EQ(rearmed, 1 + i);  // not inline
        io.run_one();               // the pause ends
        io.restart();
        EXPECT_EQ(rearmed, 2 + i);
    }
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(5 * 20));
    EXPECT_EQ(b.pauses(), 5u);
    ASSERT_EQ(cap.lines->size(), 1u);
    EXPECT_NE(cap.lines->at(0).find("accept failed"), std::string::npos);
    EXPECT_NE(cap.lines->at(0).find("\"listener\":\"http\""), std::string::npos);
}

// A pending pause is cancelled with the listener: the re-arm never runs.
TEST(AcceptBackoff, CancelDropsThePendingRearm) {
    boost::asio::io_context io;
    AcceptBackoff b(io.get_executor(), "https", core::Logger{}, std::chrono::milliseconds(10));
    bool rearmed = false;
    b.next(error_code(ENFILE, system_category()), [&] { rearmed = true; });
    b.cancel();
    io.run();
    EXPECT_FALSE(rearmed);
}

}  // namespace
}  // namespace hopgate::net
