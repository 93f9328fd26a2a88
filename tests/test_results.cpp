#include <catch2/catch.hpp>

#include <fstream>

#include "actors/results.hpp"
#include "tests/test_helpers.hpp"

using namespace psgd;

namespace {

run_summary backup_summary() {
  run_summary r;
  r.evaluations = {eval_point{0.5, 100, 6400, 0.6, 0.65, 0.79},
                   eval_point{1.0, 200, 12800, 0.5, 0.55, 0.81}};
  auto& s = r.final_stats;
  s.version = 200;
  s.samples = 12800;
  s.seconds = 1.0;
  s.gradients_applied = 400;
  s.gradients_dropped = 37;
  s.staleness_histogram = {400};
  auto w = [](int32_t id, int64_t pushed, int64_t applied, int64_t dropped, bool lost) {
    worker_stats x;
    x.worker = id;
    x.computed = pushed;
    x.pushed = pushed;
    x.applied = applied;
    x.dropped = dropped;
    x.lost = lost;
    return x;
  };
  s.workers = {w(0, 150, 140, 10, false), w(1, 150, 145, 5, false), w(2, 137, 115, 22, true)};
  r.events = {"worker 2 lost: killed"};
  return r;
}

run_config backup_config() {
  run_config cfg;
  cfg.mode = "backup";
  cfg.workers = 2;
  cfg.backup = 1;
  REQUIRE(validate(cfg).empty());
  return cfg;
}

} // namespace

TEST_CASE("the summary record names the run and its outcome", "[results]") {
  auto j = summary_json(backup_config(), backup_summary(), 60000);
  CHECK(j["type"] == "summary");
  CHECK(j["mode"] == "backup");
  CHECK(j["m"] == 2);
  CHECK(j["e"] == 1);
  CHECK(j["b"] == 32);
  CHECK(j["aggregate"] == "mean");
  CHECK(j["seed"] == 1);
  CHECK(j["updates"] == 200);
  CHECK(j["samples_per_s"].get<double>() == Approx(12800));
  CHECK(j["updates_per_s"].get<double>() == Approx(200));
  CHECK(j["final_test_accuracy"].get<double>() == Approx(0.81));
  CHECK(j["final_train_loss"].get<double>() == Approx(0.5));
  CHECK(j["gradients_dropped"] == 37);
  CHECK(j["dropped_per_worker"]["2"] == 22);
  CHECK(j["workers"][2]["lost"] == true);
  CHECK(j["staleness_histogram"] == nlohmann::json::array({400}));
  CHECK(j["events"][0] == "worker 2 lost: killed");
}

TEST_CASE("the summary says where the workers' time went, null where a worker sent no report",
          "[results]") {
  auto r = backup_summary();
  auto& w = r.final_stats.workers;
  w[0].compute_seconds = 0.6;
  w[0].wait_seconds = 0.2;
  w[1].compute_seconds = 0.2;
  w[1].wait_seconds = 0.2; // worker 2 was lost: no report
  auto j = summary_json(backup_config(), r, 60000);
  CHECK(j["workers"][0]["compute_seconds"].get<double>() == Approx(0.6));
  CHECK(j["workers"][1]["wait_seconds"].get<double>() == Approx(0.2));
  CHECK(j["workers"][2]["compute_seconds"].is_null());
  CHECK(j["workers"][2]["wait_seconds"].is_null());
  CHECK(j["compute_share"].get<double>() == Approx(0.8 / 1.2));
  CHECK(summary_json(backup_config(), backup_summary(), 60000)["compute_share"].is_null());
  CHECK_THAT(comparison_table({j}), Catch::Contains(" 67% "));
  CHECK_THAT(comparison_table({summary_json(backup_config(), backup_summary(), 60000)}),
             Catch::Contains(" - "));
}

TEST_CASE("the results file has one eval line per evaluation and the summary last", "[results]") {
  testing::temp_dir dir;
  auto path = dir.file("r.jsonl");
  REQUIRE(write_results(path, backup_config(), backup_summary(), 60000).empty());
  std::ifstream in{path};
  std::vector<nlohmann::json> lines;
  std::string line;
  while (std::getline(in, line))
    lines.push_back(nlohmann::json::parse(line));
  REQUIRE(lines.size() == 3);
  CHECK(lines[0]["type"] == "eval");
  CHECK(lines[1]["test_accuracy"].get<double>() == Approx(0.81));
  CHECK(lines[2]["type"] == "summary");
  CHECK_THAT(write_results("/nonexistent/dir/r.jsonl", backup_config(), backup_summary(), 1),
             Catch::Contains("/nonexistent/dir/r.jsonl"));
}

TEST_CASE("four evaluations per epoch unless --eval-every says otherwise", "[results]") {
  run_config cfg;
  REQUIRE(validate(cfg).empty());
  CHECK(eval_interval(cfg, 60000) == 60000 / 64 / 4); // sync m=2: 64 samples per update
  cfg.mode = "async";
  REQUIRE(validate(cfg).empty());
  CHECK(eval_interval(cfg, 60000) == 60000 / 32 / 4);
  cfg.eval_every = 7;
  CHECK(eval_interval(cfg, 60000) == 7);
}

TEST_CASE("the comparison table shows staleness for async and drops for backup", "[results]") {
  auto backup = summary_json(backup_config(), backup_summary(), 60000);
  auto table = comparison_table({backup});
  CHECK_THAT(table, Catch::Contains("backup") && Catch::Contains("dropped 37"));
  auto progress = progress_line(backup_config(), backup_summary().evaluations[1],
                                backup_summary().final_stats, 60000);
  CHECK_THAT(progress, Catch::Contains("[backup]") && Catch::Contains("dropped 37")
                         && Catch::Contains("test acc 0.8100"));
  CHECK(backup["interrupted"] == false);
  CHECK_THAT(table, !Catch::Contains("interrupted"));
  auto stopped = backup_summary();
  stopped.interrupted = true;
  CHECK_THAT(comparison_table({summary_json(backup_config(), stopped, 60000)}),
             Catch::Contains("(interrupted)"));
}

TEST_CASE("a summary read back is checked before it is tabulated", "[results]") {
  auto good = summary_json(backup_config(), backup_summary(), 60000);
  CHECK(summary_problem(good).empty());
  auto bad = good;
  bad["m"] = "two"; // before: an uncaught type_error aborted psgd report
  CHECK(summary_problem(bad) == "the summary's 'm' should be an integer (got \"two\")");
  CHECK(summary_problem(nlohmann::json{{"type", "summary"}}) == "the summary has no 'mode'");
  auto diverged = good; // a NaN accuracy is written as null: shown as "-"
  diverged["final_test_accuracy"] = nullptr;
  CHECK(summary_problem(diverged).empty());
  CHECK_THAT(comparison_table({diverged}), Catch::Contains(" - "));
}

TEST_CASE("least squares shows its test loss where classifiers show accuracy", "[results]") {
  auto cfg = backup_config();
  cfg.model = "lsq";
  REQUIRE(validate(cfg).empty());
  auto r = backup_summary();
  r.evaluations.back().test_loss = 0.0123;
  r.evaluations.back().test_accuracy = 0; // undefined for regression
  auto table = comparison_table({summary_json(cfg, r, 60000)});
  CHECK_THAT(table, Catch::Contains("L 0.0123"));
  CHECK_THAT(table, !Catch::Contains("0.0000"));
  auto progress = progress_line(cfg, r.evaluations.back(), r.final_stats, 60000);
  CHECK_THAT(progress, Catch::Contains("test loss 0.0123") && !Catch::Contains("test acc"));
}
