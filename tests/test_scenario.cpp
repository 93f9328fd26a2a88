#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "actors/trainer.hpp"
#include "config/run_config.hpp"
#include "config/scenario.hpp"
#include "tests/test_helpers.hpp"

using namespace psgd;

namespace {

const std::string scenario_dir = std::string{PSGD_SOURCE_DIR} + "/config/scenarios";

scenario parse_ok(const std::string& text) {
  auto s = parse_scenario(text, "t.json");
  INFO(text);
  INFO(s.error());
  REQUIRE(s);
  return *s;
}

/// Wraps one event into a scenario.
std::string with_event(const std::string& event) {
  return R"({"events": [)" + event + "]}";
}

double sample_mean(const delay_distribution& d, int n, uint64_t seed) {
  data::splitmix64 rng{seed};
  double sum = 0;
  for (int i = 0; i < n; ++i)
    sum += d.draw(rng);
  return sum / n;
}

} // namespace

TEST_CASE("every shipped scenario loads", "[scenario]") {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(scenario_dir)) {
    if (entry.path().extension() != ".json")
      continue;
    auto s = load_scenario(entry.path().string());
    INFO(entry.path().string() << ": " << s.error());
    REQUIRE(s);
    CHECK(s->name == entry.path().stem().string());
    CHECK_FALSE(s->description.empty());
    CHECK_FALSE(s->events.empty());
    names.insert(s->name);
  }
  for (auto expected : {"one-slow-worker", "long-tail", "worker-crash", "crash-and-rejoin",
                        "example-dependent-cost", "server-crash", "lossy-link"})
    CHECK(names.count(expected) == 1);
}

TEST_CASE("shipped scenarios say what the brief asks for", "[scenario]") {
  auto slow = load_scenario(scenario_dir + "/one-slow-worker.json");
  REQUIRE(slow);
  REQUIRE(slow->events.size() == 1);
  CHECK(slow->events[0].kind == fault_kind::slow);
  CHECK(slow->events[0].factor == 10);
  CHECK(slow->events[0].workers.ids == std::vector<int32_t>{1});
  CHECK_FALSE(slow->events[0].from);

  auto rejoin = load_scenario(scenario_dir + "/crash-and-rejoin.json");
  REQUIRE(rejoin);
  REQUIRE(rejoin->events.size() == 2);
  CHECK(rejoin->events[0].kind == fault_kind::crash);
  CHECK(to_string(*rejoin->events[0].from) == "update 1000");
  CHECK(rejoin->events[1].kind == fault_kind::join);
  CHECK(to_string(*rejoin->events[1].from) == "update 2000");

  auto lossy = load_scenario(scenario_dir + "/lossy-link.json");
  REQUIRE(lossy);
  REQUIRE(lossy->events.size() == 2);
  CHECK(lossy->events[0].kind == fault_kind::net_drop);
  CHECK(lossy->events[0].probability == 0.2);
  CHECK(lossy->events[0].duration_ms == 50);
  CHECK(lossy->events[1].kind == fault_kind::net_delay);
  CHECK(lossy->events[1].delay->dist == delay_distribution::family::exponential);
  CHECK(lossy->has_network_faults());
  CHECK_FALSE(lossy->server_crash());

  auto tail = load_scenario(scenario_dir + "/long-tail.json");
  REQUIRE(tail);
  REQUIRE(tail->events.at(0).delay);
  CHECK(tail->events[0].delay->dist == delay_distribution::family::pareto);
  CHECK(tail->events[0].workers.all);
}

