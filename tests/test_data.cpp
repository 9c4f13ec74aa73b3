// Data loading: the IDX reader on files written here (gzip through zlib) and on the
// installed package, the DataLoader's batching and seeded order, and the transforms
// against values computed by hand.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "kiln/data/dataloader.h"
#include "kiln/data/fashion_mnist.h"
#include "kiln/data/transforms.h"
#include "kiln/ops.h"

using namespace kiln;
using namespace kiln::data;
namespace fs = std::filesystem;

namespace {

std::string be32(uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}

void write_gz(const fs::path& p, const std::string& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
  gzclose(f);
}

void write_plain(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

// An IDX file of unsigned bytes: magic 0x0000 0x08 ndims, big-endian dims, data.
std::string idx(const std::vector<uint32_t>& dims, const std::string& data) {
  std::string s{'\0', '\0', '\x08', char(dims.size())};
  for (uint32_t d : dims) s += be32(d);
  return s + data;
}

// n images whose pixel (i, r, c) is (i * 7 + r * 3 + c) % 256, labels i % 10.
std::string image_bytes(int n) {
  std::string s;
  for (int i = 0; i < n; ++i)
    for (int r = 0; r < 28; ++r)
      for (int c = 0; c < 28; ++c) s += char((i * 7 + r * 3 + c) % 256);
  return s;
}
std::string label_bytes(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += char(i % 10);
  return s;
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln_test_data_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write_split(const std::string& prefix, int n_images, int n_labels) {
    write_gz(dir_ / (prefix + "-images-idx3-ubyte.gz"), idx({uint32_t(n_images), 28, 28}, image_bytes(n_images)));
    write_gz(dir_ / (prefix + "-labels-idx1-ubyte.gz"), idx({uint32_t(n_labels)}, label_bytes(n_labels)));
  }
  void expect_load_error(const std::string& file, const std::string& needle) {
    try {
      (void)load_fashion_mnist(true, dir_.string());
      FAIL() << "expected kiln::Error about " << needle;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(file), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_NE(msg.find("dataset-fashion-mnist"), std::string::npos) << msg;
    }
  }
  fs::path dir_;
};

std::vector<int64_t> targets_of(const Example& b) { return b.target.to_vector<int64_t>(); }

}  // namespace

TEST_F(TempDir, IdxReaderDecodesImagesAndLabels) {
  write_split("train", 3, 3);
  const FashionMnist d = load_fashion_mnist(true, dir_.string());
  ASSERT_EQ(d.images.shape(), (Shape{3, 1, 28, 28}));
  ASSERT_EQ(d.labels.shape(), (Shape{3}));
  EXPECT_EQ(d.images.dtype(), DType::Float32);
  EXPECT_EQ(d.labels.dtype(), DType::Int64);
  const auto px = d.images.to_vector<float>();
  for (int i = 0; i < 3; ++i)
    for (int r = 0; r < 28; ++r)
      for (int c = 0; c < 28; ++c)
        ASSERT_FLOAT_EQ(px[size_t((i * 28 + r) * 28 + c)], float((i * 7 + r * 3 + c) % 256) / 255.0f);
  EXPECT_EQ(d.labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2}));
  const FashionMnist two = load_fashion_mnist(true, dir_.string(), 2);
  EXPECT_EQ(two.images.size(0), 2);
  EXPECT_EQ(two.labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 1}));
  // Uncompressed IDX files are read too.
  write_plain(dir_ / "plain.idx", idx({4}, "\x01\x02\x03\x04"));
  EXPECT_EQ(read_idx((dir_ / "plain.idx").string()).data, (std::vector<uint8_t>{1, 2, 3, 4}));
}

TEST_F(TempDir, MissingOrCorruptFilesNameTheFileAndThePackage) {
  expect_load_error("train-images-idx3-ubyte.gz", "not found");
  write_split("train", 2, 3);
  expect_load_error("train-labels-idx1-ubyte.gz", "holds 2 images");
  write_split("train", 2, 2);
  const auto images = dir_ / "train-images-idx3-ubyte.gz";
  write_gz(images, std::string("\x00\x00\x08\x03", 4) + be32(2) + be32(28) + be32(28) + image_bytes(1));
  expect_load_error("train-images-idx3-ubyte.gz", "truncated");
  write_gz(images, idx({2, 28, 28}, image_bytes(2) + "x"));
  expect_load_error("train-images-idx3-ubyte.gz", "past the");
  write_gz(images, std::string("\x08\x03\x00\x00", 4) + image_bytes(2));
  expect_load_error("train-images-idx3-ubyte.gz", "magic");
  write_gz(images, std::string("\x00\x00\x0d\x03", 4) + be32(2) + be32(28) + be32(28));
  expect_load_error("train-images-idx3-ubyte.gz", "element type");
  write_gz(images, idx({2, 14, 56}, image_bytes(2)));
  expect_load_error("train-images-idx3-ubyte.gz", "[N, 28, 28]");
  // A gzip header followed by garbage: zlib reports a data error.
  write_plain(images, std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10) + std::string(64, '\xff'));
  expect_load_error("train-images-idx3-ubyte.gz", "corrupt gzip");
  write_split("train", 2, 2);
  write_gz(dir_ / "train-labels-idx1-ubyte.gz", idx({2}, "\x01\x0c"));
  expect_load_error("train-labels-idx1-ubyte.gz", "label 12");
}

