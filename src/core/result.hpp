// Result<T>: a value or a std::error_code, for expected failures on the data path.
//
// Deliberately small (C++20 has no std::expected). Errors of each layer are an `enum class`
// registered as a std::error_code enum, so `Result<T>` interoperates with
// boost::system::error_code in the I/O layers.
#pragma once

#include <cassert>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace hopgate::core {

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
    Result(std::error_code ec) : v_(std::in_place_index<1>, ec) {      // NOLINT
        assert(ec && "a Result error must be a real error");
    }
    template <class E, class = std::enable_if_t<std::is_error_code_enum_v<E>>>
    Result(E e) : Result(std::error_code(make_error_code(e))) {}  // NOLINT

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & {
        assert(ok());
        return std::get<0>(v_);
    }
    const T& value() const& {
        assert(ok());
        return std::get<0>(v_);
    }
    T&& value() && {
        assert(ok());
        return std::get<0>(std::move(v_));
    }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    std::error_code error() const { return ok() ? std::error_code{} : std::get<1>(v_); }

private:
    std::variant<T, std::error_code> v_;
};

// Result<void> equivalent.
class [[nodiscard]] Status {
public:
    Status() = default;
    Status(std::error_code ec) : ec_(ec) {}  // NOLINT
    template <class E, class = std::enable_if_t<std::is_error_code_enum_v<E>>>
    Status(E e) : ec_(make_error_code(e)) {}  // NOLINT
    bool ok() const { return !ec_; }
    explicit operator bool() const { return ok(); }
    std::error_code error() const { return ec_; }

private:
    std::error_code ec_;
};

}  // namespace hopgate::core
