// Bad input through the real CLI: exit code 2 and one line naming the problem.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/test_helpers.hpp"

using namespace psgd::testing;

namespace {

/// `psgd ARGS` exits 2 with one line that names the problem.
void expect_refused(const std::string& args, const std::string& names) {
  auto r = run_psgd(args);
  INFO("psgd " << args << "\n" << r.output);
  CHECK(r.exit_code == 2);
  auto lines = lines_of(r.output);
  REQUIRE(lines.size() == 1);
  CHECK_THAT(lines[0], Catch::StartsWith("psgd: ") && Catch::Contains(names));
}

void expect_usage_error(const std::string& args, const std::string& names) {
  expect_refused("train " + args, names);
}

} // namespace

TEST_CASE("CLI: invalid options exit 2 with one line naming the problem", "[cli]") {
  expect_usage_error("--mode turbo", "turbo");
  // psgd sets CAF's heartbeat and connection timeout itself: a value for them was lost.
  expect_refused("work --connect 127.0.0.1:1 --middleman.heartbeat-interval=5s",
                 "psgd sets it from --heartbeat-ms");
  expect_usage_error("--workers 0", "--workers");
  expect_usage_error("--mode backup --backup -1", "--backup");
  expect_usage_error("--lr 0", "--lr");
  expect_usage_error("--lr -1", "--lr");
  expect_usage_error("--batch 40000", "--batch");
  expect_usage_error("--frobnicate 3", "--frobnicate");
  expect_usage_error("--workers two", "--workers");
  expect_usage_error("--model resnet", "resnet");
  expect_usage_error("stray", "stray");
  // Sizes and times past what the run can hold: before, an abort (bad_alloc), a hang, and
  // every request timing out at once.
  expect_usage_error("--model mlp --hidden 100000000", "--hidden");
  expect_usage_error("--scheduler.max-threads=0", "--scheduler.max-threads");
  expect_usage_error("--request-timeout-ms 9223372036854775807", "--request-timeout-ms");
  // CAF 0.17 read an unsigned value beyond INT64_MAX as 0: the run took seed 0.
  expect_usage_error("--seed 18446744073709551615", "--seed: at most 9223372036854775807");
  // Options of other commands do nothing here: refused, as a user who gives one expects it
  // to act (before, train ran without a word).
  expect_usage_error("--connect 127.0.0.1:7000", "--connect does nothing in psgd train");
  expect_usage_error("--port 7000", "--port does nothing in psgd train");
  expect_usage_error("--connection-timeout-ms 500", "--connection-timeout-ms");
  expect_usage_error("--load x.params", "psgd eval");
  // Options the run's mode ignores: before, sequential ran one worker without a word.
  expect_usage_error("--mode sequential --workers 4", "--workers: sequential SGD is one worker");
  expect_usage_error("--mode async --backup 2", "--backup does nothing in --mode async");
  expect_usage_error("--checkpoint-every 10", "without --checkpoint");
  expect_usage_error("--model softmax --hidden 64", "--hidden does nothing");
}

TEST_CASE("CLI: each command refuses the options it ignores and lists only its own",
          "[cli]") {
  // work took mode, lr, ... from the server without a word; launch picked its own port.
  expect_refused("work --connect 127.0.0.1:1 --lr 0.5", "--lr does nothing in psgd work");
  expect_refused("launch --port 7000", "--port does nothing in psgd launch");
  expect_refused("eval --load x.params --epochs 2", "--epochs does nothing in psgd eval");
  expect_refused("sweep --model mlp", "--models");
  expect_refused("sweep --models softmax --hidden 64", "--hidden does nothing in this sweep");
  // The server's refusal is launch's answer: before, exit 1 and "did not start listening".
  expect_refused("launch --mode sync --batch 70000",
                 "--batch: 70000 is larger than a worker's shard");
  // Bad input a sweep finds once the data are loaded: before, "sweep failed" and exit 1.
  expect_refused("sweep --models softmax --staleness 0 --seeds 1 --batch 70000",
                 "--batch: 70000 is larger than a worker's shard");
  auto help = run_psgd("work --help");
  CHECK(help.exit_code == 0);
  CHECK_THAT(help.output, Catch::Contains("usage: psgd work") && Catch::Contains("--connect=")
                            && !Catch::Contains("--lr=") && !Catch::Contains("--mode="));
}

