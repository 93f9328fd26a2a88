// Scripted stragglers and faults end to end: the injector, the runtime's answers to them,
// and the no-loss equation in every scenario.
#include <catch2/catch.hpp>

#include <algorithm>

#include <caf/all.hpp>

#include "actors/injector.hpp"
#include "actors/results.hpp"
#include "actors/trainer.hpp"
#include "data/synthetic.hpp"
#include "tests/test_helpers.hpp"

using namespace psgd;
using testing::must_run;
using testing::scenario_of;

namespace {

/// The no-loss equation holds for every worker, and nothing is lost unless `may_lose`.
void check_no_loss(const run_summary& r, std::vector<int32_t> may_lose = {}) {
  for (const auto& w : r.final_stats.workers) {
    INFO("worker " << w.worker);
    CHECK(w.computed
          == w.applied + w.dropped + w.after_stop + w.rejected_total() + w.lost_in_network
               + w.lost_in_flight);
    CHECK(w.lost_in_flight >= 0);
    bool allowed = std::find(may_lose.begin(), may_lose.end(), w.worker) != may_lose.end();
    CHECK(w.lost_in_flight <= (allowed ? 1 : 0)); // a crashed worker loses what it held
    CHECK(w.computed >= w.pushed);
  }
}

/// Every worker's step takes >= 0.5 ms: runs last long enough (>= 0.2 s for 400 sync rounds)
/// that injected events land before the end even when the machine is loaded (ctest -j2).
const char* base_delay =
  R"({"kind": "slow", "workers": "all", "delay": {"dist": "constant", "ms": 0.5}})";

scenario with_base_delay(const std::string& events) {
  return scenario_of(std::string{R"({"events": [)"} + base_delay + ", " + events + "]}");
}

bool has_event(const run_summary& r, const std::string& text) {
  for (const auto& e : r.events)
    if (e.find(text) != std::string::npos)
      return true;
  return false;
}

double mean_staleness(const worker_stats& w) {
  return w.applied > 0 ? double(w.staleness_sum) / double(w.applied) : 0.0;
}

} // namespace

TEST_CASE("the plan is deterministic in seed and scenario", "[injector]") {
  auto s = scenario_of(R"({"events": [
    {"kind": "slow", "workers": {"random": 2}, "delay": {"dist": "pareto", "scale_ms": 0.1, "shape": 1.5}},
    {"kind": "crash", "workers": {"random": 1}, "at": {"updates": 10}}]})");
  auto a = plan_lines(s, 7, 6);
  CHECK(a == plan_lines(s, 7, 6));
  auto b = plan_lines(s, 8, 6);
  REQUIRE(a.size() == 2);
  CHECK(a != b);
  CHECK_THAT(a[0], Catch::Contains("draws"));
  CHECK_THAT(a[1], Catch::Contains("crash at update 10"));
}

TEST_CASE("a worker's injected draws follow its (event seed, worker) stream", "[injector]") {
  fault_effect e;
  e.seed = 99;
  CHECK(draw_seed(e, 0) == draw_seed(e, 0));
  CHECK(draw_seed(e, 0) != draw_seed(e, 1));
  auto s = scenario_of(R"({"events": [{"kind": "slow", "workers": "all", "factor": 3}]})");
  auto f = effect_of(s.events[0], 0, 5);
  CHECK(f.kind == fault_effect::slow_factor);
  CHECK(f.factor == 3);
}

