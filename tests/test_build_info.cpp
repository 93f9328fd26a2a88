// The build's identity: what psgd --version prints and every summary records.
#include <catch2/catch.hpp>

#include <string>

#include "config/build_info.hpp"

TEST_CASE("build_info names the version, the commit and the libraries", "[build]") {
  const std::string info = psgd::build_info();
  CHECK_THAT(info, Catch::StartsWith(std::string{"psgd "} + psgd::psgd_version() + " (commit ")
                     && Catch::Contains(psgd::psgd_commit()) && Catch::Contains("CAF 0.17.")
                     && Catch::Contains("Eigen 3.") && Catch::Contains("fmt "));
  // A checkout's commit is an abbreviated hash (with -dirty for uncommitted changes).
  const std::string commit = psgd::psgd_commit();
  CHECK((commit == "unknown" || commit.size() >= 7));
}