TEST(FashionMnistDir, OverrideThenEnvironmentThenPackage) {
  const char* old = std::getenv("KILN_FASHION_MNIST_DIR");
  const std::string saved = old ? old : "";
  ::unsetenv("KILN_FASHION_MNIST_DIR");
  EXPECT_EQ(fashion_mnist_dir(), "/usr/share/datasets/fashion-mnist");
  ::setenv("KILN_FASHION_MNIST_DIR", "/somewhere", 1);
  EXPECT_EQ(fashion_mnist_dir(), "/somewhere");
  EXPECT_EQ(fashion_mnist_dir("/explicit"), "/explicit");
  if (old) ::setenv("KILN_FASHION_MNIST_DIR", saved.c_str(), 1);
  else ::unsetenv("KILN_FASHION_MNIST_DIR");
}

TEST(FashionMnistPackage, RealFilesHaveTheKnownCountsAndFirstLabels) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir + "/t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  // Expected values read from the files with Python's gzip module.
  const FashionMnist test = load_fashion_mnist(false, dir);
  EXPECT_EQ(test.images.shape(), (Shape{10000, 1, 28, 28}));
  EXPECT_EQ(test.labels.narrow(0, 0, 10).to_vector<int64_t>(), (std::vector<int64_t>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}));
  EXPECT_FLOAT_EQ(test.images.at({0, 0, 14, 14}).to_double(), 110.0 / 255.0);
  const FashionMnist train = load_fashion_mnist(true, dir);
  EXPECT_EQ(train.images.size(0), 60000);
  EXPECT_EQ(train.labels.size(0), 60000);
  EXPECT_EQ(train.labels.narrow(0, 0, 10).to_vector<int64_t>(), (std::vector<int64_t>{9, 0, 0, 3, 0, 2, 7, 2, 5, 5}));
  double first = 0;
  for (float v : train.images.select(0, 0).to_vector<float>()) first += double(v) * 255.0;
  EXPECT_NEAR(first, 76247.0, 1e-2);  // sum of the first image's bytes
  EXPECT_EQ(fashion_mnist_classes()[9], std::string("Ankle boot"));
}

namespace {
// 10 examples: input row i = [2i, 2i+1] (float32), target i (int64).
std::shared_ptr<TensorDataset> ten() {
  return std::make_shared<TensorDataset>(arange(20, DType::Float32).view({10, 2}), arange(10, DType::Int64));
}

std::vector<std::vector<int64_t>> epoch(DataLoader& loader) {
  std::vector<std::vector<int64_t>> out;
  for (const Example& b : loader) {
    const auto t = targets_of(b);
    const auto in = b.input.to_vector<float>();
    EXPECT_EQ(b.input.shape(), (Shape{int64_t(t.size()), 2}));
    for (size_t i = 0; i < t.size(); ++i) {  // inputs stay paired with their targets
      EXPECT_EQ(in[2 * i], float(2 * t[i]));
      EXPECT_EQ(in[2 * i + 1], float(2 * t[i] + 1));
    }
    out.push_back(t);
  }
  return out;
}
}  // namespace

TEST(DataLoader, BatchesInOrderWithoutShuffle) {
  for (int64_t prefetch : {0, 1, 3}) {
    DataLoader loader(ten(), {.batch_size = 3, .prefetch = prefetch});
    EXPECT_EQ(loader.size(), 4);
    const auto batches = epoch(loader);
    EXPECT_EQ(batches, (std::vector<std::vector<int64_t>>{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9}}));
    DataLoader dropping(ten(), {.batch_size = 3, .drop_last = true, .prefetch = prefetch});
    EXPECT_EQ(dropping.size(), 3);
    EXPECT_EQ(epoch(dropping).size(), 3u);
  }
}

