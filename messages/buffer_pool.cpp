#include "messages/buffer_pool.hpp"

#include <map>
#include <mutex>

namespace psgd {

struct buffer_pool::shelf {
  std::mutex mtx;
  std::vector<std::unique_ptr<std::vector<float>>> free;
  size_t keep;
};

buffer_pool::buffer_pool(size_t length, size_t keep)
  : length_(length), shelf_(std::make_shared<shelf>()) {
  shelf_->keep = keep;
}

buffer_pool::~buffer_pool() = default;

std::shared_ptr<std::vector<float>> buffer_pool::acquire() {
  std::unique_ptr<std::vector<float>> buf;
  {
    std::lock_guard<std::mutex> guard{shelf_->mtx};
    if (!shelf_->free.empty()) {
      buf = std::move(shelf_->free.back());
      shelf_->free.pop_back();
    }
  }
  if (!buf)
    buf = std::make_unique<std::vector<float>>(length_);
  // The deleter holds the shelf weakly: a buffer released after the pool died is freed.
  std::weak_ptr<shelf> home = shelf_;
  return std::shared_ptr<std::vector<float>>(buf.release(), [home](std::vector<float>* p) {
    std::unique_ptr<std::vector<float>> owned{p};
    if (auto s = home.lock()) {
      std::lock_guard<std::mutex> guard{s->mtx};
      if (s->free.size() < s->keep)
        s->free.push_back(std::move(owned));
    }
  });
}

std::shared_ptr<std::vector<float>> receive_buffer(size_t n) {
  constexpr size_t min_pooled = 1024;
  constexpr size_t max_lengths = 8;
  constexpr size_t keep = 16;
  if (n >= min_pooled) {
    static std::mutex mtx;
    static std::map<size_t, buffer_pool> pools;
    buffer_pool* pool = nullptr;
    {
      std::lock_guard<std::mutex> guard{mtx};
      auto i = pools.find(n);
      if (i == pools.end() && pools.size() < max_lengths)
        i = pools.emplace(n, buffer_pool{n, keep}).first;
      if (i != pools.end())
        pool = &i->second; // std::map never moves its elements
    }
    if (pool != nullptr)
      return pool->acquire();
  }
  return std::make_shared<std::vector<float>>(n);
}

} // namespace psgd
