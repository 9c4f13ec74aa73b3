// kiln demo: a short tour of tensors on every available device.
#include <iostream>

#include "kiln/device_manager.h"
#include "kiln/ops.h"
#include "tools/commands.h"

namespace kiln::cli {

int cmd_demo(const Args&) {
  for (const Device& d : device_manager().devices()) {
    std::cout << "== " << d.str() << " ==\n";
    Tensor a = arange(6, TensorOptions(DType::Float32).device(d)).view({2, 3});
    Tensor b = tensor<float>({10, 20, 30}).to(d);
    std::cout << "a = " << a << "\nb = " << b << "\n";
    std::cout << "a + b (broadcast) = " << a + b << "\n";
    std::cout << "a.t() (a view, strides " << shape_str(a.t().strides()) << ") = " << a.t() << "\n";
    std::cout << "gelu(a - 2) = " << gelu(a - 2) << "\n";
  }
  return 0;
}

}  // namespace kiln::cli
