#pragma once
// NumPy's .npy files (format versions 1-3): little-endian float16/32/64, int32/64 and
// bool arrays, C or Fortran order. Anything else is a kiln::Error naming the file.
#include <string>

#include "kiln/tensor.h"

namespace kiln {

Tensor load_npy(const std::string& path);
// The same from the bytes of a file; name is used in messages.
Tensor parse_npy(const std::string& bytes, const std::string& name = "<memory>");
// Writes t (any device, any layout) as a C-order version-1 file.
void save_npy(const std::string& path, const Tensor& t);

}  // namespace kiln
