// .npy reading and writing: a magic string, a version, a Python-dict header giving
// dtype, order and shape, then the raw elements. The header is parsed strictly and the
// data size checked against the shape before anything is allocated.
#include "kiln/io/npy.h"

#include <cstring>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>

#include "kiln/ops.h"

namespace kiln {

namespace {

constexpr const char* kOp = "npy";

DType dtype_from_descr(const std::string& d, const std::string& name) {
  if (d == "<f4") return DType::Float32;
  if (d == "<f8") return DType::Float64;
  if (d == "<f2") return DType::Float16;
  if (d == "<i4") return DType::Int32;
  if (d == "<i8") return DType::Int64;
  if (d == "|b1") return DType::Bool;
  KILN_FAIL(kOp, name, ": dtype '", d, "' is not supported (float16/32/64, int32/64, bool, little-endian)");
}

const char* descr_of(DType t) {
  switch (t) {
    case DType::Float32: return "<f4";
    case DType::Float64: return "<f8";
    case DType::Float16: return "<f2";
    case DType::Int32: return "<i4";
    case DType::Int64: return "<i8";
    case DType::Bool: return "|b1";
    case DType::BFloat16: break;
  }
  return nullptr;
}

}  // namespace

Tensor parse_npy(const std::string& bytes, const std::string& name) {
  KILN_CHECK(bytes.size() >= 10 && bytes.compare(0, 6, "\x93NUMPY") == 0, kOp, name, ": not a .npy file");
  const int major = static_cast<unsigned char>(bytes[6]);
  KILN_CHECK(major >= 1 && major <= 3, kOp, name, ": unknown .npy version ", major);
  size_t header_len = 0, pos = 0;
  if (major == 1) {
    header_len = size_t(static_cast<unsigned char>(bytes[8])) | size_t(static_cast<unsigned char>(bytes[9])) << 8;
    pos = 10;
  } else {
    KILN_CHECK(bytes.size() >= 12, kOp, name, ": truncated header");
    for (int i = 0; i < 4; ++i) header_len |= size_t(static_cast<unsigned char>(bytes[size_t(8 + i)])) << (8 * i);
    pos = 12;
  }
  KILN_CHECK(header_len <= bytes.size() - pos, kOp, name, ": truncated header");
  const std::string header = bytes.substr(pos, header_len);
  pos += header_len;

  std::smatch m;
  KILN_CHECK(std::regex_search(header, m, std::regex("'descr'\\s*:\\s*'([^']*)'")), kOp, name, ": header has no descr");
  const DType dtype = dtype_from_descr(m[1].str(), name);
  KILN_CHECK(std::regex_search(header, m, std::regex("'fortran_order'\\s*:\\s*(True|False)")), kOp, name,
             ": header has no fortran_order");
  const bool fortran = m[1].str() == "True";
  KILN_CHECK(std::regex_search(header, m, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)")), kOp, name,
             ": header has no shape");
  Shape shape;
  std::stringstream dims(m[1].str());
  std::string item;
  int64_t numel = 1;
  while (std::getline(dims, item, ',')) {
    const auto first = item.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    const auto last = item.find_last_not_of(" \t");
    const std::string digits = item.substr(first, last - first + 1);
    KILN_CHECK(!digits.empty() && digits.size() <= 18 && digits.find_first_not_of("0123456789") == std::string::npos,
               kOp, name, ": bad dim '", digits, "' in shape");
    const int64_t d = std::stoll(digits);
    KILN_CHECK(d == 0 || numel <= std::numeric_limits<int64_t>::max() / d, kOp, name, ": shape too large");
    numel *= d;
    shape.push_back(d);
  }
  const size_t esize = element_size(dtype);
  const size_t have = bytes.size() - pos;
  KILN_CHECK(size_t(numel) <= have / esize && have == size_t(numel) * esize, kOp, name, ": shape ", shape_str(shape),
             " of ", dtype_name(dtype), " needs ", numel, " elements, the file holds ", have, " bytes of data");
  Shape stored = shape;
  if (fortran) std::reverse(stored.begin(), stored.end());
  Tensor t = empty(stored, dtype);
  if (numel > 0) std::memcpy(t.data_ptr(), bytes.data() + pos, have);
  if (dtype == DType::Bool) {
    auto* b = static_cast<uint8_t*>(t.data_ptr());
    for (int64_t i = 0; i < numel; ++i) b[i] = b[i] != 0;
  }
  if (!fortran) return t;
  std::vector<int64_t> perm(shape.size());
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = int64_t(perm.size() - 1 - i);
  return t.permute(perm).contiguous();
}

Tensor load_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  KILN_CHECK(f.good(), kOp, "cannot open '", path, "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse_npy(ss.str(), path);
}

void save_npy(const std::string& path, const Tensor& t) {
  const Tensor c = t.detach().to(kCpu).contiguous();
  const char* descr = descr_of(c.dtype());
  KILN_CHECK(descr != nullptr, kOp, "cannot write ", dtype_name(c.dtype()), " to .npy (numpy has no bfloat16)");
  // numpy's tuple syntax: (), (3,), (2, 3)
  std::string shape = "(";
  for (int64_t i = 0; i < c.dim(); ++i) shape += (i ? ", " : "") + std::to_string(c.size(i));
  shape += c.dim() == 1 ? ",)" : ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  KILN_CHECK(f.good(), kOp, "cannot write '", path, "'");
  f.write("\x93NUMPY\x01\x00", 8);
  const char len[2] = {char(header.size() & 0xff), char(header.size() >> 8)};
  f.write(len, 2);
  f << header;
  f.write(static_cast<const char*>(c.data_ptr()), std::streamsize(c.nbytes()));
  KILN_CHECK(f.good(), kOp, "cannot write '", path, "'");
}

}  // namespace kiln
