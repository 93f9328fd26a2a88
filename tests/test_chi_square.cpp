// The chi-square survival function against known quantiles, and the homogeneity test on
// tables with an obvious answer.
#include <catch2/catch.hpp>

#include "data/chi_square.hpp"

using namespace psgd::data;

TEST_CASE("chi-square survival matches table quantiles", "[chi_square]") {
  // Critical values at 5% and 1% (any statistics table).
  CHECK(chi_square_survival(3.841, 1) == Approx(0.05).margin(1e-4));
  CHECK(chi_square_survival(16.919, 9) == Approx(0.05).margin(1e-4));
  CHECK(chi_square_survival(21.666, 9) == Approx(0.01).margin(1e-4));
  CHECK(chi_square_survival(124.342, 100) == Approx(0.05).margin(1e-4));
  CHECK(chi_square_survival(2.0, 2) == Approx(std::exp(-1.0)).epsilon(1e-12));
  CHECK(chi_square_survival(0, 3) == 1.0);
}

TEST_CASE("homogeneity: the same split in every column is not rejected, a skewed one is",
          "[chi_square]") {
  // applied vs not applied per class: 90% everywhere
  std::vector<int64_t> applied{900, 1800, 450, 900};
  std::vector<int64_t> dropped{100, 200, 50, 100};
  auto same = chi_square_homogeneity(applied, dropped);
  CHECK(same.dof == 3);
  CHECK(same.statistic == Approx(0).margin(1e-9));
  CHECK(same.p_value == Approx(1.0));
  // class 3 loses half of its gradients
  std::vector<int64_t> skew_applied{900, 1800, 450, 500};
  std::vector<int64_t> skew_dropped{100, 200, 50, 500};
  auto skewed = chi_square_homogeneity(skew_applied, skew_dropped);
  CHECK(skewed.p_value < 1e-6);
  // empty columns are left out; one column or an empty row: nothing to test
  CHECK(chi_square_homogeneity({10, 0, 10}, {1, 0, 1}).dof == 1);
  CHECK(chi_square_homogeneity({10}, {1}).p_value == 1.0);
  CHECK(chi_square_homogeneity({10, 20}, {0, 0}).dof == 0);
}
