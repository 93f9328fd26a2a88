// Tests of model/: kind names, spec validation, gradients against finite differences of an
// independent double-precision loss, evaluation on hand-built cases, init, and that SGD
// (or plain gradient descent) actually trains each model.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "data/dataset.hpp"
#include "data/synthetic.hpp"
#include "model/model.hpp"

using psgd::data::dataset;
using psgd::model::kind;
using psgd::model::model;
using psgd::model::model_spec;

namespace {

model_spec spec_of(kind type, int input_dim, int classes, int hidden = 4) {
  model_spec s;
  s.type = type;
  s.input_dim = input_dim;
  s.classes = classes;
  s.hidden = hidden;
  return s;
}

std::unique_ptr<model> build(const model_spec& spec) {
  auto m = psgd::model::make_model(spec);
  REQUIRE(m);
  return std::move(*m);
}

/// rows x dim features ~ N(0, 1); labels uniform in [0, classes), or targets ~ N(0, 1) when
/// classes == 0.
dataset random_dataset(int64_t rows, int dim, int classes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  dataset d;
  d.rows = rows;
  d.dim = dim;
  d.classes = classes;
  d.features.resize(size_t(rows * dim));
  for (float& f : d.features)
    f = normal(rng);
  for (int64_t i = 0; i < rows; ++i) {
    if (classes > 0)
      d.labels.push_back(int32_t(rng() % uint32_t(classes)));
    else
      d.targets.push_back(normal(rng));
  }
  return d;
}

/// Well-separated Gaussian blobs: class c centred on 3 * e_c (dim >= classes), sd 0.3.
dataset blobs(int64_t rows, int dim, int classes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  dataset d;
  d.rows = rows;
  d.dim = dim;
  d.classes = classes;
  for (int64_t i = 0; i < rows; ++i) {
    const int c = int(i % classes);
    for (int j = 0; j < dim; ++j)
      d.features.push_back((j == c ? 3.0f : 0.0f) + noise(rng));
    d.labels.push_back(c);
  }
  return d;
}

std::vector<float> random_params(int64_t n, float sd, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sd);
  std::vector<float> p(static_cast<size_t>(n));
  for (float& v : p)
    v = normal(rng);
  return p;
}

double cross_entropy(const std::vector<double>& logits, int label) {
  double top = logits[0];
  for (double z : logits)
    top = std::max(top, z);
  double sum = 0;
  for (double z : logits)
    sum += std::exp(z - top);
  return std::log(sum) + top - logits[size_t(label)];
}

/// The mean loss of `index` under parameters `p`, in double and straight from the layouts
/// documented in the model headers: an independent check of both loss and gradient.
double reference_loss(const model_spec& s, const std::vector<double>& p, const dataset& d,
                      const std::vector<int64_t>& index) {
  const int in = s.input_dim, k = s.classes, h = s.hidden;
  double total = 0;
  for (int64_t r : index) {
    const float* x = d.row(r);
    if (s.type == kind::least_squares) {
      double pred = p[size_t(in)];
      for (int j = 0; j < in; ++j)
        pred += x[j] * p[size_t(j)];
      const double e = pred - d.targets[size_t(r)];
      total += 0.5 * e * e;
      continue;
    }
    std::vector<double> features(x, x + in);
    const double* w = p.data();
    int width = in;
    if (s.type == kind::mlp) {   // W1 (in x h), b1 (h), then W2, b2 as for softmax
      std::vector<double> hidden(static_cast<size_t>(h));
      for (int u = 0; u < h; ++u) {
        double a = p[size_t(in * h + u)];
        for (int j = 0; j < in; ++j)
          a += features[size_t(j)] * p[size_t(j * h + u)];
        hidden[size_t(u)] = std::max(a, 0.0);
      }
      features = hidden;
      w = p.data() + in * h + h;
      width = h;
    }
    std::vector<double> logits(static_cast<size_t>(k));
    for (int c = 0; c < k; ++c) {
      double z = w[width * k + c];
      for (int j = 0; j < width; ++j)
        z += features[size_t(j)] * w[j * k + c];
      logits[size_t(c)] = z;
    }
    total += cross_entropy(logits, d.labels[size_t(r)]);
  }
  return total / double(index.size());
}

