#pragma once
// kiln::Error: the one exception type kiln throws. Messages start with the op's
// name in brackets ("[matmul] ...") and name the shapes, dtypes and devices at fault.
#include <sstream>
#include <stdexcept>
#include <string>

namespace kiln {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <typename... Args>
[[noreturn]] void throw_error(const char* op, const Args&... args) {
  std::ostringstream os;
  os << '[' << op << "] ";
  (os << ... << args);
  throw Error(os.str());
}
}  // namespace detail

}  // namespace kiln

// KILN_CHECK(cond, "op", "message parts", ...): throws kiln::Error when cond is false.
#define KILN_CHECK(cond, op, ...)                         \
  do {                                                    \
    if (!(cond)) ::kiln::detail::throw_error(op, __VA_ARGS__); \
  } while (0)

#define KILN_FAIL(op, ...) ::kiln::detail::throw_error(op, __VA_ARGS__)