TEST_CASE("CLI: report and sweep name a missing value, and report has --help", "[cli]") {
  expect_refused("report x.jsonl --out", "--out needs a directory");
  expect_refused("report " + std::string{PSGD_SOURCE_DIR}, "is a directory");
  temp_dir dir;
  std::ofstream{dir.file("typed.jsonl")} << R"({"type": "summary", "mode": "sync", "m": "two"})";
  expect_refused("report " + dir.file("typed.jsonl"), "typed.jsonl:1: the summary has no 'model'");
  expect_refused("sweep --seeds", "--seeds");       // before: "unknown option '--seeds'"
  expect_refused("sweep --models", "--models");
  expect_refused("sweep --models ''", "--models");  // before: exit 0 and an empty table
  expect_refused("sweep --mode sync --workers 4", "--mode does nothing in psgd sweep");
  expect_refused("sweep --staleness 0,2,0", "0 is in the list twice"); // merged into one row
  expect_refused("sweep --scenario " + std::string{PSGD_SOURCE_DIR}
                   + "/config/scenarios/server-crash.json",
                 "a sweep keeps no checkpoint");
  // Range checks still hold where the options act.
  expect_refused("serve --port 70000", "--port: must be 0..65535");
  // Before: the warning about leaving loopback, then the refusal (two lines).
  expect_refused("serve --bind 999.1.1.1 --insecure", "--bind: '999.1.1.1' is not an address");
  expect_refused("work --connect 127.0.0.1:1 --heartbeat-ms -1", "--heartbeat-ms");
  auto help = run_psgd("report --help");
  CHECK(help.exit_code == 0);
  CHECK_THAT(help.output, Catch::Contains("usage: psgd report"));
}

TEST_CASE("CLI: output paths are checked before training", "[cli]") {
  temp_dir dir;
  std::filesystem::create_directories(dir.file("results/sub"));
  const auto results = dir.file("results");
  // A directory given as --checkpoint was moved to DIR.prev by the first checkpoint.
  expect_usage_error("--mode async --checkpoint " + results, "is a directory");
  CHECK(std::filesystem::is_directory(dir.file("results/sub")));
  std::filesystem::create_directories(dir.file("ck.prev"));
  expect_usage_error("--mode async --checkpoint " + dir.file("ck"), "ck.prev");
  expect_usage_error("--out " + dir.file("none/o.jsonl"), "none");
  // Two outputs in one file: the last writer won (the results, or the checkpoint, lost).
  expect_usage_error("--out " + dir.file("x") + " --save " + dir.path() + "/./x",
                     "--out and --save name the same file");
  std::ofstream{dir.file("plain")} << "x";
  expect_usage_error("--out " + dir.file("plain/o.jsonl"), "is not a directory");
  // Permission bits pass for root; /proc refuses every file (a checkpoint failed each time).
  expect_usage_error("--mode async --checkpoint /proc/c.ckpt", "cannot write in '/proc'");
  // Before: exit 0, the data directory never read.
  expect_usage_error("--model lsq --data /nonexistent", "--data does nothing with synthetic");
  // m + e bounded as m is: --backup 30000 hung, 2147483000 overflowed the sum.
  expect_usage_error("--mode backup --backup 30000", "--backup: m + e at most 1024");
  // The budget is checked after whole updates: this one trained a whole epoch.
  expect_usage_error("--epochs 0.1 --batch 30000", "less than one update (2 x 30000 = 60000)");
  expect_usage_error("--save " + results, "is a directory");
  expect_usage_error("--data " + dir.file("results/sub/../../ck.prev/x"), "does not exist");
  std::ofstream{dir.file("plain")} << "x";
  expect_usage_error("--data " + dir.file("plain"), "is not a directory");
}

TEST_CASE("CLI: data problems exit 2 with one line naming the file", "[cli]") {
  temp_dir dir;
  SECTION("missing data directory") {
    expect_usage_error("--data /nonexistent/fmnist", "/nonexistent/fmnist");
  }
  SECTION("truncated .gz") {
    copy_fashion_mnist(dir.path());
    auto victim = dir.file("train-labels-idx1-ubyte.gz");
    std::filesystem::resize_file(victim, std::filesystem::file_size(victim) / 2);
    expect_usage_error("--data " + dir.path(), "train-labels-idx1-ubyte.gz");
  }
  SECTION("wrong magic number") {
    copy_fashion_mnist(dir.path());
    write_gz(dir.file("t10k-labels-idx1-ubyte.gz"), idx_images(3, 28));
    expect_usage_error("--data " + dir.path(), "magic");
  }
}

