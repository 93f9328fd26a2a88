// buffer_pool: recycled float vectors of one length, for snapshots and gradients; and
// receive_buffer(), the buffers deserialised messages land in.
//
// Why: a parameter vector is 31 KB (softmax) to 407 KB (MLP); allocating one per update or
// per step costs page faults (glibc maps blocks over 128 KB). acquire() hands out a vector
// that returns to the pool when its last shared_ptr dies, on whatever thread that happens.
//
// Contract: every buffer has exactly length() floats; its contents are unspecified (the
// caller overwrites all of them). Thread-safe: acquire() and the release of buffers may run
// on any threads at once. Buffers may outlive the pool (they are then freed, not recycled).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace psgd {

class buffer_pool {
public:
  /// `keep`: how many released buffers to hold for reuse at most.
  explicit buffer_pool(size_t length, size_t keep = 64);
  ~buffer_pool();

  buffer_pool(const buffer_pool&) = delete;
  buffer_pool& operator=(const buffer_pool&) = delete;
  buffer_pool(buffer_pool&&) = default;
  buffer_pool& operator=(buffer_pool&&) = default;

  size_t length() const { return length_; }
  std::shared_ptr<std::vector<float>> acquire();

private:
  struct shelf;
  size_t length_;
  std::shared_ptr<shelf> shelf_;
};

/// A buffer of `n` floats for a float_buffer being deserialised (its contents unspecified:
/// the deserialiser overwrites them). A process receives the same few lengths over and over
/// (the parameters, the gradients), so buffers of up to 8 lengths of at least 1024 floats
/// come from one process-wide buffer_pool per length (keeping at most 16 each): a received
/// message costs neither an allocation nor zeroing its buffer before the copy. Others are
/// plain allocations. Thread-safe.
std::shared_ptr<std::vector<float>> receive_buffer(size_t n);

} // namespace psgd
