// least_squares: linear regression y ~ x . w + c on a regression dataset (classes == 0,
// one float target per row), loss = mean over the batch of 0.5 * (x . w + c - y)^2.
//
// Contract:
// - Parameter layout (flat float vector, num_params() = input_dim + 1):
//     w  input_dim   params[0 .. input_dim)
//     c  1           params[input_dim]
// - init(): all zeros whatever the seed (the loss is convex).
// - evaluate(): mean loss over the dataset; accuracy is always 0 (no classes).
// - The model is immutable and thread-safe; gradient() uses only the caller's workspace and
//   allocates nothing once the workspace exists.
// - data must match the spec: dim == input_dim, targets.size() == rows (asserts only).
#pragma once

#include "model/model.hpp"

namespace psgd::model {

class least_squares_model final : public model {
public:
  /// `spec` must be valid (make_model checks it): input_dim > 0.
  explicit least_squares_model(const model_spec& spec);

  const model_spec& spec() const override { return spec_; }
  int64_t num_params() const override;
  void init(uint64_t seed, float* params) const override;
  std::unique_ptr<workspace> make_workspace(int max_batch) const override;
  using model::evaluate;
  evaluation evaluate(const float* params, const data::dataset& data,
                      int64_t rows) const override;

private:
  float batch_gradient(const float* params, const minibatch& batch, float* grad,
                       workspace& ws) const override;

  /// r = x w + c - y for the n rows of x (n x input_dim) and their targets y.
  void residuals(const float* params, const float* x, const float* y, int64_t n,
                 float* r) const;

  model_spec spec_;
};

} // namespace psgd::model