TEST_CASE("a full-featured scenario parses into the expected structs", "[scenario]") {
  auto s = parse_ok(R"({
    "name": "everything",
    "description": "one of each",
    "events": [
      {"kind": "slow", "workers": [2, 0], "factor": 3.5,
       "from": {"seconds": 1.5}, "to": {"seconds": 4}},
      {"kind": "slow", "workers": "all",
       "delay": {"dist": "lognormal", "median_ms": 2, "sigma": 0.5}, "to": {"updates": 300}},
      {"kind": "example_cost", "workers": {"random": 2}, "per_class_ms": [0, 0.5, 1e-1]},
      {"kind": "pause", "workers": [1], "at": {"seconds": 2}, "duration_ms": 250},
      {"kind": "crash", "workers": [0], "at": {"updates": 1e3}},
      {"kind": "join", "at": {"updates": 2000}, "count": 3},
      {"kind": "join", "at": {"seconds": 0}},
      {"kind": "server_crash", "at": {"updates": 2500}}
    ]})");
  CHECK(s.name == "everything");
  CHECK(s.description == "one of each");
  REQUIRE(s.events.size() == 8);

  const auto& slow = s.events[0];
  CHECK(slow.kind == fault_kind::slow);
  CHECK(slow.workers.ids == std::vector<int32_t>{2, 0});
  CHECK_FALSE(slow.workers.all);
  CHECK(slow.workers.random == 0);
  CHECK(slow.factor == 3.5);
  CHECK_FALSE(slow.delay);
  REQUIRE(slow.from);
  CHECK(slow.from->in == fault_point::unit::seconds);
  CHECK(slow.from->value == 1.5);
  REQUIRE(slow.to);
  CHECK(slow.to->value == 4);

  const auto& delayed = s.events[1];
  CHECK(delayed.workers.all);
  REQUIRE(delayed.delay);
  CHECK(delayed.delay->dist == delay_distribution::family::lognormal);
  CHECK(delayed.delay->a == 2);
  CHECK(delayed.delay->b == 0.5);
  CHECK(delayed.factor == 1);
  CHECK_FALSE(delayed.from);
  REQUIRE(delayed.to);
  CHECK(delayed.to->in == fault_point::unit::updates);
  CHECK(delayed.to->value == 300);

  const auto& cost = s.events[2];
  CHECK(cost.kind == fault_kind::example_cost);
  CHECK(cost.workers.random == 2);
  CHECK(cost.per_class_ms == std::vector<double>{0, 0.5, 0.1});

  const auto& pause = s.events[3];
  CHECK(pause.kind == fault_kind::pause);
  REQUIRE(pause.from);  // "at" is stored in from
  CHECK(pause.from->value == 2);
  CHECK_FALSE(pause.to);
  CHECK(pause.duration_ms == 250);

  CHECK(s.events[4].kind == fault_kind::crash);
  CHECK(s.events[4].from->in == fault_point::unit::updates);
  CHECK(s.events[4].from->value == 1000);
  CHECK(s.events[5].kind == fault_kind::join);
  CHECK(s.events[5].count == 3);
  CHECK(s.events[6].count == 1);
  CHECK(s.events[7].kind == fault_kind::server_crash);
  CHECK(s.events[7].from->value == 2500);
}

TEST_CASE("name defaults to the file's stem and an empty event list is valid", "[scenario]") {
  auto s = parse_scenario(R"({"events": []})", "some/dir/quiet-run.json");
  REQUIRE(s);
  CHECK(s->name == "quiet-run");
  CHECK(s->description.empty());
  CHECK(s->events.empty());

  // A directory of this process's own: test runs may overlap.
  auto dir = std::filesystem::temp_directory_path()
             / ("psgd-test-scenario-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream out{dir / "stem-check.json"};
    out << R"({"description": "d", "events": []})";
  }
  auto loaded = load_scenario((dir / "stem-check.json").string());
  std::filesystem::remove_all(dir);
  REQUIRE(loaded);
  CHECK(loaded->name == "stem-check");
}

TEST_CASE("a missing file names the file and the reason", "[scenario]") {
  auto s = load_scenario("/nonexistent/slow.json");
  REQUIRE_FALSE(s);
  CHECK(s.error() == "/nonexistent/slow.json: cannot open: No such file or directory");
}

