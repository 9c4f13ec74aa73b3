#pragma once
// DataLoader: batches of a Dataset in a seeded, per-epoch order, prepared ahead by a
// background thread into a bounded queue. Each range-for over the loader is one epoch:
//   DataLoader loader(ds, {.batch_size = 256, .shuffle = true, .seed = 1});
//   for (const Example& batch : loader) { ... }   // epoch 0, then epoch 1 on the next loop
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "kiln/data/dataset.h"

namespace kiln::data {

struct DataLoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = false;
  uint64_t seed = 0;       // with shuffle: epoch e's order depends only on (seed, e)
  bool drop_last = false;  // drop a last batch smaller than batch_size
  int64_t prefetch = 2;    // batches the background thread prepares ahead; 0: no thread
  // Applied to each batch (in the background thread), e.g. augmentation of inputs.
  std::function<Example(Example)> batch_transform;
};

class DataLoader {
  struct Run;  // one epoch being produced

 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t size() const;  // batches per epoch
  const DataLoaderOptions& options() const { return options_; }
  const Dataset& dataset() const { return *dataset_; }
  int64_t epoch() const { return epoch_; }     // the epoch the next begin() starts
  void set_epoch(int64_t epoch) { epoch_ = epoch; }
  // The order in which epoch `epoch` visits the examples (identity without shuffle).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  class Iterator {
   public:
    using value_type = Example;
    using difference_type = std::ptrdiff_t;
    const Example& operator*() const { return current_; }
    const Example* operator->() const { return &current_; }
    Iterator& operator++();
    bool operator==(const Iterator& o) const { return done_ == o.done_; }  // only compared with end()

   private:
    friend class DataLoader;
    Iterator(Run* run);  // null: the end
    Run* run_ = nullptr;
    Example current_;
    bool done_ = true;
  };

  // Starts the next epoch (stopping one still in progress) and returns its first batch.
  Iterator begin();
  Iterator end() { return Iterator(nullptr); }

 private:
  void stop();

  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions options_;
  int64_t epoch_ = 0;
  std::unique_ptr<Run> run_;
};

}  // namespace kiln::data
