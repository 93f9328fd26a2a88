// dataset: a table of examples held in memory, row-major, ready for Eigen maps.
//
// Contract: `features` holds rows * dim floats (row i at features[i * dim]). A
// classification set has `classes` > 0 and one label in [0, classes) per row; a regression
// set has classes == 0 and one float target per row. A dataset is immutable once built and
// may be read from any number of threads at once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace psgd::data {

struct dataset {
  int64_t rows = 0;
  int dim = 0;
  int classes = 0;               ///< 0 = regression (targets), > 0 = classification (labels)
  std::vector<float> features;   ///< rows * dim, row-major
  std::vector<int32_t> labels;   ///< classification only
  std::vector<float> targets;    ///< regression only

  const float* row(int64_t i) const { return features.data() + i * dim; }
  bool is_classification() const { return classes > 0; }

  /// The first `n` rows as a new dataset (used for the fixed training-loss subsample).
  dataset head(int64_t n) const;
};

/// A short text that differs when two datasets differ: "rows x dim / classes : hash", the
/// hash a 64-bit one of every byte of the labels, targets and features (XXH64's round over
/// 32 lanes; one changed feature always changes it). Two processes compare it to agree on the
/// data; the same on every run and on machines of the same endianness. ~22 ms for the
/// Fashion-MNIST training set (188 MB of features).
std::string fingerprint(const dataset& d);

/// A training set and its test set.
struct split {
  dataset train;
  dataset test;
};

} // namespace psgd::data
