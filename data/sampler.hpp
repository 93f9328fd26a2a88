// shard_sampler: the minibatch stream of one worker.
//
// Each epoch e the training set (rows 0..n) is permuted by a Fisher-Yates shuffle seeded from
// (seed, e) only, so every worker sees the same permutation; worker k of m takes the strided
// shard perm[k], perm[k + m], perm[k + 2m], ... (floor(n / m) examples; the remainder of the
// epoch is left out), and walks it b examples at a time; a partial last batch is skipped.
// Shards of one epoch are disjoint (like PyTorch's DistributedSampler).
//
// Why strided: step s of worker k then reads perm[m*s*b + k + m*i], i < b, so the union of the
// m workers' step-s batches is exactly the contiguous batch s of size m*b that a single
// sampler (worker 0 of 1, batch m*b) reads. Synchronous SGD with m workers is thereby
// sample-for-sample the same as sequential SGD with batch m*b.
//
// Every worker's stream is reproducible from (seed, worker id, epoch): position() and
// seek() save and restore it. Not thread-safe: one sampler per worker. (The samplers of a
// process share each epoch's permutation through a small locked cache: it is computed once.)
#pragma once

#include <cstdint>
#include <vector>

namespace psgd::data {

class shard_sampler {
public:
  shard_sampler(int64_t rows, uint64_t seed, int worker, int workers, int batch);

  /// Minibatches per epoch for one of `workers` workers of batch `batch` (0 = the batch
  /// is larger than a shard).
  static int64_t steps_per_epoch(int64_t rows, int workers, int batch);

  /// The next minibatch: batch() indices into the training set, valid until the next call;
  /// nullptr when the batch is larger than the shard (steps_per_epoch() == 0).
  const int64_t* next();
  /// The batch the next call to next() returns, without taking it; nullptr when that batch
  /// opens a new epoch (or there is none).
  const int64_t* peek() const;

  int batch() const { return batch_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  /// Epoch and step (within the epoch) of the batch the next call to next() returns.
  int64_t epoch() const { return epoch_; }
  int64_t step() const { return step_; }
  /// Continue from (epoch, step), e.g. after a restart.
  void seek(int64_t epoch, int64_t step);

private:
  void begin_epoch(int64_t epoch);

  int64_t rows_;
  uint64_t seed_;
  int worker_;
  int workers_;
  int batch_;
  int64_t steps_per_epoch_;
  int64_t epoch_ = -1;
  int64_t step_ = 0;
  std::vector<int64_t> shard_;
};

/// The permutation of 0..rows used in `epoch` (exposed for tests).
std::vector<int64_t> epoch_permutation(int64_t rows, uint64_t seed, int64_t epoch);

} // namespace psgd::data
