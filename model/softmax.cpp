#include "model/softmax.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

namespace psgd::model {

// --- shared kernels --------------------------------------------------------------------

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

// --- the model -------------------------------------------------------------------------

namespace {

/// Scratch for one caller: the gathered batch, its labels, logits and per-row values.
class softmax_workspace final : public workspace {
public:
  softmax_workspace(int max_batch, int input_dim, int classes)
    : max_batch(max_batch), x(max_batch, input_dim), z(max_batch, classes),
      product(Eigen::Index(std::max(max_batch, input_dim)) * classes),
      labels(size_t(max_batch)), scratch(size_t(max_batch)) {}

  int max_batch;
  row_matrix x;                  ///< max_batch x input_dim
  row_matrix z;                  ///< max_batch x classes: logits, then their gradient
  Eigen::VectorXf product;       ///< narrow_product() scratch: logits or dL/dW
  std::vector<int32_t> labels;   ///< max_batch
  std::vector<float> scratch;    ///< max_batch
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
  return std::make_unique<softmax_workspace>(std::max(max_batch, 1), spec_.input_dim,
                                             spec_.classes);
}

void softmax_model::logits(const float* params, const float* x_data, int64_t n,
                           float* z_data, float* product) const {
  const int d = spec_.input_dim, k = spec_.classes;
  const_matrix_map w(params, d, k);
  const_row_vector_map b(params + int64_t(d) * k, k);
  const_matrix_map x(x_data, n, d);
  matrix_map z(z_data, n, k);
  narrow_product(x, w, product, z);
  z.rowwise() += b;
}

float softmax_model::gradient(const float* params, const data::dataset& data,
                              const int64_t* index, int count, float* grad,
                              workspace& ws_base) const {
  auto& ws = static_cast<softmax_workspace&>(ws_base);
  assert(dynamic_cast<softmax_workspace*>(&ws_base) != nullptr);
  assert(count <= ws.max_batch && data.dim == spec_.input_dim);
  if (count <= 0) {   // no examples: no information, a zero step
    std::fill(grad, grad + num_params(), 0.0f);
    return 0.0f;
  }
  const int d = spec_.input_dim, k = spec_.classes;
  gather_rows(data, index, count, ws.x.data(), ws.labels.data());
  logits(params, ws.x.data(), count, ws.z.data(), ws.product.data());
  const float loss = softmax_cross_entropy_backward(ws.z.data(), count, k, ws.labels.data(),
                                                    ws.scratch.data());
  // dL/dW = x^T dz, dL/db = column sums of dz (dz already carries the 1/n of the mean).
  const_matrix_map x(ws.x.data(), count, d);
  const_matrix_map dz(ws.z.data(), count, k);
  matrix_map dw(grad, d, k);
  row_vector_map db(grad + int64_t(d) * k, k);
  narrow_product(x.transpose(), dz, ws.product.data(), dw);
  db.noalias() = dz.colwise().sum();
  return loss;
}

evaluation softmax_model::evaluate(const float* params, const data::dataset& data) const {
  assert(data.dim == spec_.input_dim && data.is_classification());
  evaluation result;
  if (data.rows == 0)
    return result;
  const int k = spec_.classes;
  const int64_t chunk = std::min(data.rows, eval_chunk_rows);
  row_matrix z(chunk, k);
  Eigen::VectorXf product(chunk * k);
  double loss_sum = 0;
  int64_t hits = 0;
  for (int64_t start = 0; start < data.rows; start += eval_chunk_rows) {
    const int64_t n = std::min(eval_chunk_rows, data.rows - start);
    logits(params, data.row(start), n, z.data(), product.data());
    accumulate_cross_entropy(z.data(), n, k, data.labels.data() + start, loss_sum, hits);
  }
  result.loss = loss_sum / double(data.rows);
  result.accuracy = double(hits) / double(data.rows);
  return result;
}

} // namespace psgd::model
