// dataset: a table of examples held in memory, row-major, ready for Eigen maps.
//
// Contract: the examples are held one of two ways, rows * dim values each (row i at
// offset i * dim): as floats in `features` (synthetic sets), or as bytes in `pixels` (image
// sets, 4x smaller: byte v is the feature v / 255.0f, exactly the float the byte used to be
// loaded as). Exactly one of the two is non-empty unless rows or dim is 0. A classification
// set has `classes` > 0 and one label in [0, classes) per row; a regression set has
// classes == 0 and one float target per row. A dataset is immutable once built and may be
// read from any number of threads at once.
#pragma once

#include <cassert>
#include <cstdint>
#include <string>
#include <vector>

namespace psgd::data {

/// The feature a pixel byte stands for. Division, not a multiply by 1/255 (one ulp off for
/// 126 of the 256 bytes): the value every byte was loaded as before sets kept their bytes.
inline float pixel_value(uint8_t v) { return float(v) / 255.0f; }

struct dataset {
  int64_t rows = 0;
  int dim = 0;
  int classes = 0;               ///< 0 = regression (targets), > 0 = classification (labels)
  std::vector<float> features;   ///< rows * dim, row-major; empty for a set of pixels
  std::vector<uint8_t> pixels;   ///< rows * dim, row-major, byte v = feature v / 255.0f
  std::vector<int32_t> labels;   ///< classification only
  std::vector<float> targets;    ///< regression only

  bool holds_pixels() const { return !pixels.empty(); }
  bool is_classification() const { return classes > 0; }

  /// Row i of a set of floats (not of pixels: see copy_rows()).
  const float* row(int64_t i) const {
    assert(!holds_pixels());
    return features.data() + i * dim;
  }
  /// Rows [first, first + n) as n * dim floats into `out`.
  void copy_rows(int64_t first, int64_t n, float* out) const;
  /// Rows [first, first + n) as floats: a pointer into `features`, or (pixels) `scratch`,
  /// resized to n * dim and filled. Valid until `scratch` changes.
  const float* float_rows(int64_t first, int64_t n, std::vector<float>& scratch) const;
  /// Where row i's storage starts and how long it is: what to prefetch.
  const void* row_storage(int64_t i) const;
  size_t row_storage_bytes() const;

  /// The first `n` rows as a new dataset (used for the fixed training-loss subsample).
  dataset head(int64_t n) const;
};

/// A short text that differs when two datasets differ: "rows x dim / classes : hash", the
/// hash a 64-bit one of every byte of the labels, targets and features or pixels (XXH64's
/// round over 32 lanes; one changed feature always changes it). Two processes compare it to
/// agree on the data; the same on every run and on machines of the same endianness. It reads
/// every byte once: 47 MB for the Fashion-MNIST training set.
std::string fingerprint(const dataset& d);

/// A training set and its test set.
struct split {
  dataset train;
  dataset test;
};

} // namespace psgd::data
