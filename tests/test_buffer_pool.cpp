#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "messages/buffer_pool.hpp"

using psgd::buffer_pool;

TEST_CASE("a released buffer is handed out again", "[pool]") {
  buffer_pool pool{100};
  const float* first = nullptr;
  {
    auto b = pool.acquire();
    REQUIRE(b->size() == 100);
    first = b->data();
  }
  auto again = pool.acquire();
  CHECK(again->data() == first);
  auto other = pool.acquire(); // the first is still held: a new one
  CHECK(other->data() != first);
  CHECK(other->size() == 100);
}

TEST_CASE("the pool keeps at most `keep` buffers and they may outlive it", "[pool]") {
  std::shared_ptr<std::vector<float>> survivor;
  {
    buffer_pool pool{10, 2};
    std::vector<std::shared_ptr<std::vector<float>>> held;
    for (int i = 0; i < 5; ++i)
      held.push_back(pool.acquire());
    survivor = held.back();
    held.clear(); // 4 released, 2 kept
  }
  // The pool is gone; releasing the survivor frees it instead of recycling.
  CHECK(survivor->size() == 10);
  survivor.reset();
}

TEST_CASE("buffers can be acquired and released from many threads", "[pool]") {
  buffer_pool pool{64};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        auto b = pool.acquire();
        (*b)[i % 64] = float(i);
      }
    });
  for (auto& t : threads)
    t.join();
  CHECK(pool.acquire()->size() == 64);
}