TEST_CASE("CLI: config-file keys are checked", "[cli]") {
  temp_dir dir;
  std::ofstream{dir.file("bad.ini")} << "mode=\"async\"\nwrokers=3\n";
  expect_usage_error("--config-file=" + dir.file("bad.ini"), "wrokers");
  expect_usage_error("--config-file=" + dir.file("missing.ini"), "missing.ini");
  // CAF skips a value it cannot use and the run went on with the default (lr=1 is an
  // integer, so --lr stayed 0.1): each is refused, naming the key.
  auto refused_in_file = [&](const std::string& text, const std::string& names) {
    std::ofstream{dir.file("c.ini")} << text << "\n";
    expect_usage_error("--config-file=" + dir.file("c.ini"), names);
  };
  refused_in_file("lr=1", "lr: expected a real number");
  refused_in_file("workers=1.5", "workers: expected an integer");
  refused_in_file("batch=\"32\"", "batch");
  refused_in_file("[psgd]\nmode=\"async\"", "unknown section [psgd]");
  refused_in_file("[scheduler]\nbogus=2", "scheduler.bogus");
  refused_in_file("mode=async", "line 1, column 6");
  // An option the run's mode ignores is refused from a file as from the command line.
  refused_in_file("mode=\"sequential\"\nworkers=4",
                  "--workers (set in the config file): sequential SGD is one worker");
  // ... unless the command line chose the mode: the file's backup=1 is then a default.
  std::ofstream{dir.file("backup.ini")} << "mode=\"backup\"\nbackup=1\nepochs=0.02\n";
  auto overridden = run_psgd("train --quiet --mode sync --config-file=" + dir.file("backup.ini"));
  INFO(overridden.output);
  CHECK(overridden.exit_code == 0);
  // What is right runs with the file's values (the command line still wins).
  std::ofstream{dir.file("good.ini")} << "lr=0.5\nepochs=0.02\n[scheduler]\nmax-threads=1\n";
  auto good = run_psgd("train --quiet --config-file=" + dir.file("good.ini"));
  CHECK(good.exit_code == 0);
  CHECK_THAT(good.output, Catch::Contains("lr=0.5") && Catch::Contains("0.02 epochs"));
  // CAF's default file in the working directory is read as well, and checked as well.
  std::ofstream{dir.file("caf-application.ini")} << "facter=3\n";
  auto implicit = run_shell("cd " + dir.path() + " && " + PSGD_BINARY + " train --quiet");
  CHECK(implicit.exit_code == 2);
  CHECK_THAT(implicit.output, Catch::Contains("caf-application.ini: unknown key 'facter'"));
}

TEST_CASE("CLI: unknown command and no command exit 2", "[cli]") {
  auto fly = run_psgd("fly");
  CHECK(fly.exit_code == 2);
  CHECK(lines_of(fly.output).size() == 1); // the error, not the usage text before it
  CHECK(run_psgd("").exit_code == 2);
  CHECK(run_psgd("help").exit_code == 0);
}

TEST_CASE("CLI: --version names the build; every summary records it", "[cli]") {
  auto r = run_psgd("--version");
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::StartsWith("psgd 0.") && Catch::Contains("(commit ")
                         && Catch::Contains("CAF 0.17"));
  temp_dir dir;
  REQUIRE(run_psgd("train --epochs 0.05 --quiet --out " + dir.file("r.jsonl")).exit_code == 0);
  auto summary = last_record(dir.file("r.jsonl"));
  CHECK(summary["build"] == lines_of(r.output).front());
}

TEST_CASE("CLI: --help lists the options and exits 0", "[cli]") {
  auto r = run_psgd("train --help");
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("--workers") && Catch::Contains("--aggregate"));
}

TEST_CASE("CLI: a short run writes JSON lines and parameters that eval reads back", "[cli]") {
  temp_dir dir;
  auto out = dir.file("run.jsonl");
  auto params = dir.file("run.params");
  auto r = run_psgd("train --mode async --workers 2 --epochs 0.2 --quiet --out " + out
                    + " --save " + params);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  std::ifstream in{out};
  std::string line, last;
  int lines = 0;
  while (std::getline(in, line)) {
    last = line;
    ++lines;
  }
  CHECK(lines >= 2);
  CHECK_THAT(last, Catch::Contains("\"type\":\"summary\"") && Catch::Contains("\"mode\":\"async\"")
                     && Catch::Contains("\"aggregate\":\"mean\"")
                     && Catch::Contains("staleness_histogram"));
  auto e = run_psgd("eval --load " + params);
  INFO(e.output);
  CHECK(e.exit_code == 0);
  CHECK_THAT(e.output, Catch::Contains("test accuracy 0."));
  auto rep = run_psgd("report " + out);
  CHECK(rep.exit_code == 0);
  CHECK_THAT(rep.output, Catch::Contains("async"));
  // A file given twice (here also by another path) is one row, and the user is told.
  auto twice = run_psgd("report " + out + " " + dir.path() + "/./run.jsonl");
  CHECK(twice.exit_code == 0);
  CHECK(lines_of(twice.output).size() == lines_of(rep.output).size() + 1);
  CHECK_THAT(twice.output, Catch::Contains("1 file(s) given more than once, read once"));
  // A damaged parameter file is refused with one line.
  std::filesystem::resize_file(params, std::filesystem::file_size(params) - 8);
  auto bad = run_psgd("eval --load " + params);
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("truncated"));
}

