#include <catch2/catch.hpp>

#include "config/run_config.hpp"

using namespace psgd;

namespace {

std::string problem_with(void (*change)(run_config&)) {
  run_config cfg;
  change(cfg);
  return validate(cfg);
}

} // namespace

TEST_CASE("the default config is valid and means sync m=2, b=32, lr 0.1, mean", "[config]") {
  run_config cfg;
  REQUIRE(validate(cfg).empty());
  CHECK(cfg.parsed_mode == train_mode::sync);
  CHECK(cfg.parsed_aggregate == aggregate_rule::mean);
  CHECK(cfg.parsed_model == model::kind::softmax);
  CHECK(cfg.total_workers() == 2);
  CHECK(cfg.quorum() == 2);
  CHECK_FALSE(cfg.synthetic);
}

TEST_CASE("worker counts per mode", "[config]") {
  run_config cfg;
  cfg.mode = "backup";
  cfg.workers = 3;
  cfg.backup = 2;
  REQUIRE(validate(cfg).empty());
  CHECK(cfg.total_workers() == 5);
  CHECK(cfg.quorum() == 3);
  cfg.mode = "async";
  REQUIRE(validate(cfg).empty());
  CHECK(cfg.total_workers() == 3);
  CHECK(cfg.quorum() == 1);
  cfg.mode = "sequential";
  REQUIRE(validate(cfg).empty());
  CHECK(cfg.total_workers() == 1);
}

TEST_CASE("invalid values are named", "[config]") {
  CHECK_THAT(problem_with([](run_config& c) { c.mode = "fast"; }),
             Catch::Contains("--mode") && Catch::Contains("fast"));
  CHECK_THAT(problem_with([](run_config& c) { c.workers = 0; }), Catch::Contains("--workers"));
  CHECK_THAT(problem_with([](run_config& c) { c.backup = -1; }), Catch::Contains("--backup"));
  CHECK_THAT(problem_with([](run_config& c) {
               c.mode = "backup";
               c.backup = 0;
             }),
             Catch::Contains("--backup"));
  CHECK_THAT(problem_with([](run_config& c) { c.batch = 0; }), Catch::Contains("--batch"));
  CHECK_THAT(problem_with([](run_config& c) { c.lr = 0; }), Catch::Contains("--lr"));
  CHECK_THAT(problem_with([](run_config& c) { c.lr = -0.5; }), Catch::Contains("--lr"));
  CHECK_THAT(problem_with([](run_config& c) { c.model = "cnn"; }), Catch::Contains("--model"));
  CHECK_THAT(problem_with([](run_config& c) { c.aggregate = "max"; }),
             Catch::Contains("--aggregate"));
  CHECK_THAT(problem_with([](run_config& c) { c.epochs = -1; }), Catch::Contains("--epochs"));
  CHECK_THAT(problem_with([](run_config& c) {
               c.epochs = 0;
               c.max_updates = 0;
             }),
             Catch::Contains("no budget"));
  CHECK_THAT(problem_with([](run_config& c) { c.hidden = 0; }), Catch::Contains("--hidden"));
  CHECK_THAT(problem_with([](run_config& c) { c.placement = "gpu"; }),
             Catch::Contains("--placement"));
  CHECK_THAT(problem_with([](run_config& c) {
               c.model = "lsq";
               c.dataset = "fashion-mnist";
             }),
             Catch::Contains("--dataset synthetic"));
}

TEST_CASE("lsq defaults to the synthetic regression set", "[config]") {
  run_config cfg;
  cfg.model = "lsq";
  REQUIRE(validate(cfg).empty());
  CHECK(cfg.synthetic);
}

TEST_CASE("a batch larger than a worker's shard is refused against the data", "[config]") {
  run_config cfg;
  cfg.workers = 2;
  cfg.batch = 30001;
  REQUIRE(validate(cfg).empty());
  CHECK_THAT(validate_against_data(cfg, 60000),
             Catch::Contains("--batch") && Catch::Contains("30000"));
  cfg.batch = 30000;
  CHECK(validate_against_data(cfg, 60000).empty());
}

TEST_CASE("'--name value' becomes '--name=value' for options that take a value", "[config]") {
  psgd_config cfg;
  auto args = join_option_values(
    cfg.options(), {"--mode", "async", "--quiet", "--workers=3", "--lr", "0.5", "--bogus", "x"});
  CHECK(args == std::vector<std::string>{"--mode=async", "--quiet", "--workers=3", "--lr=0.5",
                                         "--bogus", "x"});
  REQUIRE_FALSE(cfg.parse(std::vector<std::string>{"--mode=async", "--workers=3", "--lr=0.5"}));
  CHECK(cfg.run.mode == "async");
  CHECK(cfg.run.workers == 3);
  CHECK(cfg.run.lr == 0.5);
}

TEST_CASE("staleness options are checked and parsed", "[config][staleness]") {
  CHECK_THAT(problem_with([](run_config& c) {
               c.mode = "ssp";
               c.staleness_bound = -2;
             }),
             Catch::Contains("--staleness-bound: must be -1"));
  CHECK_THAT(problem_with([](run_config& c) { c.stale_lr = true; }),
             Catch::Contains("--stale-lr: only async and ssp"));
  CHECK_THAT(problem_with([](run_config& c) { c.simulate_staleness = "4"; }),
             Catch::Contains("--simulate-staleness: needs --mode async or ssp"));
  for (std::string bad : {"-1", "x", "uniform:3", "uniform:5:2", "uniform:0:99999", "2000"}) {
    run_config c;
    c.mode = "async";
    c.simulate_staleness = bad;
    CHECK_THAT(validate(c), Catch::Contains("--simulate-staleness: expected K or uniform:A:B"));
  }
  CHECK_THAT(problem_with([](run_config& c) {
               c.mode = "sequential";
               c.track_inclusion = true;
             }),
             Catch::Contains("--track-inclusion"));
  run_config cfg;
  cfg.mode = "ssp";
  cfg.simulate_staleness = "uniform:1:8";
  REQUIRE(validate(cfg).empty());
  CHECK(cfg.parsed_mode == train_mode::ssp);
  CHECK(cfg.applies_on_arrival());
  CHECK(cfg.quorum() == 1);
  CHECK(cfg.simulated_min == 1);
  CHECK(cfg.simulated_max == 8);
  cfg.simulate_staleness = "16";
  REQUIRE(validate(cfg).empty());
  CHECK(cfg.simulated_min == 16);
  CHECK(cfg.simulated_max == 16);
}

TEST_CASE("the scheduler fits the run: none spins beside sequential SGD", "[config]") {
  run_config cfg;
  cfg.mode = "sequential";
  REQUIRE(validate(cfg).empty());
  psgd_config sys_cfg;
  CHECK(sys_cfg.fit_scheduler_to(cfg) == "sharing");
  CHECK(caf::get_or(sys_cfg, "scheduler.max-threads", size_t{0}) == 1);
  cfg.mode = "async";
  cfg.workers = 1;
  REQUIRE(validate(cfg).empty());
  psgd_config async_cfg;
  CHECK(async_cfg.fit_scheduler_to(cfg) == "stealing"); // one worker, a thread of its own
}
