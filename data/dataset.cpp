#include "data/dataset.hpp"

#include <algorithm>

namespace psgd::data {

dataset dataset::head(int64_t n) const {
  n = std::min(n, rows);
  dataset d;
  d.rows = n;
  d.dim = dim;
  d.classes = classes;
  d.features.assign(features.begin(), features.begin() + n * dim);
  if (!labels.empty())
    d.labels.assign(labels.begin(), labels.begin() + n);
  if (!targets.empty())
    d.targets.assign(targets.begin(), targets.begin() + n);
  return d;
}

} // namespace psgd::data
