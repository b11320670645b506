// hopgate-sim: runs one tunnel scenario on the simulated network and prints one JSON object.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "sim/scenario.hpp"

namespace {

void usage() {
    std::puts(
        "usage: hopgate-sim [options]\n"
        "Runs the tunnel protocol core over a simulated network and prints one JSON object:\n"
        "ok, sim_seconds, goodput_mbit, retransmitted_bytes, max_buffered_bytes, ...\n"
        "Exits 1 if any byte was lost, duplicated or corrupted, or the transfer did not finish.\n\n"
        "  --seed N          random seed (default 1); the same flags + seed replay exactly\n"
        "  --loss PCT        random loss percent per direction (default 0)\n"
        "  --burst PCT       Gilbert-Elliott bursty loss: chance to enter a burst (default 0)\n"
        "  --rtt-ms MS       round-trip time (default 20)\n"
        "  --jitter-ms MS    extra uniform one-way delay, reorders (default 0)\n"
        "  --dup PCT         duplication percent (default 0)\n"
        "  --corrupt PCT     flip one byte in this percent of datagrams (tests failure exit)\n"
        "  --rate-mbit N     link rate, 0 = unlimited (default 100)\n"
        "  --queue-pkts N    bottleneck queue in packets, 0 = unlimited (default 1000)\n"
        "  --streams N       concurrent streams (default 1)\n"
        "  --bytes N         bytes per stream each way; suffixes k, m, g (default 1m)\n"
        "  --no-echo         client sends only a response head (one-way transfer)\n"
        "  --mtu N           link MTU (datagrams above it vanish); enables PMTUD up to N\n"
        "  --cc NAME         bbr (default), cubic or newreno\n"
        "  --mode MODE       datagram (default) or stream (TLS/TCP-style records)\n"
        "  --slow-reader-kbps N   the client reads stream 0 at N kB/s\n"
        "  --deadline-s S    simulated-time limit (default 600)\n"
        "  --trace           print every simulator event to stderr");
}

std::uint64_t parse_size(const char* s) {
    char* end = nullptr;
    double v = std::strtod(s, &end);
    if (end && *end) {
        switch (*end) {
            case 'k': case 'K': v *= 1024; break;
            case 'm': case 'M': v *= 1024 * 1024; break;
            case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
            default: std::fprintf(stderr, "bad size: %s\n", s); std::exit(2);
        }
    }
    return static_cast<std::uint64_t>(v);
}

}  // namespace

int main(int argc, char** argv) {
    using namespace hopgate;
    sim::ScenarioConfig c;
    double rtt_ms = 20, jitter_ms = 0, rate_mbit = 100;
    std::size_t queue = 1000, mtu = 0;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> const char* {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--help" || a == "-h") {
            usage();
            return 0;
        } else if (a == "--seed") {
            c.seed = std::strtoull(next(), nullptr, 10);
        } else if (a == "--loss") {
            c.link.loss = std::atof(next()) / 100.0;
        } else if (a == "--burst") {
            c.link.burst_enter = std::atof(next()) / 100.0;
        } else if (a == "--rtt-ms") {
            rtt_ms = std::atof(next());
        } else if (a == "--jitter-ms") {
            jitter_ms = std::atof(next());
        } else if (a == "--dup") {
            c.link.dup = std::atof(next()) / 100.0;
        } else if (a == "--corrupt") {
            c.link.corrupt = std::atof(next()) / 100.0;
        } else if (a == "--rate-mbit") {
            rate_mbit = std::atof(next());
        } else if (a == "--queue-pkts") {
            queue = std::strtoull(next(), nullptr, 10);
        } else if (a == "--streams") {
            c.streams = std::strtoull(next(), nullptr, 10);
        } else if (a == "--bytes") {
            c.bytes = parse_size(next());
        } else if (a == "--no-echo") {
            c.echo = false;
        } else if (a == "--mtu") {
            mtu = std::strtoull(next(), nullptr, 10);
        } else if (a == "--cc") {
            if (!proto::parse_cc_algorithm(next(), c.cc)) {
                std::fprintf(stderr, "unknown --cc (bbr, cubic, newreno)\n");
                return 2;
            }
        } else if (a == "--mode") {
            std::string m = next();
            if (m == "datagram") {
                c.mode = proto::Mode::kDatagram;
            } else if (m == "stream") {
                c.mode = proto::Mode::kStream;
            } else {
                std::fprintf(stderr, "unknown --mode (datagram, stream)\n");
                return 2;
            }
        } else if (a == "--slow-reader-kbps") {
            c.slow_reader_bps = std::strtoull(next(), nullptr, 10) * 1000;
        } else if (a == "--deadline-s") {
            c.deadline = std::chrono::microseconds(static_cast<std::int64_t>(std::atof(next()) * 1e6));
        } else if (a == "--trace") {
            c.trace = true;
        } else {
            std::fprintf(stderr, "unknown option %s (see --help)\n", a.c_str());
            return 2;
        }
    }
    c.link.delay = std::chrono::microseconds(static_cast<std::int64_t>(rtt_ms * 500));
    c.link.jitter = std::chrono::microseconds(static_cast<std::int64_t>(jitter_ms * 1000));
    c.link.rate_bps = static_cast<std::uint64_t>(rate_mbit * 1e6);
    c.link.queue_packets = rate_mbit > 0 ? queue : 0;
    if (mtu > 0) {
        c.link.mtu = mtu;
        c.max_packet_size = mtu;
    }
    if (c.streams == 0) {
        std::fprintf(stderr, "--streams must be positive\n");
        return 2;
    }
    const auto r = sim::run_scenario(c);
    std::printf("%s\n", r.to_json().c_str());
    return r.ok ? 0 : 1;
}
