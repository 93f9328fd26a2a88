// Synthetic problems with a known optimum, for tests and quick demos.
//
// Contract: everything is deterministic in the seed.
// - least squares: y = X w* + c* + noise. X ~ N(0, 1) per entry. The exact optimum of the
//   mean squared loss over the sample is computed in closed form (normal equations, in
//   double precision) and returned with the data, so tests can check convergence to it.
// - separable classification: `classes` well-separated Gaussian blobs in `dim` dimensions
//   (centres far apart relative to the spread), so a linear classifier reaches accuracy 1.
// Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.hpp"

namespace psgd::data {

struct least_squares_problem {
  split data;
  /// The exact minimiser of the mean squared loss on data.train: weights then intercept
  /// (the least-squares model's parameter layout).
  std::vector<double> optimum;
  /// The noise-free generating weights w* then c*.
  std::vector<double> truth;
};

least_squares_problem make_least_squares(int64_t train_rows, int64_t test_rows, int dim,
                                         double noise, uint64_t seed);

split make_separable(int64_t train_rows, int64_t test_rows, int dim, int classes,
                     uint64_t seed);

} // namespace psgd::data
