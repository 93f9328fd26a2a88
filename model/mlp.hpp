// mlp: one-hidden-layer perceptron, input_dim -> hidden (ReLU) -> classes, trained on the
// mean softmax cross-entropy (the same output layer as softmax.hpp).
//
// Contract:
// - Parameter layout (flat float vector, in this order):
//     W1  input_dim x hidden, row-major
//     b1  hidden
//     W2  hidden x classes, row-major
//     b2  classes
//   num_params() = input_dim * hidden + hidden + hidden * classes + classes.
//   h = max(0, x W1 + b1); logits = h W2 + b2.
// - init(seed): He-normal weights, W1 ~ N(0, 2 / input_dim), W2 ~ N(0, 2 / hidden) (keeps
//   the activation variance roughly constant through the ReLU layer, so lr 0.1 at batch 32
//   trains from the first step), biases zero. The normals come from a hand-rolled
//   splitmix64 stream (seeded with `seed`) through Box-Muller in double, drawn in layout
//   order, so the same seed gives the same parameters with any standard library
//   (std::normal_distribution is implementation-defined; libm's last-bit differences in
//   log/cos/sin almost never survive the rounding to float); different seeds give different
//   parameters.
// - The model is immutable and thread-safe; gradient() uses only the caller's workspace and
//   allocates nothing once the workspace exists.
// - data must match the spec: dim == input_dim, labels in [0, classes) (asserts only).
#pragma once

#include "model/model.hpp"

namespace psgd::model {

class mlp_model final : public model {
public:
  /// `spec` must be valid (make_model checks it): input_dim > 0, hidden > 0, classes >= 2.
  explicit mlp_model(const model_spec& spec);

  const model_spec& spec() const override { return spec_; }
  int64_t num_params() const override;
  void init(uint64_t seed, float* params) const override;
  std::unique_ptr<workspace> make_workspace(int max_batch) const override;
  using model::evaluate;
  evaluation evaluate(const float* params, const data::dataset& data,
                      int64_t rows) const override;

  /// Activations, logits and the buffers that compute them, for up to `rows` examples
  /// (defined in the .cpp; public only so that the workspace there can hold one).
  struct forward_scratch;

private:
  float batch_gradient(const float* params, const minibatch& batch, float* grad,
                       workspace& ws) const override;

  /// Offsets of each block in the flat parameter vector (see the layout above).
  int64_t b1_offset() const;
  int64_t w2_offset() const;
  int64_t b2_offset() const;

  /// s.h = relu(x W1 + b1) and s.z = s.h W2 + b2 for the n rows of x (n x input_dim).
  void forward(const float* params, const float* x, int64_t n, forward_scratch& s) const;

  model_spec spec_;
};

} // namespace psgd::model
