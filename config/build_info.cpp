#include "config/build_info.hpp"

#include <Eigen/Core>
#include <caf/config.hpp>
#include <fmt/format.h>

#include "psgd_commit.hpp"

namespace psgd {

const char* psgd_version() {
  return "0.1.0";
}

const char* psgd_commit() {
  return PSGD_COMMIT;
}

std::string build_info() {
#ifdef PSGD_NATIVE_BUILD
  constexpr const char* target = "-march=native";
#else
  constexpr const char* target = "portable";
#endif
  return fmt::format("psgd {} (commit {}, CAF {}.{}.{}, Eigen {}.{}.{}, fmt {}.{}.{}, {})",
                     psgd_version(), psgd_commit(), CAF_MAJOR_VERSION, CAF_MINOR_VERSION,
                     CAF_PATCH_VERSION, EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION,
                     EIGEN_MINOR_VERSION, FMT_VERSION / 10000, FMT_VERSION / 100 % 100,
                     FMT_VERSION % 100, target);
}

} // namespace psgd
