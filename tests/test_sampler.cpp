#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "data/sampler.hpp"

using psgd::data::epoch_permutation;
using psgd::data::shard_sampler;

TEST_CASE("epoch permutations are permutations, seeded by (seed, epoch)", "[data]") {
  auto p = epoch_permutation(1000, 5, 0);
  auto sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i)
    REQUIRE(sorted[i] == i);
  CHECK(p == epoch_permutation(1000, 5, 0));
  CHECK(p != epoch_permutation(1000, 5, 1));
  CHECK(p != epoch_permutation(1000, 6, 0));
}

TEST_CASE("the m shards of an epoch are disjoint and reproducible", "[data]") {
  const int64_t rows = 1003;
  const int m = 3, b = 10;
  std::set<int64_t> seen;
  for (int k = 0; k < m; ++k) {
    shard_sampler s{rows, 9, k, m, b};
    shard_sampler again{rows, 9, k, m, b};
    REQUIRE(s.steps_per_epoch() == (rows / m) / b);
    for (int64_t step = 0; step < s.steps_per_epoch(); ++step) {
      const int64_t* batch = s.next();
      const int64_t* same = again.next();
      for (int i = 0; i < b; ++i) {
        CHECK(batch[i] == same[i]);
        CHECK(seen.insert(batch[i]).second); // never seen in this epoch
      }
    }
  }
  CHECK(seen.size() == size_t(m * ((rows / m) / b) * b));
}

TEST_CASE("the m workers' step-s batches are sequential's step-s batch of m*b", "[data]") {
  const int64_t rows = 6000;
  const int m = 4, b = 8;
  shard_sampler seq{rows, 3, 0, 1, m * b};
  std::vector<shard_sampler> workers;
  for (int k = 0; k < m; ++k)
    workers.emplace_back(rows, 3, k, m, b);
  REQUIRE(seq.steps_per_epoch() == workers[0].steps_per_epoch());
  // Two epochs, so the wrap to the next permutation is checked too.
  for (int64_t step = 0; step < 2 * seq.steps_per_epoch(); ++step) {
    const int64_t* big = seq.next();
    std::multiset<int64_t> expected(big, big + m * b);
    std::multiset<int64_t> got;
    for (auto& w : workers) {
      const int64_t* small = w.next();
      got.insert(small, small + b);
    }
    REQUIRE(got == expected);
  }
}

TEST_CASE("a sampler advances epochs and can seek back", "[data]") {
  shard_sampler s{100, 1, 1, 2, 10};
  REQUIRE(s.steps_per_epoch() == 5);
  std::vector<int64_t> epoch1;
  for (int i = 0; i < 5; ++i)
    s.next();
  CHECK(s.epoch() == 0);
  const int64_t* first = s.next();
  CHECK(s.epoch() == 1);
  epoch1.assign(first, first + 10);
  s.seek(1, 0);
  const int64_t* again = s.next();
  CHECK(std::vector<int64_t>(again, again + 10) == epoch1);
}

TEST_CASE("a batch larger than a shard gives no steps", "[data]") {
  CHECK(shard_sampler::steps_per_epoch(100, 2, 51) == 0);
  CHECK(shard_sampler::steps_per_epoch(100, 2, 50) == 1);
  CHECK(shard_sampler::steps_per_epoch(100, 0, 1) == 0);
}

TEST_CASE("peek shows the next batch without taking it, except across an epoch", "[data]") {
  shard_sampler s{100, 1, 0, 2, 10};
  for (int step = 0; step < 5; ++step) {
    const int64_t* ahead = s.peek();
    REQUIRE(ahead != nullptr);
    std::vector<int64_t> peeked(ahead, ahead + 10);
    const int64_t* taken = s.next();
    CHECK(std::vector<int64_t>(taken, taken + 10) == peeked);
  }
  CHECK(s.peek() == nullptr); // the next batch opens epoch 1
  CHECK(s.next() != nullptr);
  CHECK(s.epoch() == 1);
  CHECK(shard_sampler{100, 1, 0, 2, 51}.peek() == nullptr);
}
