// The algorithms end to end: exactness against sequential SGD, convergence to a known
// optimum, and accuracy on Fashion-MNIST.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "actors/trainer.hpp"
#include "data/synthetic.hpp"
#include "tests/test_helpers.hpp"

using namespace psgd;

namespace {

run_summary train(run_config cfg, std::shared_ptr<const data::split> data) {
  return testing::must_run(std::move(cfg), std::move(data));
}

} // namespace

TEST_CASE("sync with m workers of batch b equals sequential with batch m*b", "[exact]") {
  auto data = testing::fashion_mnist();
  for (std::string model : {"softmax", "mlp"}) {
    auto sync = testing::test_config("sync", model);
    sync.workers = 2;
    sync.batch = 32;
    sync.epochs = 0;
    sync.max_updates = 250;
    sync.hidden = 32;
    auto seq = sync;
    seq.mode = "sequential";
    seq.batch = 64;
    auto a = train(sync, data);
    auto b = train(seq, data);
    REQUIRE(a.final_stats.version == 250);
    REQUIRE(b.final_stats.version == 250);
    INFO(model);
    CHECK(testing::max_abs_difference(a, b) <= 1e-5f);
    // Not trivially equal: training moved the parameters.
    CHECK(a.evaluations.back().test_accuracy > 0.6);
  }
}

TEST_CASE("sync with the sum aggregate equals sequential with lr * m", "[exact]") {
  auto data = testing::fashion_mnist();
  auto sync = testing::test_config("sync", "softmax");
  sync.workers = 3;
  sync.batch = 16;
  sync.lr = 0.02;
  sync.aggregate = "sum";
  sync.epochs = 0;
  sync.max_updates = 200;
  auto seq = sync;
  seq.mode = "sequential";
  seq.batch = 48;
  seq.lr = 0.06;
  CHECK(testing::max_abs_difference(train(sync, data), train(seq, data)) <= 1e-5f);
}

TEST_CASE("async with one worker equals sequential", "[exact]") {
  auto data = testing::fashion_mnist();
  auto async = testing::test_config("async", "softmax");
  async.workers = 1;
  async.epochs = 0;
  async.max_updates = 300;
  auto seq = async;
  seq.mode = "sequential";
  auto a = train(async, data);
  CHECK(testing::max_abs_difference(a, train(seq, data)) <= 1e-6f);
  CHECK(a.final_stats.staleness_histogram == std::vector<int64_t>{300});
}

TEST_CASE("least squares reaches its known optimum in every mode", "[convergence]") {
  auto problem = data::make_least_squares(4096, 512, 16, 0.05, 3);
  auto data = std::make_shared<const data::split>(problem.data);
  for (std::string mode : {"sequential", "sync", "async", "backup"}) {
    auto cfg = testing::test_config(mode, "lsq");
    cfg.workers = 2;
    cfg.backup = 1;
    cfg.batch = 32;
    cfg.lr = 0.05;
    cfg.epochs = 15;
    auto r = train(cfg, data);
    const auto& w = r.final_params.params.values();
    REQUIRE(w.size() == problem.optimum.size());
    double worst = 0;
    for (size_t i = 0; i < w.size(); ++i)
      worst = std::max(worst, std::abs(double(w[i]) - problem.optimum[i]));
    INFO(mode << ": max |w - w*| = " << worst);
    CHECK(worst < 0.02);
  }
}

TEST_CASE("softmax on Fashion-MNIST reaches 0.80 test accuracy after one epoch",
          "[convergence][timing]") {
  auto data = testing::fashion_mnist();
  for (std::string mode : {"sync", "async", "backup"}) {
    auto cfg = testing::test_config(mode, "softmax");
    cfg.workers = 2;
    cfg.backup = 1;
    cfg.epochs = 1;
    // At lr 0.1 (b=32) the final iterate swings by +-0.03 between evaluations (so do the
    // PyTorch peers'), and still by +-0.015 at lr 0.05. Async at lr 0.03 lands in 0.807-0.816
    // over 8 seeds; sync and backup average m=2 gradients (batch 64), so by the linear
    // scaling rule they take lr 0.06 (0.801-0.816 over 8 seeds). The median of three seeds
    // checks that each algorithm learns, not the luck of the last step; no run may be far off.
    cfg.lr = mode == "async" ? 0.03 : 0.03 * cfg.workers;
    std::vector<double> accuracy;
    for (uint64_t seed : {1, 2, 3}) {
      cfg.seed = seed;
      auto r = train(cfg, data);
      CHECK(r.final_stats.samples >= 60000);
      accuracy.push_back(r.evaluations.back().test_accuracy);
    }
    std::sort(accuracy.begin(), accuracy.end());
    INFO(mode << ": " << accuracy[0] << " " << accuracy[1] << " " << accuracy[2]);
    CHECK(accuracy[1] >= 0.80);
    CHECK(accuracy[0] >= 0.75); // under load backup can drop one shard more often
  }
}

