// model: loss, gradient and evaluation of a model whose parameters are one flat float vector.
//
// Contract:
// - A model is immutable after construction and may be used from many threads at once; all
//   mutable scratch memory lives in a `workspace` that each caller (one per worker) owns.
// - gradient() writes the MEAN gradient of the minibatch into `grad` (num_params() floats)
//   and returns the mean loss of the minibatch. It allocates nothing on the heap once the
//   workspace has been made for at least that batch size. It takes the minibatch as indices
//   into a dataset (it gathers the rows into the workspace first) or already gathered (a
//   `minibatch`, e.g. from model/minibatch.hpp): the same rows give the same bits.
// - Parameters are laid out as documented by each model (Eigen maps over the flat vector).
// - init() is deterministic in the seed.
// model/ knows nothing of CAF.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/dataset.hpp"
#include "data/outcome.hpp"

namespace psgd::model {

enum class kind { softmax, mlp, least_squares };

/// What a model is: enough to rebuild it on any node.
struct model_spec {
  kind type = kind::softmax;
  int input_dim = 784;   ///< features per example
  int classes = 10;      ///< outputs (classification); ignored by least squares
  int hidden = 128;      ///< hidden units of the MLP; ignored otherwise
};

std::string to_string(kind k);
/// Parses "softmax", "mlp" or "lsq".
outcome<kind> parse_kind(const std::string& text);

/// Mean loss and accuracy of a parameter vector on a dataset.
struct evaluation {
  double loss = 0;
  double accuracy = 0;   ///< fraction in [0, 1]; 0 for least squares (no classes)
};

/// A minibatch gathered out of its dataset: `count` rows of input_dim floats (row-major,
/// contiguous) and their labels (classification) or targets (regression; null otherwise).
struct minibatch {
  const float* x = nullptr;
  const int32_t* labels = nullptr;
  const float* targets = nullptr;
  int count = 0;
};

class gathered_minibatch;

/// Scratch memory for one caller of gradient(), made by the model. The base holds the rows
/// that gradient() on indices gathers (for batches of up to max_batch rows of input_dim);
/// each model's subclass adds what its passes need.
class workspace {
public:
  workspace(int max_batch, int input_dim);
  virtual ~workspace();
  int max_batch() const { return max_batch_; }
  gathered_minibatch& gathered() { return *gathered_; }

private:
  int max_batch_;
  std::unique_ptr<gathered_minibatch> gathered_;
};

class model {
public:
  virtual ~model() = default;

  virtual const model_spec& spec() const = 0;
  /// Length of the flat parameter vector.
  virtual int64_t num_params() const = 0;
  /// Writes the initial parameters (num_params() floats), deterministic in `seed`.
  virtual void init(uint64_t seed, float* params) const = 0;
  /// Scratch memory for batches of up to `max_batch` examples.
  virtual std::unique_ptr<workspace> make_workspace(int max_batch) const = 0;
  /// Mean loss of the `count` examples `index[0..count)` of `data`; writes their mean
  /// gradient to `grad`. `ws` must come from make_workspace(n) with n >= count. Gathers the
  /// rows into `ws`, then computes as the overload below does.
  float gradient(const float* params, const data::dataset& data, const int64_t* index,
                 int count, float* grad, workspace& ws) const;
  /// The same on a minibatch already gathered (its labels or targets as the model needs).
  /// An empty batch carries no information: a zero gradient and a zero loss.
  float gradient(const float* params, const minibatch& batch, float* grad,
                 workspace& ws) const;
  /// Mean loss and accuracy over the first `rows` rows of `data` (rows <= data.rows; in
  /// chunks: bounded memory). A prefix, not a copy: the train-loss subsample costs nothing.
  virtual evaluation evaluate(const float* params, const data::dataset& data,
                              int64_t rows) const = 0;
  /// Over all rows of `data`.
  evaluation evaluate(const float* params, const data::dataset& data) const {
    return evaluate(params, data, data.rows);
  }

private:
  /// gradient() on a batch of at least one example, `ws` made by this model for at least
  /// batch.count rows.
  virtual float batch_gradient(const float* params, const minibatch& batch, float* grad,
                               workspace& ws) const = 0;
};

/// Builds the model a spec names. Fails (with a message) on inconsistent dimensions.
outcome<std::unique_ptr<model>> make_model(const model_spec& spec);

} // namespace psgd::model
