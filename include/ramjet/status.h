// Status and Result<T>: the only way errors cross ramjet's public API (no exceptions).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <variant>

namespace ramjet {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // the caller passed something wrong (flag, shape, dtype)
  kInvalidModel,     // a model file is malformed or uses something unsupported
  kInvalidPlan,      // a plan file is malformed, corrupted or built for another target
  kNotFound,         // a named file, tensor or input does not exist
  kUnsupported,      // valid input that ramjet cannot handle (yet)
  kIoError,          // the operating system refused a read or write
  kOutOfMemory,
  kDeviceError,      // CUDA / cuDNN / cuBLAS failure
  kInternal,         // a bug in ramjet
};

const char* statusCodeName(StatusCode c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string toString() const;

  // Prefixes the message with context ("while importing node 'conv1': ...").
  Status withContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Builds a message from streamable parts: errorf(kInvalidModel, "node '", name, "' has ", n, " inputs").
template <typename... Args>
Status makeError(StatusCode code, Args&&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return Status(code, os.str());
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) {
      std::fprintf(stderr, "ramjet: Result constructed from an OK status (%s:%d)\n", __FILE__,
                   __LINE__);
      std::abort();
    }
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Result*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T& operator*() & { return checked(); }
  const T& operator*() const& { return const_cast<Result*>(this)->checked(); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &const_cast<Result*>(this)->checked(); }

 private:
  T& checked() {
    if (!ok()) {
      std::fprintf(stderr, "ramjet: value() on an error Result: %s\n",
                   std::get<Status>(v_).toString().c_str());
      std::abort();
    }
    return std::get<T>(v_);
  }
  std::variant<T, Status> v_;
};

}  // namespace ramjet

#define RJ_CONCAT_INNER(a, b) a##b
#define RJ_CONCAT(a, b) RJ_CONCAT_INNER(a, b)

// Propagates a non-OK Status from an expression returning Status.
#define RJ_RETURN_IF_ERROR(expr)                  \
  do {                                            \
    ::ramjet::Status rj_status_ = (expr);         \
    if (!rj_status_.ok()) return rj_status_;      \
  } while (0)

// `RJ_ASSIGN_OR_RETURN(auto x, f());` binds the value of a Result or returns its error.
#define RJ_ASSIGN_OR_RETURN(lhs, expr) \
  RJ_ASSIGN_OR_RETURN_IMPL(RJ_CONCAT(rj_result_, __LINE__), lhs, expr)
#define RJ_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

// Invariants that only a bug can break: abort with file and line.
#define RJ_CHECK(cond)                                                                   \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "ramjet: internal check failed: %s (%s:%d)\n", #cond, __FILE__, \
                   __LINE__);                                                            \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
