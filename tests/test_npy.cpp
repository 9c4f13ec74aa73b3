// .npy reading and writing: round trips against the bytes numpy writes, Fortran order,
// and malformed files as kiln::Error.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "kiln/io/npy.h"
#include "kiln/ops.h"
#include "tests/support/expect_error.h"

namespace kiln {
namespace {

// A version-1 file as numpy writes it: magic, version, header length, padded header.
std::string npy_bytes(const std::string& dict, const std::string& data) {
  std::string header = dict;
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += char(header.size() & 0xff);
  out += char(header.size() >> 8);
  return out + header + data;
}

std::string raw(const std::vector<float>& v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4); }

TEST(Npy, ReadsCAndFortranOrder) {
  const std::vector<float> v{1, 2, 3, 4, 5, 6};
  const Tensor c = parse_npy(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", raw(v)));
  EXPECT_EQ(c.shape(), (Shape{2, 3}));
  EXPECT_EQ(c.to_vector<float>(), v);
  // Fortran order: column-major, so element [i][j] is v[j * 2 + i].
  const Tensor f = parse_npy(npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", raw(v)));
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{1, 3, 5, 2, 4, 6}));
}

TEST(Npy, RoundTripsEveryNumpyDtype) {
  const std::string path = ::testing::TempDir() + "kiln_npy_roundtrip.npy";
  for (DType t : {DType::Float32, DType::Float64, DType::Float16, DType::Int32, DType::Int64, DType::Bool}) {
    for (const Shape& s : {Shape{}, Shape{5}, Shape{2, 3, 4}}) {
      const Tensor x = arange(numel_of(s), DType::Float64).reshape(s).to(t);
      save_npy(path, x);
      const Tensor y = load_npy(path);
      EXPECT_EQ(y.dtype(), t);
      EXPECT_EQ(y.shape(), s);
      EXPECT_EQ(y.to_vector<double>(), x.to_vector<double>()) << dtype_name(t);
    }
  }
  std::remove(path.c_str());
}

TEST(Npy, MalformedFilesAreErrors) {
  const std::vector<float> v{1, 2, 3, 4};
  const std::string good = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", raw(v));
  for (size_t len = 0; len < good.size(); ++len) {
    testing::expect_error([&] { parse_npy(good.substr(0, len)); }, "npy");
  }
  testing::expect_error([&] { parse_npy(npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", raw(v))); },
                        "npy", "not supported");
  testing::expect_error(
      [&] { parse_npy(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", raw(v))); },
      "npy");
  testing::expect_error([&] { parse_npy(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }", raw(v))); },
                        "npy", "bad dim");
  testing::expect_error([&] { save_npy("/nonexistent/dir/x.npy", zeros({2})); }, "npy", "cannot write");
}

}  // namespace
}  // namespace kiln
