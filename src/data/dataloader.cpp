// DataLoader: a producer thread per epoch fills a queue of at most `prefetch` batches;
// the iterator pops them. Errors in the producer are rethrown by the iterator.
#include "kiln/data/dataloader.h"

#include <numeric>

namespace kiln::data {

namespace {
constexpr const char* kOp = "DataLoader";

// splitmix64: a small, fully specified generator, so an order is the same everywhere.
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
}  // namespace

struct DataLoader::Run {
  const Dataset* dataset;
  const DataLoaderOptions* options;
  std::vector<std::vector<int64_t>> batches;
  size_t next_batch = 0;  // used when there is no producer thread

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Example> queue;
  bool finished = false, stopping = false;
  std::exception_ptr error;
  std::thread producer;

  Example make(size_t b) const {
    Example e = dataset->get_batch(batches[b]);
    if (options->batch_transform) e = options->batch_transform(std::move(e));
    return e;
  }

  void produce() {
    try {
      for (size_t b = 0; b < batches.size(); ++b) {
        Example e = make(b);
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return stopping || int64_t(queue.size()) < options->prefetch; });
        if (stopping) return;
        queue.push_back(std::move(e));
        cv.notify_all();
      }
    } catch (...) {
      std::lock_guard lock(mu);
      error = std::current_exception();
    }
    std::lock_guard lock(mu);
    finished = true;
    cv.notify_all();
  }

  // The next batch into *out; false at the end of the epoch.
  bool next(Example* out) {
    if (!producer.joinable()) {
      if (next_batch >= batches.size()) return false;
      *out = make(next_batch++);
      return true;
    }
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return !queue.empty() || finished; });
    if (!queue.empty()) {
      *out = std::move(queue.front());
      queue.pop_front();
      cv.notify_all();
      return true;
    }
    if (error) std::rethrow_exception(std::exchange(error, nullptr));
    return false;
  }

  void stop() {
    {
      std::lock_guard lock(mu);
      stopping = true;
      cv.notify_all();
    }
    if (producer.joinable()) producer.join();
  }
};

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(std::move(options)) {
  KILN_CHECK(dataset_ != nullptr, kOp, "dataset is null");
  KILN_CHECK(options_.batch_size >= 1, kOp, "batch_size must be at least 1, got ", options_.batch_size);
  KILN_CHECK(options_.prefetch >= 0, kOp, "prefetch must be non-negative, got ", options_.prefetch);
}

DataLoader::~DataLoader() { stop(); }

void DataLoader::stop() {
  if (run_) run_->stop();
  run_.reset();
}

int64_t DataLoader::size() const {
  const int64_t n = dataset_->size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order(size_t(dataset_->size()));
  std::iota(order.begin(), order.end(), 0);
  if (!options_.shuffle) return order;
  uint64_t state = options_.seed ^ (0xD1B54A32D192ED03ULL * uint64_t(epoch + 1));
  for (size_t i = order.size(); i > 1; --i) {  // Fisher-Yates
    const size_t j = size_t(splitmix64(state) % i);
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

DataLoader::Iterator DataLoader::begin() {
  stop();
  run_ = std::make_unique<Run>();
  run_->dataset = dataset_.get();
  run_->options = &options_;
  const std::vector<int64_t> order = epoch_order(epoch_++);
  const int64_t nb = size(), bs = options_.batch_size;
  for (int64_t b = 0; b < nb; ++b) {
    const auto first = order.begin() + b * bs;
    const auto last = order.begin() + std::min<int64_t>((b + 1) * bs, int64_t(order.size()));
    run_->batches.emplace_back(first, last);
  }
  if (options_.prefetch > 0) run_->producer = std::thread([r = run_.get()] { r->produce(); });
  return Iterator(run_.get());
}

DataLoader::Iterator::Iterator(Run* run) : run_(run) {
  if (run_) {
    done_ = false;
    ++*this;
  }
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  if (!run_ || !run_->next(&current_)) {
    done_ = true;
    current_ = {};
  }
  return *this;
}

}  // namespace kiln::data
