// Tests of model/minibatch: a minibatch gathered ahead of its gradient gives the bits of the
// gradient on its indices (each model, a set of floats and a set of pixels), and the buffer
// is reused across gathers of other sizes.
#include <catch2/catch.hpp>

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "data/dataset.hpp"
#include "model/minibatch.hpp"
#include "model/model.hpp"

using psgd::data::dataset;
using psgd::model::gathered_minibatch;
using psgd::model::kind;
using psgd::model::model_spec;

namespace {

/// rows x dim random features (as pixels or floats); labels in [0, classes), or targets
/// when classes == 0.
dataset random_set(int64_t rows, int dim, int classes, bool pixels, uint32_t seed) {
  std::mt19937 rng(seed);
  dataset d;
  d.rows = rows;
  d.dim = dim;
  d.classes = classes;
  for (int64_t i = 0; i < rows * dim; ++i) {
    if (pixels)
      d.pixels.push_back(uint8_t(rng() % 256));
    else
      d.features.push_back(float(rng() % 1000) / 250.0f - 2.0f);
  }
  for (int64_t i = 0; i < rows; ++i) {
    if (classes > 0)
      d.labels.push_back(int32_t(rng() % uint32_t(classes)));
    else
      d.targets.push_back(float(rng() % 1000) / 500.0f - 1.0f);
  }
  return d;
}

std::unique_ptr<psgd::model::model> build(kind type, int dim, int classes) {
  model_spec s;
  s.type = type;
  s.input_dim = dim;
  s.classes = classes;
  s.hidden = 16;
  auto m = psgd::model::make_model(s);
  REQUIRE(m);
  return std::move(*m);
}

std::vector<float> random_params(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  std::vector<float> p(static_cast<size_t>(n));
  for (float& v : p)
    v = normal(rng);
  return p;
}

} // namespace

TEST_CASE("a gathered minibatch gives the gradient bits of its indices", "[minibatch]") {
  struct variant {
    kind type;
    int classes;
    bool pixels;
  };
  for (auto v : {variant{kind::softmax, 4, true}, variant{kind::softmax, 4, false},
                 variant{kind::mlp, 4, true}, variant{kind::least_squares, 0, false}}) {
    INFO(psgd::model::to_string(v.type) << (v.pixels ? " on pixels" : " on floats"));
    const auto data = random_set(300, 13, v.classes, v.pixels, 5);
    auto m = build(v.type, 13, v.classes);
    const auto p = random_params(m->num_params(), 7);
    auto ws = m->make_workspace(8);
    gathered_minibatch batch;
    // A large batch first: the smaller ones after it reuse the buffer.
    for (const std::vector<int64_t>& index : std::vector<std::vector<int64_t>>{
           {299, 0, 17, 17, 100, 3, 250, 42}, {5, 6}, {299, 1, 2}}) {
      const int n = int(index.size());
      std::vector<float> by_index(p.size()), by_batch(p.size());
      const float loss_index = m->gradient(p.data(), data, index.data(), n, by_index.data(), *ws);
      batch.gather(data, index.data(), n);
      REQUIRE(batch.view().count == n);
      const float loss_batch = m->gradient(p.data(), batch.view(), by_batch.data(), *ws);
      CHECK(loss_batch == loss_index);
      CHECK(by_batch == by_index);
    }
  }
}

TEST_CASE("a gathered minibatch holds the rows, labels and targets of its indices",
          "[minibatch]") {
  gathered_minibatch batch;
  CHECK(batch.view().count == 0);

  const auto pixels = random_set(20, 3, 5, true, 1);
  const std::vector<int64_t> index = {19, 4};
  batch.gather(pixels, index.data(), 2);
  auto view = batch.view();
  REQUIRE(view.count == 2);
  REQUIRE(view.labels != nullptr);
  CHECK(view.targets == nullptr);
  for (int i = 0; i < 2; ++i) {
    CHECK(view.labels[i] == pixels.labels[size_t(index[size_t(i)])]);
    for (int j = 0; j < 3; ++j)
      CHECK(view.x[i * 3 + j] == float(pixels.pixels[size_t(index[size_t(i)] * 3 + j)]) / 255.0f);
  }

  const auto regression = random_set(20, 3, 0, false, 2);
  batch.gather(regression, index.data(), 2);
  view = batch.view();
  CHECK(view.labels == nullptr);
  REQUIRE(view.targets != nullptr);
  CHECK(view.targets[0] == regression.targets[19]);
  CHECK(view.targets[1] == regression.targets[4]);
  CHECK(view.x[5] == regression.features[4 * 3 + 2]);

  // No examples: no rows, and the models' gradient is a zero step.
  batch.gather(regression, index.data(), 0);
  CHECK(batch.view().count == 0);
  auto m = build(kind::least_squares, 3, 0);
  auto ws = m->make_workspace(2);
  std::vector<float> grad(size_t(m->num_params()), 1.0f);
  CHECK(m->gradient(random_params(m->num_params(), 3).data(), batch.view(), grad.data(), *ws)
        == 0.0f);
  CHECK(grad == std::vector<float>(grad.size(), 0.0f));
}
