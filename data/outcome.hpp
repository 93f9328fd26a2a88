// outcome<T>: either a value or a one-line error message.
//
// data/ and model/ know nothing of CAF, so they cannot return caf::expected; this is their
// error-as-value type. The message names the problem (and the file, where there is one) and
// is meant to be printed to the user as is. Not thread-safe (a plain value type).
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace psgd {

template <class T>
class outcome {
public:
  outcome(T value) : value_(std::move(value)) {}
  static outcome failure(std::string message) {
    outcome r;
    r.error_ = std::move(message);
    return r;
  }
  explicit operator bool() const { return value_.has_value(); }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  const std::string& error() const { return error_; }

private:
  outcome() = default;
  std::optional<T> value_;
  std::string error_;
};

} // namespace psgd