TEST(DataLoader, ShuffleCoversEveryIndexOncePerEpochAndIsReproducible) {
  DataLoader a(ten(), {.batch_size = 4, .shuffle = true, .seed = 42});
  DataLoader b(ten(), {.batch_size = 4, .shuffle = true, .seed = 42, .prefetch = 0});
  DataLoader c(ten(), {.batch_size = 4, .shuffle = true, .seed = 43});
  std::set<std::vector<int64_t>> orders;
  bool differs_from_other_seed = false;
  for (int e = 0; e < 4; ++e) {
    std::vector<int64_t> seen;
    const auto ea = epoch(a);
    for (const auto& batch : ea) seen.insert(seen.end(), batch.begin(), batch.end());
    EXPECT_EQ(ea.back().size(), 2u);
    orders.insert(seen);
    std::vector<int64_t> sorted = seen;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> all(10);
    for (int i = 0; i < 10; ++i) all[size_t(i)] = i;
    EXPECT_EQ(sorted, all) << "epoch " << e;
    EXPECT_EQ(epoch(b), ea) << "same seed, same order, with or without the background thread";
    if (epoch(c) != ea) differs_from_other_seed = true;
  }
  EXPECT_EQ(orders.size(), 4u) << "each epoch has its own order";
  EXPECT_TRUE(differs_from_other_seed);
  // set_epoch replays an epoch.
  a.set_epoch(1);
  DataLoader fresh(ten(), {.batch_size = 4, .shuffle = true, .seed = 42});
  fresh.set_epoch(1);
  EXPECT_EQ(epoch(a), epoch(fresh));
}

TEST(DataLoader, BreakingOutEarlyThenStartingANewEpoch) {
  DataLoader loader(ten(), {.batch_size = 1, .prefetch = 2});
  for (const Example& b : loader) {
    (void)b;
    break;
  }
  EXPECT_EQ(epoch(loader).size(), 10u);
}

namespace {
// A dataset without get_batch: exercises the default collate; fails on index 7.
class Squares : public Dataset {
 public:
  int64_t size() const override { return 9; }
  Example get(int64_t i) const override {
    KILN_CHECK(i != 7, "Squares", "no example 7");
    return {full({2}, double(i * i)), scalar_tensor(i, DType::Int64)};
  }
};
}  // namespace

TEST(DataLoader, DefaultCollateAndProducerErrors) {
  DataLoader loader(std::make_shared<Squares>(), {.batch_size = 4});
  auto it = loader.begin();
  EXPECT_EQ(it->input.shape(), (Shape{4, 2}));
  EXPECT_EQ(it->input.to_vector<float>(), (std::vector<float>{0, 0, 1, 1, 4, 4, 9, 9}));
  EXPECT_EQ(it->target.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3}));
  try {
    ++it;  // batch 2 holds index 7
    FAIL() << "expected the producer's error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no example 7"), std::string::npos) << e.what();
  }
  EXPECT_THROW(DataLoader(ten(), {.batch_size = 0}), Error);
  EXPECT_THROW((void)collate({{ones({2}), ones({1})}, {ones({3}), ones({1})}}), Error);
}

TEST(Transforms, NormalizePerChannel) {
  // 2 channels of a 1x2 image: (x - mean[c]) / std[c] by hand.
  Tensor x = tensor<float>({1, 2, 3, 5}, {2, 1, 2});
  Normalize norm({1.0, 2.0}, {0.5, 4.0});
  EXPECT_EQ(norm(x).to_vector<float>(), (std::vector<float>{0.0f, 2.0f, 0.25f, 0.75f}));
  Tensor batch = tensor<float>({1, 2, 3, 5, 0, 0, 2, 2}, {2, 2, 1, 2});
  EXPECT_EQ(norm(batch).to_vector<float>(), (std::vector<float>{0, 2, 0.25f, 0.75f, -2, -2, 0, 0}));
  EXPECT_THROW(Normalize({0.0}, {0.0}), Error);
  EXPECT_THROW((void)Normalize({0, 0, 0}, {1, 1, 1})(x), Error);
}

TEST(Transforms, HorizontalFlip) {
  Tensor x = tensor<float>({1, 2, 3, 4, 5, 6}, {1, 2, 3});
  EXPECT_EQ(RandomHorizontalFlip(1.0)(x).to_vector<float>(), (std::vector<float>{3, 2, 1, 6, 5, 4}));
  EXPECT_EQ(RandomHorizontalFlip(0.0)(x).to_vector<float>(), x.to_vector<float>());
  // Each image flips independently, about p of the time, reproducibly for a seed.
  Tensor many = arange(2, DType::Float32).view({1, 1, 1, 2}).expand({4000, 1, 1, 2}).contiguous();
  RandomHorizontalFlip f1(0.3, 7), f2(0.3, 7);
  const auto a = f1(many).to_vector<float>();
  EXPECT_EQ(a, f2(many).to_vector<float>());
  int flipped = 0;
  for (size_t i = 0; i < 4000; ++i) {
    const bool is_flipped = a[2 * i] == 1.0f;
    EXPECT_EQ(a[2 * i + 1], is_flipped ? 0.0f : 1.0f);
    flipped += is_flipped;
  }
  EXPECT_GT(flipped, 1000);  // 1200 expected; sd ~29
  EXPECT_LT(flipped, 1400);
  EXPECT_NE(f1(many).to_vector<float>(), a) << "the stream moves on between calls";
}

