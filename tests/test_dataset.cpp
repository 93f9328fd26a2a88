#include <catch2/catch.hpp>

#include "data/dataset.hpp"

using psgd::data::dataset;

TEST_CASE("dataset::head keeps the first rows of features and labels", "[data]") {
  dataset d;
  d.rows = 4;
  d.dim = 2;
  d.classes = 3;
  d.features = {0, 1, 2, 3, 4, 5, 6, 7};
  d.labels = {0, 1, 2, 0};
  auto h = d.head(3);
  CHECK(h.rows == 3);
  CHECK(h.dim == 2);
  CHECK(h.classes == 3);
  CHECK(h.features == std::vector<float>{0, 1, 2, 3, 4, 5});
  CHECK(h.labels == std::vector<int32_t>{0, 1, 2});
  CHECK(h.row(2)[1] == 5);
  CHECK(d.head(10).rows == 4);
}

TEST_CASE("dataset::head keeps regression targets", "[data]") {
  dataset d;
  d.rows = 3;
  d.dim = 1;
  d.features = {1, 2, 3};
  d.targets = {10, 20, 30};
  auto h = d.head(2);
  CHECK_FALSE(h.is_classification());
  CHECK(h.targets == std::vector<float>{10, 20});
  CHECK(h.labels.empty());
}