TEST_CASE("invalid scenarios give one line naming the field", "[scenario]") {
  struct bad_case {
    std::string text;
    std::string expected;  ///< a substring of the error
  };
  const std::string slow_w = R"("kind": "slow", "workers": [0], )";
  const std::vector<bad_case> cases{
    // the file as a whole
    {"{\"events\": [\n  {\"kind\": \"slow\",,}\n]}", "not valid JSON (line 2, column 19)"},
    {"", "not valid JSON (line 1, column 1)"},
    {R"({"events": []} x)", "not valid JSON"},
    {R"([])", "must be a JSON object"},
    {R"({"evnets": []})", "unknown key 'evnets'"},
    {R"({"name": "a"})", "events: missing"},
    {R"({"events": {}})", "events: must be an array (got object)"},
    {R"({"name": 3, "events": []})", "name: must be a string (got number)"},
    {R"({"events": [], "events": []})", "duplicate key 'events'"},
    // kinds
    {with_event(R"({"workers": [0], "factor": 2})"), "events[0].kind: missing"},
    {with_event(R"({"kind": "slwo", "workers": [0], "factor": 2})"),
     "events[0].kind: unknown kind 'slwo' (expected slow, example_cost, pause, crash, join, "
     "server_crash, net_delay or net_drop)"},
    {with_event(R"({"kind": 1})"), "events[0].kind: must be a string (got number)"},
    // network kinds
    {with_event(R"({"kind": "net_delay", "workers": [0]})"),
     "events[0].delay: missing (required for net_delay (a distribution of the extra time per "
     "message))"},
    {with_event(R"({"kind": "net_delay", "workers": [0], "delay": {"dist": "constant"}})"),
     "events[0].delay.ms: missing"},
    {with_event(R"({"kind": "net_delay", "delay": {"dist": "constant", "ms": 1}})"),
     "events[0].workers: missing"},
    {with_event(R"({"kind": "net_drop", "workers": [0]})"),
     "events[0].probability: missing"},
    {with_event(R"({"kind": "net_drop", "workers": [0], "probability": 0})"),
     "events[0].probability: must be > 0 (got 0)"},
    {with_event(R"({"kind": "net_drop", "workers": [0], "probability": 1.5})"),
     "events[0].probability: must be <= 1 (got 1.5)"},
    {with_event(R"({"kind": "net_drop", "workers": [0], "probability": 0.1, "detect_ms": -1})"),
     "events[0].detect_ms: must be >= 0 (got -1)"},
    {with_event(R"({"kind": "net_drop", "workers": [0], "probability": 0.1, "factor": 2})"),
     "events[0].factor: not allowed for kind 'net_drop'"},
    {R"({"events": [{"kind": "crash", "workers": [0], "at": {"updates": 5}}, "x"]})",
     "events[1]: must be an object (got string)"},
    // event keys
    {with_event("{" + slow_w + R"("facter": 2})"), "events[0]: unknown key 'facter'"},
    {with_event("{" + slow_w + R"("factor": 2, "factor": 3})"),
     "events[0]: duplicate key 'factor'"},
    {with_event("{" + slow_w + R"("factor": 2, "at": {"updates": 1}})"),
     "events[0].at: not allowed for kind 'slow'"},
    {with_event(R"({"kind": "join", "workers": [0], "at": {"updates": 1}})"),
     "events[0].workers: not allowed for kind 'join'"},
    {with_event(R"({"kind": "server_crash", "workers": "all", "at": {"updates": 1}})"),
     "events[0].workers: not allowed for kind 'server_crash'"},
    {with_event(R"({"kind": "crash", "workers": [0], "at": {"updates": 1}, "to": {"updates": 2}})"),
     "events[0].to: not allowed for kind 'crash'"},
    {with_event(R"({"kind": "crash", "workers": [0]})"), "events[0].at: missing"},
    {with_event(R"({"kind": "pause", "at": {"seconds": 1}, "duration_ms": 5})"),
     "events[0].workers: missing"},
    // slow
    {with_event("{" + slow_w + R"("factor": 0.5})"), "events[0].factor: must be >= 1 (got 0.5)"},
    {with_event("{" + slow_w + R"("factor": "2"})"),
     "events[0].factor: must be a number (got string)"},
    {with_event("{" + slow_w + R"("factor": 2, "delay": {"dist": "constant", "ms": 1}})"),
     "events[0].delay: not allowed together with factor"},
    {with_event(R"({"kind": "slow", "workers": [0]})"), "events[0]: slow needs \"factor\""},
    {with_event("{" + slow_w + R"("factor": 1e999})"),
     "events[0].factor: not a finite number (got 1e999)"},
    // distributions
    {with_event("{" + slow_w + R"("delay": {"dist": "gauss", "ms": 1}})"),
     "events[0].delay.dist: unknown distribution 'gauss' (expected constant, uniform, "
     "exponential, lognormal or pareto)"},
    {with_event("{" + slow_w + R"("delay": {"ms": 1}})"), "events[0].delay.dist: missing"},
    {with_event("{" + slow_w + R"("delay": 3})"), "events[0].delay: must be an object"},
    {with_event("{" + slow_w + R"("delay": {"dist": "constant", "ms": -1}})"),
     "events[0].delay.ms: must be >= 0 (got -1)"},
    {with_event("{" + slow_w + R"("delay": {"dist": "constant", "mean_ms": 1}})"),
     "events[0].delay: unknown key 'mean_ms'"},
    {with_event("{" + slow_w + R"("delay": {"dist": "uniform", "min_ms": 1}})"),
     "events[0].delay.max_ms: missing"},
    {with_event("{" + slow_w + R"("delay": {"dist": "uniform", "min_ms": -1, "max_ms": 1}})"),
     "events[0].delay.min_ms: must be >= 0 (got -1)"},
    {with_event("{" + slow_w + R"("delay": {"dist": "uniform", "min_ms": 2, "max_ms": 1}})"),
     "events[0].delay.max_ms: must be >= min_ms"},
    {with_event("{" + slow_w + R"("delay": {"dist": "exponential", "mean_ms": 0}})"),
     "events[0].delay.mean_ms: must be > 0 (got 0)"},
    {with_event("{" + slow_w + R"("delay": {"dist": "lognormal", "median_ms": 0, "sigma": 1}})"),
     "events[0].delay.median_ms: must be > 0"},
    {with_event("{" + slow_w + R"("delay": {"dist": "lognormal", "median_ms": 1, "sigma": -1}})"),
     "events[0].delay.sigma: must be >= 0 (got -1)"},
    {with_event("{" + slow_w + R"("delay": {"dist": "pareto", "scale_ms": 0, "shape": 1}})"),
     "events[0].delay.scale_ms: must be > 0"},
    {R"({"events": [{"kind": "crash", "workers": [0], "at": {"updates": 5}},
                    {"kind": "crash", "workers": [0], "at": {"updates": 5}},
                    {"kind": "slow", "workers": [0],
                     "delay": {"dist": "pareto", "scale_ms": 1, "shape": -1}}]})",
     "events[2].delay.shape: must be > 0 (got -1)"},
    // durations, costs and counts
    {with_event(R"({"kind": "pause", "workers": [0], "at": {"seconds": 1}, "duration_ms": -5})"),
     "events[0].duration_ms: must be > 0 (got -5)"},
    {with_event(R"({"kind": "pause", "workers": [0], "at": {"seconds": 1}})"),
     "events[0].duration_ms: missing"},
    {with_event(R"({"kind": "example_cost", "workers": "all", "per_class_ms": [0, -1]})"),
     "events[0].per_class_ms[1]: must be >= 0 (got -1)"},
    {with_event(R"({"kind": "example_cost", "workers": "all", "per_class_ms": []})"),
     "events[0].per_class_ms: names no class"},
    {with_event(R"({"kind": "example_cost", "workers": "all"})"),
     "events[0].per_class_ms: missing"},
    {with_event(R"({"kind": "join", "at": {"updates": 1}, "count": 0})"),
     "events[0].count: must be >= 1 (got 0)"},
    {with_event(R"({"kind": "join", "at": {"updates": 1}, "count": 1.5})"),
     "events[0].count: must be an integer (got 1.5)"},
    // workers
    {with_event(R"({"kind": "crash", "workers": [-1], "at": {"updates": 1}})"),
     "events[0].workers[0]: must be >= 0 (got -1)"},
    {with_event(R"({"kind": "crash", "workers": [1, 2, 1], "at": {"updates": 1}})"),
     "events[0].workers[2]: duplicate worker id 1"},
    {with_event(R"({"kind": "crash", "workers": [0, "1"], "at": {"updates": 1}})"),
     "events[0].workers[1]: must be an integer (got string)"},
    {with_event(R"({"kind": "crash", "workers": [0.5], "at": {"updates": 1}})"),
     "events[0].workers[0]: must be an integer (got 0.5)"},
    {with_event(R"({"kind": "crash", "workers": [], "at": {"updates": 1}})"),
     "events[0].workers: names no worker"},
    {with_event(R"({"kind": "crash", "workers": "some", "at": {"updates": 1}})"),
     "events[0].workers: unknown worker set 'some'"},
    {with_event(R"({"kind": "crash", "workers": {"random": 0}, "at": {"updates": 1}})"),
     "events[0].workers.random: must be >= 1 (got 0)"},
    {with_event(R"({"kind": "crash", "workers": {"randon": 1}, "at": {"updates": 1}})"),
     "events[0].workers: unknown key 'randon'"},
    {with_event(R"({"kind": "crash", "workers": 1, "at": {"updates": 1}})"),
     "events[0].workers: must be \"all\""},
    // points and windows
    {with_event("{" + slow_w + R"("factor": 2, "from": {"updates": 500}, "to": {"updates": 500}})"),
     "events[0].to: must be later than from (from update 500, to update 500)"},
    {with_event("{" + slow_w + R"("factor": 2, "from": {"seconds": 3}, "to": {"seconds": 1}})"),
     "events[0].to: must be later than from (from 3 s, to 1 s)"},
    {with_event(R"({"kind": "crash", "workers": [0], "at": {"seconds": -1}})"),
     "events[0].at.seconds: must be >= 0 (got -1)"},
    {with_event(R"({"kind": "crash", "workers": [0], "at": {"updates": 2.5}})"),
     "events[0].at.updates: must be an integer"},
    {with_event(R"({"kind": "crash", "workers": [0], "at": {"seconds": 1, "updates": 2}})"),
     "events[0].at: give seconds or updates, not both"},
    {with_event(R"({"kind": "crash", "workers": [0], "at": {}})"), "events[0].at: must be"},
    {with_event(R"({"kind": "crash", "workers": [0], "at": {"second": 1}})"),
     "events[0].at: unknown key 'second'"},
    {with_event(R"({"kind": "crash", "workers": [0], "at": 5})"),
     "events[0].at: must be {\"seconds\": S} or {\"updates\": U} (got number)"},
    {with_event(R"({"kind": "example_cost", "workers": "all", "per_class_ms": [1e999]})"),
     "events[0].per_class_ms[0]: not a finite number"},
    // a join of more workers than a run may have (each is an actor spawned mid-run)
    {with_event(R"({"kind": "join", "at": {"updates": 5}, "count": 2000000000})"),
     "events[0].count: must be <= 1024 (got 2000000000)"},
    // upper bounds: beyond them a wait overflows the timer and does not happen at all
    {with_event("{" + slow_w + R"("factor": 1e20})"),
     "events[0].factor: must be <= 1000000 (got 1e+20)"},
    {with_event("{" + slow_w + R"("factor": 1e15})"),
     "events[0].factor: must be <= 1000000 (got 1000000000000000)"},
    {with_event("{" + slow_w + R"("factor": 1000000.5})"), "events[0].factor: must be <= 1000000"},
    {with_event(R"({"kind": "pause", "workers": [0], "at": {"seconds": 1}, "duration_ms": 1e20})"),
     "events[0].duration_ms: must be <= 86400000, a day (got 1e+20)"},
    {with_event(R"({"kind": "net_drop", "workers": [0], "probability": 0.1,
                    "detect_ms": 86400001})"),
     "events[0].detect_ms: must be <= 86400000, a day (got 86400001)"},
    {with_event(R"({"kind": "example_cost", "workers": "all", "per_class_ms": [1, 60001]})"),
     "events[0].per_class_ms[1]: must be <= 60000, a minute per example (got 60001)"},
    {with_event(R"({"kind": "crash", "workers": [0], "at": {"seconds": 86401}})"),
     "events[0].at.seconds: must be <= 86400, a day (got 86401)"},
    {with_event("{" + slow_w + R"("factor": 2, "from": {"seconds": 1}, "to": {"seconds": 1e300}})"),
     "events[0].to.seconds: must be <= 86400, a day (got 1e+300)"},
    {with_event("{" + slow_w + R"("delay": {"dist": "constant", "ms": 1e9}})"),
     "events[0].delay.ms: must be <= 86400000, a day (got 1000000000)"},
    {with_event("{" + slow_w + R"("delay": {"dist": "uniform", "min_ms": 1, "max_ms": 1e9}})"),
     "events[0].delay.max_ms: must be <= 86400000, a day"},
    {with_event("{" + slow_w + R"("delay": {"dist": "exponential", "mean_ms": 1e9}})"),
     "events[0].delay.mean_ms: must be <= 86400000, a day"},
    {with_event("{" + slow_w + R"("delay": {"dist": "lognormal", "median_ms": 1e9, "sigma": 1}})"),
     "events[0].delay.median_ms: must be <= 86400000, a day"},
    {with_event("{" + slow_w + R"("delay": {"dist": "lognormal", "median_ms": 1, "sigma": 11}})"),
     "events[0].delay.sigma: must be <= 10 (got 11)"},
    {with_event("{" + slow_w + R"("delay": {"dist": "pareto", "scale_ms": 1e9, "shape": 1}})"),
     "events[0].delay.scale_ms: must be <= 86400000, a day"},
    // Innocent-looking, but half its draws are capped at a day: the run hung.
    {with_event("{" + slow_w + R"("delay": {"dist": "pareto", "scale_ms": 0.05, "shape": 0.01}})"),
     "events[0].delay.shape: with scale_ms 0.05 a shape of 0.01 makes the median delay more "
     "than a day (give at least 0.0326)"},
    {with_event(R"({"kind": "net_delay", "workers": [0],
                    "delay": {"dist": "constant", "ms": 1e12}})"),
     "events[0].delay.ms: must be <= 86400000, a day"},
  };
  for (const auto& c : cases) {
    auto s = parse_scenario(c.text, "x.json");
    INFO(c.text);
    REQUIRE_FALSE(s);
    CHECK_THAT(s.error(), Catch::StartsWith("x.json: ") && Catch::Contains(c.expected));
    CHECK(s.error().find('\n') == std::string::npos);
  }
}