TEST_CASE("same seed and scenario give the same injected events in a run", "[injector]") {
  auto s = scenario_of(R"({"events": [
    {"kind": "slow", "workers": {"random": 1}, "delay": {"dist": "exponential", "mean_ms": 0.05}},
    {"kind": "pause", "workers": [0], "at": {"updates": 50}, "duration_ms": 5}]})");
  auto cfg = testing::test_config("async");
  cfg.max_updates = 200;
  cfg.epochs = 0;
  auto plan_of = [](const run_summary& r) {
    std::vector<std::string> lines;
    for (const auto& e : r.events)
      if (e.rfind("inject: ", 0) == 0)
        lines.push_back(e);
    return lines;
  };
  auto a = plan_of(must_run(cfg, testing::separable_set(), s));
  auto b = plan_of(must_run(cfg, testing::separable_set(), s));
  cfg.seed = 2;
  auto c = plan_of(must_run(cfg, testing::separable_set(), s));
  REQUIRE(a.size() == 2);
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("one much slower worker: backup drops mostly its gradients and async sees it "
          "stale",
          "[injector]") {
  // 5.5 ms per step against 0.5 ms: far beyond scheduling noise, even under load.
  auto slow = with_base_delay(
    R"({"kind": "slow", "workers": [2], "delay": {"dist": "constant", "ms": 5}})");
  SECTION("backup m=2 e=1") {
    auto cfg = testing::test_config("backup");
    cfg.max_updates = 300;
    cfg.epochs = 0;
    auto r = must_run(cfg, testing::separable_set(), slow);
    const auto& s = r.final_stats;
    CHECK(s.gradients_applied == 2 * int64_t(s.version));
    REQUIRE(s.workers.size() == 3);
    CHECK(s.workers[2].dropped > s.workers[0].dropped);
    CHECK(s.workers[2].dropped > s.workers[1].dropped);
    check_no_loss(r);
  }
  SECTION("async m=3") {
    auto cfg = testing::test_config("async");
    cfg.workers = 3;
    cfg.max_updates = 900;
    cfg.epochs = 0;
    auto r = must_run(cfg, testing::separable_set(), slow);
    const auto& w = r.final_stats.workers;
    REQUIRE(w.size() == 3);
    // The slow worker's gradients wait for the others' updates: shifted right. (Against the
    // faster of the two fast workers: on a loaded machine the OS may starve one of them.)
    const auto& fast = w[0].applied > w[1].applied ? w[0] : w[1];
    CHECK(mean_staleness(w[2]) > 2 * mean_staleness(fast));
    CHECK(w[2].applied < fast.applied);
    check_no_loss(r);
  }
}

TEST_CASE("where a worker's time went: in sync the fast worker waits for the slow one, in "
          "async it does not",
          "[injector]") {
  // Worker 1's steps take 5.5 ms, worker 0's 0.5 ms (timers: in neither compute nor wait).
  auto slow = with_base_delay(
    R"({"kind": "slow", "workers": [1], "delay": {"dist": "constant", "ms": 5}})");
  auto run = [&](const std::string& mode, int64_t updates) {
    auto cfg = testing::test_config(mode);
    cfg.max_updates = updates;
    cfg.epochs = 0;
    auto r = must_run(cfg, testing::separable_set(), slow);
    const auto& w = r.final_stats.workers;
    REQUIRE(w.size() == 2);
    for (const auto& x : w) {
      INFO(mode << " worker " << x.worker);
      CHECK(x.compute_seconds > 0);
      CHECK(x.wait_seconds >= 0);
    }
    return r;
  };
  SECTION("sync") {
    auto r = run("sync", 60);
    const auto& w = r.final_stats.workers;
    // ~4.5 ms a round for each of 60 rounds: far beyond its compute and the slow one's wait.
    CHECK(w[0].wait_seconds > 0.15);
    CHECK(w[0].wait_seconds > 10 * w[0].compute_seconds);
    CHECK(w[0].wait_seconds > 3 * w[1].wait_seconds);
  }
  SECTION("async") {
    auto r = run("async", 200);
    const auto& fast = r.final_stats.workers[0];
    REQUIRE(fast.pushed > 0);
    CHECK(fast.wait_seconds / double(fast.pushed) < 1e-3); // answered at once, not per round
  }
}

TEST_CASE("a worker crash mid-run: sync and backup complete and name the lost worker",
          "[injector]") {
  auto data = testing::fashion_mnist();
  auto crash = scenario_of(R"({"events": [{"kind": "crash", "workers": [1], "at": {"updates": 300}}]})");
  for (std::string mode : {"sync", "backup"}) {
    INFO(mode);
    auto cfg = testing::test_config(mode);
    cfg.epochs = 1;
    cfg.lr = 0.06;
    // The final iterate of one epoch varies by ~1 point between seeds: compare three seeds,
    // the median gap against the issue's 2 points, and no gap far beyond it.
    std::vector<double> gaps;
    for (uint64_t seed : {1, 2, 3}) {
      cfg.seed = seed;
      auto clean = must_run(cfg, data, std::nullopt);
      auto r = must_run(cfg, data, crash);
      CHECK(has_event(r, "worker 1 lost: injected_crash"));
      CHECK(r.final_stats.samples >= 60000);
      REQUIRE(r.final_stats.workers.size() >= 2);
      CHECK(r.final_stats.workers[1].lost);
      check_no_loss(r, {1});
      gaps.push_back(
        std::abs(r.evaluations.back().test_accuracy - clean.evaluations.back().test_accuracy));
    }
    std::sort(gaps.begin(), gaps.end());
    INFO("accuracy gaps " << gaps[0] << " " << gaps[1] << " " << gaps[2]);
    CHECK(gaps[1] <= 0.02);
    CHECK(gaps[2] <= 0.08); // under load backup can drop one shard more often
  }
}