float loss_of(const model& m, const std::vector<float>& p, const dataset& d,
              const std::vector<int64_t>& index) {
  auto ws = m.make_workspace(int(index.size()));
  std::vector<float> grad(size_t(m.num_params()));
  return m.gradient(p.data(), d, index.data(), int(index.size()), grad.data(), *ws);
}

/// Checks m's gradient at `p` against central differences of the double reference loss
/// (tight) and of the model's own float loss (looser: float rounding).
void check_gradient(const model_spec& spec, const std::vector<float>& p, const dataset& d,
                    const std::vector<int64_t>& index) {
  auto m = build(spec);
  REQUIRE(int64_t(p.size()) == m->num_params());
  auto ws = m->make_workspace(int(index.size()));
  std::vector<float> grad(p.size());
  const float loss = m->gradient(p.data(), d, index.data(), int(index.size()), grad.data(), *ws);

  std::vector<double> pd(p.begin(), p.end());
  CHECK(loss == Approx(reference_loss(spec, pd, d, index)).epsilon(1e-5));
  for (size_t i = 0; i < p.size(); ++i) {
    const double h = 1e-5;
    std::vector<double> plus = pd, minus = pd;
    plus[i] += h;
    minus[i] -= h;
    const double fd =
        (reference_loss(spec, plus, d, index) - reference_loss(spec, minus, d, index)) / (2 * h);
    INFO("parameter " << i << " of " << p.size());
    CHECK(std::abs(grad[i] - fd) <= 1e-4 + 1e-3 * std::abs(fd));

    const float hf = 1e-3f;
    std::vector<float> fplus = p, fminus = p;
    fplus[i] += hf;
    fminus[i] -= hf;
    const double fd_float =
        (double(loss_of(*m, fplus, d, index)) - double(loss_of(*m, fminus, d, index))) /
        double(fplus[i] - fminus[i]);
    CHECK(std::abs(grad[i] - fd_float) <= 2e-3 + 1e-2 * std::abs(fd_float));
  }
}

/// `steps` of minibatch SGD (cycling through a fixed shuffled order); returns the params.
std::vector<float> train_sgd(const model& m, const dataset& d, int batch, float lr, int steps,
                             uint64_t seed) {
  std::vector<float> p(size_t(m.num_params())), grad(p.size());
  m.init(seed, p.data());
  std::vector<int64_t> order(size_t(d.rows));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(7));
  auto ws = m.make_workspace(batch);
  for (int s = 0; s < steps; ++s) {
    const int64_t start = (int64_t(s) * batch) % (d.rows - batch + 1);
    m.gradient(p.data(), d, order.data() + start, batch, grad.data(), *ws);
    for (size_t i = 0; i < p.size(); ++i)
      p[i] -= lr * grad[i];
  }
  return p;
}

} // namespace

TEST_CASE("model kinds have names that parse back", "[models]") {
  for (kind k : {kind::softmax, kind::mlp, kind::least_squares}) {
    auto parsed = psgd::model::parse_kind(psgd::model::to_string(k));
    REQUIRE(parsed);
    CHECK(*parsed == k);
  }
  CHECK(psgd::model::to_string(kind::least_squares) == "lsq");

  auto bad = psgd::model::parse_kind("foo");
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == "unknown model 'foo' (expected softmax, mlp or lsq)");
  CHECK_FALSE(psgd::model::parse_kind(""));
  CHECK_FALSE(psgd::model::parse_kind("Softmax"));
}

TEST_CASE("make_model checks dimensions", "[models]") {
  auto fails = [](const model_spec& s, const std::string& word) {
    auto m = psgd::model::make_model(s);
    REQUIRE_FALSE(m);
    CHECK(m.error().find(word) != std::string::npos);
    CHECK(m.error().find('\n') == std::string::npos);
  };
  fails(spec_of(kind::mlp, 784, 10, 0), "hidden");
  fails(spec_of(kind::mlp, 784, 10, -3), "hidden");
  fails(spec_of(kind::softmax, 784, 1), "classes");
  fails(spec_of(kind::mlp, 784, 1, 16), "classes");
  fails(spec_of(kind::softmax, 0, 10), "input_dim");
  fails(spec_of(kind::least_squares, -1, 0), "input_dim");

  // Fields a kind ignores are not checked.
  CHECK(psgd::model::make_model(spec_of(kind::least_squares, 7, 0, 0)));
  CHECK(psgd::model::make_model(spec_of(kind::softmax, 7, 2, 0)));

  CHECK(build(spec_of(kind::softmax, 784, 10))->num_params() == 784 * 10 + 10);
  CHECK(build(spec_of(kind::mlp, 784, 10, 128))->num_params() ==
        784 * 128 + 128 + 128 * 10 + 10);
  CHECK(build(spec_of(kind::least_squares, 784, 0))->num_params() == 785);
  auto m = build(spec_of(kind::mlp, 5, 3, 4));
  CHECK(m->spec().hidden == 4);
  CHECK(m->spec().type == kind::mlp);
}

