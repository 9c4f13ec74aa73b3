// IDX files (http://yann.lecun.com/exdb/mnist/): a 4-byte magic number 0x00 0x00
// <type> <ndims>, ndims big-endian u32 dims, then the data. Read through zlib's gz*
// functions, which also read uncompressed files.
#include "kiln/data/fashion_mnist.h"

#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

namespace kiln::data {

namespace {

constexpr const char* kOp = "fashion_mnist";
constexpr const char* kHint = "install the Debian package dataset-fashion-mnist, or point KILN_FASHION_MNIST_DIR at "
                              "a folder with the four *-ubyte.gz files";
constexpr const char* kDefaultDir = "/usr/share/datasets/fashion-mnist";
constexpr uint64_t kMaxBytes = uint64_t(1) << 32;

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<std::remove_pointer_t<gzFile>, GzCloser>;

// Reads exactly n bytes; false on a short read.
bool read_exact(gzFile f, const std::string& path, void* dst, uint64_t n) {
  auto* p = static_cast<uint8_t*>(dst);
  while (n > 0) {
    const unsigned chunk = unsigned(std::min<uint64_t>(n, 1u << 30));
    const int got = gzread(f, p, chunk);
    if (got < 0) {
      int code = 0;
      const char* msg = gzerror(f, &code);
      KILN_FAIL(kOp, path, ": corrupt gzip data (", msg ? msg : "unknown zlib error", "); ", kHint);
    }
    if (got == 0) return false;
    p += got;
    n -= uint64_t(got);
  }
  return true;
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  KILN_CHECK(std::filesystem::is_regular_file(path), kOp, path, ": file not found; ", kHint);
  GzFile f(gzopen(path.c_str(), "rb"));
  KILN_CHECK(f != nullptr, kOp, path, ": cannot open; ", kHint);
  uint8_t magic[4];
  KILN_CHECK(read_exact(f.get(), path, magic, 4), kOp, path, ": truncated before the IDX magic number; ", kHint);
  KILN_CHECK(magic[0] == 0 && magic[1] == 0, kOp, path, ": not an IDX file (bad magic number); ", kHint);
  KILN_CHECK(magic[2] == 0x08, kOp, path, ": IDX element type 0x", std::hex, int(magic[2]),
             " is not unsigned byte (0x08); ", kHint);
  KILN_CHECK(magic[3] >= 1 && magic[3] <= 4, kOp, path, ": IDX file with ", int(magic[3]), " dims; ", kHint);
  IdxArray out;
  uint64_t total = 1;
  for (int d = 0; d < magic[3]; ++d) {
    uint8_t b[4];
    KILN_CHECK(read_exact(f.get(), path, b, 4), kOp, path, ": truncated in the IDX dims; ", kHint);
    const uint64_t n = (uint64_t(b[0]) << 24) | (uint64_t(b[1]) << 16) | (uint64_t(b[2]) << 8) | b[3];
    total *= n;  // each factor < 2^32 and total <= 2^32 so far: no overflow
    KILN_CHECK(total <= kMaxBytes, kOp, path, ": IDX dims describe more than 4 GiB; ", kHint);
    out.dims.push_back(int64_t(n));
  }
  // The dims are a promise the data may not keep: memory grows with what actually
  // arrives (in chunks), so a short header claiming gigabytes fails at once.
  constexpr uint64_t kChunk = uint64_t(1) << 20;
  while (out.data.size() < total) {
    const uint64_t have = out.data.size(), want = std::min(kChunk, total - have);
    out.data.resize(have + want);
    KILN_CHECK(read_exact(f.get(), path, out.data.data() + have, want), kOp, path, ": truncated: the dims promise ",
               total, " bytes of data; ", kHint);
  }
  uint8_t extra;
  KILN_CHECK(!read_exact(f.get(), path, &extra, 1), kOp, path, ": data continues past the ", total,
             " bytes its dims describe; ", kHint);
  return out;
}

std::string fashion_mnist_dir(const std::string& dir) {
  if (!dir.empty()) return dir;
  if (const char* env = std::getenv("KILN_FASHION_MNIST_DIR"); env && *env) return env;
  return kDefaultDir;
}

FashionMnist load_fashion_mnist(bool train, const std::string& dir_hint, int64_t limit) {
  const std::filesystem::path dir = fashion_mnist_dir(dir_hint);
  const std::string prefix = train ? "train" : "t10k";
  const std::string images_path = (dir / (prefix + "-images-idx3-ubyte.gz")).string();
  const std::string labels_path = (dir / (prefix + "-labels-idx1-ubyte.gz")).string();
  const IdxArray images = read_idx(images_path);
  const IdxArray labels = read_idx(labels_path);
  KILN_CHECK(images.dims.size() == 3 && images.dims[1] == 28 && images.dims[2] == 28, kOp, images_path,
             ": expected images of shape [N, 28, 28], got ", shape_str(images.dims), "; ", kHint);
  KILN_CHECK(labels.dims.size() == 1, kOp, labels_path, ": expected labels of shape [N], got ",
             shape_str(labels.dims), "; ", kHint);
  KILN_CHECK(images.dims[0] == labels.dims[0], kOp, images_path, " holds ", images.dims[0], " images but ",
             labels_path, " holds ", labels.dims[0], " labels; ", kHint);
  for (size_t i = 0; i < labels.data.size(); ++i)
    KILN_CHECK(labels.data[i] < 10, kOp, labels_path, ": label ", int(labels.data[i]), " at index ", i,
               " is not a class 0..9; ", kHint);
  int64_t n = images.dims[0];
  if (limit >= 0) n = std::min(n, limit);
  FashionMnist out;
  out.images = empty({n, 1, 28, 28}, TensorOptions(DType::Float32).device(kCpu));
  out.labels = empty({n}, TensorOptions(DType::Int64).device(kCpu));
  float* img = out.images.data<float>();
  for (int64_t i = 0; i < n * 28 * 28; ++i) img[i] = float(images.data[size_t(i)]) / 255.0f;
  int64_t* lab = out.labels.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) lab[i] = labels.data[size_t(i)];
  return out;
}

const std::array<const char*, 10>& fashion_mnist_classes() {
  static const std::array<const char*, 10> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

}  // namespace kiln::data
