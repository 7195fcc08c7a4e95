// avgrad::Error and the checks that raise it: every user-facing precondition
// names the op and the offending shapes/values, and stays on in Release builds.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace avgrad {

/// The one exception type avgrad throws for misuse and bad input.
/// what() reads "<op>: <reason>", e.g. "matmul: inner dims differ: (2,3) @ (4,5)".
class Error : public std::runtime_error {
 public:
  Error(std::string_view op, const std::string& reason)
      : std::runtime_error(std::string(op) + ": " + reason), op_(op) {}
  const std::string& op() const noexcept { return op_; }

 private:
  std::string op_;
};

namespace detail {
template <class... Args> std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

}  // namespace avgrad

/// AVGRAD_CHECK(cond, op, parts...): throws avgrad::Error(op, concat(parts...))
/// when cond is false. Never compiled out: bad input must not become UB.
#define AVGRAD_CHECK(cond, op, ...)                                       \
  do {                                                                    \
    if (!(cond)) [[unlikely]]                                             \
      throw ::avgrad::Error((op), ::avgrad::detail::concat(__VA_ARGS__)); \
  } while (0)
