#include "data/sampler.hpp"

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

void shard_sampler::begin_epoch(int64_t epoch) {
  auto perm = epoch_permutation(rows_, seed_, epoch);
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

} // namespace psgd::data