TEST_CASE("gradients match finite differences", "[models]") {
  const std::vector<int64_t> index = {3, 0, 7, 7, 11, 2, 5, 9};   // repeats are allowed

  SECTION("softmax") {
    const auto spec = spec_of(kind::softmax, 5, 3);
    check_gradient(spec, random_params(5 * 3 + 3, 0.5f, 1), random_dataset(12, 5, 3, 2), index);
  }
  SECTION("mlp") {
    const auto spec = spec_of(kind::mlp, 5, 3, 4);
    auto m = build(spec);
    std::vector<float> p(size_t(m->num_params()));
    m->init(3, p.data());
    auto biases = random_params(int64_t(p.size()), 0.3f, 4);   // non-zero biases too
    for (size_t i = 0; i < p.size(); ++i)
      p[i] += biases[i];
    check_gradient(spec, p, random_dataset(12, 5, 3, 5), index);
  }
  SECTION("mlp, hidden 16: W1's gradient from transposed_product") {
    const auto spec = spec_of(kind::mlp, 5, 3, 16);
    auto m = build(spec);
    std::vector<float> p(size_t(m->num_params()));
    m->init(3, p.data());
    auto biases = random_params(int64_t(p.size()), 0.3f, 4);
    for (size_t i = 0; i < p.size(); ++i)
      p[i] += biases[i];
    check_gradient(spec, p, random_dataset(12, 5, 3, 5), index);
  }
  SECTION("least squares") {
    const auto spec = spec_of(kind::least_squares, 5, 0);
    check_gradient(spec, random_params(6, 0.5f, 6), random_dataset(12, 5, 0, 7), index);
  }
}

TEST_CASE("a batch smaller than the workspace gives the mean of per-example gradients",
          "[models]") {
  for (const auto& spec : {spec_of(kind::softmax, 6, 4), spec_of(kind::mlp, 6, 4, 5),
                           spec_of(kind::least_squares, 6, 0)}) {
    INFO(psgd::model::to_string(spec.type));
    auto m = build(spec);
    const auto d = random_dataset(40, 6, spec.type == kind::least_squares ? 0 : 4, 8);
    const auto p = random_params(m->num_params(), 0.4f, 9);
    const size_t n = p.size();
    std::vector<int64_t> index(16);
    std::iota(index.begin(), index.end(), 10);

    // Fill the big workspace with a full batch first: stale rows must not leak in.
    auto big = m->make_workspace(16);
    std::vector<float> grad(n), small_grad(n), one(n), mean(n, 0.0f);
    m->gradient(p.data(), d, index.data(), 16, grad.data(), *big);
    const float loss = m->gradient(p.data(), d, index.data() + 3, 5, grad.data(), *big);

    auto exact = m->make_workspace(5);
    const float small_loss = m->gradient(p.data(), d, index.data() + 3, 5, small_grad.data(),
                                         *exact);
    CHECK(loss == Approx(small_loss).epsilon(1e-6));
    float mean_loss = 0;
    for (int i = 0; i < 5; ++i) {
      mean_loss += m->gradient(p.data(), d, index.data() + 3 + i, 1, one.data(), *big) / 5;
      for (size_t j = 0; j < n; ++j)
        mean[j] += one[j] / 5;
    }
    CHECK(loss == Approx(mean_loss).epsilon(1e-5));
    for (size_t j = 0; j < n; ++j) {
      CHECK(grad[j] == Approx(small_grad[j]).margin(1e-6).epsilon(1e-5));
      CHECK(grad[j] == Approx(mean[j]).margin(1e-5).epsilon(1e-4));
    }

    // No examples: a zero gradient.
    CHECK(m->gradient(p.data(), d, index.data(), 0, grad.data(), *big) == 0.0f);
    for (float g : grad)
      CHECK(g == 0.0f);
  }
}