TEST(Transforms, RandomCropIsAWindowOfThePaddedImage) {
  // A 3x3 image padded by 1 is 5x5; a 3x3 crop has 9 possible origins.
  Tensor x = (arange(9, DType::Float32) + 1).view({1, 3, 3});
  EXPECT_EQ(RandomCrop(3, 0, 5)(x).to_vector<float>(), x.to_vector<float>());
  auto padded = [](int64_t r, int64_t c) -> float {
    const int64_t i = r - 1, j = c - 1;
    return (i >= 0 && i < 3 && j >= 0 && j < 3) ? float(i * 3 + j + 1) : 0.0f;
  };
  RandomCrop crop(3, 1, 11);
  std::set<std::pair<int, int>> origins;
  for (int trial = 0; trial < 200; ++trial) {
    const auto y = crop(x).to_vector<float>();
    int matches = 0;
    for (int top = 0; top <= 2; ++top)
      for (int left = 0; left <= 2; ++left) {
        bool same = true;
        for (int r = 0; r < 3; ++r)
          for (int c = 0; c < 3; ++c) same = same && y[size_t(r * 3 + c)] == padded(top + r, left + c);
        if (same) {
          origins.insert({top, left});
          ++matches;
        }
      }
    ASSERT_EQ(matches, 1) << "trial " << trial;
  }
  EXPECT_EQ(origins.size(), 9u) << "every origin is reachable";
  RandomCrop c1(2, 1, 3), c2(2, 1, 3);
  Tensor batch = x.unsqueeze(0).expand({5, 1, 3, 3}).contiguous();
  EXPECT_EQ(c1(batch).shape(), (Shape{5, 1, 2, 2}));
  EXPECT_EQ(c2(batch).to_vector<float>(), RandomCrop(2, 1, 3)(batch).to_vector<float>());
  EXPECT_THROW((void)RandomCrop(6, 1, 0)(x), Error);
}

TEST(Transforms, AppliedToBatchesByTheLoader) {
  auto ds = std::make_shared<TensorDataset>(ones({6, 1, 2, 2}), arange(6, DType::Int64));
  DataLoader loader(ds, {.batch_size = 3,
                         .batch_transform = transform_inputs(std::make_shared<Normalize>(
                             std::vector<double>{0.5}, std::vector<double>{0.25}))});
  for (const Example& b : loader) EXPECT_EQ(b.input.to_vector<float>(), std::vector<float>(12, 2.0f));
}

// A header that promises far more data than the file holds must fail as soon as the data
// runs out, not after allocating (and zero-filling) what the header promised. Measured
// in a child process: its peak resident memory must stay near the parent's.
TEST_F(TempDir, IdxHeaderPromisingGigabytesFailsWithoutAllocatingThem) {
  const fs::path p = dir_ / "liar.idx";
  write_plain(p, idx({1u << 14, 1u << 8, 1u << 8}, std::string(1024, '\x07')));  // promises 1 GiB, holds 1 KiB
  rusage self{};
  ::getrusage(RUSAGE_SELF, &self);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = 3;
    try {
      (void)read_idx(p.string());
    } catch (const Error& e) {
      code = std::string(e.what()).find("truncated") != std::string::npos ? 0 : 2;
    } catch (...) {
      code = 4;
    }
    std::_Exit(code);
  }
  int status = 0;
  rusage child{};
  ASSERT_EQ(::wait4(pid, &status, 0, &child), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "read_idx did not raise its 'truncated' kiln::Error";
  EXPECT_LT(child.ru_maxrss, self.ru_maxrss + 256 * 1024) << "peak KiB in the child vs the parent's peak";
}

// With KILN_FUZZ_SEEDS=<dir>, writes the IDX fuzzer's seed corpus (gzip and plain files).
TEST_F(TempDir, WriteIdxFuzzSeedCorpus) {
  const char* dir = std::getenv("KILN_FUZZ_SEEDS");
  if (!dir || !*dir) GTEST_SKIP() << "set KILN_FUZZ_SEEDS to write the fuzz seed corpus";
  const fs::path out = fs::path(dir) / "idx";
  fs::create_directories(out);
  write_gz(out / "images.gz", idx({2, 28, 28}, image_bytes(2)));
  write_gz(out / "labels.gz", idx({3}, label_bytes(3)));
  write_plain(out / "plain", idx({4}, "\x01\x02\x03\x04"));
  write_plain(out / "liar", idx({1u << 14, 1u << 8, 1u << 8}, std::string(16, '\x07')));
}
