#pragma once
// Fashion-MNIST (Xiao et al. 2017) from the gzip-compressed IDX files of Debian's
// dataset-fashion-mnist package. The data is never copied into the repository.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::data {

// An IDX file of unsigned bytes (type 0x08): its dims and its data, row-major.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};
// Reads a gzip-compressed (or plain) IDX file, validating magic number, dims and size;
// kiln::Error naming the file otherwise.
IdxArray read_idx(const std::string& path);

// Where the files are: `dir` if given, else $KILN_FASHION_MNIST_DIR, else the package's
// /usr/share/datasets/fashion-mnist.
std::string fashion_mnist_dir(const std::string& dir = "");

struct FashionMnist {
  Tensor images;  // float32 [N, 1, 28, 28], scaled to [0, 1]
  Tensor labels;  // int64 [N], 0..9
};
// The training (60000) or test (10000) split; `limit` >= 0 keeps only the first examples.
// A missing or corrupt file is a kiln::Error naming it and the package to install.
FashionMnist load_fashion_mnist(bool train, const std::string& dir = "", int64_t limit = -1);

// "T-shirt/top", "Trouser", ... indexed by label.
const std::array<const char*, 10>& fashion_mnist_classes();

}  // namespace kiln::data
