#include "data/synthetic.hpp"

#include <Eigen/Dense>

#include "data/random.hpp"

namespace psgd::data {

namespace {

dataset gaussian_rows(int64_t rows, int dim, splitmix64& rng) {
  dataset d;
  d.rows = rows;
  d.dim = dim;
  d.features.resize(size_t(rows) * dim);
  for (auto& v : d.features)
    v = static_cast<float>(rng.normal());
  return d;
}

void add_targets(dataset& d, const std::vector<double>& truth, double noise, splitmix64& rng) {
  d.targets.resize(d.rows);
  for (int64_t i = 0; i < d.rows; ++i) {
    double y = truth[d.dim];
    for (int j = 0; j < d.dim; ++j)
      y += truth[j] * d.row(i)[j];
    d.targets[i] = static_cast<float>(y + noise * rng.normal());
  }
}

/// argmin_w mean (x.w + c - y)^2 over the rows, through the normal equations in double.
std::vector<double> solve_least_squares(const dataset& d) {
  Eigen::MatrixXd a(d.rows, d.dim + 1);
  Eigen::VectorXd y(d.rows);
  for (int64_t i = 0; i < d.rows; ++i) {
    for (int j = 0; j < d.dim; ++j)
      a(i, j) = d.row(i)[j];
    a(i, d.dim) = 1.0;
    y(i) = d.targets[i];
  }
  Eigen::VectorXd w = (a.transpose() * a).ldlt().solve(a.transpose() * y);
  return {w.data(), w.data() + w.size()};
}

} // namespace

least_squares_problem make_least_squares(int64_t train_rows, int64_t test_rows, int dim,
                                         double noise, uint64_t seed) {
  splitmix64 rng{mix_seed(seed, 0x15a)};
  least_squares_problem p;
  p.truth.resize(dim + 1);
  for (auto& w : p.truth)
    w = rng.normal();
  p.data.train = gaussian_rows(train_rows, dim, rng);
  add_targets(p.data.train, p.truth, noise, rng);
  p.data.test = gaussian_rows(test_rows, dim, rng);
  add_targets(p.data.test, p.truth, noise, rng);
  p.optimum = solve_least_squares(p.data.train);
  return p;
}

split make_separable(int64_t train_rows, int64_t test_rows, int dim, int classes,
                     uint64_t seed) {
  splitmix64 rng{mix_seed(seed, 0x5e9)};
  // Centres 8 apart per coordinate (in expectation), spread 0.5: linearly separable.
  std::vector<float> centres(size_t(classes) * dim);
  for (auto& c : centres)
    c = static_cast<float>(4.0 * rng.normal());
  auto make = [&](int64_t rows) {
    dataset d;
    d.rows = rows;
    d.dim = dim;
    d.classes = classes;
    d.features.resize(size_t(rows) * dim);
    d.labels.resize(rows);
    for (int64_t i = 0; i < rows; ++i) {
      int label = static_cast<int>(i % classes);
      d.labels[i] = label;
      for (int j = 0; j < dim; ++j)
        d.features[i * dim + j] = centres[label * dim + j] + static_cast<float>(0.5 * rng.normal());
    }
    return d;
  };
  split s;
  s.train = make(train_rows);
  s.test = make(test_rows);
  return s;
}

} // namespace psgd::data
