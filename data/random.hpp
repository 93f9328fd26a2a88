// Reproducible random numbers: splitmix64 and helpers built on it.
//
// Contract: every value depends only on the seed and the call sequence, identically on every
// platform and standard library (std::uniform_int_distribution and friends are
// implementation-defined, so psgd does not use them for anything that must reproduce).
// A generator is a plain value; not thread-safe (give each thread its own).
#pragma once

#include <cmath>
#include <cstdint>

namespace psgd::data {

class splitmix64 {
public:
  explicit splitmix64(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, bound) (Lemire's multiply-shift; the bias is < bound / 2^64).
  uint64_t below(uint64_t bound) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * bound) >> 64);
  }
  /// Uniform in [0, 1).
  double uniform() { return (next() >> 11) * 0x1.0p-53; }
  /// Standard normal (Box-Muller; one draw per call, the second value is discarded).
  double normal() {
    double u1 = uniform();
    double u2 = uniform();
    return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(6.283185307179586 * u2);
  }

private:
  uint64_t state_;
};

/// Mixes several values into one seed (order matters): e.g. (seed, worker, epoch).
inline uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0) {
  splitmix64 g{a ^ 0x5851f42d4c957f2dULL};
  uint64_t x = g.next() ^ b;
  splitmix64 h{x};
  return splitmix64{h.next() ^ c}.next();
}

} // namespace psgd::data
