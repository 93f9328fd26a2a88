// kernels: the numeric building blocks the models share.
//
// The Eigen aliases over flat float vectors, the numerically stable softmax cross-entropy
// (softmax regression and the MLP share that output layer), row gathering, and
// allocation-free matrix products whose GEMM buffers live in a workspace (they call Eigen
// 3.4's internal GEMM entry point; see below). Those buffers are scratch: one owner, one
// thread at a time. Everything else here is stateless and thread-safe.
#pragma once

// GCC 12's AVX-512 intrinsics (which Eigen inlines under -march=native) trip a false
// -W(maybe-)uninitialized (GCC bug 105593), and Eigen 3.4's AVX packet code has unused
// variables (seen when Eigen is not a -isystem include). The warnings are attributed to
// those headers, so silencing them only while they are first included is enough and leaves
// them on for our own code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wunused-variable"
#endif
#include <Eigen/Dense>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <algorithm>
#include <type_traits>
#include <vector>

#include "model/model.hpp"

namespace psgd::model {

using row_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// Maps are contiguous (no outer stride), so Eigen may treat them as one flat array.
using matrix_map = Eigen::Map<row_matrix>;
using const_matrix_map = Eigen::Map<const row_matrix>;
using row_vector_map = Eigen::Map<Eigen::RowVectorXf>;
using const_row_vector_map = Eigen::Map<const Eigen::RowVectorXf>;

/// out[j] = the sum of column j of `m`, row after row: the same bits wherever `out` lies.
/// (Eigen's vectorised colwise().sum() peels columns by the destination's alignment and sums
/// the peeled ones in another order, so a bias gradient depended on its buffer's address:
/// runs were not reproducible.)
inline void column_sums(const const_matrix_map& m, float* out) {
  std::fill(out, out + m.cols(), 0.0f);
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    const float* row = m.data() + i * m.cols();
    for (Eigen::Index j = 0; j < m.cols(); ++j)
      out[j] += row[j];
  }
}

/// Turns the logits `z` (n x k, contiguous, row-major) in place into the gradient of the
/// MEAN cross-entropy with respect to them, (softmax(z) - onehot(label)) / n, and returns
/// the mean loss. `labels` holds n labels in [0, k); `scratch` holds at least n floats.
/// Numerically stable (each row is shifted by its max before exp). Allocates nothing.
float softmax_cross_entropy_backward(float* z, int n, int k, const int32_t* labels,
                                     float* scratch);

/// Adds to `loss_sum` the cross-entropy of each of the n rows of logits `z` (n x k) and to
/// `hits` the number of rows whose argmax equals the label (ties go to the lower class).
void accumulate_cross_entropy(const float* z, int64_t n, int k, const int32_t* labels,
                              double& loss_sum, int64_t& hits);

/// Copies rows index[0..count) of `data` into `x` as floats (count x dim, contiguous) and, when
/// `labels` is not null, their labels into labels[0..count).
void gather_rows(const data::dataset& data, const int64_t* index, int count, float* x,
                 int32_t* labels);

/// dst = x^T dh, written without reading dst: x is n x d, dh n x h, dst d x h (all
/// row-major, contiguous). The weight gradient of a dense layer at a small batch: each row
/// of dst is the sum over the n examples of x[i][r] * dh[i], accumulated in order with fused
/// multiply-adds (the same operations, in the same order, as Eigen's GEMM kernel on a
/// zeroed dst). Eigen's GEMM only accumulates (dst += ...), so it needed a zeroing pass over
/// dst first, which for the MLP's 401 KB W1 gradient cost more than its share.
/// Any sizes >= 1 (columns past the last whole SIMD packet go one at a time, slowly).
void transposed_product(const float* x, int n, int d, const float* dh, int h, float* dst);

/// Whether transposed_product() beats Eigen's GEMM (with its zeroing pass) for a batch of n
/// rows and h columns: h a multiple of the SIMD width, and dh (n x h, re-read for every
/// block of rows) within the L1 cache. On the 2-core Xeon of docs/BENCHMARKS.md at d=784:
/// n=32, h=128 35 us against 44; n=32, h=384 120 against 142; n=8, h=256 26 against 38; past
/// the L1 (n=64, h=256; n=128, h=128) Eigen's cache blocking wins by 13-27%.
/// (A register kernel for the forward product x W1 + b1 won as well on its own, 36 us
/// against 42, but made sequential MLP training 4% slower: Eigen's packed copy of W1 serves
/// the rest of the step better.)
bool transposed_product_wins(int n, int h);

// --- allocation-free matrix products ---------------------------------------------------
//
// Eigen's product evaluator takes GEMM's packing buffers from the heap on every call once
// they exceed EIGEN_STACK_ALLOCATION_LIMIT (128 KiB), which already happens for a 32 x 784
// by 784 x 128 product. The helpers below keep those buffers in the caller's workspace and
// call Eigen's GEMM kernel through the internal entry point its own evaluator uses
// (Eigen 3.4: internal::general_matrix_matrix_product::run).

#if !EIGEN_VERSION_AT_LEAST(3, 4, 0)
#error "psgd's model layer calls Eigen 3.4's internal GEMM entry point"
#endif

template <class T>
inline constexpr int storage_order_of =
    (std::decay_t<T>::Flags & Eigen::RowMajorBit) ? Eigen::RowMajor : Eigen::ColMajor;