TEST_CASE("softmax loss is stable for huge logits", "[models]") {
  auto m = build(spec_of(kind::softmax, 5, 3));
  const auto d = random_dataset(20, 5, 3, 10);
  auto p = random_params(m->num_params(), 1e4f, 11);   // logits in the 1e4 range
  std::vector<int64_t> index(20);
  std::iota(index.begin(), index.end(), 0);
  auto ws = m->make_workspace(20);
  std::vector<float> grad(p.size());
  const float loss = m->gradient(p.data(), d, index.data(), 20, grad.data(), *ws);
  CHECK(std::isfinite(loss));
  CHECK(loss > 0);
  for (float g : grad)
    CHECK(std::isfinite(g));
  const auto e = m->evaluate(p.data(), d);
  CHECK(std::isfinite(e.loss));
  CHECK(e.loss == Approx(loss).epsilon(1e-4));
}

TEST_CASE("evaluate counts hits and averages the loss over every chunk", "[models]") {
  // 3 features, 3 classes; row i is 2 * e_{i % 3}. Every fifth row is labelled one class
  // off, so exactly 2000 of 2500 rows (3 chunks of evaluation) are predicted right.
  dataset d;
  d.rows = 2500;
  d.dim = 3;
  d.classes = 3;
  for (int64_t i = 0; i < d.rows; ++i) {
    const int c = int(i % 3);
    for (int j = 0; j < 3; ++j)
      d.features.push_back(j == c ? 2.0f : 0.0f);
    d.labels.push_back(i % 5 == 4 ? (c + 1) % 3 : c);
  }
  // With logits equal to the features: log(e^2 + 2) - z_label.
  const double lse = std::log(std::exp(2.0) + 2.0);
  const double expected_loss = 0.8 * (lse - 2.0) + 0.2 * lse;

  SECTION("softmax, W = I, b = 0") {
    auto m = build(spec_of(kind::softmax, 3, 3));
    std::vector<float> p = {1, 0, 0, 0, 1, 0, 0, 0, 1, /*b*/ 0, 0, 0};
    const auto e = m->evaluate(p.data(), d);
    CHECK(e.accuracy == Approx(0.8));
    CHECK(e.loss == Approx(expected_loss).epsilon(1e-6));
  }
  SECTION("softmax, W = 0, b favours class 1") {
    auto m = build(spec_of(kind::softmax, 3, 3));
    std::vector<float> p(12, 0.0f);
    p[9 + 1] = 1.0f;
    int64_t ones = 0;
    for (int32_t y : d.labels)
      ones += (y == 1);
    const double lse_b = std::log(2.0 + std::exp(1.0));
    const double loss = (double(ones) * (lse_b - 1.0) + double(d.rows - ones) * lse_b) / 2500;
    const auto e = m->evaluate(p.data(), d);
    CHECK(e.accuracy == Approx(double(ones) / 2500));
    CHECK(e.loss == Approx(loss).epsilon(1e-6));
  }
  SECTION("mlp, W1 = W2 = I (the ReLU passes the non-negative features)") {
    auto m = build(spec_of(kind::mlp, 3, 3, 3));
    std::vector<float> p = {1, 0, 0, 0, 1, 0, 0, 0, 1, /*b1*/ 0, 0, 0,
                            1, 0, 0, 0, 1, 0, 0, 0, 1, /*b2*/ 0, 0, 0};
    REQUIRE(int64_t(p.size()) == m->num_params());
    const auto e = m->evaluate(p.data(), d);
    CHECK(e.accuracy == Approx(0.8));
    CHECK(e.loss == Approx(expected_loss).epsilon(1e-6));
  }
  SECTION("least squares: mean half squared error, accuracy 0") {
    dataset r;
    r.rows = 3;
    r.dim = 2;
    r.features = {1, 0, 0, 1, 1, 1};
    r.targets = {1.5f, 2.5f, 4.5f};
    auto m = build(spec_of(kind::least_squares, 2, 0));
    std::vector<float> p = {1, 2, /*c*/ 0.5f};   // predictions 1.5, 2.5, 3.5
    const auto e = m->evaluate(p.data(), r);
    CHECK(e.accuracy == 0.0);
    CHECK(e.loss == Approx(0.5 * 1.0 / 3));
  }
}

