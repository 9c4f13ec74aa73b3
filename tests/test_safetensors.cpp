// safetensors: round trips of every dtype, a reference file whose bytes are written here
// from the format's definition, and every malformed-file error leaving targets unchanged.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "kiln/io/safetensors.h"
#include "kiln/ops.h"

using namespace kiln;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("kiln_test_st_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((v >> (8 * i)) & 0xff);
  return s;
}

// A file as the format defines it: u64 LE header length, the header, the data.
std::string make_file(std::string header, const std::string& data, bool pad = true) {
  if (pad) header.append((8 - header.size() % 8) % 8, ' ');
  return le64(header.size()) + header + data;
}

template <typename T> std::string raw(std::initializer_list<T> values) {
  std::string s;
  for (T v : values) s.append(reinterpret_cast<const char*>(&v), sizeof(T));
  return s;
}

void expect_error(const std::string& path, const std::string& needle) {
  try {
    (void)load_safetensors(path);
    FAIL() << "expected kiln::Error mentioning '" << needle << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[safetensors]"), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

class SafetensorsFiles : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const auto& p : paths_) std::remove(p.c_str());
  }
  std::string path(const std::string& name) {
    paths_.push_back(temp_path(name));
    return paths_.back();
  }
  std::vector<std::string> paths_;
};

}  // namespace

TEST_F(SafetensorsFiles, RoundTripEveryDTypeIncludingNonContiguous) {
  const DType all[] = {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16,
                       DType::Int32,   DType::Int64,   DType::Bool};
  TensorMap tensors;
  for (DType t : all) {
    // Values exactly representable in every dtype; the transposed view is non-contiguous.
    Tensor base = (arange(12, DType::Float64) - 5).view({3, 4});
    tensors[std::string(dtype_name(t)) + ".t"] = base.to(t).t();
    tensors[std::string(dtype_name(t)) + ".scalar"] = full({}, 3, t);
  }
  tensors["empty"] = zeros({0, 5});
  const std::string p = path("roundtrip.safetensors");
  save_safetensors(p, tensors, {{"format", "pt"}});
  const auto back = load_safetensors_file(p);
  EXPECT_EQ(back.metadata.at("format"), "pt");
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    const Tensor& b = back.tensors.at(name);
    EXPECT_EQ(b.dtype(), t.dtype()) << name;
    EXPECT_EQ(b.shape(), t.shape()) << name;
    EXPECT_TRUE(b.is_contiguous()) << name;
    EXPECT_EQ(b.to_vector<double>(), t.to_vector<double>()) << name;
  }
}

TEST_F(SafetensorsFiles, WrittenFileFollowsTheFormat) {
  TensorMap tensors{{"w", ones({2, 3}, DType::Float32)},
                    {"d", zeros({3}, DType::Float64)},
                    {"h", ones({1}, DType::Float16)},
                    {"flag", ones({3}, DType::Bool)}};
  const std::string bytes = serialize_safetensors(tensors, {{"k", "v"}});
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
  ASSERT_LE(8 + n, bytes.size());
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_EQ(header.find_last_not_of(' '), header.find_last_of('}'));  // padded with spaces only
  const auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j["__metadata__"]["k"], "v");
  EXPECT_EQ(j["w"]["dtype"], "F32");
  EXPECT_EQ(j["d"]["dtype"], "F64");
  EXPECT_EQ(j["h"]["dtype"], "F16");
  EXPECT_EQ(j["flag"]["dtype"], "BOOL");
  EXPECT_EQ(j["w"]["shape"], nlohmann::json::array({2, 3}));
  // Offsets tile the data exactly, each aligned to its element size.
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  const std::map<std::string, uint64_t> esize{{"w", 4}, {"d", 8}, {"h", 2}, {"flag", 1}};
  for (const auto& [name, size] : esize) {
    const uint64_t b = j[name]["data_offsets"][0], e = j[name]["data_offsets"][1];
    EXPECT_EQ(b % size, 0u) << name;
    spans.emplace_back(b, e);
  }
  std::sort(spans.begin(), spans.end());
  uint64_t at = 0;
  for (const auto& [b, e] : spans) {
    EXPECT_EQ(b, at);
    at = e;
  }
  EXPECT_EQ(at, bytes.size() - 8 - n);
  EXPECT_EQ(at, 2u * 3 * 4 + 3 * 8 + 2 + 3);
}