TEST_CASE("CLI: --out - writes only JSON lines to stdout; the result line goes to stderr",
          "[cli]") {
  // stdout alone (stderr to /dev/null): every line must parse, the summary last.
  for (const std::string run : {"train --mode async --workers 2 --epochs 0.2",
                                "launch --mode async --workers 2 --epochs 0.2",
                                "sweep --models softmax --staleness 0,1 --seeds 1 --epochs 0.1"}) {
    auto r = run_shell(std::string{PSGD_BINARY} + " " + run + " --out - 2>/dev/null");
    INFO(run << "\n" << r.output);
    REQUIRE(r.exit_code == 0);
    auto lines = lines_of(r.output);
    REQUIRE(lines.size() >= 2);
    for (const auto& line : lines)
      CHECK(nlohmann::json::accept(line));
    const bool sweep = run.rfind("sweep", 0) == 0;
    CHECK_THAT(lines.back(), Catch::Contains(sweep ? "\"type\":\"sweep_point\""
                                                   : "\"type\":\"summary\""));
  }
  // The binary outputs take file names: "-" would have been a file named "-".
  expect_usage_error("--out - --save -", "--save: '-' (standard output) is for --out");
  expect_usage_error("--mode async --checkpoint -", "give a file name (./- for a file");
}

/// A synthetic run far longer than any test waits, evaluating now and then.
const std::string endless = "--workers 2 --dataset synthetic --epochs 1e6 --eval-every 2000";

TEST_CASE("CLI: SIGINT stops a run with its results so far, exit 130", "[cli][interrupt]") {
  temp_dir dir;
  auto output = expect_interrupted(
    dir.path(), "train --mode sync " + endless + " --out r.jsonl --checkpoint r.ckpt", "epoch");
  CHECK_THAT(output, Catch::Contains("(interrupted)")
                       && Catch::Contains("[sync] interrupted at update "));
  auto summary = last_record(dir.file("r.jsonl"));
  CHECK(summary["interrupted"] == true);
  CHECK(summary["accounting"]["lost_in_flight"] == 0);
  CHECK(summary["resumed_from_update"].is_null());
  // Its checkpoint resumes: the budget is not spent. The summary says its totals go on
  // from the checkpoint's.
  auto resumed = expect_interrupted(
    dir.path(),
    "train --mode sync " + endless + " --checkpoint r.ckpt --resume r.ckpt --out r2.jsonl",
    "epoch");
  CHECK_THAT(resumed, Catch::Contains("training goes on from update"));
  CHECK(last_record(dir.file("r2.jsonl"))["resumed_from_update"] == summary["updates"]);
  // One run across its sessions: the resumed one keeps the run id (16 hex digits).
  CHECK(summary["run_id"].get<std::string>().size() == 16);
  CHECK(last_record(dir.file("r2.jsonl"))["run_id"] == summary["run_id"]);
  // Before any worker joined there is nothing to keep: a checkpoint without members resumed
  // a sync m=2 run with whoever joined first.
  auto waiting = expect_interrupted(
    dir.path(), "serve --port 0 --mode sync " + endless + " --checkpoint early.ckpt",
    "waiting for 2 worker(s)");
  CHECK_THAT(waiting, Catch::Contains("interrupted before the first update"));
  CHECK_FALSE(std::filesystem::exists(dir.file("early.ckpt")));
}

