// MemoryRegistry: the registry in a std::map behind a mutex. For tests, fuzzing and demos; it
// passes the same typed contract suite as the database implementations. Nothing is persisted.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "registry/registry.hpp"

namespace hopgate::registry {

class MemoryRegistry final : public Registry {
  public:
    core::Result<Registration> register_domain(std::string_view domain,
                                               std::string_view memo) override;
    core::Status unregister_domain(std::string_view domain,
                                   std::optional<std::string_view> key) override;
    core::Result<bool> exists(std::string_view domain) override;
    core::Result<DomainRecord> status(std::string_view domain) override;
    core::Result<Page> list(const ListQuery& query) override;
    core::Result<std::string> rotate_key(std::string_view domain) override;
    core::Status validate(std::string_view domain, std::string_view key) override;

  private:
    struct Row {
        DomainRecord record;
        std::string key_hash;
    };
    std::mutex mu_;
    std::map<std::string, Row, std::less<>> rows_;  // byte order, like the databases
};

}  // namespace hopgate::registry
