// chi_square: Pearson's chi-square test of homogeneity for two rows of counts (is the split
// of each column between the rows the same for all columns?), for the backup-worker bias:
// row a = examples of each class in applied gradients, row b = in gradients not applied.
//
// Contract: pure functions, thread-safe. Columns where both rows are 0 are left out (they
// carry no information); fewer than two columns left, or an empty row, gives dof 0 and
// p-value 1 (nothing to reject).
#pragma once

#include <cstdint>
#include <vector>

namespace psgd::data {

struct chi_square_result {
  double statistic = 0;
  int dof = 0;
  double p_value = 1;  ///< P(X >= statistic) for X ~ chi-square(dof)
};

/// The 2 x K homogeneity test of rows `a` and `b` (same length K).
chi_square_result chi_square_homogeneity(const std::vector<int64_t>& a,
                                         const std::vector<int64_t>& b);

/// P(X >= x) for X ~ chi-square(dof): the regularized upper incomplete gamma Q(dof/2, x/2).
double chi_square_survival(double x, int dof);

} // namespace psgd::data
