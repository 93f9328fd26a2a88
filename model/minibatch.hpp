// minibatch: a minibatch gathered out of its dataset ahead of the gradient that reads it.
//
// A model's gradient() on indices gathers the rows into one of these in the caller's
// workspace, on the step's critical path. A sync worker whose gradient waits for its round
// to close gathers its next minibatch into its own meanwhile (the server's warm hint), and
// the next step starts from it.
//
// Contract:
// - gather() copies rows index[0..count) of a dataset: its features as floats (a set of
//   pixels converted as data::dataset does), and its labels or targets (whichever the set
//   has). view() shows the last gather, as model::gradient() takes it; the same rows give the
//   same gradient bits as gradient() on the indices.
// - Memory grows to the largest batch gathered (or is made for it up front) and is then
//   reused: gathering allocates nothing after the first time at that size. Every model's
//   workspace holds one (model::gradient() on indices gathers into it).
// - Not thread-safe: one owner (a worker). A view is valid until the next gather.
// model/ knows nothing of CAF.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.hpp"
#include "model/kernels.hpp"
#include "model/model.hpp"

namespace psgd::model {

class gathered_minibatch {
public:
  gathered_minibatch() = default;
  /// Room for `max_rows` rows of `dim` (and their labels or targets) from the start.
  gathered_minibatch(int max_rows, int dim);

  /// Copies rows index[0..count) of `data` (count >= 0; every index in [0, data.rows)).
  void gather(const data::dataset& data, const int64_t* index, int count);

  /// The rows of the last gather (count 0 before the first).
  minibatch view() const;

private:
  row_matrix x_;                  ///< at least count x dim
  std::vector<int32_t> labels_;   ///< count, a classification set's
  std::vector<float> targets_;    ///< count, a regression set's
  int count_ = 0;
};

} // namespace psgd::model