TEST_CASE("to_string names kinds and points as the file does", "[scenario]") {
  CHECK(to_string(fault_kind::example_cost) == "example_cost");
  CHECK(to_string(fault_kind::server_crash) == "server_crash");
  CHECK(to_string(fault_point{fault_point::unit::seconds, 2.5}) == "2.5 s");
  CHECK(to_string(fault_point{fault_point::unit::updates, 300}) == "update 300");
  delay_distribution pareto{delay_distribution::family::pareto, 0.5, 1.5};
  CHECK(pareto.describe() == "pareto(scale 0.5 ms, shape 1.5)");
}

TEST_CASE("delay draws are deterministic in the seed and match the mean", "[scenario]") {
  using f = delay_distribution::family;
  const std::vector<delay_distribution> dists{
    {f::constant, 0.7, 0}, {f::uniform, 1, 3}, {f::exponential, 2, 0},
    {f::lognormal, 1, 0.5}, {f::pareto, 0.5, 3}};
  for (const auto& d : dists) {
    INFO(d.describe());
    data::splitmix64 a{42}, b{42};
    for (int i = 0; i < 10; ++i)
      CHECK(d.draw(a) == d.draw(b));
    CHECK(sample_mean(d, 20000, 7) == Approx(d.mean()).epsilon(0.03));
  }
  CHECK(delay_distribution{f::uniform, 1, 3}.mean() == 2);
  CHECK(delay_distribution{f::lognormal, 1, 0.5}.mean() == Approx(std::exp(0.125)));
  CHECK(delay_distribution{f::pareto, 0.5, 3}.mean() == Approx(0.75));
  CHECK(std::isinf(delay_distribution{f::pareto, 0.5, 1}.mean()));
}

