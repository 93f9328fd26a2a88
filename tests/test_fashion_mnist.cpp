#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>

#include "data/dataset.hpp"
#include "data/fashion_mnist.hpp"
#include "tests/test_helpers.hpp"

using namespace psgd;
using psgd::testing::temp_dir;

TEST_CASE("the real Fashion-MNIST loads with 60,000 + 10,000 images in [0, 1]", "[data]") {
  auto split = testing::fashion_mnist();
  CHECK(split->train.rows == 60000);
  CHECK(split->test.rows == 10000);
  CHECK(split->train.dim == 784);
  CHECK(split->train.classes == 10);
  auto [lo, hi] = std::minmax_element(split->train.features.begin(), split->train.features.end());
  CHECK(*lo == 0.0f);
  CHECK(*hi == 1.0f);
  std::vector<int> counts(10, 0);
  for (auto y : split->train.labels)
    ++counts.at(y);
  for (int c : counts)
    CHECK(c == 6000); // Fashion-MNIST is balanced
}

TEST_CASE("a small valid IDX pair loads", "[data]") {
  temp_dir dir;
  testing::write_gz(dir.file("im.gz"), testing::idx_images(5, 28, 255));
  testing::write_gz(dir.file("lb.gz"), testing::idx_labels(5, 7));
  auto d = data::load_idx_pair(dir.file("im.gz"), dir.file("lb.gz"));
  REQUIRE(d);
  CHECK(d->rows == 5);
  CHECK(d->features[0] == 1.0f);
  CHECK(d->labels[4] == 7);
}

TEST_CASE("IDX errors name the file and the problem", "[data]") {
  temp_dir dir;
  auto images = dir.file("im.gz");
  auto labels = dir.file("lb.gz");
  testing::write_gz(labels, testing::idx_labels(5));

  SECTION("missing file") {
    auto d = data::load_idx_pair(dir.file("nope.gz"), labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("nope.gz") && Catch::Contains("cannot open"));
  }
  SECTION("wrong magic") {
    auto bytes = testing::idx_images(5, 28);
    bytes[3] = 0x01;
    testing::write_gz(images, bytes);
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("im.gz") && Catch::Contains("magic"));
  }
  SECTION("wrong image size") {
    testing::write_gz(images, testing::idx_images(5, 27));
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("27x27"));
  }
  SECTION("fewer pixels than the header says") {
    auto bytes = testing::idx_images(5, 28);
    bytes.resize(bytes.size() - 100);
    testing::write_gz(images, bytes);
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("im.gz") && Catch::Contains("truncated"));
  }
  SECTION("image and label counts differ") {
    testing::write_gz(images, testing::idx_images(6, 28));
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("5 labels for 6 images"));
  }
  SECTION("label out of range") {
    testing::write_gz(images, testing::idx_images(5, 28));
    testing::write_gz(labels, testing::idx_labels(5, 10));
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("out of range"));
  }
  SECTION("a gzip stream cut short") {
    testing::write_gz(images, testing::idx_images(50, 28, 7));
    std::ifstream in{images, std::ios::binary};
    std::string gz{std::istreambuf_iterator<char>(in), {}};
    std::ofstream out{images, std::ios::binary | std::ios::trunc};
    out << gz.substr(0, gz.size() / 2);
    out.close();
    auto d = data::load_idx_pair(images, labels);
    REQUIRE_FALSE(d);
    CHECK_THAT(d.error(), Catch::Contains("im.gz"));
  }
}

TEST_CASE("load_fashion_mnist names a missing directory's file", "[data]") {
  auto d = data::load_fashion_mnist("/nonexistent-psgd-dir");
  REQUIRE_FALSE(d);
  CHECK_THAT(d.error(), Catch::Contains("/nonexistent-psgd-dir/train-images-idx3-ubyte.gz"));
}

TEST_CASE("fashion_mnist_memory_bytes is what the loaded sets hold, from file sizes alone",
          "[data]") {
  auto split = testing::fashion_mnist();
  const auto held = [](const data::dataset& d) {
    return d.features.size() * sizeof(float) + d.labels.size() * sizeof(int32_t);
  };
  CHECK(data::fashion_mnist_memory_bytes(PSGD_DATA_DIR)
        == held(split->train) + held(split->test));
  CHECK(data::fashion_mnist_memory_bytes("/nonexistent-psgd-dir") == 0);
}

TEST_CASE("the real training set with one pixel changed has another fingerprint", "[data]") {
  // The user's case: pixel 984 of train-images changed, and the copy was accepted as the
  // server's data. Also the first and the last pixel, and one in a middle row.
  auto split = testing::fashion_mnist();
  const auto base = data::fingerprint(split->train);
  data::dataset changed = split->train;
  const size_t n = changed.features.size();
  for (size_t i : {size_t{984}, size_t{0}, n - 1, size_t(30000) * 784 + 400}) {
    const float was = changed.features[i];
    changed.features[i] = was < 0.5f ? was + 1.0f / 255 : was - 1.0f / 255;
    INFO("pixel " << i);
    CHECK(data::fingerprint(changed) != base);
    changed.features[i] = was;
  }
  CHECK(data::fingerprint(changed) == base);
}
