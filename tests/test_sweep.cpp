// The simulated-staleness sweep: its K list, deterministic points, and the table.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "actors/sweep.hpp"
#include "data/synthetic.hpp"
#include "tests/test_helpers.hpp"

using namespace psgd;

TEST_CASE("the staleness list is parsed and checked", "[sweep]") {
  auto ok = parse_staleness_list("0,1,2,4,8,16,32");
  REQUIRE(ok);
  CHECK(*ok == std::vector<int>{0, 1, 2, 4, 8, 16, 32});
  for (std::string bad : {"", "1,,2", "-1", "a", "5000", "1;2"})
    CHECK_FALSE(parse_staleness_list(bad));
}

TEST_CASE("a sweep runs every model, K and seed, deterministically", "[sweep]") {
  auto data = std::make_shared<const data::split>(data::make_separable(4096, 1024, 32, 10, 4));
  auto base = testing::test_config("async");
  base.epochs = 1;
  base.lr = 0.5;
  sweep_plan plan;
  plan.models = {"softmax"};
  plan.staleness = {0, 8};
  plan.seeds = 2;
  int calls = 0;
  auto a = run_sweep(base, plan, data, [&](const sweep_point&) { ++calls; });
  REQUIRE(a);
  CHECK(calls == 4);
  REQUIRE(a->size() == 4);
  auto b = run_sweep(base, plan, data);
  REQUIRE(b);
  for (size_t i = 0; i < a->size(); ++i) {
    const auto& p = (*a)[i];
    CHECK(p.test_accuracy == (*b)[i].test_accuracy); // the same point both times
    CHECK(p.model == "softmax");
    CHECK_FALSE(p.diverged);
  }
  CHECK((*a)[0].staleness == 0);
  CHECK((*a)[1].seed == base.seed + 1);
  CHECK((*a)[2].staleness == 8);
  CHECK((*a)[0].test_loss != (*a)[2].test_loss); // staleness changes the outcome
  auto table = sweep_table(*a);
  CHECK_THAT(table, Catch::Contains("softmax") && Catch::Contains("at chance"));
  auto j = sweep_json(base, (*a)[2]);
  CHECK(j["type"] == "sweep_point");
  CHECK(j["K"] == 8);
}

TEST_CASE("a diverged point is recorded, not an error", "[sweep]") {
  auto data = std::make_shared<const data::split>(data::make_separable(4096, 1024, 32, 10, 4));
  auto base = testing::test_config("async");
  base.epochs = 1;
  base.lr = 1e6; // explodes at once
  base.divergence_loss = 100;
  sweep_plan plan;
  plan.models = {"softmax"};
  plan.staleness = {4};
  plan.seeds = 1;
  auto points = run_sweep(base, plan, data);
  REQUIRE(points);
  REQUIRE(points->size() == 1);
  CHECK(points->front().diverged);
  CHECK(sweep_json(base, points->front())["final_test_accuracy"].is_null());
  CHECK_THAT(sweep_table(*points), Catch::Contains("-"));
}

TEST_CASE("an interrupted sweep returns its finished points and drops the one running",
          "[sweep][interrupt]") {
  auto data = std::make_shared<const data::split>(data::make_separable(4096, 1024, 32, 10, 4));
  auto base = testing::test_config("async");
  base.lr = 0.5;
  sweep_plan plan;
  plan.models = {"softmax"};
  plan.staleness = {0, 8};
  plan.seeds = 2;
  std::atomic<bool> interrupt{false};
  // The first point is short; the second far longer than the wait below.
  int calls = 0;
  base.epochs = 1;
  auto stop_after_first = [&](const sweep_point&) {
    if (++calls == 1)
      interrupt = true;
  };
  auto points = run_sweep(base, plan, data, stop_after_first, &interrupt);
  REQUIRE(points);
  CHECK(points->size() == 1);
  CHECK(calls == 1);
  // Mid-point: the point running is dropped, not recorded with a cut budget.
  interrupt = false;
  base.epochs = 100000;
  std::thread user{[&] {
    std::this_thread::sleep_for(std::chrono::milliseconds{300});
    interrupt = true;
  }};
  auto cut = run_sweep(base, plan, data, {}, &interrupt);
  user.join();
  REQUIRE(cut);
  CHECK(cut->empty());
}