TEST_CASE("pareto and uniform draws stay in their support", "[scenario]") {
  using f = delay_distribution::family;
  delay_distribution pareto{f::pareto, 0.05, 1.5};
  delay_distribution uniform{f::uniform, 1, 3};
  delay_distribution expo{f::exponential, 1, 0};
  data::splitmix64 rng{3};
  for (int i = 0; i < 5000; ++i) {
    CHECK(pareto.draw(rng) >= 0.05);
    auto u = uniform.draw(rng);
    CHECK((u >= 1 && u < 3));
    CHECK(expo.draw(rng) >= 0);
  }
}

TEST_CASE("worker_set resolves all and explicit ids", "[scenario]") {
  data::splitmix64 rng{1};
  worker_set all;
  all.all = true;
  CHECK(all.resolve(4, rng) == std::vector<int32_t>{0, 1, 2, 3});
  CHECK(all.resolve(0, rng).empty());
  worker_set ids;
  ids.ids = {5, 2, 0};
  // Explicit ids stay as given, past the starting workers too: a join may add worker 5
  // (check_workers() refuses an id nothing adds).
  CHECK(ids.resolve(4, rng) == std::vector<int32_t>{0, 2, 5});
  CHECK(ids.resolve(8, rng) == std::vector<int32_t>{0, 2, 5});
}