TEST_F(SafetensorsFiles, HandWrittenReferenceFileLoadsToTheRightValues) {
  // float32 1.5 = 0x3FC00000, -2 = 0xC0000000; float16 1.0 = 0x3C00, -0.5 = 0xB800;
  // bfloat16 1.0 = 0x3F80, 3.0 = 0x4040; int64 -7; int32 42; bool 1, 0.
  std::string data;
  data += raw<uint32_t>({0x3FC00000u, 0xC0000000u});  // a  F32 [2]        [0, 8)
  data += raw<int64_t>({-7});                         // b  I64 [1, 1]     [8, 16)
  data += raw<double>({0.25});                        // c  F64 []         [16, 24)
  data += raw<int32_t>({42});                         // i  I32 [1]        [24, 28)
  data += raw<uint16_t>({0x3C00, 0xB800});            // h  F16 [2]        [28, 32)
  data += raw<uint16_t>({0x3F80, 0x4040});            // bf BF16 [2, 1]    [32, 36)
  data += std::string("\x01\x00", 2);                 // m  BOOL [2]       [36, 38)
  const std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("b":{"dtype":"I64","shape":[1,1],"data_offsets":[8,16]},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("c":{"dtype":"F64","shape":[],"data_offsets":[16,24]},)"
      R"("i":{"dtype":"I32","shape":[1],"data_offsets":[24,28]},)"
      R"("h":{"dtype":"F16","shape":[2],"data_offsets":[28,32]},)"
      R"("bf":{"dtype":"BF16","shape":[2,1],"data_offsets":[32,36]},)"
      R"("m":{"dtype":"BOOL","shape":[2],"data_offsets":[36,38]}})";
  const std::string p = path("reference.safetensors");
  write_bytes(p, make_file(header, data));
  const auto f = load_safetensors_file(p);
  EXPECT_EQ(f.metadata.at("format"), "pt");
  const auto& t = f.tensors;
  EXPECT_EQ(t.at("a").dtype(), DType::Float32);
  EXPECT_EQ(t.at("a").to_vector<float>(), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(t.at("b").shape(), (Shape{1, 1}));
  EXPECT_EQ(t.at("b").to_vector<int64_t>(), (std::vector<int64_t>{-7}));
  EXPECT_EQ(t.at("c").dim(), 0);
  EXPECT_EQ(t.at("c").item<double>(), 0.25);
  EXPECT_EQ(t.at("i").to_vector<int32_t>(), (std::vector<int32_t>{42}));
  EXPECT_EQ(t.at("h").dtype(), DType::Float16);
  EXPECT_EQ(t.at("h").to_vector<double>(), (std::vector<double>{1.0, -0.5}));
  EXPECT_EQ(t.at("bf").dtype(), DType::BFloat16);
  EXPECT_EQ(t.at("bf").to_vector<double>(), (std::vector<double>{1.0, 3.0}));
  EXPECT_EQ(t.at("m").dtype(), DType::Bool);
  EXPECT_EQ(t.at("m").to_vector<double>(), (std::vector<double>{1.0, 0.0}));
  // An unpadded header is legal for readers too.
  write_bytes(p, make_file(header, data, /*pad=*/false));
  EXPECT_EQ(load_safetensors(p).at("a").to_vector<float>(), (std::vector<float>{1.5f, -2.0f}));
}

TEST_F(SafetensorsFiles, MalformedFilesRaise) {
  const std::string ok_header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string ok_data = raw<float>({1.0f, 2.0f});
  const std::string p = path("bad.safetensors");

  write_bytes(p, "abc");
  expect_error(p, "too short");
  write_bytes(p, le64(200'000'000) + "{}");
  expect_error(p, "exceeds");
  write_bytes(p, le64(64) + "{}");
  expect_error(p, "runs past the end");
  write_bytes(p, make_file(R"({"a":{"dtype":"F32",)", ok_data));
  expect_error(p, "not valid JSON");
  write_bytes(p, make_file("[1, 2]", ""));
  expect_error(p, "not a JSON object");
  write_bytes(p, make_file(R"({"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", "ab"));
  expect_error(p, "unknown dtype 'F8_E4M3'");
  write_bytes(p, make_file(R"({"a":{"dtype":"F32","shape":[2]}})", ok_data));
  expect_error(p, "needs dtype, shape and data_offsets");
  write_bytes(p, make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", ok_data));
  expect_error(p, "needs 12");
  write_bytes(p, make_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", ok_data));
  expect_error(p, "non-negative");
  write_bytes(p, make_file(ok_header, ok_data.substr(0, 5)));
  expect_error(p, "truncated");
  write_bytes(p, make_file(ok_header, ok_data + "xyz"));
  expect_error(p, "not described");
  write_bytes(p, make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                           ok_data));
  expect_error(p, "overlap");
  write_bytes(p, make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", ok_data));
  expect_error(p, "gap");
  write_bytes(p, make_file(R"({"__metadata__":{"k":3}})", ""));
  expect_error(p, "not a string");
  expect_error(path("does_not_exist.safetensors"), "cannot open");
}

TEST_F(SafetensorsFiles, LoadIntoCopiesOrChangesNothing) {
  const std::string good = path("state.safetensors");
  save_safetensors(good, {{"w", full({2, 3}, 7.0)}, {"b", full({3}, -1.0)}});
  Tensor w = zeros({2, 3}), b = zeros({3});
  Tensor w_grad = zeros({2, 3}).requires_grad_();  // a parameter: still loadable
  load_safetensors_into(good, TensorMap{{"w", w_grad}, {"b", b}});
  EXPECT_EQ(w_grad.to_vector<float>(), std::vector<float>(6, 7.0f));
  EXPECT_EQ(b.to_vector<float>(), std::vector<float>(3, -1.0f));

  // Each of these must raise and leave both targets zero.
  auto expect_unchanged = [&](const std::string& file, const TensorMap& targets, bool strict,
                              const std::string& needle) {
    for (const auto& [n, t] : targets) t.detach().zero_();
    try {
      load_safetensors_into(file, targets, strict);
      FAIL() << "expected kiln::Error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    }
    for (const auto& [n, t] : targets)
      EXPECT_EQ(t.to_vector<double>(), std::vector<double>(size_t(t.numel()), 0.0)) << needle << " " << n;
  };
  Tensor wrong = zeros({3, 2});
  expect_unchanged(good, {{"b", b}, {"w", wrong}}, true, "Shape mismatch: w (file [2, 3], model [3, 2])");
  expect_unchanged(good, {{"b", b}, {"w", w}, {"extra", zeros({1})}}, true, "Missing keys: extra");
  expect_unchanged(good, {{"w", w}}, true, "Unexpected keys: b");
  // Non-strict ignores extra keys in the file but not missing ones.
  w.zero_();
  load_safetensors_into(good, TensorMap{{"w", w}}, /*strict=*/false);
  EXPECT_EQ(w.to_vector<float>(), std::vector<float>(6, 7.0f));

  // Corrupt files: truncated data, corrupt header, oversized header, unknown dtype.
  std::string bytes = read_bytes(good);
  const std::string truncated = path("truncated.safetensors");
  write_bytes(truncated, bytes.substr(0, bytes.size() - 4));
  expect_unchanged(truncated, {{"w", w}, {"b", b}}, true, "truncated");
  const std::string corrupt = path("corrupt.safetensors");
  std::string c = bytes;
  c[9] = '#';
  write_bytes(corrupt, c);
  expect_unchanged(corrupt, {{"w", w}, {"b", b}}, true, "not valid JSON");
  const std::string oversized = path("oversized.safetensors");
  write_bytes(oversized, le64(uint64_t(1) << 40) + bytes.substr(8));
  expect_unchanged(oversized, {{"w", w}, {"b", b}}, true, "exceeds");
  const std::string unknown = path("unknown.safetensors");
  std::string u = bytes;
  const size_t at = u.find("\"F32\"");
  ASSERT_NE(at, std::string::npos);
  u.replace(at, 5, "\"U32\"");
  write_bytes(unknown, u);
  expect_unchanged(unknown, {{"w", w}, {"b", b}}, true, "unknown dtype 'U32'");
}

// Hostile headers (issue 10): each is rejected with a kiln::Error naming the file, quickly
// and without recursing, and the message quotes a bounded prefix of what it rejects.
TEST_F(SafetensorsFiles, DeeplyNestedHeaderIsRejectedWithABoundedMessage) {
  const std::string p = path("deep.safetensors");
  const size_t depth = 100'000;  // dumping this in a message used to overflow the stack
  const std::string shape = std::string(depth, '[') + "1" + std::string(depth, ']');
  write_bytes(p, make_file(R"({"a":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,4]}})", raw<float>({1})));
  expect_error(p, "nests deeper than the format's 3 levels");
  const std::string offsets = std::string(depth, '[') + "0" + std::string(depth, ']');
  write_bytes(p, make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":)" + offsets + "}}", raw<float>({1})));
  try {
    (void)load_safetensors(p);
    FAIL() << "expected kiln::Error";
  } catch (const Error& e) {
    EXPECT_LT(std::string(e.what()).size(), 400u) << e.what();
  }
  // Brackets inside strings are text, not nesting.
  write_bytes(p, make_file(R"({"[[[[{{":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", raw<float>({3})));
  EXPECT_EQ(load_safetensors(p).at("[[[[{{").to_vector<float>(), std::vector<float>{3});
  // A long rejected value is quoted by a prefix only.
  std::string wide = "[";
  for (int i = 0; i < 10000; ++i) wide += "1.5,";
  wide += "1]";
  write_bytes(p, make_file(R"({"a":{"dtype":"F32","shape":)" + wide + R"(,"data_offsets":[0,4]}})", raw<float>({1})));
  try {
    (void)load_safetensors(p);
    FAIL() << "expected kiln::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("not a non-negative integer"), std::string::npos) << msg;
    EXPECT_LT(msg.size(), 400u) << msg;
  }
}

TEST_F(SafetensorsFiles, DuplicateNamesNulBytesAndOverflowingShapesAreRejected) {
  const std::string p = path("dup.safetensors");
  // The same name twice: the reader used to keep the last entry.
  write_bytes(p, make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                           raw<float>({1, 2})));
  expect_error(p, "names 'a' twice");
  // ... also inside an entry, and when loading into a model.
  write_bytes(p, make_file(R"({"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}})", raw<float>({1})));
  expect_error(p, "names 'dtype' twice");
  Tensor target = zeros({1});
  write_bytes(p, make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                           raw<float>({1, 2})));
  EXPECT_THROW(load_safetensors_into(p, TensorMap{{"a", target}}), Error);
  EXPECT_EQ(target.to_vector<float>(), std::vector<float>{0});

  // A NUL byte: parsing used to stop there and accept the prefix.
  const std::string ok = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  write_bytes(p, make_file(ok + std::string(1, '\0') + R"(,"b":5})", raw<float>({1})));
  expect_error(p, "NUL byte");
  write_bytes(p, make_file(R"({"a)" + std::string(1, '\0') + R"(":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                           raw<float>({1})));
  expect_error(p, "NUL byte");

  // Element count 0, but the strides of [0, 2^62, 2^62] do not fit int64.
  write_bytes(p, make_file(R"({"a":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],)"
                           R"("data_offsets":[0,0]}})",
                           ""));
  expect_error(p, "overflows int64");
}

TEST_F(SafetensorsFiles, FloatValuesOutOfAnIntegerRangeConvertAsPyTorchOnX86) {
  // num_batches_tracked is int64; a file may hold it as F32. PyTorch's copy_ (on x86)
  // gives the integer minimum for values that do not fit and for NaN; C++ leaves it undefined.
  const std::string p = path("int_target.safetensors");
  save_safetensors(p, {{"n", tensor(std::vector<float>{1e30f, -1e30f, NAN, 7.9f, -7.9f, INFINITY})}});
  Tensor n64 = zeros({6}, DType::Int64), n32 = zeros({6}, DType::Int32);
  load_safetensors_into(p, TensorMap{{"n", n64}});
  const int64_t lo64 = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(n64.to_vector<int64_t>(), (std::vector<int64_t>{lo64, lo64, lo64, 7, -7, lo64}));
  load_safetensors_into(p, TensorMap{{"n", n32}});
  const int32_t lo32 = std::numeric_limits<int32_t>::min();
  EXPECT_EQ(n32.to_vector<int32_t>(), (std::vector<int32_t>{lo32, lo32, lo32, 7, -7, lo32}));
}

// With KILN_FUZZ_SEEDS=<dir>, writes the fuzzers' seed corpus: valid files of every dtype
// and the hostile cases above (scripts/ci-fuzz.sh runs this first).
TEST(SafetensorsSeeds, WriteFuzzSeedCorpus) {
  const char* dir = std::getenv("KILN_FUZZ_SEEDS");
  if (!dir || !*dir) GTEST_SKIP() << "set KILN_FUZZ_SEEDS to write the fuzz seed corpus";
  const std::filesystem::path out = std::filesystem::path(dir) / "safetensors";
  std::filesystem::create_directories(out);
  std::vector<std::string> seeds = {
      serialize_safetensors({{"w", ones({2, 3})}, {"b", zeros({3}, DType::Float64)}}, {{"k", "v"}}),
      serialize_safetensors({{"h", ones({2}, DType::Float16)}, {"bf", ones({1}, DType::BFloat16)},
                             {"i", ones({2}, DType::Int32)}, {"l", ones({1}, DType::Int64)},
                             {"f", ones({3}, DType::Bool)}, {"s", scalar_tensor(2.5)}}),
      serialize_safetensors({{"e", zeros({0, 4})}}),
      make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],)"
                R"("data_offsets":[4,8]}})",
                raw<float>({1, 2})),
      make_file(R"({"a":{"dtype":"F32","shape":[[[1]]],"data_offsets":[0,4]}})", raw<float>({1})),
      make_file(R"({"a":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]}})",
                ""),
  };
  for (size_t i = 0; i < seeds.size(); ++i) {
    std::ofstream f(out / ("seed" + std::to_string(i)), std::ios::binary);
    f.write(seeds[i].data(), std::streamsize(seeds[i].size()));
  }
}
