#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "model/params_file.hpp"
#include "tests/test_helpers.hpp"

using namespace psgd::model;
using psgd::testing::temp_dir;

namespace {

saved_params mlp_params() {
  saved_params p;
  p.spec.type = kind::mlp;
  p.spec.input_dim = 6;
  p.spec.classes = 3;
  p.spec.hidden = 4;
  p.version = 42;
  p.params.resize(6 * 4 + 4 + 4 * 3 + 3);
  for (size_t i = 0; i < p.params.size(); ++i)
    p.params[i] = 0.25f * float(i) - 3.0f;
  return p;
}

} // namespace

TEST_CASE("parameters survive a save and a load bit for bit", "[params_file]") {
  temp_dir dir;
  auto p = mlp_params();
  REQUIRE(save_params(dir.file("m.params"), p).empty());
  CHECK_FALSE(std::filesystem::exists(dir.file("m.params.tmp")));
  auto q = load_params(dir.file("m.params"));
  INFO(q.error());
  REQUIRE(q);
  CHECK(q->spec.type == kind::mlp);
  CHECK(q->spec.input_dim == 6);
  CHECK(q->spec.classes == 3);
  CHECK(q->spec.hidden == 4);
  CHECK(q->version == 42);
  CHECK(q->params == p.params);
}

TEST_CASE("damaged parameter files are refused with the file named", "[params_file]") {
  temp_dir dir;
  auto path = dir.file("m.params");
  REQUIRE(save_params(path, mlp_params()).empty());
  SECTION("missing") {
    auto q = load_params(dir.file("none.params"));
    REQUIRE_FALSE(q);
    CHECK_THAT(q.error(), Catch::Contains("none.params"));
  }
  SECTION("truncated") {
    std::filesystem::resize_file(path, std::filesystem::file_size(path) - 4);
    auto q = load_params(path);
    REQUIRE_FALSE(q);
    CHECK_THAT(q.error(), Catch::Contains("truncated"));
  }
  SECTION("trailing bytes") {
    std::ofstream{path, std::ios::app | std::ios::binary} << "xx";
    auto q = load_params(path);
    REQUIRE_FALSE(q);
    CHECK_THAT(q.error(), Catch::Contains("trailing"));
  }
  SECTION("not a parameter file") {
    std::ofstream{path, std::ios::trunc} << "hello\n";
    auto q = load_params(path);
    REQUIRE_FALSE(q);
    CHECK_THAT(q.error(), Catch::Contains("not a psgd parameter file"));
  }
  SECTION("header and size disagree") {
    std::ofstream{path, std::ios::trunc}
      << R"({"format":"psgd-params","format_version":1,"model":"softmax","input_dim":6,)"
      << R"("classes":3,"hidden":0,"num_params":5,"version":1})" << "\n";
    auto q = load_params(path);
    REQUIRE_FALSE(q);
    CHECK_THAT(q.error(), Catch::Contains("21"));
  }
}
