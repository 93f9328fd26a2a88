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
void prefetch_bytes(const void* p, size_t bytes) {
  const char* c = reinterpret_cast<const char*>(p);
  for (size_t off = 0; off < bytes; off += 64)
    __builtin_prefetch(c + off);
}

} // namespace

void gather_rows(const data::dataset& data, const int64_t* index, int count, float* x,
                 int32_t* labels) {
  const size_t row_bytes = data.row_storage_bytes();
  if (count > 0)
    prefetch_bytes(data.row_storage(index[0]), row_bytes);
  for (int i = 0; i < count; ++i) {
    assert(index[i] >= 0 && index[i] < data.rows);
    if (i + 1 < count)
      prefetch_bytes(data.row_storage(index[i + 1]), row_bytes);
    data.copy_rows(index[i], 1, x + size_t(i) * data.dim);
  }
  if (labels != nullptr)
    for (int i = 0; i < count; ++i)
      labels[i] = data.labels[size_t(index[i])];
}

namespace {

using packet = Eigen::internal::packet_traits<float>::type;
constexpr int packet_size = Eigen::internal::packet_traits<float>::size;

/// Rows [r, r + Rows) of dst = x^T dh, columns [c, c + Packets * packet_size): Rows x
/// Packets independent accumulators in registers (enough of them to keep both FMA units
/// busy), each dh packet loaded once for all the rows.
template <int Rows, int Packets>
inline void product_block(const float* x, int n, int d, const float* dh, int h, int r, int c,
                          float* dst) {
  using namespace Eigen::internal;
  packet acc[Rows][Packets];
  for (auto& row : acc)
    for (auto& a : row)
      a = pset1<packet>(0.0f);
  for (int i = 0; i < n; ++i) {
    packet xs[Rows];
    for (int k = 0; k < Rows; ++k)
      xs[k] = pset1<packet>(x[size_t(i) * d + r + k]);
    const float* row = dh + size_t(i) * h + c;
    for (int j = 0; j < Packets; ++j) {
      const packet v = ploadu<packet>(row + j * packet_size);
      for (int k = 0; k < Rows; ++k)
        acc[k][j] = pmadd(xs[k], v, acc[k][j]);
    }
  }
  for (int k = 0; k < Rows; ++k)
    for (int j = 0; j < Packets; ++j)
      pstoreu(dst + size_t(r + k) * h + c + j * packet_size, acc[k][j]);
}

/// Columns [c, c + Packets * packet_size) of every row of dst, Rows rows at a time.
template <int Rows, int Packets>
void product_columns(const float* x, int n, int d, const float* dh, int h, int c, float* dst) {
  int r = 0;
  for (; r + Rows <= d; r += Rows)
    product_block<Rows, Packets>(x, n, d, dh, h, r, c, dst);
  for (; r < d; ++r)
    product_block<1, Packets>(x, n, d, dh, h, r, c, dst);
}

/// Fewer than 8 packets of columns left: as many rows at once as give >= 8 accumulators.
void product_narrow_columns(const float* x, int n, int d, const float* dh, int h, int c,
                            int packets, float* dst) {
  switch (packets) {
    case 1: return product_columns<8, 1>(x, n, d, dh, h, c, dst);
    case 2: return product_columns<4, 2>(x, n, d, dh, h, c, dst);
    case 3: return product_columns<3, 3>(x, n, d, dh, h, c, dst);
    case 4: return product_columns<2, 4>(x, n, d, dh, h, c, dst);
    case 5: return product_columns<2, 5>(x, n, d, dh, h, c, dst);
    case 6: return product_columns<2, 6>(x, n, d, dh, h, c, dst);
    case 7: return product_columns<2, 7>(x, n, d, dh, h, c, dst);
    default: return;
  }
}

} // namespace

void transposed_product(const float* x, int n, int d, const float* dh, int h, float* dst) {
  constexpr int wide = 8 * packet_size;
  int c = 0;
  for (; c + wide <= h; c += wide)
    product_columns<2, 8>(x, n, d, dh, h, c, dst);
  const int packets = (h - c) / packet_size;
  product_narrow_columns(x, n, d, dh, h, c, packets, dst);
  c += packets * packet_size;
  for (int r = 0; r < d && c < h; ++r)   // the last h % packet_size columns
    for (int col = c; col < h; ++col) {
      float sum = 0.0f;
      for (int i = 0; i < n; ++i)
        sum += x[size_t(i) * d + r] * dh[size_t(i) * h + col];
      dst[size_t(r) * h + col] = sum;
    }
}

bool transposed_product_wins(int n, int h) {
  return h % packet_size == 0
         && size_t(n) * size_t(h) * sizeof(float) <= size_t(Eigen::l1CacheSize());
}

} // namespace psgd::model
