// softmax: multinomial logistic regression, input_dim -> classes, mean cross-entropy loss.
//
// Contract:
// - Parameter layout (flat float vector, num_params() = input_dim * classes + classes):
//     W  input_dim x classes, row-major   params[0 .. input_dim * classes)
//     b  classes                          params[input_dim * classes .. num_params())
//   logits = x W + b; loss = mean over the batch of -log softmax(logits)[label].
// - init(): all zeros whatever the seed (the loss is convex; zeros is what the reference
//   sequential SGD uses), so init is trivially deterministic.
// - The model is immutable and thread-safe; gradient() uses only the caller's workspace and
//   allocates nothing once the workspace exists.
// - data must match the spec: dim == input_dim, labels in [0, classes). Checked by assert
//   only: gradient() is the hot loop.
//
// This header also exports the softmax cross-entropy kernels and the Eigen aliases that the
// MLP (same output layer) reuses.
#pragma once

// GCC 12's AVX-512 intrinsics (which Eigen inlines under -march=native) trip a false
// -Wmaybe-uninitialized (GCC bug 105593). The warning is attributed to the intrinsics
// header, so silencing it only while that header is first included is enough and leaves the
// warning on for our own code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Dense>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "model/model.hpp"

namespace psgd::model {

using row_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// Maps are contiguous (no outer stride), so Eigen may treat them as one flat array.
using matrix_map = Eigen::Map<row_matrix>;
using const_matrix_map = Eigen::Map<const row_matrix>;
using row_vector_map = Eigen::Map<Eigen::RowVectorXf>;
using const_row_vector_map = Eigen::Map<const Eigen::RowVectorXf>;

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

/// Copies rows index[0..count) of `data` into `x` (count x dim, contiguous) and, when
/// `labels` is not null, their labels into labels[0..count).
void gather_rows(const data::dataset& data, const int64_t* index, int count, float* x,
                 int32_t* labels);

/// out (rows x cols, row-major) = lhs * rhs, for products with few columns (the output
/// layer: `classes` of them). Eigen computes a row-major product as the col-major product of
/// the transposes, where those few columns become the rows of its 48-row micro-kernel and
/// leave it mostly idle; a col-major product into `scratch` (>= rows * cols floats) plus a
/// transposing copy is ~1.5x faster at 10 columns. Allocates nothing.
template <class Lhs, class Rhs>
void narrow_product(const Lhs& lhs, const Rhs& rhs, float* scratch, matrix_map out) {
  Eigen::Map<Eigen::MatrixXf> col_major(scratch, out.rows(), out.cols());
  col_major.noalias() = lhs * rhs;
  out = col_major;
}

/// Rows per chunk in evaluate(): bounds its memory whatever the dataset size.
inline constexpr int64_t eval_chunk_rows = 1024;

class softmax_model final : public model {
public:
  /// `spec` must be valid (make_model checks it): input_dim > 0, classes >= 2.
  explicit softmax_model(const model_spec& spec);

  const model_spec& spec() const override { return spec_; }
  int64_t num_params() const override;
  void init(uint64_t seed, float* params) const override;
  std::unique_ptr<workspace> make_workspace(int max_batch) const override;
  float gradient(const float* params, const data::dataset& data, const int64_t* index,
                 int count, float* grad, workspace& ws) const override;
  evaluation evaluate(const float* params, const data::dataset& data) const override;

private:
  /// z = x W + b for the n rows of x (n x input_dim); z is n x classes. `product` is
  /// narrow_product() scratch of n * classes floats.
  void logits(const float* params, const float* x, int64_t n, float* z,
              float* product) const;

  model_spec spec_;
};

} // namespace psgd::model
