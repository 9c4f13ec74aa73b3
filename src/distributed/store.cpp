// Store's shared waiting loop and PrefixStore.
#include <thread>

#include "kiln/distributed_store.h"
#include "kiln/error.h"

namespace kiln::distributed {

void Store::wait(const std::vector<std::string>& keys) {
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  auto pause = std::chrono::milliseconds(1);
  while (!check(keys)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      std::string names;
      for (const auto& k : keys) names += (names.empty() ? "" : ", ") + k;
      KILN_FAIL("store", "timed out after ", timeout_.count(), " ms waiting for keys [", names,
                "]: did every rank start, with the same world size and rendezvous address?");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

PrefixStore::PrefixStore(std::string prefix, std::shared_ptr<Store> base)
    : prefix_(std::move(prefix) + "/"), base_(std::move(base)) {
  timeout_ = base_->timeout();
}

void PrefixStore::set(const std::string& key, const std::vector<uint8_t>& value) { base_->set(prefix_ + key, value); }

std::vector<uint8_t> PrefixStore::get(const std::string& key) {
  wait({key});
  return base_->get(prefix_ + key);
}

int64_t PrefixStore::add(const std::string& key, int64_t delta) { return base_->add(prefix_ + key, delta); }

bool PrefixStore::check(const std::vector<std::string>& keys) {
  std::vector<std::string> full;
  for (const auto& k : keys) full.push_back(prefix_ + k);
  return base_->check(full);
}

}  // namespace kiln::distributed
