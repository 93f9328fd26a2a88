#include "data/chi_square.hpp"

#include <algorithm>
#include <cmath>

namespace psgd::data {

namespace {

// Q(s, x) by the series of P (x < s + 1) or the continued fraction of Q (otherwise), as in
// Numerical Recipes: both converge fast on their side of s + 1.
double lower_series(double s, double x) {
  double term = 1.0 / s;
  double sum = term;
  for (int n = 1; n < 1000; ++n) {
    term *= x / (s + n);
    sum += term;
    if (std::abs(term) < std::abs(sum) * 1e-15)
      break;
  }
  return sum * std::exp(-x + s * std::log(x) - std::lgamma(s));
}

double upper_fraction(double s, double x) {
  constexpr double tiny = 1e-300;
  double b = x + 1.0 - s;
  double c = 1.0 / tiny;
  double d = 1.0 / b;
  double h = d;
  for (int i = 1; i < 1000; ++i) {
    const double an = -i * (i - s);
    b += 2.0;
    d = an * d + b;
    if (std::abs(d) < tiny)
      d = tiny;
    c = b + an / c;
    if (std::abs(c) < tiny)
      c = tiny;
    d = 1.0 / d;
    const double delta = d * c;
    h *= delta;
    if (std::abs(delta - 1.0) < 1e-15)
      break;
  }
  return std::exp(-x + s * std::log(x) - std::lgamma(s)) * h;
}

} // namespace

double chi_square_survival(double x, int dof) {
  if (dof <= 0 || !(x > 0))
    return 1.0;
  const double s = dof / 2.0;
  const double half = x / 2.0;
  const double q = half < s + 1.0 ? 1.0 - lower_series(s, half) : upper_fraction(s, half);
  return std::clamp(q, 0.0, 1.0);
}

chi_square_result chi_square_homogeneity(const std::vector<int64_t>& a,
                                         const std::vector<int64_t>& b) {
  chi_square_result r;
  const size_t k = std::min(a.size(), b.size());
  double total_a = 0, total_b = 0;
  int columns = 0;
  for (size_t j = 0; j < k; ++j) {
    total_a += double(a[j]);
    total_b += double(b[j]);
    columns += a[j] + b[j] > 0 ? 1 : 0;
  }
  const double total = total_a + total_b;
  if (columns < 2 || total_a <= 0 || total_b <= 0)
    return r;
  for (size_t j = 0; j < k; ++j) {
    const double column = double(a[j] + b[j]);
    if (column <= 0)
      continue;
    const double expect_a = column * total_a / total;
    const double expect_b = column * total_b / total;
    r.statistic += (a[j] - expect_a) * (a[j] - expect_a) / expect_a
                   + (b[j] - expect_b) * (b[j] - expect_b) / expect_b;
  }
  r.dof = columns - 1;
  r.p_value = chi_square_survival(r.statistic, r.dof);
  return r;
}

} // namespace psgd::data
