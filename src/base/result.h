// The one error model of Fulcrum: Result<T> carries a value or an Error.
// An Error says where it came from (source), whether trying again elsewhere can help (retryable),
// an errno-style code when the OS gave one, a human message, and for configuration errors the
// field path that is wrong ("loadbalancers[0].listeners[1].port").
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace fulcrum::base {

enum class ErrorSource : unsigned char { kDownstream, kUpstream, kInternal, kConfig };

struct Error {
  ErrorSource source = ErrorSource::kInternal;
  bool retryable = false;
  int sys_errno = 0;    // 0 when the error did not come from a system call
  std::string message;  // never holds a secret
  std::string field;    // field path for configuration errors, else empty

  static Error config(std::string field_path, std::string msg) {
    return Error{ErrorSource::kConfig, false, 0, std::move(msg), std::move(field_path)};
  }
  static Error internal(std::string msg) {
    return Error{ErrorSource::kInternal, false, 0, std::move(msg), {}};
  }
  static Error system(int err, std::string msg) {
    return Error{ErrorSource::kInternal, false, err, std::move(msg), {}};
  }
  // "field: message" for configuration errors, "message" otherwise.
  std::string to_string() const { return field.empty() ? message : field + ": " + message; }
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

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
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }
  Error&& take_error() {
    assert(!ok());
    return std::get<1>(std::move(v_));
  }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error)
      : err_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return err_;
  }
  Error&& take_error() {
    assert(!ok_);
    return std::move(err_);
  }

 private:
  Error err_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace fulcrum::base