TEST_CASE("the workers' compute and wait add up to the training time, evaluation pauses left "
          "out",
          "[timing]") {
  // Evaluations on Fashion-MNIST take milliseconds, far longer than a step: wait counted
  // through a pause (or from the wrong moment in it) would show as a sum far above 1.
  auto data = testing::fashion_mnist();
  for (std::string mode : {"sync", "async"}) {
    auto cfg = testing::test_config(mode, "softmax");
    cfg.epochs = 0.5;
    cfg.eval_every = 100; // 9 pauses
    auto r = train(cfg, data);
    const auto& s = r.final_stats;
    double busy = 0;
    for (const auto& w : s.workers) {
      REQUIRE(w.compute_seconds > 0);
      REQUIRE(w.wait_seconds >= 0);
      busy += w.compute_seconds + w.wait_seconds;
    }
    const double ratio = busy / (double(s.workers.size()) * s.seconds);
    INFO(mode << ": compute + wait over training time " << ratio << ", " << r.evaluations.size()
              << " evaluations");
    CHECK(ratio > 0.7);
    CHECK(ratio < 1.3);
  }
}

TEST_CASE("an interrupted run stops soon with its results so far, in every mode",
          "[interrupt]") {
  for (std::string mode : {"sequential", "sync", "async", "backup"}) {
    INFO(mode);
    auto cfg = testing::test_config(mode);
    cfg.epochs = 10000; // far beyond what 0.3 s trains
    cfg.eval_every = 50; // often paused for an evaluation when the interrupt comes
    REQUIRE(validate(cfg).empty());
    auto job = prepare_job(cfg, testing::separable_set());
    REQUIRE(job);
    std::atomic<bool> interrupt{false};
    job->interrupt = &interrupt;
    psgd_config sys_cfg;
    sys_cfg.fit_scheduler_to(cfg);
    caf::actor_system sys{sys_cfg};
    std::thread user{[&] {
      std::this_thread::sleep_for(std::chrono::milliseconds{300});
      interrupt = true;
    }};
    const auto started = std::chrono::steady_clock::now();
    auto r = run_training(sys, *job);
    const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    user.join();
    REQUIRE(r);
    CHECK(r->interrupted);
    CHECK(seconds < 10); // the poll is every 0.1 s, the final evaluation and reports follow
    const auto& s = r->final_stats;
    CHECK(s.version > 0);
    CHECK(s.samples < int64_t{10000} * 8192);
    REQUIRE(!r->events.empty());
    CHECK_THAT(r->events.back(), Catch::StartsWith(fmt::format("interrupted at update {}",
                                                                s.version)));
    // The final evaluation is of the parameters at the interrupt, and nothing went missing.
    CHECK(r->final_params.version == s.version);
    CHECK(r->evaluations.back().updates == s.version);
    for (size_t i = 1; i < r->evaluations.size(); ++i) // one record per evaluation
      CHECK(r->evaluations[i].updates > r->evaluations[i - 1].updates);
    CHECK(r->evaluations.back().test_accuracy > 0.5);
    for (const auto& w : s.workers)
      CHECK(w.computed == w.applied + w.dropped + w.after_stop + w.rejected_total()
                            + w.lost_in_network + w.lost_in_flight);
    if (mode == "sequential") // its one worker's histogram is the run's
      CHECK(s.workers.at(0).staleness_histogram == s.staleness_histogram);
  }
}
