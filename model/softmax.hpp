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
#pragma once

#include "model/kernels.hpp"

namespace psgd::model {

class softmax_model final : public model {
public:
  /// `spec` must be valid (make_model checks it): input_dim > 0, classes >= 2.
  explicit softmax_model(const model_spec& spec);

  const model_spec& spec() const override { return spec_; }
  int64_t num_params() const override;
  void init(uint64_t seed, float* params) const override;
  std::unique_ptr<workspace> make_workspace(int max_batch) const override;
  using model::evaluate;
  evaluation evaluate(const float* params, const data::dataset& data,
                      int64_t rows) const override;

  /// The logits and the buffers that compute them, for up to `rows` examples
  /// (defined in the .cpp; public only so that the workspace there can hold one).
  struct forward_scratch;

private:
  float batch_gradient(const float* params, const minibatch& batch, float* grad,
                       workspace& ws) const override;

  /// s.z = x W + b for the n rows of x (n x input_dim, contiguous).
  void logits(const float* params, const float* x, int64_t n, forward_scratch& s) const;

  model_spec spec_;
};

} // namespace psgd::model
