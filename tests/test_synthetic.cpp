#include <catch2/catch.hpp>

#include <cmath>

#include "data/synthetic.hpp"

using namespace psgd::data;

TEST_CASE("least squares: the returned optimum zeroes the mean-loss gradient", "[data]") {
  auto p = make_least_squares(500, 100, 6, 0.1, 42);
  const auto& d = p.data.train;
  REQUIRE(d.rows == 500);
  REQUIRE(p.optimum.size() == 7);
  std::vector<double> grad(7, 0.0);
  for (int64_t i = 0; i < d.rows; ++i) {
    double r = p.optimum[6] - d.targets[i];
    for (int j = 0; j < 6; ++j)
      r += p.optimum[j] * d.row(i)[j];
    for (int j = 0; j < 6; ++j)
      grad[j] += r * d.row(i)[j] / d.rows;
    grad[6] += r / d.rows;
  }
  for (double g : grad)
    CHECK(std::abs(g) < 1e-4);
  // With little noise the optimum is close to the generating weights.
  for (size_t j = 0; j < p.truth.size(); ++j)
    CHECK(p.optimum[j] == Approx(p.truth[j]).margin(0.05));
}

TEST_CASE("synthetic sets are deterministic in the seed", "[data]") {
  auto a = make_least_squares(50, 10, 3, 0.1, 7);
  auto b = make_least_squares(50, 10, 3, 0.1, 7);
  auto c = make_least_squares(50, 10, 3, 0.1, 8);
  CHECK(a.data.train.features == b.data.train.features);
  CHECK(a.data.train.targets == b.data.train.targets);
  CHECK(a.data.train.features != c.data.train.features);
  auto s1 = make_separable(60, 20, 4, 3, 1);
  auto s2 = make_separable(60, 20, 4, 3, 1);
  CHECK(s1.train.features == s2.train.features);
  CHECK(s1.train.labels == s2.train.labels);
}

TEST_CASE("separable set: nearest class centre classifies every example", "[data]") {
  auto s = make_separable(300, 100, 8, 4, 3);
  REQUIRE(s.train.classes == 4);
  // Class means from the training set; every test example is nearest to its own.
  std::vector<double> mean(4 * 8, 0.0);
  std::vector<int> count(4, 0);
  for (int64_t i = 0; i < s.train.rows; ++i) {
    ++count[s.train.labels[i]];
    for (int j = 0; j < 8; ++j)
      mean[s.train.labels[i] * 8 + j] += s.train.row(i)[j];
  }
  for (int c = 0; c < 4; ++c)
    for (int j = 0; j < 8; ++j)
      mean[c * 8 + j] /= count[c];
  for (int64_t i = 0; i < s.test.rows; ++i) {
    int best = -1;
    double best_d = 1e300;
    for (int c = 0; c < 4; ++c) {
      double dist = 0;
      for (int j = 0; j < 8; ++j)
        dist += std::pow(s.test.row(i)[j] - mean[c * 8 + j], 2);
      if (dist < best_d) {
        best_d = dist;
        best = c;
      }
    }
    CHECK(best == s.test.labels[i]);
  }
}
