// An in-memory Relay for tests and fuzzing of the control protocol.
#pragma once

#include <stdexcept>
#include <string>

#include "impair/relay.hpp"

namespace hopgate::impair {

class FakeRelay final : public Relay {
  public:
    std::string_view mode() const override { return tcp ? "tcp" : "udp"; }
    void set_cut(bool c) override { cut_ = c; }
    bool cut() const override { return cut_; }
    long rebind() override { return tcp ? -1 : 3; }
    LinkParams params(Direction d) const override { return p[static_cast<int>(d)]; }
    void set_params(Direction d, const LinkParams& x) override {
        if (!x.validate().empty()) {
            throw std::invalid_argument(x.validate());
        }
        p[static_cast<int>(d)] = x;
    }
    bool supports(std::string_view n) const override { return !tcp || n == "delay-ms"; }
    std::string stats_json() const override { return "{}"; }
    void stop() override {}

    bool tcp = false;
    bool cut_ = false;
    LinkParams p[2];
};

}  // namespace hopgate::impair