TEST_CASE("worker_set draws random workers distinct and sorted from the seed", "[scenario]") {
  worker_set some;
  some.random = 3;
  auto draw = [&](uint64_t seed) {
    data::splitmix64 rng{seed};
    return some.resolve(10, rng);
  };
  auto first = draw(11);
  REQUIRE(first.size() == 3);
  CHECK(std::is_sorted(first.begin(), first.end()));
  CHECK(std::adjacent_find(first.begin(), first.end()) == first.end());
  for (auto id : first)
    CHECK((id >= 0 && id < 10));
  CHECK(draw(11) == first);
  // Another seed picks another set (1 - 1/120 per seed; three seeds all equal: ~6e-7).
  CHECK((draw(12) != first || draw(13) != first || draw(14) != first));

  // Every worker gets drawn about equally often over many seeds.
  std::vector<int> hits(10, 0);
  for (uint64_t seed = 0; seed < 2000; ++seed)
    for (auto id : draw(seed))
      ++hits[id];
  for (int h : hits)
    CHECK((h > 480 && h < 720));  // expected 600, sd ~ 20

  some.random = 12;
  data::splitmix64 rng{1};
  CHECK(some.resolve(10, rng).size() == 10);
}

TEST_CASE("network kinds parse, and net_drop notices a loss after 200 ms by default",
          "[scenario]") {
  auto s = parse_ok(R"({"events": [
    {"kind": "net_drop", "workers": "all", "probability": 1},
    {"kind": "net_delay", "workers": [2], "from": {"seconds": 1},
     "delay": {"dist": "uniform", "min_ms": 1, "max_ms": 3}},
    {"kind": "crash", "workers": [0], "at": {"updates": 9}}]})");
  REQUIRE(s.events.size() == 3);
  CHECK(s.events[0].kind == fault_kind::net_drop);
  CHECK(s.events[0].workers.all);
  CHECK(s.events[0].probability == 1);
  CHECK(s.events[0].duration_ms == default_detect_ms);
  CHECK(s.events[1].kind == fault_kind::net_delay);
  CHECK(s.events[1].delay->b == 3);
  CHECK(to_string(*s.events[1].from) == "1 s");
  CHECK(s.has_network_faults());
  CHECK_FALSE(s.server_crash());
  auto join = parse_ok(R"({"events": [{"kind": "join", "at": {"updates": 5}}]})");
  CHECK_FALSE(join.has_network_faults());
  CHECK_FALSE(join.server_crash()); // across processes it opens ids for a new work process
  auto crash = parse_ok(R"({"events": [{"kind": "join", "at": {"updates": 5}},
                                       {"kind": "server_crash", "at": {"updates": 9}}]})");
  REQUIRE(crash.server_crash());
  CHECK(crash.server_crash() == &crash.events[1]);
}

TEST_CASE("every bound is inclusive: the largest values a field allows parse", "[scenario]") {
  auto s = parse_ok(R"({"events": [
    {"kind": "slow", "workers": [0], "factor": 1e6, "to": {"seconds": 86400}},
    {"kind": "pause", "workers": [0], "at": {"seconds": 86400}, "duration_ms": 86400000},
    {"kind": "net_drop", "workers": [0], "probability": 1, "detect_ms": 86400000},
    {"kind": "example_cost", "workers": "all", "per_class_ms": [60000, 0]},
    {"kind": "slow", "workers": [0],
     "delay": {"dist": "uniform", "min_ms": 86400000, "max_ms": 86400000}},
    {"kind": "slow", "workers": [0],
     "delay": {"dist": "lognormal", "median_ms": 86400000, "sigma": 10}},
    {"kind": "net_delay", "workers": [0],
     "delay": {"dist": "pareto", "scale_ms": 43200000, "shape": 1}}]})");
  REQUIRE(s.events.size() == 7);
  CHECK(s.events[0].factor == max_slow_factor);
  CHECK(s.events[0].to->value == 86400);
  CHECK(s.events[1].from->value == 86400);
  CHECK(s.events[1].duration_ms == max_duration_ms);
  CHECK(s.events[2].duration_ms == max_duration_ms);
  CHECK(s.events[3].per_class_ms[0] == max_example_cost_ms);
  CHECK(s.events[4].delay->b == max_duration_ms);
  CHECK(s.events[5].delay->b == max_lognormal_sigma);
  CHECK(s.events[6].delay->a == max_duration_ms / 2); // its median: a day
}

