// The thread's outermost OpNameScope: what kiln::Error messages are labelled with.
#include "kiln/error.h"

namespace kiln {

namespace {
thread_local const char* t_user_op = nullptr;
}  // namespace

OpNameScope::OpNameScope(const char* op) noexcept : owner_(t_user_op == nullptr) {
  if (owner_) t_user_op = op;
}

OpNameScope::~OpNameScope() {
  if (owner_) t_user_op = nullptr;
}

const char* detail::user_op_name() noexcept { return t_user_op; }

}  // namespace kiln
