#include "model/least_squares.hpp"

#include <algorithm>
#include <cassert>
#include <vector>

#include "model/kernels.hpp"

namespace psgd::model {

namespace {

using vector_map = Eigen::Map<Eigen::VectorXf>;
using const_vector_map = Eigen::Map<const Eigen::VectorXf>;

/// Scratch for one caller (besides the base's gathered rows): the residuals.
class least_squares_workspace final : public workspace {
public:
  least_squares_workspace(int max_batch, int input_dim)
    : workspace(max_batch, input_dim), r(size_t(max_batch)) {}

  std::vector<float> r;   ///< max_batch residuals
};

} // namespace

least_squares_model::least_squares_model(const model_spec& spec) : spec_(spec) {}

int64_t least_squares_model::num_params() const { return int64_t(spec_.input_dim) + 1; }

void least_squares_model::init(uint64_t /*seed*/, float* params) const {
  std::fill(params, params + num_params(), 0.0f);
}

std::unique_ptr<workspace> least_squares_model::make_workspace(int max_batch) const {
  return std::make_unique<least_squares_workspace>(std::max(max_batch, 1), spec_.input_dim);
}

void least_squares_model::residuals(const float* params, const float* x_data,
                                    const float* y_data, int64_t n, float* r_data) const {
  const int d = spec_.input_dim;
  const_vector_map w(params, d);
  const float c = params[d];
  vector_map r(r_data, n);
  r.noalias() = const_matrix_map(x_data, n, d) * w;
  r.array() += c - const_vector_map(y_data, n).array();
}

float least_squares_model::batch_gradient(const float* params, const minibatch& batch, float* grad,
                                          workspace& ws_base) const {
  auto& ws = static_cast<least_squares_workspace&>(ws_base);
  assert(dynamic_cast<least_squares_workspace*>(&ws_base) != nullptr);
  const int count = batch.count;
  assert(batch.targets != nullptr);
  const int d = spec_.input_dim;
  residuals(params, batch.x, batch.targets, count, ws.r.data());
  vector_map r(ws.r.data(), count);
  const float loss = 0.5f * r.squaredNorm() / float(count);
  // dL/dw = x^T r / n, dL/dc = sum(r) / n: scale r once instead of the d-long result.
  r *= 1.0f / float(count);
  vector_map(grad, d).noalias() = const_matrix_map(batch.x, count, d).transpose() * r;
  grad[d] = r.sum();
  return loss;
}

evaluation least_squares_model::evaluate(const float* params, const data::dataset& data,
                                         int64_t rows) const {
  assert(data.dim == spec_.input_dim && int64_t(data.targets.size()) == data.rows);
  evaluation result;   // accuracy stays 0: a regression has no classes
  rows = std::min(rows, data.rows);
  if (rows <= 0)
    return result;
  std::vector<float> r(size_t(std::min(rows, eval_chunk_rows)));
  std::vector<float> chunk;   // a set of pixels: the chunk's rows as floats
  double loss_sum = 0;
  for (int64_t start = 0; start < rows; start += eval_chunk_rows) {
    const int64_t n = std::min(eval_chunk_rows, rows - start);
    residuals(params, data.float_rows(start, n, chunk), data.targets.data() + start, n,
              r.data());
    for (int64_t i = 0; i < n; ++i)
      loss_sum += 0.5 * double(r[size_t(i)]) * double(r[size_t(i)]);
  }
  result.loss = loss_sum / double(rows);
  return result;
}

} // namespace psgd::model
