#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

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

namespace {

/// A classification set whose features are all distinct: `rows` x `dim` (7 floats a row
/// leaves a tail that is not a whole 8-byte word, nor a whole stripe of the hash).
dataset numbered(int64_t rows, int dim) {
  dataset d;
  d.rows = rows;
  d.dim = dim;
  d.classes = 10;
  for (int64_t i = 0; i < rows * dim; ++i)
    d.features.push_back(float(i % 256) / 255.0f + float(i / 256));
  for (int64_t i = 0; i < rows; ++i)
    d.labels.push_back(int32_t(i % 10));
  return d;
}

} // namespace

TEST_CASE("fingerprint changes when any one feature changes", "[data]") {
  const dataset d = numbered(1001, 7);
  const auto base = psgd::data::fingerprint(d);
  CHECK(psgd::data::fingerprint(numbered(1001, 7)) == base); // deterministic
  CHECK_THAT(base, Catch::StartsWith("1001x7/10:"));
  const size_t n = d.features.size();
  const size_t middle_row = size_t(d.rows / 2) * size_t(d.dim);
  std::vector<size_t> where = {0, n - 1};
  for (int j = 0; j < d.dim; ++j)
    where.push_back(middle_row + size_t(j));
  for (size_t i = n - 80; i < n; ++i) // the tail the hash takes word by word
    where.push_back(i);
  for (size_t i : where) {
    dataset changed = d;
    changed.features[i] = std::nextafter(changed.features[i], 1e9f); // one bit
    INFO("feature " << i);
    CHECK(psgd::data::fingerprint(changed) != base);
  }
  // Every feature, each changed in turn (the old fingerprint sampled every 97th).
  int unchanged = 0;
  for (size_t i = 0; i < n; ++i) {
    dataset changed = d;
    changed.features[i] += 1.0f / 255;
    unchanged += psgd::data::fingerprint(changed) == base;
  }
  CHECK(unchanged == 0);
}

TEST_CASE("fingerprint covers labels and targets and is a fixed function of the bytes",
          "[data]") {
  dataset d = numbered(40, 7);
  const auto base = psgd::data::fingerprint(d);
  d.labels[39] = 0;
  CHECK(psgd::data::fingerprint(d) != base);
  dataset r;
  r.rows = 3;
  r.dim = 1;
  r.features = {1, 2, 3};
  r.targets = {10, 20, 30};
  const auto regression = psgd::data::fingerprint(r);
  r.targets[2] = 31;
  CHECK(psgd::data::fingerprint(r) != regression);
  // The value is what two processes compare, so it must not drift between builds (this
  // literal holds on little-endian machines, where words are read as stored).
  const uint16_t one = 1;
  if (*reinterpret_cast<const unsigned char*>(&one) == 1)
    CHECK(psgd::data::fingerprint(numbered(1001, 7)) == "1001x7/10:2d4b01e106fa40d7");
}

TEST_CASE("a set of pixels stands for byte / 255, row by row and in chunks", "[data]") {
  // Every byte value once, in rows of 7: row copies, chunks and the head all agree with
  // the float each byte was loaded as before sets kept their bytes.
  dataset d;
  d.rows = 40;
  d.dim = 7;
  d.classes = 10;
  for (int64_t i = 0; i < d.rows * d.dim; ++i)
    d.pixels.push_back(uint8_t(i % 256));
  for (int64_t i = 0; i < d.rows; ++i)
    d.labels.push_back(int32_t(i % 10));
  REQUIRE(d.holds_pixels());
  CHECK(d.row_storage_bytes() == 7);
  CHECK(d.row_storage(3) == d.pixels.data() + 21);

  std::vector<float> all(size_t(d.rows * d.dim));
  d.copy_rows(0, d.rows, all.data());
  for (size_t i = 0; i < all.size(); ++i) {
    INFO("byte " << i % 256);
    CHECK(all[i] == float(i % 256) / 255.0f);
    CHECK(all[i] == psgd::data::pixel_value(uint8_t(i % 256)));
  }
  std::vector<float> scratch;
  const float* chunk = d.float_rows(5, 3, scratch);
  CHECK(chunk == scratch.data());
  CHECK(std::vector<float>(chunk, chunk + 21)
        == std::vector<float>(all.begin() + 35, all.begin() + 56));

  const dataset h = d.head(2);
  CHECK(h.pixels == std::vector<uint8_t>(d.pixels.begin(), d.pixels.begin() + 14));
  CHECK(h.features.empty());
  CHECK(psgd::data::fingerprint(h) != psgd::data::fingerprint(d.head(3)));
}

TEST_CASE("a set of floats hands out its own rows", "[data]") {
  dataset d;
  d.rows = 3;
  d.dim = 2;
  d.features = {0, 1, 2, 3, 4, 5};
  CHECK_FALSE(d.holds_pixels());
  CHECK(d.row_storage_bytes() == 2 * sizeof(float));
  CHECK(d.row_storage(1) == d.features.data() + 2);
  std::vector<float> scratch;
  CHECK(d.float_rows(1, 2, scratch) == d.features.data() + 2);
  CHECK(scratch.empty());
  std::vector<float> out(4);
  d.copy_rows(1, 2, out.data());
  CHECK(out == std::vector<float>{2, 3, 4, 5});
}
