// A registry fake for handler tests: MemoryRegistry (which passes the Registry contract suite)
// plus failure injection and call counting.
#pragma once

#include <atomic>
#include <system_error>

#include "registry/memory_registry.hpp"

namespace hopgate::admin::testing {

class FakeRegistry final : public registry::Registry {
  public:
    // When set, every call fails with this error (e.g. kDbUnavailable for an outage).
    std::error_code fail_with;
    std::atomic<int> calls{0};

    core::Result<registry::Registration> register_domain(std::string_view d,
                                                         std::string_view m) override {
        ++calls;
        if (fail_with) {
            return fail_with;
        }
        return mem_.register_domain(d, m);
    }
    core::Status unregister_domain(std::string_view d, std::optional<std::string_view> k) override {
        ++calls;
        if (fail_with) {
            return fail_with;
        }
        return mem_.unregister_domain(d, k);
    }
    core::Result<bool> exists(std::string_view d) override {
        ++calls;
        if (fail_with) {
            return fail_with;
        }
        return mem_.exists(d);
    }
    core::Result<registry::DomainRecord> status(std::string_view d) override {
        ++calls;
        if (fail_with) {
            return fail_with;
        }
        return mem_.status(d);
    }
    core::Result<registry::Page> list(const registry::ListQuery& q) override {
        ++calls;
        if (fail_with) {
            return fail_with;
        }
        return mem_.list(q);
    }
    core::Result<std::string> rotate_key(std::string_view d) override {
        ++calls;
        if (fail_with) {
            return fail_with;
        }
        return mem_.rotate_key(d);
    }
    core::Status validate(std::string_view d, std::string_view k) override {
        ++calls;
        if (fail_with) {
            return fail_with;
        }
        return mem_.validate(d, k);
    }

  private:
    registry::MemoryRegistry mem_;
};

}  // namespace hopgate::admin::testing
