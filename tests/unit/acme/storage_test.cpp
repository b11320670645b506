#include "acme/storage.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "tls/certs.hpp"

namespace hopgate::acme {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class StorageTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("hg-acme-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    fs::path dir_;
};

// Atomic writes replace the whole file and set the requested mode; no temp file stays behind.
TEST_F(StorageTest, AtomicWriteWithMode) {
    fs::create_directories(dir_);
    const auto p = (dir_ / "x.key").string();
    ASSERT_TRUE(write_file_atomic(p, "one", 0600));
    ASSERT_TRUE(write_file_atomic(p, "two", 0600));
    std::ifstream f(p);
    std::string s((std::istreambuf_iterator<char>(f)), {});
    EXPECT_EQ(s, "two");
    struct stat st {};
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
    EXPECT_FALSE(write_file_atomic((dir_ / "missing" / "x").string(), "y", 0600));
}

// The account key persists; its URL is only returned for the directory it was registered with.
TEST_F(StorageTest, AccountPersistsPerDirectory) {
    auto a = load_or_create_account(dir_.string(), "https://ca/dir");
    ASSERT_TRUE(a);
    EXPECT_TRUE(a->url.empty());
    ASSERT_TRUE(save_account_url(dir_.string(), "https://ca/dir", "https://ca/acct/7"));
    auto b = load_or_create_account(dir_.string(), "https://ca/dir");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->url, "https://ca/acct/7");
    EXPECT_EQ(EVP_PKEY_eq(a->key.get(), b->key.get()), 1);
    auto c = load_or_create_account(dir_.string(), "https://other/dir");
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->url.empty());
    struct stat st {};
    ASSERT_EQ(::stat((dir_ / "account.key").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// Renewal: a third of the lifetime (capped at 30 days) before expiry, or an explicit threshold.
TEST(Renewal, Time) {
    const auto nb = std::chrono::system_clock::from_time_t(1700000000);
    EXPECT_EQ(renewal_time(nb, nb + 90 * 24h, 0s), nb + 60 * 24h);
    EXPECT_EQ(renewal_time(nb, nb + 6 * 24h, 0s), nb + 4 * 24h);
    EXPECT_EQ(renewal_time(nb, nb + 365 * 24h, 0s), nb + 335 * 24h);
    EXPECT_EQ(renewal_time(nb, nb + 90 * 24h, 3600s), nb + 90 * 24h - 1h);
}

// Certificate validity and the ARI certificate identifier are read from the leaf.
TEST(Renewal, CertInfo) {
    auto pem = tls::generate_self_signed({"a.example"}, 48h);
    auto ci = cert_info(pem.cert_pem);
    ASSERT_TRUE(ci);
    EXPECT_EQ(
        std::chrono::duration_cast<std::chrono::hours>(ci->not_after - ci->not_before).count(), 48);
    EXPECT_FALSE(cert_info("garbage"));
}

}  // namespace
}  // namespace hopgate::acme