TEST_CASE("CLI: --out gets each evaluation as it is made, the summary at the end", "[cli]") {
  temp_dir dir;
  // Interrupted once the file holds an evaluation: before, it was written only at the end.
  expect_interrupted(dir.path(), "train --mode async " + endless + " --quiet --out live.jsonl",
                     "\"type\":\"eval\"", "live.jsonl");
  auto lines = lines_of(read_file(dir.file("live.jsonl")));
  REQUIRE(lines.size() >= 3);
  for (size_t i = 0; i + 1 < lines.size(); ++i)
    CHECK_THAT(lines[i], Catch::Contains("\"type\":\"eval\""));
  CHECK_THAT(lines.back(), Catch::Contains("\"type\":\"summary\""));
}

TEST_CASE("CLI: scenario and checkpoint problems exit 2 with one line", "[cli]") {
  temp_dir dir;
  std::ofstream{dir.file("typo.json")}
    << R"({"events": [{"kind": "slow", "workers": [1], "facter": 10}]})";
  expect_usage_error("--mode async --scenario " + dir.file("typo.json"), "facter");
  expect_usage_error("--mode async --scenario " + dir.file("none.json"), "none.json");
  expect_usage_error("--mode async --resume " + dir.file("none.ckpt"), "none.ckpt");
  expect_usage_error("--mode async --scenario " + std::string{PSGD_SOURCE_DIR}
                       + "/config/scenarios/server-crash.json",
                     "--checkpoint");
  expect_usage_error("--mode sequential --scenario " + std::string{PSGD_SOURCE_DIR}
                       + "/config/scenarios/long-tail.json",
                     "sequential");
  expect_usage_error("--round-timeout-policy maybe", "--round-timeout-policy");
  // Costs per class against the data's classes: an eleventh was never charged, and a
  // regression set charged class 0's cost for every example.
  std::ofstream{dir.file("cost.json")}
    << R"({"events": [{"kind": "example_cost", "workers": "all", "per_class_ms": )"
    << R"([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]}]})";
  expect_usage_error("--mode backup --scenario " + dir.file("cost.json"),
                     "events[0].per_class_ms: 11 costs for the 10 classes");
  expect_usage_error("--mode backup --model lsq --scenario " + dir.file("cost.json"),
                     "the data have none");
}

TEST_CASE("CLI: a scenario run names its faults in the log and the results", "[cli]") {
  temp_dir dir;
  auto out = dir.file("run.jsonl");
  auto r = run_psgd("train --mode backup --workers 2 --backup 1 --epochs 0.5 --out " + out
                    + " --scenario " + std::string{PSGD_SOURCE_DIR}
                    + "/config/scenarios/worker-crash.json --max-updates 600");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("inject: scenario worker-crash"));
  std::ifstream in{out};
  std::string line, last;
  while (std::getline(in, line))
    last = line;
  CHECK_THAT(last, Catch::Contains("\"accounting\"") && Catch::Contains("lost_in_flight")
                     && Catch::Contains("inject: scenario worker-crash"));
}

TEST_CASE("CLI: psgd sweep and psgd report --out, end to end", "[cli][sweep][report]") {
  temp_dir dir;
  auto bad = run_psgd("sweep --staleness 1,x");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("--staleness: expected a list"));
  auto bad_models = run_psgd("sweep --models cnn");
  CHECK(bad_models.exit_code == 2);
  CHECK_THAT(bad_models.output, Catch::Contains("--models"));
  auto sweep = run_psgd("sweep --models softmax --staleness 0,4 --seeds 1 --epochs 0.1 --out "
                        + dir.file("sweep.jsonl"));
  INFO(sweep.output);
  REQUIRE(sweep.exit_code == 0);
  CHECK_THAT(sweep.output, Catch::Contains("[sweep 2/2]") && Catch::Contains("mean acc"));
  auto run = run_psgd("train --mode ssp --staleness-bound 1 --epochs 0.1 --quiet --out "
                      + dir.file("ssp.jsonl"));
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.output, Catch::Contains("ssp softmax") && Catch::Contains("staleness mean"));
  if (std::system("command -v gnuplot > /dev/null") != 0) {
    WARN("gnuplot not installed: psgd report --out skipped");
    return;
  }
  auto report = run_psgd("report " + dir.file("ssp.jsonl") + " " + dir.file("sweep.jsonl")
                         + " --out " + dir.file("report"));
  INFO(report.output);
  REQUIRE(report.exit_code == 0);
  CHECK_THAT(report.output, Catch::Contains("index.html"));
  CHECK(std::filesystem::file_size(dir.file("report/index.html")) > 0);
  CHECK(std::filesystem::file_size(dir.file("report/staleness_sweep.svg")) > 0);
  auto missing = run_psgd("report " + dir.file("nope.jsonl") + " --out " + dir.file("r2"));
  CHECK(missing.exit_code == 2);
}