TEST_CASE("a set of pixels trains and evaluates as the floats it stands for", "[models]") {
  // Fashion-MNIST is held as bytes; its gradients and evaluations must have the bits its
  // floats gave. 2500 rows: evaluation takes three chunks.
  dataset bytes;
  bytes.rows = 2500;
  bytes.dim = 13;
  bytes.classes = 4;
  std::mt19937 gen{9};
  for (int64_t i = 0; i < bytes.rows * bytes.dim; ++i)
    bytes.pixels.push_back(uint8_t(gen() % 256));
  for (int64_t i = 0; i < bytes.rows; ++i)
    bytes.labels.push_back(int32_t(gen() % 4));
  dataset floats = bytes;
  floats.pixels.clear();
  for (uint8_t v : bytes.pixels)
    floats.features.push_back(float(v) / 255.0f);
  const std::vector<int64_t> index = {2499, 0, 17, 17, 1024, 3};

  for (const auto& spec : {spec_of(kind::softmax, 13, 4), spec_of(kind::mlp, 13, 4, 16)}) {
    INFO(psgd::model::to_string(spec.type));
    auto m = build(spec);
    auto p = random_params(m->num_params(), 0.3f, 12);
    auto ws = m->make_workspace(int(index.size()));
    std::vector<float> g_bytes(p.size()), g_floats(p.size());
    const float loss_bytes = m->gradient(p.data(), bytes, index.data(), int(index.size()),
                                         g_bytes.data(), *ws);
    const float loss_floats = m->gradient(p.data(), floats, index.data(), int(index.size()),
                                          g_floats.data(), *ws);
    CHECK(loss_bytes == loss_floats);
    CHECK(g_bytes == g_floats);
    const auto e_bytes = m->evaluate(p.data(), bytes);
    const auto e_floats = m->evaluate(p.data(), floats);
    CHECK(e_bytes.loss == e_floats.loss);
    CHECK(e_bytes.accuracy == e_floats.accuracy);
  }
}

TEST_CASE("init is deterministic in the seed", "[models]") {
  SECTION("mlp: He-normal weights, zero biases") {
    const int in = 200, hid = 50, k = 10;
    auto m = build(spec_of(kind::mlp, in, k, hid));
    const size_t n = size_t(m->num_params());
    std::vector<float> a(n), b(n), c(n);
    m->init(42, a.data());
    m->init(42, b.data());
    m->init(43, c.data());
    CHECK(a == b);
    CHECK(a != c);

    auto moments = [](const float* v, size_t count) {
      double sum = 0, sq = 0;
      for (size_t i = 0; i < count; ++i) {
        sum += v[i];
        sq += double(v[i]) * v[i];
      }
      const double mean = sum / double(count);
      return std::make_pair(mean, std::sqrt(sq / double(count) - mean * mean));
    };
    const size_t w1 = size_t(in * hid), w2 = size_t(hid * k);
    auto [mean1, sd1] = moments(a.data(), w1);
    CHECK(std::abs(mean1) < 0.005);
    CHECK(sd1 == Approx(std::sqrt(2.0 / in)).epsilon(0.05));
    auto [mean2, sd2] = moments(a.data() + w1 + hid, w2);
    CHECK(std::abs(mean2) < 0.05);
    CHECK(sd2 == Approx(std::sqrt(2.0 / hid)).epsilon(0.15));
    for (size_t i = w1; i < w1 + size_t(hid); ++i)
      CHECK(a[i] == 0.0f);
    for (size_t i = w1 + size_t(hid) + w2; i < n; ++i)
      CHECK(a[i] == 0.0f);
  }
  SECTION("softmax and least squares start at zero") {
    for (const auto& spec : {spec_of(kind::softmax, 7, 3), spec_of(kind::least_squares, 7, 0)}) {
      auto m = build(spec);
      std::vector<float> p(size_t(m->num_params()), 1.0f);
      m->init(99, p.data());
      for (float v : p)
        CHECK(v == 0.0f);
    }
  }
}

