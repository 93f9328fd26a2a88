#include "model/model.hpp"

#include <algorithm>
#include <cassert>

#include "model/least_squares.hpp"
#include "model/minibatch.hpp"
#include "model/mlp.hpp"
#include "model/softmax.hpp"

namespace psgd::model {

workspace::workspace(int max_batch, int input_dim)
  : max_batch_(max_batch),
    gathered_(std::make_unique<gathered_minibatch>(max_batch, input_dim)) {}

workspace::~workspace() = default;

float model::gradient(const float* params, const data::dataset& data, const int64_t* index,
                      int count, float* grad, workspace& ws) const {
  assert(count <= ws.max_batch() && data.dim == spec().input_dim);
  ws.gathered().gather(data, index, count);
  return gradient(params, ws.gathered().view(), grad, ws);
}

float model::gradient(const float* params, const minibatch& batch, float* grad,
                      workspace& ws) const {
  assert(batch.count <= ws.max_batch());
  if (batch.count <= 0) {
    std::fill(grad, grad + num_params(), 0.0f);
    return 0.0f;
  }
  return batch_gradient(params, batch, grad, ws);
}

std::string to_string(kind k) {
  switch (k) {
    case kind::softmax: return "softmax";
    case kind::mlp: return "mlp";
    case kind::least_squares: return "lsq";
  }
  return "unknown";
}

outcome<kind> parse_kind(const std::string& text) {
  for (kind k : {kind::softmax, kind::mlp, kind::least_squares})
    if (text == to_string(k))
      return k;
  return outcome<kind>::failure("unknown model '" + text +
                                "' (expected softmax, mlp or lsq)");
}

namespace {

/// The first inconsistency of `spec`, or "" when it is valid.
std::string check_spec(const model_spec& spec) {
  const std::string name = to_string(spec.type);
  if (spec.input_dim <= 0)
    return "model " + name + ": input_dim must be > 0 (got " +
           std::to_string(spec.input_dim) + ")";
  if (spec.type == kind::least_squares)
    return "";   // classes and hidden are ignored
  if (spec.classes < 2)
    return "model " + name + ": classes must be >= 2 (got " +
           std::to_string(spec.classes) + ")";
  if (spec.type == kind::mlp && spec.hidden <= 0)
    return "model " + name + ": hidden must be > 0 (got " + std::to_string(spec.hidden) +
           ")";
  return "";
}

} // namespace

outcome<std::unique_ptr<model>> make_model(const model_spec& spec) {
  using result = outcome<std::unique_ptr<model>>;
  if (std::string problem = check_spec(spec); !problem.empty())
    return result::failure(std::move(problem));
  switch (spec.type) {
    case kind::softmax: return result(std::make_unique<softmax_model>(spec));
    case kind::mlp: return result(std::make_unique<mlp_model>(spec));
    case kind::least_squares: return result(std::make_unique<least_squares_model>(spec));
  }
  return result::failure("model: unknown kind " + std::to_string(int(spec.type)));
}

} // namespace psgd::model
