#include "core/random.hpp"

#include <chrono>

#include "core/time.hpp"

namespace hopgate::core {

std::uint64_t Random::uniform(std::uint64_t bound) {
    // Lemire's multiply-shift: unbiased enough for simulation (bias < 2^-64 * bound).
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next_u64()) * bound) >> 64);
}

double Random::unit() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

namespace {
std::uint64_t splitmix64(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Xoshiro256::Xoshiro256(std::uint64_t seed) {
    for (auto& s : s_) {
        s = splitmix64(seed);
    }
}

std::uint64_t Xoshiro256::next_u64() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
}

Instant steady_now() {
    auto d = std::chrono::steady_clock::now().time_since_epoch();
    return Instant(std::chrono::duration_cast<Duration>(d));
}

}  // namespace hopgate::core
