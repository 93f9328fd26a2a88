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

/// A short text that differs when two datasets differ: sizes and an FNV-1a hash of the
/// labels/targets and of every 97th feature. Two processes compare it to agree on the data.
std::string fingerprint(const dataset& d);

/// A training set and its test set.
struct split {
  dataset train;
  dataset test;
};

} // namespace psgd::data
