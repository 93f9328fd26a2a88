#include "model/mlp.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <vector>

#include "data/random.hpp"
#include "model/kernels.hpp"

namespace psgd::model {

namespace {

/// Fills out[0..n) with N(0, stddev^2) by Box-Muller (both outputs of each pair are used).
void fill_normal(data::splitmix64& rng, double stddev, float* out, int64_t n) {
  constexpr double two_pi = 6.283185307179586476925286766559;
  for (int64_t i = 0; i < n; i += 2) {
    // 1 - uniform() is in (0, 1]: the log is finite.
    const double radius = std::sqrt(-2.0 * std::log(1.0 - rng.uniform())) * stddev;
    const double angle = two_pi * rng.uniform();
    out[i] = float(radius * std::cos(angle));
    if (i + 1 < n)
      out[i + 1] = float(radius * std::sin(angle));
  }
}

} // namespace

struct mlp_model::forward_scratch {
  forward_scratch(int64_t rows, const model_spec& s)
    : h(rows, s.hidden), z(rows, s.classes), hidden(rows, s.hidden, s.input_dim),
      output(rows, s.classes, s.hidden) {}
  row_matrix h;                               ///< rows x hidden: ReLU activations
  row_matrix z;                               ///< rows x classes: logits
  gemm_buffers<Eigen::RowMajor> hidden;       ///< x W1
  narrow_product_buffers output;              ///< h W2
};

namespace {

/// Scratch for one caller (besides the base's gathered rows): the forward pass, the gradient
/// with respect to the hidden pre-activations and the buffers of every backward product.
class mlp_workspace final : public workspace {
public:
  mlp_workspace(int max_batch, const model_spec& s)
    : workspace(max_batch, s.input_dim), forward(max_batch, s),
      dh(max_batch, s.hidden), grad_w2(s.hidden, s.classes, max_batch),
      grad_h(max_batch, s.hidden, s.classes), grad_w1(s.input_dim, s.hidden, max_batch),
      scratch(size_t(max_batch)) {}

  mlp_model::forward_scratch forward;      ///< z: logits, then their gradient
  row_matrix dh;                           ///< max_batch x hidden
  narrow_product_buffers grad_w2;          ///< h^T dz
  gemm_buffers<Eigen::RowMajor> grad_h;    ///< dz W2^T
  gemm_buffers<Eigen::RowMajor> grad_w1;   ///< x^T dh
  std::vector<float> scratch;              ///< max_batch
};

} // namespace

mlp_model::mlp_model(const model_spec& spec) : spec_(spec) {}

int64_t mlp_model::b1_offset() const { return int64_t(spec_.input_dim) * spec_.hidden; }
int64_t mlp_model::w2_offset() const { return b1_offset() + spec_.hidden; }
int64_t mlp_model::b2_offset() const {
  return w2_offset() + int64_t(spec_.hidden) * spec_.classes;
}
int64_t mlp_model::num_params() const { return b2_offset() + spec_.classes; }

void mlp_model::init(uint64_t seed, float* params) const {
  data::splitmix64 rng(seed);
  fill_normal(rng, std::sqrt(2.0 / spec_.input_dim), params, b1_offset());
  std::fill(params + b1_offset(), params + w2_offset(), 0.0f);
  fill_normal(rng, std::sqrt(2.0 / spec_.hidden), params + w2_offset(),
              b2_offset() - w2_offset());
  std::fill(params + b2_offset(), params + num_params(), 0.0f);
}

std::unique_ptr<workspace> mlp_model::make_workspace(int max_batch) const {
  return std::make_unique<mlp_workspace>(std::max(max_batch, 1), spec_);
}

void mlp_model::forward(const float* params, const float* x, int64_t n,
                        forward_scratch& s) const {
  const int d = spec_.input_dim, hid = spec_.hidden, k = spec_.classes;
  matrix_map h(s.h.data(), n, hid);
  affine_product(const_matrix_map(x, n, d), const_matrix_map(params, d, hid),
                 params + b1_offset(), h, s.hidden);
  h = h.cwiseMax(0.0f);
  narrow_affine_product(h, const_matrix_map(params + w2_offset(), hid, k),
                        params + b2_offset(), matrix_map(s.z.data(), n, k), s.output);
}

float mlp_model::batch_gradient(const float* params, const minibatch& batch, float* grad,
                                workspace& ws_base) const {
  auto& ws = static_cast<mlp_workspace&>(ws_base);
  assert(dynamic_cast<mlp_workspace*>(&ws_base) != nullptr);
  const int count = batch.count;
  assert(batch.labels != nullptr);
  const int d = spec_.input_dim, hid = spec_.hidden, k = spec_.classes;
  forward(params, batch.x, count, ws.forward);
  const float loss = softmax_cross_entropy_backward(ws.forward.z.data(), count, k,
                                                    batch.labels, ws.scratch.data());
  const_matrix_map x(batch.x, count, d);
  const_matrix_map h(ws.forward.h.data(), count, hid);
  const_matrix_map dz(ws.forward.z.data(), count, k);
  matrix_map dh(ws.dh.data(), count, hid);
  // Output layer (dz already carries the 1/n of the mean).
  narrow_affine_product(h.transpose(), dz, nullptr, matrix_map(grad + w2_offset(), hid, k),
                        ws.grad_w2);
  column_sums(dz, grad + b2_offset());
  // Back through the ReLU: its derivative is 1 where the activation is positive, else 0.
  affine_product(dz, const_matrix_map(params + w2_offset(), hid, k).transpose(), nullptr, dh,
                 ws.grad_h);
  dh.array() = (h.array() > 0.0f).select(dh.array(), 0.0f);
  if (transposed_product_wins(count, hid))
    transposed_product(batch.x, count, d, ws.dh.data(), hid, grad);
  else
    affine_product(x.transpose(), dh, nullptr, matrix_map(grad, d, hid), ws.grad_w1);
  column_sums(const_matrix_map(dh.data(), count, hid), grad + b1_offset());
  return loss;
}

evaluation mlp_model::evaluate(const float* params, const data::dataset& data,
                               int64_t rows) const {
  assert(data.dim == spec_.input_dim && data.is_classification());
  forward_scratch s(std::max<int64_t>(1, std::min(rows, eval_chunk_rows)), spec_);
  return evaluate_classifier(data, rows, spec_.classes, [&](const float* x, int64_t n) {
    forward(params, x, n, s);
    return s.z.data();
  });
}

} // namespace psgd::model