/// GEMM packing buffers for products whose destination has storage order `Order`, blocked
/// for the largest product the owner runs (dst up to rows x cols, inner dimension up to
/// depth) and valid for any smaller one. Allocated once, here. Not copyable; used by one
/// thread at a time (it is scratch memory).
template <int Order>
class gemm_buffers {
public:
  gemm_buffers(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth)
    : blocking_(std::max<Eigen::Index>(rows, 1), std::max<Eigen::Index>(cols, 1),
                std::max<Eigen::Index>(depth, 1), /*num_threads=*/1, /*l3_blocking=*/true) {
    blocking_.allocateAll();
  }
  gemm_buffers(const gemm_buffers&) = delete;
  gemm_buffers& operator=(const gemm_buffers&) = delete;

  Eigen::internal::level3_blocking<float, float>& blocking() { return blocking_; }

private:
  Eigen::internal::gemm_blocking_space<Order, float, float, Eigen::Dynamic, Eigen::Dynamic,
                                       Eigen::Dynamic>
      blocking_;
};

/// dst += lhs * rhs. Operands: float matrices (maps, or their transposes) with unit inner
/// stride; dst's storage order must be the buffers' `Order`. Allocates nothing.
template <int Order, class Lhs, class Rhs, class Dst>
void gemm_add(const Lhs& lhs, const Rhs& rhs, Dst& dst, gemm_buffers<Order>& buffers) {
  static_assert(storage_order_of<Dst> == Order, "destination order differs from buffers'");
  static_assert(Lhs::InnerStrideAtCompileTime == 1 && Rhs::InnerStrideAtCompileTime == 1 &&
                    Dst::InnerStrideAtCompileTime == 1,
                "gemm_add needs unit inner strides");
  eigen_assert(lhs.cols() == rhs.rows() && dst.rows() == lhs.rows() &&
               dst.cols() == rhs.cols());
  if (dst.rows() == 0 || dst.cols() == 0 || lhs.cols() == 0)
    return;
  using kernel = Eigen::internal::general_matrix_matrix_product<
      Eigen::Index, float, storage_order_of<Lhs>, false, float, storage_order_of<Rhs>, false,
      Order, 1>;
  kernel::run(dst.rows(), dst.cols(), lhs.cols(), lhs.data(), lhs.outerStride(), rhs.data(),
              rhs.outerStride(), dst.data(), 1, dst.outerStride(), 1.0f, buffers.blocking(),
              nullptr);
}

/// Sets every row of dst (rows x cols) to `bias`, or to zero when bias is null.
template <class Dst>
void fill_rows(Dst& dst, const float* bias) {
  if (bias != nullptr)
    dst.rowwise() = const_row_vector_map(bias, dst.cols());
  else
    dst.setZero();
}

/// dst = lhs * rhs (+ bias on every row when bias is not null); dst row-major.
template <class Lhs, class Rhs>
void affine_product(const Lhs& lhs, const Rhs& rhs, const float* bias, matrix_map dst,
                    gemm_buffers<Eigen::RowMajor>& buffers) {
  fill_rows(dst, bias);
  gemm_add(lhs, rhs, dst, buffers);
}

/// Buffers of narrow_affine_product() for a dst up to rows x cols, inner dimension depth.
struct narrow_product_buffers {
  narrow_product_buffers(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth)
    : gemm(rows, cols, depth), col_major(rows * cols) {}
  gemm_buffers<Eigen::ColMajor> gemm;
  Eigen::VectorXf col_major;   ///< the product, column-major, before its transposing copy
};

/// affine_product() for a dst with few columns (the output layer: `classes` of them).
/// Eigen computes a row-major product as the column-major product of the transposes, where
/// those few columns become the rows of its 48-row micro-kernel and leave it mostly idle; a
/// column-major product plus a transposing copy is ~1.5x faster at 10 columns.
template <class Lhs, class Rhs>
void narrow_affine_product(const Lhs& lhs, const Rhs& rhs, const float* bias,
                           matrix_map dst, narrow_product_buffers& buffers) {
  Eigen::Map<Eigen::MatrixXf> col_major(buffers.col_major.data(), dst.rows(), dst.cols());
  fill_rows(col_major, bias);
  gemm_add(lhs, rhs, col_major, buffers.gemm);
  dst = col_major;
}

/// Rows per chunk in evaluate(): bounds its memory whatever the dataset size.
inline constexpr int64_t eval_chunk_rows = 1024;

/// Mean cross-entropy and accuracy of a classifier over the first `rows` rows of `data`, a
/// chunk of at most eval_chunk_rows rows at a time: `logits(x, n)` returns the n x classes
/// logits (row-major) of the n rows of floats at x (a chunk of the set's rows).
template <class Logits>
evaluation evaluate_classifier(const data::dataset& data, int64_t rows, int classes,
                               Logits&& logits) {
  evaluation result;
  rows = std::min(rows, data.rows);
  if (rows <= 0)
    return result;
  double loss_sum = 0;
  int64_t hits = 0;
  std::vector<float> chunk;   // a set of pixels: the chunk's rows as floats
  for (int64_t start = 0; start < rows; start += eval_chunk_rows) {
    const int64_t n = std::min(eval_chunk_rows, rows - start);
    accumulate_cross_entropy(logits(data.float_rows(start, n, chunk), n), n, classes,
                             data.labels.data() + start, loss_sum, hits);
  }
  result.loss = loss_sum / double(rows);
  result.accuracy = double(hits) / double(rows);
  return result;
}

} // namespace psgd::model
