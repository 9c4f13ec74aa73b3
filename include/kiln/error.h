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

// Names errors after the op the user called. A public front end that calls other ops (a
// factory calling empty, an in-place op calling the dispatcher, Tensor::at calling select)
// opens one; while it is open, every kiln::Error raised on this thread (by nested ops,
// size checks, allocators) is labelled with its name. The outermost scope wins.
class OpNameScope {
 public:
  explicit OpNameScope(const char* op) noexcept;
  ~OpNameScope();
  OpNameScope(const OpNameScope&) = delete;
  OpNameScope& operator=(const OpNameScope&) = delete;

 private:
  bool owner_;
};

namespace detail {
// The name of this thread's outermost OpNameScope, or null when none is open.
const char* user_op_name() noexcept;

template <typename... Args>
[[noreturn]] void throw_error(const char* op, const Args&... args) {
  std::ostringstream os;
  const char* user_op = user_op_name();
  os << '[' << (user_op ? user_op : op) << "] ";
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