TEST_CASE("backup with fewer than m live workers goes on and says so", "[injector]") {
  auto crashes = with_base_delay(R"({"kind": "crash", "workers": [1, 2], "at": {"updates": 50}})");
  auto cfg = testing::test_config("backup");
  cfg.max_updates = 200;
  cfg.epochs = 0;
  auto r = must_run(cfg, testing::separable_set(), crashes);
  CHECK(has_event(r, "fewer than m=2"));
  CHECK(r.final_stats.version == 200);
  check_no_loss(r, {1, 2});
}

TEST_CASE("a worker that joins mid-run gets a shard and contributes", "[injector]") {
  auto join = with_base_delay(R"({"kind": "join", "at": {"updates": 100}})");
  for (std::string mode : {"sync", "async"}) {
    INFO(mode);
    auto cfg = testing::test_config(mode);
    cfg.max_updates = 400;
    cfg.epochs = 0;
    auto r = must_run(cfg, testing::separable_set(), join);
    const auto& w = r.final_stats.workers;
    REQUIRE(w.size() == 3);
    CHECK(w[2].joined_late);
    CHECK(w[2].applied > 0);
    CHECK(has_event(r, "worker 2 joined at update"));
    check_no_loss(r);
  }
}

TEST_CASE("a later event reaches a worker that joined", "[injector]") {
  // Before, the injector resolved its targets among the starting workers only: this crash
  // was announced ("injected event 1: crash") and worker 2 trained on.
  // "all" in the base delay means the starting workers: the joiner gets its own delay, or it
  // could reach the last update (in a few ms, alone and unslowed) before its crash arrives.
  auto events = with_base_delay(R"({"kind": "join", "at": {"updates": 50}},
                                   {"kind": "slow", "workers": [2],
                                    "delay": {"dist": "constant", "ms": 0.5}},
                                   {"kind": "crash", "workers": [2], "at": {"updates": 150}})");
  auto cfg = testing::test_config("async");
  cfg.max_updates = 600;
  cfg.epochs = 0;
  auto r = must_run(cfg, testing::separable_set(), events);
  const auto& w = r.final_stats.workers;
  REQUIRE(w.size() == 3);
  INFO("version " << r.final_stats.version << ", worker 2 applied " << w[2].applied);
  CHECK(w[2].joined_late);
  CHECK(w[2].lost);
  CHECK(has_event(r, "worker 2 lost: injected_crash"));
  check_no_loss(r, {2});
}

TEST_CASE("round timeout: a paused worker is dropped from the quorum, or the run stops",
          "[injector]") {
  auto pause = with_base_delay(
    R"({"kind": "pause", "workers": [1], "at": {"updates": 50}, "duration_ms": 1500})");
  auto cfg = testing::test_config("sync");
  cfg.max_updates = 400;
  cfg.epochs = 0;
  cfg.round_timeout = 0.2;
  SECTION("policy drop") {
    auto r = must_run(cfg, testing::separable_set(), pause);
    CHECK(has_event(r, "waited"));
    CHECK(has_event(r, "for worker(s) 1"));
    CHECK(r.final_stats.version == 400);
    check_no_loss(r);
  }
  SECTION("policy stop") {
    cfg.round_timeout_policy = "stop";
    auto r = testing::run_job(cfg, testing::separable_set(), pause);
    REQUIRE_FALSE(r);
    CHECK_THAT(testing::render(r.error()), Catch::Contains("round_timeout")
                                        && Catch::Contains("worker(s) 1"));
  }
}

TEST_CASE("the injected slowdowns are real: a slowed step takes longer", "[injector]") {
  auto cfg = testing::test_config("sync");
  cfg.max_updates = 100;
  cfg.epochs = 0;
  auto fast = must_run(cfg, testing::separable_set(), std::nullopt);
  auto slow = must_run(cfg, testing::separable_set(), scenario_of(R"({"events": [
    {"kind": "slow", "workers": [0], "delay": {"dist": "constant", "ms": 2}}]})"));
  // 100 rounds each waiting >= 2 ms: at least 0.2 s, whatever the machine.
  CHECK(slow.final_stats.seconds >= 0.2);
  CHECK(slow.final_stats.seconds > fast.final_stats.seconds);
}

TEST_CASE("example-dependent cost slows batches by their classes", "[injector]") {
  auto cfg = testing::test_config("backup");
  cfg.max_updates = 100;
  cfg.epochs = 0;
  // Every example of class 0 costs 0.1 ms: a batch of 32 holds ~3, so ~0.3 ms per step.
  auto r = must_run(cfg, testing::separable_set(), scenario_of(R"({"events": [
    {"kind": "example_cost", "workers": "all", "per_class_ms": [0.1]}]})"));
  CHECK(r.final_stats.seconds >= 100 * 0.0002);
  check_no_loss(r);
}

