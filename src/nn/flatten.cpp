// Flatten: a view (or copy) that merges dims.
#include "kiln/nn/layers.h"
#include "src/nn/layer_utils.h"

namespace kiln::nn {

Tensor FlattenImpl::forward(const Tensor& x) { return x.flatten(start_dim, end_dim); }

std::string FlattenImpl::extra_repr() const { return detail::cat_str("start_dim=", start_dim, ", end_dim=", end_dim); }

}  // namespace kiln::nn