TEST_CASE("the bounds keep every wait within a timer's int64 nanoseconds", "[scenario]") {
  // The worker turns its extra milliseconds into int64 microseconds and CAF's timers into
  // int64 nanoseconds (actors/worker.cpp, actors/link.cpp). What one event can add to one
  // step at the bounds, with a generous minute of compute and a whole training set per
  // batch, must fit a hundred times over (several events may hold at once).
  const double ns_per_ms = 1e6;
  const double int64_ns = static_cast<double>(std::numeric_limits<int64_t>::max());
  const double compute_ms = 60'000;
  const double whole_set = 60'000;  // Fashion-MNIST's training examples
  for (double ms : {(max_slow_factor - 1) * compute_ms, max_duration_ms,
                    max_example_cost_ms * whole_set}) {
    INFO(ms << " ms");
    CHECK(ms * ns_per_ms < int64_ns / 100);
  }
}

TEST_CASE("draws are capped at a day, even where the tail is unbounded", "[scenario]") {
  using f = delay_distribution::family;
  // Bounded parameters, unbounded tails: pareto with a tiny shape draws infinity, lognormal
  // at the largest sigma e^86 times its median; exponential ~37 times its mean at most.
  const std::vector<delay_distribution> wild{{f::pareto, 1, 1e-3},
                                             {f::lognormal, max_duration_ms, max_lognormal_sigma},
                                             {f::exponential, max_duration_ms, 0}};
  for (const auto& d : wild) {
    INFO(d.describe());
    data::splitmix64 rng{5};
    bool capped = false;
    for (int i = 0; i < 2000; ++i) {
      const double x = d.draw(rng);
      REQUIRE(std::isfinite(x));
      CHECK((x >= 0 && x <= max_duration_ms));
      capped = capped || x == max_duration_ms;
    }
    CHECK(capped);  // all three reach the cap within 2000 draws
  }
  // Draws below the cap are untouched.
  delay_distribution constant{f::constant, max_duration_ms, 0};
  data::splitmix64 rng{1};
  CHECK(constant.draw(rng) == max_duration_ms);
}

TEST_CASE("the largest slow factor really slows the worker", "[scenario]") {
  // The audit's factor 1e15 overflowed the timer and did not slow the worker at all. At the
  // bound a step takes 1e6 times its compute time (a gradient of the small set: >= 1 us, so
  // >= 1 s): worker 1 holds its first gradient while worker 0 applies all 300 updates.
  auto cfg = testing::test_config("async");
  cfg.max_updates = 300;
  cfg.epochs = 0;
  auto r = testing::must_run(cfg, testing::separable_set(), testing::scenario_of(R"({"events": [
    {"kind": "slow", "workers": [1], "factor": 1e6}]})"));
  const auto& w = r.final_stats.workers;
  REQUIRE(w.size() == 2);
  CHECK(w[0].applied == 300);
  CHECK(w[1].applied == 0);
}

TEST_CASE("worker ids are checked against the run's workers", "[scenario]") {
  auto crash7 = parse_ok(with_event(R"({"kind": "crash", "workers": [7], "at": {"updates": 10}})"));
  CHECK(check_workers(crash7, 2)
        == "events[0].workers[0]: worker 7 does not exist (the run has 2 workers)");
  CHECK(check_workers(crash7, 8).empty());  // the last worker of 8
  CHECK(check_workers(crash7, 7) == "events[0].workers[0]: worker 7 does not exist (the run has "
                                    "7 workers)");

  // The field names the offending entry, in a later event too; one worker is singular.
  auto slow1 = parse_ok(R"({"events": [
    {"kind": "slow", "workers": "all", "factor": 2},
    {"kind": "slow", "workers": [0, 1], "factor": 3}]})");
  CHECK(check_workers(slow1, 1)
        == "events[1].workers[1]: worker 1 does not exist (the run has 1 worker)");
  CHECK(check_workers(slow1, 2).empty());

  // "all" fits any run.
  CHECK(check_workers(parse_ok(with_event(R"({"kind": "crash", "workers": "all",
                                              "at": {"updates": 1}})")),
                      1)
          .empty());
}

TEST_CASE("a random set may not draw more workers than the run has", "[scenario]") {
  // resolve() would silently give all of them instead.
  auto random5 = parse_ok(with_event(R"({"kind": "slow", "workers": {"random": 5}, "factor": 2})"));
  CHECK(check_workers(random5, 2)
        == "events[0].workers.random: cannot draw 5 distinct workers (the run has 2 workers)");
  CHECK(check_workers(random5, 5).empty());  // K = n: everyone
  CHECK(check_workers(random5, 6).empty());

  // Joined workers are not drawn from (the set is drawn as the run starts): still refused.
  auto after_join = parse_ok(R"({"events": [
    {"kind": "join", "at": {"updates": 5}, "count": 4},
    {"kind": "slow", "workers": {"random": 3}, "factor": 2}]})");
  CHECK(check_workers(after_join, 2)
        == "events[1].workers.random: cannot draw 3 distinct workers (the run has 2 workers; "
           "a random set is drawn among those it starts with)");
}

