// Tests of model/kernels: transposed_product() against a double-precision x^T dh for sizes
// that take each of its paths (wide blocks, narrow packets, ragged columns, odd rows), that
// it never reads what dst held, and against Eigen's product where the MLP uses it.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "model/kernels.hpp"

using psgd::model::const_matrix_map;
using psgd::model::matrix_map;
using psgd::model::row_matrix;
using psgd::model::transposed_product;

namespace {

std::vector<float> uniform(size_t n, uint32_t seed) {
  std::mt19937 gen{seed};
  std::uniform_real_distribution<float> u{-1.0f, 1.0f};
  std::vector<float> v(n);
  for (auto& x : v)
    x = u(gen);
  return v;
}

} // namespace

TEST_CASE("transposed_product computes x^T dh whatever dst held", "[kernels]") {
  struct shape {
    int n, d, h;
  };
  // h: one wide block (128 with AVX-512), several, a narrow remainder, ragged columns,
  // fewer columns than a packet; d odd and even; n = 1 and a full batch.
  for (auto [n, d, h] : {shape{32, 784, 128}, shape{32, 7, 256}, shape{5, 9, 48},
                         shape{3, 4, 37}, shape{1, 1, 1}, shape{8, 3, 5}, shape{32, 11, 160},
                         shape{2, 6, 16}, shape{4, 13, 200}}) {
    INFO("n " << n << " d " << d << " h " << h);
    const auto x = uniform(size_t(n) * d, 1), dh = uniform(size_t(n) * h, 2);
    std::vector<float> dst(size_t(d) * h, std::numeric_limits<float>::quiet_NaN());
    transposed_product(x.data(), n, d, dh.data(), h, dst.data());
    double worst = 0;
    for (int r = 0; r < d; ++r)
      for (int c = 0; c < h; ++c) {
        double exact = 0;
        for (int i = 0; i < n; ++i)
          exact += double(x[size_t(i) * d + r]) * double(dh[size_t(i) * h + c]);
        worst = std::max(worst, std::abs(exact - double(dst[size_t(r) * h + c])));
      }
    CHECK(worst < 1e-5 * n);   // float sums of n products of magnitude <= 1
  }
}

TEST_CASE("transposed_product agrees with Eigen's product at the MLP's shape", "[kernels]") {
  const int n = 32, d = 784, h = 128;
  const int packet = Eigen::internal::packet_traits<float>::size;
  CHECK(psgd::model::transposed_product_wins(n, h) == (h % packet == 0));
  CHECK_FALSE(psgd::model::transposed_product_wins(1024, h)); // evaluate's chunks: Eigen's
  const auto x = uniform(size_t(n) * d, 3), dh = uniform(size_t(n) * h, 4);
  std::vector<float> ours(size_t(d) * h);
  transposed_product(x.data(), n, d, dh.data(), h, ours.data());
  row_matrix eigen = const_matrix_map(x.data(), n, d).transpose()
                     * const_matrix_map(dh.data(), n, h);
  CHECK((matrix_map(ours.data(), d, h) - eigen).cwiseAbs().maxCoeff() < 1e-4f);
}