TEST_CASE("SGD drives the loss down on separable blobs", "[models]") {
  const auto d = blobs(300, 5, 3, 12);
  std::vector<int64_t> all(size_t(d.rows));
  std::iota(all.begin(), all.end(), 0);

  for (const auto& spec : {spec_of(kind::softmax, 5, 3), spec_of(kind::mlp, 5, 3, 16)}) {
    INFO(psgd::model::to_string(spec.type));
    auto m = build(spec);
    std::vector<float> start(size_t(m->num_params()));
    m->init(1, start.data());
    const auto before = m->evaluate(start.data(), d);
    const auto p = train_sgd(*m, d, 8, 0.2f, 60, 1);
    const auto after = m->evaluate(p.data(), d);
    CHECK(after.loss < 0.3 * before.loss);
    CHECK(after.accuracy >= 0.98);
    CHECK(loss_of(*m, p, d, all) == Approx(after.loss).epsilon(1e-4));
  }
}

TEST_CASE("least squares gradient descent reaches the closed-form optimum", "[models]") {
  // y = x . (1, -2, 0.5) + 3 exactly, on 40 random rows.
  auto d = random_dataset(40, 3, 0, 13);
  const double w_true[3] = {1.0, -2.0, 0.5}, c_true = 3.0;
  for (int64_t i = 0; i < d.rows; ++i) {
    const float* x = d.row(i);
    d.targets[size_t(i)] = float(x[0] * w_true[0] + x[1] * w_true[1] + x[2] * w_true[2] + c_true);
  }
  // Closed form: solve the normal equations [X 1]^T [X 1] theta = [X 1]^T y (Gauss-Jordan).
  double a[4][5] = {};
  for (int64_t i = 0; i < d.rows; ++i) {
    const double row[4] = {d.row(i)[0], d.row(i)[1], d.row(i)[2], 1.0};
    for (int r = 0; r < 4; ++r) {
      for (int c = 0; c < 4; ++c)
        a[r][c] += row[r] * row[c];
      a[r][4] += row[r] * d.targets[size_t(i)];
    }
  }
  for (int col = 0; col < 4; ++col)
    for (int r = 0; r < 4; ++r)
      if (r != col) {
        const double f = a[r][col] / a[col][col];
        for (int c = col; c < 5; ++c)
          a[r][c] -= f * a[col][c];
      }
  double closed[4];
  for (int r = 0; r < 4; ++r)
    closed[r] = a[r][4] / a[r][r];
  CHECK(closed[0] == Approx(w_true[0]).epsilon(1e-5));
  CHECK(closed[3] == Approx(c_true).epsilon(1e-5));

  auto m = build(spec_of(kind::least_squares, 3, 0));
  std::vector<float> p(4), grad(4);
  m->init(0, p.data());
  std::vector<int64_t> all(size_t(d.rows));
  std::iota(all.begin(), all.end(), 0);
  auto ws = m->make_workspace(int(d.rows));
  for (int step = 0; step < 1000; ++step) {
    m->gradient(p.data(), d, all.data(), int(d.rows), grad.data(), *ws);
    for (size_t i = 0; i < p.size(); ++i)
      p[i] -= 0.1f * grad[i];
  }
  for (int i = 0; i < 4; ++i)
    CHECK(p[size_t(i)] == Approx(closed[i]).margin(1e-4));
  CHECK(m->evaluate(p.data(), d).loss < 1e-8);
}

TEST_CASE("a gradient has the same bits wherever its buffers lie in memory", "[models]") {
  // Eigen's vectorised column sums peeled by the destination's alignment, and the bias
  // gradient then depended on the buffer's address: runs were not reproducible.
  auto data = psgd::data::make_separable(512, 64, 784, 10, 4);
  for (auto type : {kind::softmax, kind::mlp}) {
    auto m = std::move(*psgd::model::make_model(spec_of(type, 784, 10, 128)));
    const size_t n = static_cast<size_t>(m->num_params());
    std::vector<float> params(n);
    m->init(3, params.data());
    std::vector<int64_t> index(32);
    for (int i = 0; i < 32; ++i)
      index[size_t(i)] = i * 7;
    std::vector<float> reference;
    for (int offset = 0; offset < 16; ++offset) {
      std::vector<float> p(n + 16), g(n + 16);
      std::copy(params.begin(), params.end(), p.begin() + offset);
      auto ws = m->make_workspace(32);
      m->gradient(p.data() + offset, data.train, index.data(), 32, g.data() + 15 - offset, *ws);
      std::vector<float> got(g.begin() + 15 - offset, g.begin() + 15 - offset + long(n));
      if (offset == 0)
        reference = got;
      INFO("model " << int(type) << ", offset " << offset);
      CHECK(std::memcmp(got.data(), reference.data(), n * sizeof(float)) == 0);
    }
  }
}