TEST_CASE("net_drop: every mode goes on, and the lost gradients are counted where they were "
          "lost",
          "[injector][network-faults]") {
  // Worker 1 loses 30% of its gradients on its link, each loss noticed after 1 ms.
  auto lossy = with_base_delay(
    R"({"kind": "net_drop", "workers": [1], "probability": 0.3, "detect_ms": 1})");
  for (std::string mode : {"sync", "backup", "async"}) {
    INFO(mode);
    auto cfg = testing::test_config(mode);
    cfg.max_updates = 300;
    cfg.epochs = 0;
    auto r = must_run(cfg, testing::separable_set(), lossy);
    CHECK(r.final_stats.version == 300);
    const auto& w = r.final_stats.workers;
    REQUIRE(w.size() >= 2);
    INFO("worker 1 computed " << w[1].computed << ", lost in the network "
                              << w[1].lost_in_network);
    CHECK(w[0].lost_in_network == 0);
    // binomial(computed, 0.3): far from 0 and from all of them
    CHECK(w[1].lost_in_network > w[1].computed / 10);
    CHECK(w[1].lost_in_network < w[1].computed / 2);
    check_no_loss(r);
    if (mode == "sync") // a round closes with both workers: it waits out every loss
      CHECK(w[1].applied == 300);
  }
}

TEST_CASE("net_delay: the delayed worker's gradients arrive stale in async and late in "
          "backup",
          "[injector][network-faults]") {
  auto delayed = with_base_delay(
    R"({"kind": "net_delay", "workers": [2], "delay": {"dist": "constant", "ms": 5}})");
  SECTION("async m=3") {
    auto cfg = testing::test_config("async");
    cfg.workers = 3;
    cfg.max_updates = 900;
    cfg.epochs = 0;
    auto r = must_run(cfg, testing::separable_set(), delayed);
    const auto& w = r.final_stats.workers;
    REQUIRE(w.size() == 3);
    const auto& fast = w[0].applied > w[1].applied ? w[0] : w[1];
    CHECK(mean_staleness(w[2]) > 2 * mean_staleness(fast));
    CHECK(w[2].lost_in_network == 0);
    check_no_loss(r);
  }
  SECTION("backup m=2 e=1") {
    auto cfg = testing::test_config("backup");
    cfg.max_updates = 300;
    cfg.epochs = 0;
    auto r = must_run(cfg, testing::separable_set(), delayed);
    const auto& w = r.final_stats.workers;
    REQUIRE(w.size() == 3);
    CHECK(w[2].dropped > w[0].dropped);
    CHECK(w[2].dropped > w[1].dropped);
    check_no_loss(r);
  }
}

TEST_CASE("an event the run never reaches, or whose worker is not running, is said",
          "[injector]") {
  // Before, both passed without a word, and the result was labelled with the scenario.
  auto events = with_base_delay(R"({"kind": "crash", "workers": [2], "at": {"updates": 20}},
                                   {"kind": "crash", "workers": [0], "at": {"updates": 5000}})");
  auto cfg = testing::test_config("async");
  cfg.max_updates = 100;
  cfg.epochs = 0;
  auto r = must_run(cfg, testing::separable_set(), events);
  CHECK(has_event(r, "injected event 1: worker(s) 2 not running yet: no effect on them"));
  CHECK(has_event(r, "scenario event 2 (crash at update 5000) did not happen: the run ended "
                     "at update 100"));
  CHECK_FALSE(has_event(r, "scenario event 1 "));
  check_no_loss(r);
}

TEST_CASE("injected delays add up to the scripted ones, though the timer fires late",
          "[injector]") {
  // CAF's timer fired ~0.1-0.25 ms late: a scripted 0.05 ms took 0.19, and a "10x slower"
  // worker was 17x slower. The overshoot now comes off the next delays.
  auto cfg = testing::test_config("async");
  cfg.workers = 1;
  cfg.max_updates = 2000;
  cfg.epochs = 0;
  auto seconds = [&](const std::optional<scenario>& s) {
    return must_run(cfg, testing::separable_set(), s).final_stats.seconds;
  };
  const double clean = seconds(scenario_of(
    R"({"events": [{"kind": "slow", "workers": "all", "factor": 1}]})"));
  const double delayed = seconds(scenario_of(
    R"({"events": [{"kind": "slow", "workers": "all", "delay": {"dist": "constant", "ms": 0.05}}]})"));
  const double scripted = 2000 * 0.05e-3;
  INFO("clean " << clean << " s, delayed " << delayed << " s, scripted " << scripted << " s");
  CHECK(delayed - clean >= 0.9 * scripted);
  CHECK(delayed - clean <= 1.8 * scripted); // before: ~3.8x
}
