#include "model/softmax.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

namespace psgd::model {

// --- the model -------------------------------------------------------------------------

struct softmax_model::forward_scratch {
  forward_scratch(int64_t rows, const model_spec& s)
    : z(rows, s.classes), logits(rows, s.classes, s.input_dim) {}
  row_matrix z;                     ///< rows x classes
  narrow_product_buffers logits;    ///< x W
};

namespace {

/// Scratch for one caller (besides the base's gathered rows): the forward pass and the
/// buffers of the backward products.
class softmax_workspace final : public workspace {
public:
  softmax_workspace(int max_batch, const model_spec& s)
    : workspace(max_batch, s.input_dim), forward(max_batch, s),
      grad_w(s.input_dim, s.classes, max_batch), scratch(size_t(max_batch)) {}

  softmax_model::forward_scratch forward;      ///< z: logits, then their gradient
  narrow_product_buffers grad_w;               ///< x^T dz
  std::vector<float> scratch;                  ///< max_batch
};

} // namespace

softmax_model::softmax_model(const model_spec& spec) : spec_(spec) {}

int64_t softmax_model::num_params() const {
  return int64_t(spec_.input_dim) * spec_.classes + spec_.classes;
}

void softmax_model::init(uint64_t /*seed*/, float* params) const {
  std::fill(params, params + num_params(), 0.0f);
}

std::unique_ptr<workspace> softmax_model::make_workspace(int max_batch) const {
  return std::make_unique<softmax_workspace>(std::max(max_batch, 1), spec_);
}

void softmax_model::logits(const float* params, const float* x, int64_t n,
                           forward_scratch& s) const {
  const int d = spec_.input_dim, k = spec_.classes;
  narrow_affine_product(const_matrix_map(x, n, d), const_matrix_map(params, d, k),
                        params + int64_t(d) * k, matrix_map(s.z.data(), n, k), s.logits);
}

float softmax_model::batch_gradient(const float* params, const minibatch& batch, float* grad,
                                    workspace& ws_base) const {
  auto& ws = static_cast<softmax_workspace&>(ws_base);
  assert(dynamic_cast<softmax_workspace*>(&ws_base) != nullptr);
  const int count = batch.count;
  assert(batch.labels != nullptr);
  const int d = spec_.input_dim, k = spec_.classes;
  logits(params, batch.x, count, ws.forward);
  float* dz_data = ws.forward.z.data();
  const float loss = softmax_cross_entropy_backward(dz_data, count, k, batch.labels,
                                                    ws.scratch.data());
  // dL/dW = x^T dz, dL/db = column sums of dz (dz already carries the 1/n of the mean).
  const_matrix_map x(batch.x, count, d);
  const_matrix_map dz(dz_data, count, k);
  narrow_affine_product(x.transpose(), dz, nullptr, matrix_map(grad, d, k), ws.grad_w);
  column_sums(dz, grad + int64_t(d) * k);
  return loss;
}

evaluation softmax_model::evaluate(const float* params, const data::dataset& data,
                                   int64_t rows) const {
  assert(data.dim == spec_.input_dim && data.is_classification());
  forward_scratch s(std::max<int64_t>(1, std::min(rows, eval_chunk_rows)), spec_);
  return evaluate_classifier(data, rows, spec_.classes, [&](const float* x, int64_t n) {
    logits(params, x, n, s);
    return s.z.data();
  });
}

} // namespace psgd::model