TEST_CASE("a worker added by an earlier join event may be named", "[scenario]") {
  // Joined workers take the next ids: with 2 workers, joins of 1 and 2 add ids 2, 3 and 4.
  auto s = parse_ok(R"({"events": [
    {"kind": "join", "at": {"updates": 5}},
    {"kind": "crash", "workers": [2], "at": {"updates": 30}},
    {"kind": "join", "at": {"updates": 40}, "count": 2},
    {"kind": "slow", "workers": [0, 4], "factor": 2, "from": {"updates": 50}}]})");
  CHECK(check_workers(s, 2).empty());
  // One worker fewer at the start: the first join adds id 1, not 2.
  CHECK(check_workers(s, 1) == "events[1].workers[0]: worker 2 does not exist (the run has 1 "
                               "worker, and the join events before this one add 1)");
  // The joins add up: 2 + 3 workers are ids 0..4.
  auto one_past = parse_ok(R"({"events": [
    {"kind": "join", "at": {"updates": 5}},
    {"kind": "join", "at": {"seconds": 1}, "count": 2},
    {"kind": "pause", "workers": [5], "at": {"updates": 50}, "duration_ms": 10}]})");
  CHECK(check_workers(one_past, 2) == "events[2].workers[0]: worker 5 does not exist (the run "
                                      "has 2 workers, and the join events before this one add "
                                      "3)");
  CHECK(check_workers(one_past, 3).empty());

  // Only joins listed before the event count: a later one adds no one yet.
  auto too_early = parse_ok(R"({"events": [
    {"kind": "crash", "workers": [2], "at": {"updates": 30}},
    {"kind": "join", "at": {"updates": 5}}]})");
  CHECK(check_workers(too_early, 2)
        == "events[0].workers[0]: worker 2 does not exist (the run has 2 workers)");
}

TEST_CASE("load_scenario with a worker count names the file, and the run's count is its "
          "total workers",
          "[scenario]") {
  testing::temp_dir dir;
  const auto file = dir.file("two.json");
  std::ofstream{file} << with_event(R"({"kind": "slow", "workers": [2], "factor": 10})");
  auto refused = load_scenario(file, 2);
  REQUIRE_FALSE(refused);
  CHECK(refused.error()
        == file + ": events[0].workers[0]: worker 2 does not exist (the run has 2 workers)");
  REQUIRE(load_scenario(file, 3));
  REQUIRE(load_scenario(file));  // the file alone cannot know the run

  // As the CLI reads it (load_scenario_for): backup mode runs m + e workers, and a serving
  // process checks against the workers it waits for.
  run_config cfg;
  cfg.scenario = file;
  cfg.mode = "backup";
  cfg.workers = 2;
  cfg.backup = 1;
  REQUIRE(validate(cfg).empty());
  CHECK(load_scenario_for(cfg));
  cfg.mode = "sync";
  REQUIRE(validate(cfg).empty());
  auto sync = load_scenario_for(cfg);
  REQUIRE_FALSE(sync);
  CHECK(sync.error() == "--scenario: " + file
                          + ": events[0].workers[0]: worker 2 does not exist (the run has 2 "
                            "workers)");
  cfg.networked = true;  // psgd serve --workers 3
  cfg.workers = 3;
  REQUIRE(validate(cfg).empty());
  CHECK(load_scenario_for(cfg));
}

TEST_CASE("CLI: a scenario naming a missing worker or a huge factor exits 2 before training",
          "[scenario][cli]") {
  testing::temp_dir dir;
  std::ofstream{dir.file("crash7.json")}
    << with_event(R"({"kind": "crash", "workers": [7], "at": {"updates": 10}})");
  std::ofstream{dir.file("huge.json")}
    << with_event(R"({"kind": "slow", "workers": [1], "factor": 1e20})");
  std::ofstream{dir.file("slow1.json")}
    << with_event(R"({"kind": "slow", "workers": [1], "factor": 3})");
  struct cli_case {
    std::string args;
    std::string expected;
  };
  const std::vector<cli_case> cases{
    {"train --mode sync --workers 2 --dataset synthetic --scenario " + dir.file("crash7.json"),
     "events[0].workers[0]: worker 7 does not exist (the run has 2 workers)"},
    {"serve --mode sync --workers 2 --dataset synthetic --port 0 --scenario "
       + dir.file("crash7.json"),
     "(the run has 2 workers)"},
    {"train --mode sync --workers 2 --dataset synthetic --scenario " + dir.file("huge.json"),
     "events[0].factor: must be <= 1000000 (got 1e+20)"},
    // A sweep runs one worker.
    {"sweep --models softmax --staleness 0 --seeds 1 --dataset synthetic --scenario "
       + dir.file("slow1.json"),
     "events[0].workers[0]: worker 1 does not exist (the run has 1 worker)"},
  };
  for (const auto& c : cases) {
    auto r = testing::run_psgd(c.args);
    INFO("psgd " << c.args << "\n" << r.output);
    CHECK(r.exit_code == 2);
    auto lines = testing::lines_of(r.output);
    REQUIRE(lines.size() == 1);
    CHECK_THAT(lines[0], Catch::StartsWith("psgd: --scenario: ") && Catch::Contains(c.expected));
  }
}
