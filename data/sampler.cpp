#include "data/sampler.hpp"

#include <deque>
#include <memory>
#include <mutex>
#include <numeric>
#include <utility>

#include "data/random.hpp"

namespace psgd::data {

std::vector<int64_t> epoch_permutation(int64_t rows, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> perm(rows);
  std::iota(perm.begin(), perm.end(), int64_t{0});
  splitmix64 rng{mix_seed(seed, 0xe90c, static_cast<uint64_t>(epoch))};
  for (int64_t i = rows - 1; i > 0; --i)
    std::swap(perm[i], perm[rng.below(static_cast<uint64_t>(i) + 1)]);
  return perm;
}

shard_sampler::shard_sampler(int64_t rows, uint64_t seed, int worker, int workers, int batch)
  : rows_(rows),
    seed_(seed),
    worker_(worker),
    workers_(workers),
    batch_(batch),
    steps_per_epoch_(steps_per_epoch(rows, workers, batch)) {
  seek(0, 0);
}

int64_t shard_sampler::steps_per_epoch(int64_t rows, int workers, int batch) {
  if (workers <= 0 || batch <= 0)
    return 0;
  return (rows / workers) / batch;
}

namespace {

/// The permutation of an epoch, shared by the samplers of a process: every worker needs the
/// same one (it keeps only its 1/m stride), so it is shuffled once, not m times (at m = 256
/// the repeated shuffles were the largest cost of the run). A few recent epochs are kept, as
/// workers cross epoch boundaries at different times. Thread-safe.
std::shared_ptr<const std::vector<int64_t>> shared_permutation(int64_t rows, uint64_t seed,
                                                               int64_t epoch) {
  struct entry {
    int64_t rows;
    uint64_t seed;
    int64_t epoch;
    std::shared_ptr<const std::vector<int64_t>> perm;
  };
  static std::mutex mtx;
  static std::deque<entry> recent;
  constexpr size_t keep = 4;
  std::lock_guard<std::mutex> guard{mtx};
  for (const auto& e : recent)
    if (e.rows == rows && e.seed == seed && e.epoch == epoch)
      return e.perm;
  auto perm = std::make_shared<const std::vector<int64_t>>(epoch_permutation(rows, seed, epoch));
  recent.push_back({rows, seed, epoch, perm});
  if (recent.size() > keep)
    recent.pop_front();
  return perm;
}

} // namespace

void shard_sampler::begin_epoch(int64_t epoch) {
  const auto shared = shared_permutation(rows_, seed_, epoch);
  const auto& perm = *shared;
  const int64_t shard_size = rows_ / workers_;
  shard_.resize(shard_size);
  for (int64_t i = 0; i < shard_size; ++i)
    shard_[i] = perm[worker_ + i * workers_];
  epoch_ = epoch;
}

void shard_sampler::seek(int64_t epoch, int64_t step) {
  if (epoch != epoch_)
    begin_epoch(epoch);
  step_ = step;
}

const int64_t* shard_sampler::next() {
  if (steps_per_epoch_ == 0)
    return nullptr;
  if (step_ >= steps_per_epoch_)
    seek(epoch_ + 1, 0);
  return shard_.data() + (step_++) * batch_;
}

const int64_t* shard_sampler::peek() const {
  if (steps_per_epoch_ == 0 || step_ >= steps_per_epoch_)
    return nullptr;
  return shard_.data() + step_ * batch_;
}

} // namespace psgd::data
