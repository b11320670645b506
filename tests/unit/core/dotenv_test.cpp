#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <string>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/random.hpp"

namespace hopgate::core {
namespace {

// Parses text that must be valid and returns its entries as "KEY=VALUE@line" strings.
std::vector<std::string> entries_of(std::string_view text) {
    const DotEnvFile f = parse_dotenv(text);
    EXPECT_TRUE(f.ok()) << (f.problems.empty() ? "" : f.problems[0].message);
    std::vector<std::string> out;
    for (const auto& e : f.entries) {
        out.push_back(e.key + "=" + e.value + "@" + std::to_string(e.line));
    }
    return out;
}

bool printable_ascii(std::string_view s) {
    for (char c : s) {
        if (c < 0x20 || c > 0x7e) {
            return false;
        }
    }
    return true;
}

// Plain KEY=VALUE lines, blank lines, whitespace around key and value, and the export prefix.
TEST(DotEnv, BasicLinesTrimAndExport) {
    EXPECT_EQ(entries_of("A=1\n\n  B = two words  \nexport C=3\nexport\tD=4\n\texport   E=5"),
              (std::vector<std::string>{"A=1@1", "B=two words@3", "C=3@4", "D=4@5", "E=5@6"}));
}

// A key literally named "export" still works, and "exportX=1" is a normal key.
TEST(DotEnv, ExportIsOnlyAPrefixWhenFollowedBySpace) {
    EXPECT_EQ(entries_of("export=1\nexportX=2\n"),
              (std::vector<std::string>{"export=1@1", "exportX=2@2"}));
}

// Full-line comments are skipped; on unquoted values " #" starts a comment but "a#b" does not.
TEST(DotEnv, Comments) {
    EXPECT_EQ(entries_of("# top\n   # indented\nA=x # trailing\nB=a#b\nC= # only comment\nD=#x\n"
                         "E=x\t# tab comment\n"),
              (std::vector<std::string>{"A=x@3", "B=a#b@4", "C=@5", "D=#x@6", "E=x@7"}));
}

// Single quotes are literal: no escapes, '#' and backslashes kept, comment allowed after.
TEST(DotEnv, SingleQuotesAreLiteral) {
    EXPECT_EQ(entries_of("A='x \\n # y' # c\nB=''\nC='  padded  '\n"),
              (std::vector<std::string>{"A=x \\n # y@1", "B=@2", "C=  padded  @3"}));
}

// Double quotes decode \n \r \t \" \\ and keep unknown escapes such as \$ verbatim.
TEST(DotEnv, DoubleQuoteEscapes) {
    const DotEnvFile f = parse_dotenv(R"(A="l1\nl2 \"q\" back\\slash \t\r \$x # not comment")");
    ASSERT_TRUE(f.ok());
    ASSERT_EQ(f.entries.size(), 1u);
    EXPECT_EQ(f.entries[0].value, "l1\nl2 \"q\" back\\slash \t\r \\$x # not comment");
}

// Empty values in all three spellings are valid and empty.
TEST(DotEnv, EmptyValues) {
    EXPECT_EQ(entries_of("A=\nB=\"\"\nC=''\nD=   \n"),
              (std::vector<std::string>{"A=@1", "B=@2", "C=@3", "D=@4"}));
}

// CRLF endings and a UTF-8 byte-order mark are tolerated; a last line without '\n' counts.
TEST(DotEnv, CrlfAndBom) {
    EXPECT_EQ(entries_of("\xEF\xBB\xBF" "A=1\r\nB=\"2\"\r\nC=3"),
              (std::vector<std::string>{"A=1@1", "B=2@2", "C=3@3"}));
}

// A repeated key appears twice in file order, so a consumer taking the last one gets "last wins".
TEST(DotEnv, RepeatedKeyKeepsOrder) {
    EXPECT_EQ(entries_of("A=1\nA=2\n"), (std::vector<std::string>{"A=1@1", "A=2@2"}));
}

// Malformed lines are reported with their line numbers and skipped; good lines still parse.
TEST(DotEnv, MalformedLinesReportedWithLineNumbers) {
    const DotEnvFile f = parse_dotenv(
        "GOOD=1\n"
        "no equals sign\n"
        "1BAD=x\n"
        "HAS SPACE=x\n"
        "Q=\"closed\" trailing\n"
        "=novalue\n"
        "ALSO_GOOD='y'\n");
    ASSERT_EQ(f.entries.size(), 2u);
    EXPECT_EQ(f.entries[0].key, "GOOD");
    EXPECT_EQ(f.entries[1].key, "ALSO_GOOD");
    EXPECT_EQ(f.entries[1].line, 7u);
    ASSERT_EQ(f.problems.size(), 5u);
    EXPECT_EQ(f.problems[0].line, 2u);
    EXPECT_EQ(f.problems[0].message, "expected KEY=VALUE, got \"no equals sign\"");
    EXPECT_EQ(f.problems[1].line, 3u);
    EXPECT_EQ(f.problems[1].message, "invalid key \"1BAD\" (use letters, digits and '_')");
    EXPECT_EQ(f.problems[2].line, 4u);
    EXPECT_EQ(f.problems[3].line, 5u);
    EXPECT_EQ(f.problems[3].message, "unexpected text after closing quote: \"trailing\"");
    EXPECT_EQ(f.problems[4].line, 6u);
}

// Unterminated quotes (single, double, and a trailing backslash before EOF) are errors, not hangs.
TEST(DotEnv, UnterminatedQuotes) {
    const DotEnvFile f = parse_dotenv("A='abc\nB=\"abc\nC=\"abc\\\"\nD=\"\\");
    EXPECT_TRUE(f.entries.empty());
    ASSERT_EQ(f.problems.size(), 4u);
    EXPECT_EQ(f.problems[0].message, "unterminated single quote");
    EXPECT_EQ(f.problems[1].message, "unterminated double quote");
    EXPECT_EQ(f.problems[2].message, "unterminated double quote");
    EXPECT_EQ(f.problems[3].line, 4u);
}

// A line with a NUL byte is rejected (an environment value cannot hold NUL).
TEST(DotEnv, NulByteRejected) {
    const DotEnvFile f = parse_dotenv(std::string_view("A=x\0y\nB=2\n", 10));
    ASSERT_EQ(f.problems.size(), 1u);
    EXPECT_EQ(f.problems[0].line, 1u);
    ASSERT_EQ(f.entries.size(), 1u);
    EXPECT_EQ(f.entries[0].key, "B");
}

// Hostile bytes in a bad line are escaped in the message, so it stays one printable line.
TEST(DotEnv, ProblemMessagesAreEscaped) {
    const DotEnvFile f = parse_dotenv("\x1b[31mred\r\x7f\xff\n");
    ASSERT_EQ(f.problems.size(), 1u);
    EXPECT_TRUE(printable_ascii(f.problems[0].message)) << f.problems[0].message;
    EXPECT_NE(f.problems[0].message.find("\\x1b"), std::string::npos);
}

// A single line close to 1 MiB parses; the value is kept whole.
TEST(DotEnv, HugeLineWithinLimit) {
    const std::string value(kDotEnvMaxBytes - 4, 'v');
    const DotEnvFile f = parse_dotenv("K=" + value + "\n");
    ASSERT_TRUE(f.ok());
    ASSERT_EQ(f.entries.size(), 1u);
    EXPECT_EQ(f.entries[0].value.size(), value.size());
}

// A huge unterminated quoted value is reported, without quadratic blow-up or a crash.
TEST(DotEnv, HugeUnterminatedQuote) {
    const DotEnvFile f = parse_dotenv("K=\"" + std::string(kDotEnvMaxBytes - 8, '\\'));
    ASSERT_EQ(f.problems.size(), 1u);
    EXPECT_EQ(f.problems[0].message, "unterminated double quote");
}

// One byte over 1 MiB rejects the whole file with a single line-0 problem and no entries.
TEST(DotEnv, FileSizeLimit) {
    std::string text = "A=1\n";
    text += std::string(kDotEnvMaxBytes + 1 - text.size(), '#');
    ASSERT_EQ(text.size(), kDotEnvMaxBytes + 1);
    const DotEnvFile f = parse_dotenv(text);
    EXPECT_TRUE(f.entries.empty());
    ASSERT_EQ(f.problems.size(), 1u);
    EXPECT_EQ(f.problems[0].line, 0u);
    EXPECT_EQ(f.problems[0].message, "file is larger than 1 MiB");
}

// Exactly kDotEnvMaxLines lines are fine; one more rejects the file.
TEST(DotEnv, LineCountLimit) {
    std::string ok;
    for (std::size_t i = 0; i < kDotEnvMaxLines; ++i) {
        ok += "A=1\n";
    }
    EXPECT_TRUE(parse_dotenv(ok).ok());
    EXPECT_EQ(parse_dotenv(ok).entries.size(), kDotEnvMaxLines);
    const DotEnvFile f = parse_dotenv(ok + "\n");
    EXPECT_TRUE(f.entries.empty());
    ASSERT_EQ(f.problems.size(), 1u);
    EXPECT_EQ(f.problems[0].line, 0u);
}

// Random binary junk and random mutations of valid text never crash and keep the invariants:
// valid keys, ascending in-range line numbers, printable problem messages.
TEST(DotEnv, BinaryJunkKeepsInvariants) {
    Xoshiro256 rng(20261122);
    static constexpr char kAlphabet[] = "AZ_az09=#'\"\\ \t\r\n\x00\xff\xc3\xa9" "export";
    const std::string alphabet(kAlphabet, sizeof kAlphabet - 1);
    for (int iter = 0; iter < 3000; ++iter) {
        std::string text;
        const auto len = rng.uniform(300);
        for (std::uint64_t i = 0; i < len; ++i) {
            text += rng.chance(0.5) ? static_cast<char>(rng.next_u64() & 0xff)
                                    : alphabet[rng.uniform(alphabet.size())];
        }
        const DotEnvFile f = parse_dotenv(text);
        std::size_t lines = 1;
        for (char c : text) {
            lines += c == '\n' ? 1 : 0;
        }
        std::size_t last = 0;
        for (const auto& e : f.entries) {
            ASSERT_FALSE(e.key.empty());
            ASSERT_TRUE(e.key[0] == '_' || std::isalpha(static_cast<unsigned char>(e.key[0])));
            ASSERT_EQ(e.value.find('\0'), std::string::npos);
            ASSERT_GT(e.line, last);
            ASSERT_LE(e.line, lines);
            last = e.line;
        }
        for (const auto& p : f.problems) {
            ASSERT_GE(p.line, 1u);
            ASSERT_LE(p.line, lines);
            ASSERT_TRUE(printable_ascii(p.message)) << p.message;
        }
    }
}

// read_small_file distinguishes a missing file, an oversized file and a good one.
TEST(DotEnv, ReadSmallFile) {
    const std::string dir = ::testing::TempDir();
    EXPECT_EQ(read_small_file(dir + "/hg_no_such_file_here", 100).error(), Errc::kNotFound);
    const std::string path = dir + "/hg_dotenv_read_test.env";
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fputs("A=1\nB=2\n", f);
    std::fclose(f);
    const auto whole = read_small_file(path, 8);
    ASSERT_TRUE(whole.ok());
    EXPECT_EQ(*whole, "A=1\nB=2\n");
    EXPECT_EQ(read_small_file(path, 7).error(), Errc::kTooLarge);
    std::remove(path.c_str());
}

}  // namespace
}  // namespace hopgate::core
