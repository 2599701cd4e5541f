#pragma once
// Result<T, E>: a value or a named error, shaped like C++23 std::expected (which g++ 12 and
// clang 14 do not ship in C++20 mode). Guest faults are values of E, not exceptions.

#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

namespace vmmu {

template <class E>
struct Unexpected {
  // A constructor rather than an aggregate: clang 14 lacks parenthesised aggregate init.
  constexpr explicit Unexpected(E e) : error(std::move(e)) {}
  E error;
};
template <class E>
Unexpected(E) -> Unexpected<E>;

template <class T, class E>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  template <class G>
    requires std::is_convertible_v<G, E>
  Result(Unexpected<G> u) : v_(std::in_place_index<1>, E(std::move(u.error))) {}  // NOLINT

  [[nodiscard]] bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    assert(has_value());
    return *std::get_if<0>(&v_);
  }
  const T& value() const& {
    assert(has_value());
    return *std::get_if<0>(&v_);
  }
  T&& value() && {
    assert(has_value());
    return std::move(*std::get_if<0>(&v_));
  }
  const E& error() const& {
    assert(!has_value());
    return *std::get_if<1>(&v_);
  }
  E& error() & {
    assert(!has_value());
    return *std::get_if<1>(&v_);
  }

  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, E> v_;
};

// Result of an operation that yields nothing but may fail.
template <class E>
class [[nodiscard]] Status {
 public:
  Status() = default;
  template <class G>
    requires std::is_convertible_v<G, E>
  Status(Unexpected<G> u) : error_(E(std::move(u.error))), failed_(true) {}  // NOLINT

  [[nodiscard]] bool has_value() const { return !failed_; }
  explicit operator bool() const { return !failed_; }
  const E& error() const {
    assert(failed_);
    return error_;
  }

 private:
  E error_{};
  bool failed_ = false;
};

}  // namespace vmmu
