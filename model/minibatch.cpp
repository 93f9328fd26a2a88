#include "model/minibatch.hpp"

#include <cassert>

namespace psgd::model {

gathered_minibatch::gathered_minibatch(int max_rows, int dim)
  : x_(max_rows, dim) {
  labels_.reserve(size_t(max_rows));   // the first gather then allocates nothing
  targets_.reserve(size_t(max_rows));
}

void gathered_minibatch::gather(const data::dataset& data, const int64_t* index, int count) {
  assert(count >= 0);
  if (x_.rows() < count || x_.cols() != data.dim)
    x_.resize(count, data.dim);
  const bool classification = !data.labels.empty();
  labels_.resize(classification ? size_t(count) : 0);
  targets_.resize(data.targets.empty() ? 0 : size_t(count));
  if (count > 0)
    gather_rows(data, index, count, x_.data(), classification ? labels_.data() : nullptr);
  for (size_t i = 0; i < targets_.size(); ++i)
    targets_[i] = data.targets[size_t(index[i])];
  count_ = count;
}

minibatch gathered_minibatch::view() const {
  return minibatch{x_.data(), labels_.empty() ? nullptr : labels_.data(),
                   targets_.empty() ? nullptr : targets_.data(), count_};
}

} // namespace psgd::model
