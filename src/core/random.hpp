// Random numbers behind an interface, so simulations are seeded and replayable.
#pragma once

#include <cstdint>

namespace hopgate::core {

class Random {
public:
    virtual ~Random() = default;
    virtual std::uint64_t next_u64() = 0;

    // Uniform in [0, bound); bound > 0.
    std::uint64_t uniform(std::uint64_t bound);
    // Uniform in [0, 1).
    double unit();
    // True with probability p (0..1).
    bool chance(double p) { return unit() < p; }
};

// xoshiro256** seeded through splitmix64: fast, deterministic, good statistical quality.
// Not cryptographic; never used for keys or cookies.
class Xoshiro256 final : public Random {
public:
    explicit Xoshiro256(std::uint64_t seed);
    std::uint64_t next_u64() override;

private:
    std::uint64_t s_[4];
};

}  // namespace hopgate::core
