#include "model/kernels.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace psgd::model {

float softmax_cross_entropy_backward(float* z_data, int n, int k, const int32_t* labels,
                                     float* scratch) {
  matrix_map z(z_data, n, k);
  Eigen::Map<Eigen::VectorXf> row_stat(scratch, n);
  // Shift every row so that its max is 0: exp cannot overflow and the sum is >= 1.
  row_stat.noalias() = z.rowwise().maxCoeff();
  z.colwise() -= row_stat;
  // -log p_y = log(sum_j exp z_j) - z_y (shifted z); the first term is added below.
  double loss = 0;
  for (int i = 0; i < n; ++i) {
    assert(labels[i] >= 0 && labels[i] < k);
    loss -= z(i, labels[i]);
  }
  // One flat, fully vectorized exp over the contiguous n * k block (faster than per row
  // when k is small, e.g. 10 classes).
  Eigen::Map<Eigen::ArrayXf> flat(z_data, Eigen::Index(n) * k);
  flat = flat.exp();
  row_stat.noalias() = z.rowwise().sum();
  for (int i = 0; i < n; ++i)
    loss += std::log(row_stat[i]);
  // softmax / n, then subtract onehot / n: the mean gradient with respect to the logits.
  const float inv_n = 1.0f / float(n);
  row_stat = (row_stat.array() * float(n)).inverse();
  z.array().colwise() *= row_stat.array();
  for (int i = 0; i < n; ++i)
    z(i, labels[i]) -= inv_n;
  return float(loss / n);
}

void accumulate_cross_entropy(const float* z_data, int64_t n, int k, const int32_t* labels,
                              double& loss_sum, int64_t& hits) {
  for (int64_t i = 0; i < n; ++i) {
    const float* z = z_data + i * k;
    const int32_t y = labels[i];
    assert(y >= 0 && y < k);
    // std::max_element returns the first max: ties go to the lower class.
    const int best = int(std::max_element(z, z + k) - z);
    const float top = z[best];
    double sum = 0;
    for (int j = 0; j < k; ++j)
      sum += std::exp(double(z[j] - top));
    loss_sum += std::log(sum) - double(z[y] - top);
    hits += (best == y);
  }
}

namespace {

/// Asks the cache for the `bytes` at `p`: a batch's rows are scattered over a dataset far
/// larger than the cache, so each row is a cold miss; fetching the next row while copying
/// this one hides part of that latency.
void prefetch_bytes(const float* p, size_t bytes) {
  const char* c = reinterpret_cast<const char*>(p);
  for (size_t off = 0; off < bytes; off += 64)
    __builtin_prefetch(c + off);
}

} // namespace

void gather_rows(const data::dataset& data, const int64_t* index, int count, float* x,
                 int32_t* labels) {
  const size_t row_bytes = size_t(data.dim) * sizeof(float);
  if (count > 0)
    prefetch_bytes(data.row(index[0]), row_bytes);
  for (int i = 0; i < count; ++i) {
    assert(index[i] >= 0 && index[i] < data.rows);
    if (i + 1 < count)
      prefetch_bytes(data.row(index[i + 1]), row_bytes);
    std::memcpy(x + size_t(i) * data.dim, data.row(index[i]), row_bytes);
  }
  if (labels != nullptr)
    for (int i = 0; i < count; ++i)
      labels[i] = data.labels[size_t(index[i])];
}

void prefetch_rows(const data::dataset& data, const int64_t* index, int count) {
  const size_t row_bytes = size_t(data.dim) * sizeof(float);
  for (int i = 0; i < count; ++i)
    prefetch_bytes(data.row(index[i]), row_bytes);
}

} // namespace psgd::model
