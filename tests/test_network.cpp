// psgd serve and psgd work as real processes on loopback.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config/run_config.hpp"
#include "config/thread_placement.hpp"
#include "messages/vocabulary.hpp"
#include "tests/test_helpers.hpp"

using namespace psgd::testing;

namespace {

/// Starts `psgd serve <args>` in the background (bounded by timeout), waits for its port.
std::string start_server(const temp_dir& dir, const std::string& args) {
  auto cmd = "cd " + dir.path() + " && (timeout 120 " + std::string{PSGD_BINARY} + " serve "
             + args + " > serve.out 2> serve.err & echo $! > serve.pid)"
             + " && for i in $(seq 1 200); do grep -q listening serve.err && break; sleep 0.05; done"
             + " && grep -o '127.0.0.1:[0-9]*' serve.err | head -1 | cut -d: -f2 > port";
  REQUIRE(std::system(cmd.c_str()) == 0);
  auto port = read_file(dir.file("port"));
  INFO(read_file(dir.file("serve.err")));
  REQUIRE(!port.empty());
  return port.substr(0, port.find('\n'));
}

/// Waits (at most a minute) for the background server to exit; returns its stdout.
std::string wait_server(const temp_dir& dir) {
  auto cmd = "cd " + dir.path()
             + " && for i in $(seq 1 600); do kill -0 $(cat serve.pid) 2>/dev/null || break; "
               "sleep 0.1; done";
  REQUIRE(std::system(cmd.c_str()) == 0);
  return read_file(dir.file("serve.out"));
}

} // namespace

// [timing]: async accuracy after one epoch depends on the interleaving (0.80-0.82 alone; a
// fresh clone's parallel suite once gave 0.771 beside another test's processes).
TEST_CASE("serve and work train across two processes", "[network][timing]") {
  temp_dir dir;
  auto port = start_server(dir, "--mode async --workers 2 --epochs 1 --lr 0.03 --port 0 --quiet");
  auto work = run_psgd("work --connect 127.0.0.1:" + port + " --workers 2");
  INFO(work.output);
  CHECK(work.exit_code == 0);
  CHECK_THAT(work.output, Catch::Contains("worker 0: finished")
                            && Catch::Contains("worker 1: finished"));
  auto out = wait_server(dir);
  INFO(out << read_file(dir.file("serve.err")));
  REQUIRE_THAT(out, Catch::Contains("test accuracy"));
  auto at = out.find("test accuracy ");
  double accuracy = std::stod(out.substr(at + 14, 6));
  CHECK(accuracy >= 0.78);
}

TEST_CASE("a worker process with other data is refused on both sides", "[network]") {
  temp_dir dir;
  temp_dir other;
  copy_fashion_mnist(other.path());
  write_gz(other.file("train-labels-idx1-ubyte.gz"), idx_labels(60000, 3)); // valid, different
  auto port = start_server(dir, "--mode sync --workers 1 --epochs 0.2 --port 0 --quiet");
  auto refused = run_psgd("work --connect 127.0.0.1:" + port + " --workers 1 --data "
                          + other.path());
  INFO(refused.output);
  CHECK(refused.exit_code == 2);
  CHECK_THAT(refused.output, Catch::Contains("training data differ"));
  // The right data still get in, and the run completes.
  auto work = run_psgd("work --connect 127.0.0.1:" + port + " --workers 1");
  INFO(work.output);
  CHECK(work.exit_code == 0);
  CHECK_THAT(wait_server(dir), Catch::Contains("test accuracy"));
}

TEST_CASE("network options are checked", "[network]") {
  auto wide = run_psgd("serve --bind 0.0.0.0 --mode async");
  CHECK(wide.exit_code == 2);
  CHECK_THAT(wide.output, Catch::Contains("--insecure"));
  const std::string scenarios = std::string{PSGD_SOURCE_DIR} + "/config/scenarios/";
  auto restart = run_psgd("serve --mode sync --checkpoint /tmp/x.ckpt --scenario " + scenarios
                          + "server-crash.json");
  CHECK(restart.exit_code == 2);
  CHECK_THAT(restart.output, Catch::Contains("restart it with --resume"));
  // Not "give --checkpoint FILE" first, then this: a checkpoint cannot make it work here.
  auto without = run_psgd("launch --mode sync --scenario " + scenarios + "server-crash.json");
  CHECK(without.exit_code == 2);
  CHECK_THAT(without.output, Catch::Contains("restart it with --resume"));
  auto on_worker = run_psgd("work --connect 127.0.0.1:1 --scenario " + scenarios
                            + "lossy-link.json");
  CHECK(on_worker.exit_code == 2);
  CHECK_THAT(on_worker.output, Catch::Contains("--scenario does nothing in psgd work")
                                 && Catch::Contains("give it to psgd serve"));
  auto bad = run_psgd("work --connect nowhere");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("HOST:PORT"));
  auto closed = run_psgd("work --connect 127.0.0.1:1 --request-timeout-ms 3000");
  CHECK(closed.exit_code == 1);
  CHECK_THAT(closed.output, Catch::Contains("cannot connect to 127.0.0.1:1"));
  for (std::string processes : {"3", "-1"}) {
    auto wrong = run_psgd("launch --mode async --workers 2 --processes " + processes);
    INFO(wrong.output);
    CHECK(wrong.exit_code == 2);
    CHECK_THAT(wrong.output, Catch::Contains("--processes: must be 0 (one per worker) to the 2 "
                                             "workers (got " + processes + ")"));
  }
  for (std::string restarts : {"-1", "1001"}) {
    auto wrong = run_psgd("launch --mode async --workers 2 --max-restarts " + restarts);
    CHECK(wrong.exit_code == 2);
    CHECK_THAT(wrong.output, Catch::Contains("--max-restarts: must be 0 (none) to 1000 (got "
                                             + restarts + ")"));
  }
  auto restarts_on_serve = run_psgd("serve --port 0 --max-restarts 1");
  CHECK(restarts_on_serve.exit_code == 2);
  CHECK_THAT(restarts_on_serve.output,
             Catch::Contains("--max-restarts does nothing in psgd serve"));
  // Every work process holds the data (~210 MiB of Fashion-MNIST): 1024 copies need ~280 GiB,
  // more than this kind of machine has.
  auto huge = run_psgd("launch --mode async --workers 1024 --processes 1024");
  INFO(huge.output);
  CHECK(huge.exit_code == 2);
  CHECK_THAT(huge.output, Catch::Contains("--processes: 1024 work processes and the server "
                                          "each hold the data")
                            && Catch::Contains("GiB available"));
}

TEST_CASE("launch deals the workers out over --processes work processes", "[network]") {
  auto r = run_psgd("launch --mode backup --workers 4 --backup 1 --processes 2 --epochs 0.5");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("worker process 0 pid")
                         && Catch::Contains(", 3 workers\n") && Catch::Contains(", 2 workers\n"));
  CHECK_THAT(r.output, Catch::Contains("backup softmax m=4 e=1"));
  for (int w = 0; w < 5; ++w)
    CHECK_THAT(r.output, Catch::Contains("worker " + std::to_string(w) + ": finished"));
  CHECK_THAT(r.output, Catch::Contains("psgd serve: workers joined; training starts"));
  // Which process holds which ids: each work process says so with the pid launch named.
  auto at = r.output.find("worker process 0 pid ");
  REQUIRE(at != std::string::npos);
  const auto pid0 = std::stoi(r.output.substr(at + 21));
  CHECK_THAT(r.output, Catch::Matches(fmt::format("[\\s\\S]*psgd work \\(pid {}\\): workers "
                                                  "\\d, \\d, \\d joined 127\\.0\\.0\\.1:[\\s\\S]*",
                                                  pid0)));
  // Without --processes, one per worker.
  auto one_each = run_psgd("launch --mode async --workers 3 --epochs 0.2 --quiet");
  INFO(one_each.output);
  CHECK(one_each.exit_code == 0);
  CHECK_THAT(one_each.output, Catch::Contains("worker process 2 pid")
                                && !Catch::Contains(" workers\n"));
}

namespace {

double accuracy_in(const std::string& output) {
  auto at = output.find("test accuracy ");
  REQUIRE(at != std::string::npos);
  return std::stod(output.substr(at + 14, 6));
}

/// Starts `psgd launch <args>` in the background (after `prefix`, e.g. a taskset); its
/// output goes to dir/launch.out.
void start_launch(const temp_dir& dir, const std::string& args, const std::string& prefix = "") {
  auto cmd = "cd " + dir.path() + " && (timeout 120 " + prefix + std::string{PSGD_BINARY}
             + " launch " + args + " > launch.out 2>&1; echo $? > launch.rc) & true";
  REQUIRE(std::system(cmd.c_str()) == 0);
}

/// Waits until dir/launch.out contains `text` (at most `seconds`); true if it does.
bool wait_for(const temp_dir& dir, const std::string& file, const std::string& text,
              double seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (read_file(dir.file(file)).find(text) != std::string::npos)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

/// The pid launch printed for worker process k.
int worker_pid(const temp_dir& dir, int k) {
  REQUIRE(wait_for(dir, "launch.out", "worker process " + std::to_string(k) + " pid", 30));
  auto out = read_file(dir.file("launch.out"));
  auto at = out.find("worker process " + std::to_string(k) + " pid ");
  return std::stoi(out.substr(at + 20 + std::to_string(k).size()));
}

bool alive(int pid) {
  return ::kill(pid, 0) == 0;
}

/// The pid of the process launch started again for worker process k (it died `when`: before
/// or after training started): "... starting it again (pid N)".
int restarted_pid(const temp_dir& dir, int k, const std::string& when = "before") {
  const std::regex again{"worker process " + std::to_string(k) + R"( \(pid \d+\) exited with \d+ )"
                         + when + R"( training started; starting it again \(pid (\d+)\))"};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::smatch m;
  std::string out;
  while (!std::regex_search(out = read_file(dir.file("launch.out")), m, again)
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  INFO(out);
  REQUIRE(!m.empty());
  return std::stoi(m[1].str());
}

} // namespace

TEST_CASE("launch m=2 reaches the in-process accuracy within a point in every mode",
          "[network][timing]") {
  // Settings where one run's final accuracy is stable to a few tenths of a point: a small
  // step for more epochs, since the last iterate's noise grows with the step (async at
  // --lr 0.02 for 2 epochs spread over 0.8 points in twelve runs, and one run each was once
  // 1.04 points apart in CI; at --lr 0.01 for 4 epochs ten runs spread over 0.2-0.3).
  for (std::string spec : {"--mode sync --lr 0.06 --epochs 1", "--mode async --lr 0.01 --epochs 4",
                           "--mode backup --backup 1 --lr 0.01 --epochs 6"}) {
    INFO(spec);
    // Sync is deterministic: one run each. Async and backup depend on timing (interleavings,
    // which gradients are late): the median of five runs each.
    const int runs = spec.rfind("--mode sync ", 0) == 0 ? 1 : 5; // "async" holds "sync"
    auto median_accuracy = [&](const std::string& command) {
      std::vector<double> acc;
      for (int i = 0; i < runs; ++i) {
        auto r = run_psgd(command + " --workers 2 --quiet " + spec);
        INFO(r.output);
        REQUIRE(r.exit_code == 0);
        acc.push_back(accuracy_in(r.output));
      }
      std::sort(acc.begin(), acc.end());
      return acc[acc.size() / 2];
    };
    auto local = median_accuracy("train");
    auto cluster = median_accuracy("launch");
    INFO("in-process " << local << ", launch " << cluster);
    CHECK(std::abs(cluster - local) <= 0.01);
  }
}

TEST_CASE("SIGINT to launch: the server stops the run with its results, the workers finish",
          "[network][interrupt]") {
  temp_dir dir;
  auto output = expect_interrupted(
    dir.path(), "launch --mode async --workers 2 --dataset synthetic --epochs 1e6 --out r.jsonl",
    "training starts");
  CHECK_THAT(output, Catch::Contains("psgd launch: interrupted; the server stops the run")
                       && Catch::Contains("worker 0: finished")
                       && Catch::Contains("worker 1: finished")
                       && Catch::Contains("(interrupted)"));
  auto summary = last_record(dir.file("r.jsonl"));
  CHECK(summary["interrupted"] == true);
  // The work processes were not hit by the signal: no worker was lost.
  CHECK(summary["accounting"]["lost_in_flight"] == 0);
  for (const auto& w : summary["workers"])
    CHECK(w["lost"] == false);
}

TEST_CASE("kill -9 of a worker process: training completes and names it", "[network]") {
  for (std::string mode : {"--mode sync", "--mode backup --backup 1"}) {
    INFO(mode);
    temp_dir dir;
    start_launch(dir, mode + " --workers 2 --model mlp --epochs 2 --eval-every 300");
    int victim = worker_pid(dir, 1);
    // Kill once training runs (the first progress line): mid-run, not during the joins.
    REQUIRE(wait_for(dir, "launch.out", "] epoch", 60));
    REQUIRE(::kill(victim, SIGKILL) == 0);
    REQUIRE(wait_for(dir, "launch.rc", "0", 90));
    auto out = read_file(dir.file("launch.out"));
    INFO(out);
    // Worker ids go to processes in the order they say hello: any id may be the victim's.
    CHECK_THAT(out, Catch::Contains("left the quorum: its work process or its connection is "
                                    "gone"));
    CHECK_THAT(out, Catch::Contains("test accuracy"));
    CHECK_THAT(out, Catch::Contains("exited with 137; its workers are lost (--max-restarts N "
                                    "starts a new process for them)"));
    for (int k = 0; k < 2; ++k)
      CHECK_FALSE(alive(worker_pid(dir, k))); // no process left behind
  }
}

TEST_CASE("a join event across processes: launch starts a work process for the new worker id",
          "[network]") {
  temp_dir dir;
  // Worker 1 crashes at update 1000, a new worker joins at 2000 (of 7500).
  auto r = run_psgd("launch --mode async --workers 2 --model mlp --epochs 4 --scenario "
                    + std::string{PSGD_SOURCE_DIR} + "/config/scenarios/crash-and-rejoin.json "
                    + "--out " + dir.file("run.jsonl"));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("join: worker id(s) 2 open for a new work process")
                         && Catch::Contains("worker process 2 pid")
                         && Catch::Contains("worker 2 joined at update"));
  auto summary = last_record(dir.file("run.jsonl"));
  REQUIRE(summary["workers"].size() == 3);
  // As in one process: the crashed worker stays lost (the new process got the new id, not
  // its), and the joiner trained with its own shard stream.
  CHECK(summary["workers"][1]["lost"] == true);
  CHECK(summary["workers"][2]["joined_late"] == true);
  CHECK(summary["workers"][2]["applied"].get<int64_t>() > 0);
  CHECK(summary["workers"][2]["lost"] == false);
}

TEST_CASE("launch --max-restarts: a work process killed mid-run is started again and takes "
          "over its worker; past the limit its worker is lost",
          "[network]") {
  temp_dir dir;
  start_launch(dir, "--mode sync --workers 2 --model mlp --epochs 5 --eval-every 300 "
                    "--max-restarts 1 --out " + dir.file("run.jsonl"));
  const int victim = worker_pid(dir, 1);
  REQUIRE(wait_for(dir, "launch.out", "] epoch", 60)); // mid-run
  REQUIRE(::kill(victim, SIGKILL) == 0);
  const int successor = restarted_pid(dir, 1, "after");
  REQUIRE(wait_for(dir, "launch.out", "was taken over by a new work process at update", 30));
  CHECK_THAT(read_file(dir.file("launch.out")), Catch::Contains("(0 restart(s) left)"));
  // The one restart is spent: the successor's death is a lost worker.
  REQUIRE(::kill(successor, SIGKILL) == 0);
  REQUIRE(wait_for(dir, "launch.rc", "\n", 90));
  const auto out = read_file(dir.file("launch.out"));
  INFO(out);
  CHECK(read_file(dir.file("launch.rc")) == "0\n");
  CHECK_THAT(out, Catch::Contains("exited with 137; its workers are lost (no restarts left)"));
  auto summary = last_record(dir.file("run.jsonl"));
  REQUIRE(summary["type"] == "summary");
  int rejoins = 0, lost = 0;
  for (const auto& w : summary["workers"]) {
    rejoins += w["rejoins"].get<int>();
    lost += w["lost"].get<bool>();
    CHECK(w["lost_in_flight"].get<int64_t>() >= 0); // the successor counted on
  }
  CHECK(rejoins == 1);
  CHECK(lost == 1);
  CHECK_FALSE(alive(successor));
}

TEST_CASE("launch starts a work process that died before training started again, once",
          "[network]") {
  temp_dir dir;
  start_launch(dir, "--mode sync --workers 2 --epochs 0.5 --out " + dir.file("run.jsonl"));
  // It loads its data before it joins: killed now, it has not.
  REQUIRE(::kill(worker_pid(dir, 1), SIGKILL) == 0);
  const int again = restarted_pid(dir, 1);
  CHECK(again > 0);
  REQUIRE(wait_for(dir, "launch.rc", "\n", 90));
  const auto out = read_file(dir.file("launch.out"));
  INFO(out);
  // Before, the server waited --request-timeout-ms (a minute) for the missing worker, then
  // trained sync m=2 with one.
  CHECK(read_file(dir.file("launch.rc")) == "0\n");
  CHECK_THAT(out, !Catch::Contains("only 1 of 2"));
  auto summary = last_record(dir.file("run.jsonl"));
  for (const auto& w : summary["workers"])
    CHECK(w["applied"] == summary["updates"]);
}

TEST_CASE("launch whose work processes all die before training started stops at once",
          "[network]") {
  temp_dir dir;
  // Before, the server waited --request-timeout-ms for workers that could no longer come.
  start_launch(dir, "--mode async --workers 2 --epochs 1 --request-timeout-ms 60000");
  const int first = worker_pid(dir, 0), second = worker_pid(dir, 1);
  // Each loads its data before it joins: killed now, neither has. Launch starts each again
  // once; those die too.
  REQUIRE(::kill(first, SIGKILL) == 0);
  REQUIRE(::kill(second, SIGKILL) == 0);
  REQUIRE(::kill(restarted_pid(dir, 0), SIGKILL) == 0);
  REQUIRE(::kill(restarted_pid(dir, 1), SIGKILL) == 0);
  REQUIRE(wait_for(dir, "launch.rc", "1", 60));
  auto out = read_file(dir.file("launch.out"));
  INFO(out);
  CHECK_THAT(out, Catch::Contains("every work process exited before training started"));
  CHECK_THAT(out, !Catch::Contains("no worker joined"));
}

TEST_CASE("a run the server stops (divergence) stops its work processes with the reason, "
          "not a wait for a restart", "[network]") {
  auto r = run_psgd("launch --mode async --workers 3 --processes 2 --model mlp --lr 50 "
                    "--epochs 1 --quiet");
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("psgd: training failed: diverged"));
  // Both work processes heard it from the server (before, they took it for a crashed server,
  // waited for its restart and were killed by launch); launch prints their line once.
  size_t told = 0;
  for (const auto& line : lines_of(r.output))
    told += line.rfind("psgd work: peer_lost: the server stopped the run: diverged", 0) == 0;
  CHECK(told == 1);
  CHECK_THAT(r.output, Catch::Contains(
                           "psgd launch: 1 more work process line(s) the same as one above"));
  // The serve process shuts down at once, not at its deadline (a detached driver was held
  // by the middleman once a work process disconnected after it ended).
  CHECK_THAT(r.output, !Catch::Contains("did not shut down"));
}

TEST_CASE("launch gives each work process a CPU of its own when they are as many as the "
          "CPUs, and leaves other counts to the OS", "[network]") {
  auto cpus = psgd::allowed_cpus();
  if (cpus.size() < 2) {
    WARN("one CPU: nothing to place");
    return;
  }
  // Two CPUs, whatever the machine has: launch runs under a taskset of two of ours.
  const std::vector<int> two{cpus[0], cpus[1]};
  const auto taskset = "taskset -c " + std::to_string(two[0]) + "," + std::to_string(two[1]) + " ";
  for (int workers : {2, 3}) {
    INFO(workers << " work processes on 2 CPUs");
    temp_dir dir;
    start_launch(dir, "--mode async --workers " + std::to_string(workers)
                        + " --epochs 20 --eval-every 2000", taskset);
    std::vector<int> pids;
    for (int k = 0; k < workers; ++k)
      pids.push_back(worker_pid(dir, k));
    REQUIRE(wait_for(dir, "launch.out", "] epoch", 60)); // every process runs
    for (int k = 0; k < workers; ++k) {
      const auto allowed = psgd::allowed_cpus(pids[size_t(k)]);
      REQUIRE_FALSE(allowed.empty());
      if (workers == 2)
        CHECK(allowed == std::vector<int>{two[size_t(k)]});
      else
        CHECK(allowed == two);
    }
    REQUIRE(wait_for(dir, "launch.rc", "0", 90));
  }
}

TEST_CASE("a frozen worker process (SIGSTOP) is detected within twice the connection "
          "timeout",
          "[network]") {
  temp_dir dir;
  start_launch(dir, "--mode sync --workers 2 --model mlp --epochs 3 --eval-every 300 "
                    "--heartbeat-ms 200 --connection-timeout-ms 1000");
  int victim = worker_pid(dir, 1);
  REQUIRE(wait_for(dir, "launch.out", "] epoch", 60)); // training runs
  REQUIRE(::kill(victim, SIGSTOP) == 0);
  auto stopped = std::chrono::steady_clock::now();
  bool seen = wait_for(dir, "launch.out", "left the quorum", 10);
  auto detected = std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped);
  ::kill(victim, SIGCONT);
  INFO(read_file(dir.file("launch.out")));
  REQUIRE(seen);
  CHECK(detected.count() <= 2.0 + 0.2); // 2x the connection timeout (+ this poll's slack)
  REQUIRE(wait_for(dir, "launch.rc", "0", 90));
  CHECK_THAT(read_file(dir.file("launch.out")), Catch::Contains("test accuracy"));
}

namespace {

/// Starts `psgd work --connect 127.0.0.1:PORT <args>` in the background: NAME.out (stdout
/// and stderr), NAME.pid (psgd's own pid, not a wrapper's), NAME.rc once it exits.
void start_work(const temp_dir& dir, const std::string& name, const std::string& port,
                const std::string& args) {
  auto cmd = "cd " + dir.path() + " && ((" + std::string{PSGD_BINARY} + " work --connect 127.0.0.1:"
             + port + " " + args + " > " + name + ".out 2>&1 & echo $! > " + name
             + ".pid; wait $!; echo $? > " + name + ".rc) &) ; for i in $(seq 1 100); do "
             + "test -s " + name + ".pid && break; sleep 0.02; done";
  REQUIRE(std::system(cmd.c_str()) == 0);
}

/// A loopback port nobody listens on now (the OS's pick, released at once).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// Waits (at most `seconds`) for the background process NAME (start_work) to exit: its exit
/// code, or -1 if it still runs.
int exit_code(const temp_dir& dir, const std::string& name, double seconds = 90) {
  if (!wait_for(dir, name + ".rc", "\n", seconds))
    return -1;
  return std::stoi(read_file(dir.file(name + ".rc")));
}

int pid_in(const temp_dir& dir, const std::string& file) {
  return std::stoi(read_file(dir.file(file)));
}

} // namespace

TEST_CASE("a work process killed at the join barrier is replaced: its worker id is handed out "
          "again",
          "[network]") {
  temp_dir dir;
  auto port = start_server(dir, "--mode sync --workers 2 --epochs 0.5 --eval-every 300 --port 0 "
                                "--out " + dir.file("run.jsonl"));
  start_work(dir, "first", port, "--workers 1");
  REQUIRE(wait_for(dir, "first.out", "worker 0 joined", 60));
  const int victim = pid_in(dir, "first.pid");
  REQUIRE(::kill(victim, SIGKILL) == 0);
  // Before, the dead worker counted as joined: the next process got id 1, training started
  // at once, and sync m=2 ran with one live worker.
  REQUIRE(wait_for(dir, "serve.err", "worker id 0 is free again", 30));
  start_work(dir, "second", port, "--workers 1");
  start_work(dir, "third", port, "--workers 1");
  const int second_rc = exit_code(dir, "second", 90);
  const int third_rc = exit_code(dir, "third", 90);
  wait_server(dir);
  INFO(read_file(dir.file("serve.err")) << read_file(dir.file("second.out"))
                                        << read_file(dir.file("third.out")));
  CHECK(second_rc == 0);
  CHECK(third_rc == 0);
  CHECK_THAT(read_file(dir.file("second.out")) + read_file(dir.file("third.out")),
             Catch::Contains("worker 0 joined") && Catch::Contains("worker 1 joined"));
  auto summary = last_record(dir.file("run.jsonl"));
  REQUIRE(summary["workers"].size() == 2);
  for (const auto& w : summary["workers"]) {
    CHECK_FALSE(w["lost"].get<bool>());
    CHECK(w["applied"] == summary["updates"]); // every round had both workers' gradients
  }
}

TEST_CASE("kill -9 of a work process mid-run: a new one takes over its worker id and goes on "
          "from its place",
          "[network]") {
  temp_dir dir;
  auto port = start_server(dir, "--mode sync --workers 2 --model mlp --epochs 3 --eval-every 300 "
                                "--port 0 --out " + dir.file("run.jsonl"));
  start_work(dir, "kept", port, "--workers 1");
  start_work(dir, "victim", port, "--workers 1");
  REQUIRE(wait_for(dir, "serve.err", "] epoch", 60)); // training runs
  REQUIRE(::kill(pid_in(dir, "victim.pid"), SIGKILL) == 0);
  // Before, its id stayed the dead node's: a new process was refused ("0 of 2 ids left").
  REQUIRE(wait_for(dir, "serve.err", "is free for another work process to take over", 30));
  start_work(dir, "successor", port, "--workers 1");
  const int successor_rc = exit_code(dir, "successor", 90);
  const int kept_rc = exit_code(dir, "kept", 90);
  wait_server(dir);
  const auto log = read_file(dir.file("serve.err"));
  INFO(log << read_file(dir.file("successor.out")));
  CHECK(successor_rc == 0);
  CHECK(kept_rc == 0);
  // Not "rejoined": that is a worker whose own process came back (see the SIGSTOP test).
  CHECK_THAT(log, Catch::Contains("was taken over by a new work process at update"));
  auto summary = last_record(dir.file("run.jsonl"));
  REQUIRE(summary["type"] == "summary");
  int rejoins = 0;
  for (const auto& w : summary["workers"]) {
    CHECK_FALSE(w["lost"].get<bool>());
    rejoins += w["rejoins"].get<int>();
    // The successor counted on from the victim's count (had it started from 0, its report
    // would say fewer computed than the server received: a negative loss).
    CHECK(w["lost_in_flight"].get<int64_t>() >= 0);
  }
  CHECK(rejoins == 1);
}

TEST_CASE("a work process started before its server waits for it", "[network]") {
  temp_dir dir;
  const auto port = std::to_string(free_port());
  start_work(dir, "early", port, "--workers 1 --request-timeout-ms 30000");
  REQUIRE(wait_for(dir, "early.out", "no server at 127.0.0.1:" + port + " yet", 30));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  start_server(dir, "--mode sync --workers 1 --epochs 0.2 --port " + port);
  const int early_rc = exit_code(dir, "early", 60);
  INFO(read_file(dir.file("early.out")));
  CHECK(early_rc == 0);
  CHECK_THAT(wait_server(dir), Catch::Contains("test accuracy"));
  // Ctrl-C while it waits: it stops at once, saying so.
  const auto nobody = std::to_string(free_port());
  start_work(dir, "waiting", nobody, "--workers 1 --request-timeout-ms 30000");
  REQUIRE(wait_for(dir, "waiting.out", "no server at 127.0.0.1:" + nobody + " yet", 30));
  REQUIRE(::kill(pid_in(dir, "waiting.pid"), SIGINT) == 0);
  CHECK(exit_code(dir, "waiting", 10) == 130);
  CHECK_THAT(read_file(dir.file("waiting.out")),
             Catch::Contains("psgd work: interrupted: before a server listened"));
}

TEST_CASE("SIGINT to a work process: its workers leave the run and the server's log says why",
          "[network]") {
  temp_dir dir;
  auto port = start_server(dir, "--mode sync --workers 2 --model mlp --epochs 3 --eval-every 300 "
                                "--port 0 --out " + dir.file("run.jsonl"));
  start_work(dir, "first", port, "--workers 1");
  REQUIRE(wait_for(dir, "first.out", "joined", 60));
  REQUIRE(::kill(pid_in(dir, "first.pid"), SIGINT) == 0); // at the join barrier
  const int first_rc = exit_code(dir, "first", 30);
  CHECK(first_rc == 130);
  CHECK_THAT(read_file(dir.file("first.out")), Catch::Contains("left (interrupted)"));
  REQUIRE(wait_for(dir, "serve.err", "is free again", 30));
  start_work(dir, "second", port, "--workers 1");
  start_work(dir, "third", port, "--workers 1");
  REQUIRE(wait_for(dir, "serve.err", "] epoch", 60)); // mid-run
  REQUIRE(::kill(pid_in(dir, "third.pid"), SIGINT) == 0);
  const int third_rc = exit_code(dir, "third", 30);
  const int second_rc = exit_code(dir, "second", 90);
  wait_server(dir);
  const auto log = read_file(dir.file("serve.err"));
  INFO(log << read_file(dir.file("third.out")));
  CHECK(third_rc == 130);
  CHECK(second_rc == 0);
  // Before, SIGINT killed the process at once: the server saw a lost link, nothing more.
  CHECK_THAT(log, Catch::Contains("left before training started: interrupted: psgd work (pid "));
  CHECK_THAT(log, Catch::Contains("left the quorum: interrupted: psgd work (pid "));
  auto summary = last_record(dir.file("run.jsonl"));
  REQUIRE(summary["type"] == "summary");
  int lost = 0;
  for (const auto& w : summary["workers"])
    lost += w["lost"].get<bool>();
  CHECK(lost == 1);
}

TEST_CASE("a server frozen longer than the connection timeout gets its workers back", "[network]") {
  temp_dir dir;
  auto port = start_server(dir, "--mode async --workers 2 --model mlp --epochs 3 --eval-every 300 "
                                "--port 0 --heartbeat-ms 200 --connection-timeout-ms 1000 --out "
                                + dir.file("run.jsonl"));
  start_work(dir, "work", port, "--workers 2");
  REQUIRE(wait_for(dir, "serve.err", "] epoch", 60)); // training runs
  // serve.pid is timeout's; psgd serve is its child.
  const int server = std::stoi(run_shell("pgrep -P " + read_file(dir.file("serve.pid"))).output);
  REQUIRE(::kill(server, SIGSTOP) == 0);
  REQUIRE(wait_for(dir, "work.out", "lost the server at", 10)); // the workers' side noticed
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  REQUIRE(::kill(server, SIGCONT) == 0);
  const int work_rc = exit_code(dir, "work", 90);
  wait_server(dir);
  const auto log = read_file(dir.file("serve.err"));
  INFO(log << read_file(dir.file("work.out")));
  // Before, they were refused ("worker id 0 is unknown or taken") and the run failed.
  CHECK(work_rc == 0);
  CHECK_THAT(log, Catch::Contains("worker 0 rejoined at update")
                    && Catch::Contains("worker 1 rejoined at update"));
  auto summary = last_record(dir.file("run.jsonl"));
  REQUIRE(summary["type"] == "summary");
  CHECK(summary["updates"].get<int64_t>() == 5625);
  for (const auto& w : summary["workers"]) {
    CHECK_FALSE(w["lost"].get<bool>());
    CHECK(w["rejoins"].get<int>() == 1);
  }
}

TEST_CASE("kill -9 of the server process and a restart with resume: the workers reconnect "
          "and training completes",
          "[network]") {
  struct kill_case {
    std::string run;
    std::string updates;
    bool exact;  ///< sync: the result of the run without the kill
  };
  for (const auto& c : {kill_case{"--mode async --workers 2 --model mlp --epochs 6", "11250", false},
                        kill_case{"--mode sync --workers 2 --epochs 8", "7500", true}}) {
    INFO(c.run);
    temp_dir dir;
    const std::string run = c.run + " --eval-every 300 --checkpoint " + dir.file("run.ckpt")
                            + " --checkpoint-every 200";
    auto port = start_server(dir, run + " --port 0");
    auto work_cmd = "cd " + dir.path() + " && (timeout 120 " + std::string{PSGD_BINARY}
                    + " work --connect 127.0.0.1:" + port
                    + " --workers 2 > work.out 2>&1; echo $? > work.rc) & true";
    REQUIRE(std::system(work_cmd.c_str()) == 0);
    REQUIRE(wait_for(dir, "serve.err", "] epoch", 60)); // training runs
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto pid = std::stoi(read_file(dir.file("serve.pid")));
    // `timeout` runs psgd as its child: kill them both, as a crash of the machine would.
    std::system(("pkill -9 -P " + std::to_string(pid) + "; kill -9 " + std::to_string(pid))
                  .c_str());
    INFO(read_file(dir.file("serve.err")));
    REQUIRE(std::filesystem::exists(dir.file("run.ckpt")));
    auto restart = "cd " + dir.path() + " && (timeout 120 " + std::string{PSGD_BINARY}
                   + " serve " + run + " --port " + port + " --resume " + dir.file("run.ckpt")
                   + " > serve2.out 2> serve2.err; echo $? > serve2.rc) & true";
    REQUIRE(std::system(restart.c_str()) == 0);
    bool work_done = wait_for(dir, "work.rc", "\n", 90);
    bool serve_done = work_done && wait_for(dir, "serve2.rc", "\n", 90);
    INFO("work: " << read_file(dir.file("work.out")) << "\nserve2: "
                  << read_file(dir.file("serve2.err")));
    REQUIRE(work_done);
    REQUIRE(serve_done);
    CHECK(read_file(dir.file("work.rc")) == "0\n");
    CHECK(read_file(dir.file("serve2.rc")) == "0\n");
    CHECK_THAT(read_file(dir.file("serve2.err")), Catch::Contains("rejoined"));
    auto out = read_file(dir.file("serve2.out"));
    CHECK_THAT(out, Catch::Contains(c.updates + " updates"));
    CHECK(accuracy_in(out) >= 0.80);
    if (c.exact) {
      // The work processes went back to the checkpoint's sample positions: the rolled-back
      // updates were trained again on the same minibatches (before, on their next ones).
      auto clean = run_psgd("train " + c.run + " --quiet");
      auto tail = [](const std::string& line) { return line.substr(line.find("test accuracy")); };
      CHECK(tail(lines_of(out).back()) == tail(lines_of(clean.output).back()));
    }
  }
}

TEST_CASE("psgd serve with a join event: a psgd work takes the opened id, and after a kill -9 "
          "and --resume the joiner rejoins with the others",
          "[network]") {
  temp_dir dir;
  {
    std::ofstream f{dir.file("join.json")};
    f << R"({"events": [{"kind": "join", "at": {"updates": 300}, "count": 1}]})";
  }
  const std::string run = "--mode async --workers 2 --model mlp --epochs 6 --eval-every 300 "
                          "--checkpoint " + dir.file("run.ckpt") + " --checkpoint-every 200 "
                          "--scenario " + dir.file("join.json");
  auto port = start_server(dir, run + " --port 0");
  start_work(dir, "first", port, "--workers 2");
  REQUIRE(wait_for(dir, "serve.err", "1 new worker id(s) open: psgd work --connect", 60));
  start_work(dir, "joiner", port, "--workers 1");
  REQUIRE(wait_for(dir, "serve.err", "worker 2 joined at update", 60));
  REQUIRE(wait_for(dir, "serve.err", "] epoch", 60)); // a checkpoint with worker 2 in it
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto pid = std::stoi(read_file(dir.file("serve.pid")));
  std::system(("pkill -9 -P " + std::to_string(pid) + "; kill -9 " + std::to_string(pid)).c_str());
  auto restart = "cd " + dir.path() + " && (timeout 120 " + std::string{PSGD_BINARY} + " serve "
                 + run + " --port " + port + " --resume " + dir.file("run.ckpt") + " --out "
                 + dir.file("run.jsonl") + " > serve2.out 2> serve2.err; echo $? > serve2.rc) & true";
  REQUIRE(std::system(restart.c_str()) == 0);
  const int first_rc = exit_code(dir, "first", 90);
  const int joiner_rc = exit_code(dir, "joiner", 90);
  REQUIRE(wait_for(dir, "serve2.rc", "\n", 90));
  const auto log = read_file(dir.file("serve2.err"));
  INFO(read_file(dir.file("serve.err")) << log << read_file(dir.file("joiner.out")));
  CHECK(first_rc == 0);
  CHECK(joiner_rc == 0);
  CHECK(read_file(dir.file("serve2.rc")) == "0\n");
  // Expected back with the run's own workers (before, its id was unknown to the resumed
  // server); the join event, before the checkpoint, does not fire again.
  CHECK_THAT(log, Catch::Contains("3 worker(s) rejoined")
                    && Catch::Contains("injected event 0: join 1 new worker(s) at update 300 "
                                       "happened before the checkpoint")
                    && !Catch::Contains("new worker id(s) open"));
  CHECK_THAT(read_file(dir.file("joiner.out")), Catch::Contains("worker 2 rejoined"));
  auto summary = last_record(dir.file("run.jsonl"));
  REQUIRE(summary["workers"].size() == 3);
  for (const auto& w : summary["workers"])
    CHECK(w["lost"] == false);
}

TEST_CASE("a work process does not rejoin another run that took its server's port",
          "[network]") {
  struct other_run {
    std::string settings;
    std::string difference;
  };
  // Another model; and the same settings started afresh (not --resume): before run ids the
  // workers joined it with their counters and sample positions of the old run.
  for (const auto& other : {other_run{"--model mlp", "model mlp, was softmax"},
                            other_run{"--epochs 8", "run id "}}) {
    INFO(other.settings);
    temp_dir dir;
    auto port = start_server(dir, "--mode sync --workers 2 --epochs 8 --eval-every 300 --port 0");
    auto work_cmd = "cd " + dir.path() + " && (timeout 120 " + std::string{PSGD_BINARY}
                    + " work --connect 127.0.0.1:" + port
                    + " --workers 2 > work.out 2>&1; echo $? > work.rc) & true";
    REQUIRE(std::system(work_cmd.c_str()) == 0);
    REQUIRE(wait_for(dir, "serve.err", "] epoch", 60));
    auto pid = std::stoi(read_file(dir.file("serve.pid")));
    std::system(("pkill -9 -P " + std::to_string(pid) + "; kill -9 " + std::to_string(pid)).c_str());
    // A fresh serve on the same port: before, the workers joined another model's run and
    // their gradients were refused as the wrong length.
    auto next = "cd " + dir.path() + " && (timeout 60 " + std::string{PSGD_BINARY}
                + " serve --mode sync --workers 2 " + other.settings + " --port " + port
                + " --request-timeout-ms 5000 > serve2.out 2> serve2.err; echo $? > serve2.rc) "
                  "& true";
    REQUIRE(std::system(next.c_str()) == 0);
    REQUIRE(wait_for(dir, "work.rc", "\n", 90));
    const auto work = read_file(dir.file("work.out"));
    INFO(work);
    CHECK(read_file(dir.file("work.rc")) == "2\n");
    CHECK_THAT(work, Catch::Contains("lost the server at")
                       && Catch::Contains("runs another run (" + other.difference));
    REQUIRE(wait_for(dir, "serve2.rc", "\n", 60)); // no worker joins it: it stops by itself
  }
}

TEST_CASE("a sync server whose every worker died stops with an error, it does not wait for "
          "ever",
          "[network]") {
  temp_dir dir;
  auto serve_cmd = "cd " + dir.path() + " && (timeout 120 " + std::string{PSGD_BINARY}
                   + " serve --mode sync --workers 2 --model mlp --epochs 20 --eval-every 300"
                     " --request-timeout-ms 2000 --port 0 --out run.jsonl > serve.out 2> serve.err;"
                     " echo $? > serve.rc) & true";
  REQUIRE(std::system(serve_cmd.c_str()) == 0);
  REQUIRE(wait_for(dir, "serve.err", "listening on 127.0.0.1:", 20));
  auto err = read_file(dir.file("serve.err"));
  auto at = err.find("127.0.0.1:") + 10;
  const auto port = err.substr(at, err.find_first_not_of("0123456789", at) - at);
  auto work_cmd = "cd " + dir.path() + " && (" + std::string{PSGD_BINARY}
                  + " work --connect 127.0.0.1:" + port
                  + " --workers 2 > work.out 2>&1 & echo $! > work.pid) && true";
  REQUIRE(std::system(work_cmd.c_str()) == 0);
  REQUIRE(wait_for(dir, "serve.err", "] epoch", 60)); // training runs
  REQUIRE(::kill(std::stoi(read_file(dir.file("work.pid"))), SIGKILL) == 0);
  auto killed_at = std::chrono::steady_clock::now();
  // Lost at once (the connection closes), then 2 s for a worker to join.
  bool stopped = wait_for(dir, "serve.rc", "\n", 30);
  const double took =
    std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  err = read_file(dir.file("serve.err"));
  INFO(err);
  REQUIRE(stopped);
  CHECK(read_file(dir.file("serve.rc")) != "0\n");
  CHECK(took < 15);
  CHECK_THAT(err, Catch::Contains("every worker is gone: stopping in 2000 ms unless one joins"));
  CHECK_THAT(err, Catch::Contains("every worker was lost and none joined within 2000 ms"));
  // --out ends with why, not with its last evaluation as if the run were still going.
  auto last = last_record(dir.file("run.jsonl"));
  CHECK(last["type"] == "failure");
  CHECK_THAT(last["error"].get<std::string>(), Catch::Contains("every worker was lost"));
  CHECK(last["run_id"].get<std::string>().size() == 16);
  auto report = run_psgd("report " + dir.file("run.jsonl") + " --out " + dir.file("page"));
  INFO(report.output);
  CHECK_THAT(report.output, Catch::Contains("the run failed (") && Catch::Contains("every worker was lost"));
}

namespace {

/// Throwaway certificates (scripts/make-certs) in `dir`; the TLS options of the good node.
std::string make_certs(const temp_dir& dir) {
  auto cmd = std::string{PSGD_SOURCE_DIR} + "/scripts/make-certs " + dir.path() + " > /dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  return " --tls-cert " + dir.file("node.pem") + " --tls-key " + dir.file("node.key")
         + " --tls-ca " + dir.file("ca.pem");
}

} // namespace

TEST_CASE("mutual TLS: certified nodes train, strangers are refused", "[network]") {
  temp_dir certs;
  auto tls = make_certs(certs);
  SECTION("launch over TLS trains") {
    auto r = run_psgd("launch --mode async --workers 2 --epochs 0.5 --quiet" + tls);
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.output, Catch::Contains("mutual TLS") && Catch::Contains("test accuracy"));
  }
  SECTION("an encrypted key opened with --tls-passphrase-file trains") {
    auto r = run_psgd("launch --mode async --workers 2 --epochs 0.5 --quiet --tls-cert "
                      + certs.file("node.pem") + " --tls-key " + certs.file("node-encrypted.key")
                      + " --tls-passphrase-file " + certs.file("node.pass") + " --tls-ca "
                      + certs.file("ca.pem"));
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.output, Catch::Contains("mutual TLS") && Catch::Contains("test accuracy"));
  }
  SECTION("a plain client and a client of another CA are refused") {
    temp_dir dir;
    auto port = start_server(dir, "--mode async --workers 1 --epochs 0.2 --port 0 --quiet" + tls);
    auto plain = run_psgd("work --connect 127.0.0.1:" + port + " --request-timeout-ms 3000");
    INFO(plain.output);
    CHECK(plain.exit_code == 1);
    CHECK_THAT(plain.output, Catch::Contains("cannot connect"));
    auto stranger = run_psgd("work --connect 127.0.0.1:" + port
                             + " --request-timeout-ms 3000 --tls-cert " + certs.file("other.pem")
                             + " --tls-key " + certs.file("other.key") + " --tls-ca "
                             + certs.file("other-ca.pem"));
    INFO(stranger.output);
    CHECK(stranger.exit_code == 1);
    CHECK_THAT(stranger.output, Catch::Contains("cannot connect"));
    // The server is unharmed: a certified worker still gets in and the run completes.
    auto good = run_psgd("work --connect 127.0.0.1:" + port + " --workers 1" + tls);
    CHECK(good.exit_code == 0);
    CHECK_THAT(wait_server(dir), Catch::Contains("test accuracy"));
  }
}

TEST_CASE("a server that no worker joins stops after the request timeout; one that cannot "
          "listen is refused", "[network]") {
  temp_dir dir;
  auto port = start_server(dir, "--mode async --port 0 --epochs 0.1 --request-timeout-ms 1500");
  auto taken = run_psgd("serve --mode async --epochs 0.1 --port " + port);
  INFO(taken.output);
  CHECK(taken.exit_code == 2);
  CHECK_THAT(taken.output, Catch::Contains("cannot listen on 127.0.0.1:" + port));
  wait_server(dir);
  auto alone = read_file(dir.file("serve.err"));
  INFO(alone);
  CHECK_THAT(alone, Catch::Contains("no worker joined within 1500 ms"));
}

TEST_CASE("TLS options are checked before anything starts", "[network]") {
  temp_dir certs;
  make_certs(certs);
  auto anonymous = run_psgd("serve --mode async --tls-ca " + certs.file("ca.pem"));
  CHECK(anonymous.exit_code == 2);
  CHECK_THAT(anonymous.output, Catch::Contains("anonymous TLS"));
  auto missing = run_psgd("serve --mode async --tls-cert /nonexistent.pem --tls-key "
                          + certs.file("node.key") + " --tls-ca " + certs.file("ca.pem"));
  CHECK(missing.exit_code == 2);
  CHECK_THAT(missing.output, Catch::Contains("/nonexistent.pem"));
  auto mismatch = run_psgd("serve --mode async --tls-cert " + certs.file("node.pem")
                           + " --tls-key " + certs.file("other.key") + " --tls-ca "
                           + certs.file("ca.pem"));
  CHECK(mismatch.exit_code == 2);
  CHECK_THAT(mismatch.output, Catch::Contains("does not belong"));
  // An encrypted key: without its passphrase, with a wrong one, and a passphrase alone.
  const auto encrypted = " --tls-cert " + certs.file("node.pem") + " --tls-key "
                         + certs.file("node-encrypted.key") + " --tls-ca " + certs.file("ca.pem");
  auto locked = run_psgd("serve --mode async" + encrypted);
  CHECK(locked.exit_code == 2);
  CHECK_THAT(locked.output, Catch::Contains("an encrypted one needs --tls-passphrase-file"));
  {
    std::ofstream wrong{certs.file("wrong.pass")};
    wrong << "not the passphrase\n";
  }
  auto wrong = run_psgd("work --connect 127.0.0.1:1" + encrypted + " --tls-passphrase-file "
                        + certs.file("wrong.pass"));
  CHECK(wrong.exit_code == 2);
  CHECK_THAT(wrong.output, Catch::Contains("that the passphrase in --tls-passphrase-file"));
  auto alone = run_psgd("serve --mode async --tls-passphrase-file " + certs.file("node.pass"));
  CHECK(alone.exit_code == 2);
  CHECK_THAT(alone.output, Catch::Contains("give the key too"));
  // A certificate the CA did not sign fails every handshake once the processes run (launch's
  // work processes all died, and launch waited for ever): refused first.
  auto stranger = run_psgd("launch --mode async --workers 2 --tls-cert " + certs.file("other.pem")
                           + " --tls-key " + certs.file("other.key") + " --tls-ca "
                           + certs.file("ca.pem"));
  CHECK(stranger.exit_code == 2);
  CHECK_THAT(stranger.output, Catch::Contains("not accepted by --tls-ca"));
  // TLS may listen beyond loopback: the serve starts listening (and is stopped by timeout).
  auto wide = psgd::testing::command_result{};
  {
    auto cmd = "timeout 3 " + std::string{PSGD_BINARY} + " serve --mode async --bind 0.0.0.0"
               + " --port 0 --quiet --tls-cert " + certs.file("node.pem") + " --tls-key "
               + certs.file("node.key") + " --tls-ca " + certs.file("ca.pem") + " 2>&1";
    FILE* pipe = popen(cmd.c_str(), "r");
    REQUIRE(pipe != nullptr);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, pipe)) > 0)
      wide.output.append(buf, n);
    pclose(pipe);
  }
  CHECK_THAT(wide.output, Catch::Contains("listening on 0.0.0.0")
                            && !Catch::Contains("--insecure"));
}

namespace {

/// Resident memory of a process, in KiB (0 if it is gone).
long rss_kib(int pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string key;
  long value = 0;
  while (in >> key) {
    if (key == "VmRSS:") {
      in >> value;
      return value;
    }
    in.ignore(1 << 12, '\n');
  }
  return 0;
}

/// Opens a TCP connection to 127.0.0.1:port, writes `bytes`, waits `hold_ms`, closes.
void send_raw(int port, const std::vector<unsigned char>& bytes, int hold_ms) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  CHECK(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) >= 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));
  ::close(fd);
}

} // namespace

TEST_CASE("a TLS server shrugs off random bytes and a header claiming 4 GiB", "[network]") {
  temp_dir certs;
  auto tls = make_certs(certs);
  temp_dir dir;
  auto port = start_server(dir, "--mode async --workers 1 --epochs 0.2 --port 0 --quiet" + tls);
  // serve.pid is `timeout`'s; psgd serve is its child.
  auto find = "pgrep -P " + std::to_string(std::stoi(read_file(dir.file("serve.pid"))))
              + " > " + dir.file("psgd.pid");
  REQUIRE(std::system(find.c_str()) == 0);
  int pid = std::stoi(read_file(dir.file("psgd.pid")));
  long before = rss_kib(pid);
  REQUIRE(before > 0);
  std::vector<unsigned char> noise(64 * 1024);
  uint64_t x = 42;
  for (auto& b : noise) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    b = static_cast<unsigned char>(x >> 56);
  }
  send_raw(std::stoi(port), noise, 100);
  // A BASP header (CAF 0.17: 32 bytes, payload length at offset 4) claiming 4 GiB.
  std::vector<unsigned char> header(32, 0);
  header[0] = 1; // client handshake
  for (int i = 4; i < 8; ++i)
    header[i] = 0xff;
  send_raw(std::stoi(port), header, 500);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  long after = rss_kib(pid);
  INFO("RSS before " << before << " KiB, after " << after << " KiB");
  REQUIRE(after > 0); // still alive
  CHECK(after - before <= 64 * 1024);
  // A certified worker still gets in at once, and the run completes.
  auto started = std::chrono::steady_clock::now();
  auto good = run_psgd("work --connect 127.0.0.1:" + port + " --workers 1" + tls);
  auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  INFO(good.output);
  CHECK(good.exit_code == 0);
  CHECK(took < 10); // data loading and 0.2 epochs included; no connection retries
  CHECK_THAT(wait_server(dir), Catch::Contains("test accuracy"));
}

namespace {

/// A facade that takes every request and answers none: a server that hangs after the
/// handshake. The promises are kept so that no request is answered with an error either.
psgd::facade_actor::behavior_type
silent_facade(psgd::facade_actor::stateful_pointer<std::vector<caf::response_promise>> self) {
  auto keep = [self] {
    self->state.push_back(self->make_response_promise());
  };
  return {
    [=](psgd::join_atom, int32_t) -> caf::result<psgd::snapshot> { keep(); return caf::delegated<psgd::snapshot>{}; },
    [=](psgd::push_atom, psgd::gradient&) -> caf::result<psgd::snapshot> { keep(); return caf::delegated<psgd::snapshot>{}; },
    [=](psgd::pull_atom, int32_t) -> caf::result<psgd::snapshot> { keep(); return caf::delegated<psgd::snapshot>{}; },
    [=](psgd::report_atom, const psgd::worker_report&) {},
    [=](psgd::hello_atom, psgd::hello_request&) -> caf::result<psgd::run_spec> { keep(); return caf::delegated<psgd::run_spec>{}; },
    [=](psgd::open_atom, int32_t) -> caf::result<int32_t> { keep(); return caf::delegated<int32_t>{}; },
    [=](psgd::flush_atom) -> caf::result<psgd::flush_atom> { keep(); return caf::delegated<psgd::flush_atom>{}; },
  };
}

} // namespace

TEST_CASE("psgd work stops at once on SIGTERM while its hello waits for an answer",
          "[network]") {
  psgd::psgd_config cfg;
  cfg.enable_network(1);
  caf::actor_system sys{cfg};
  auto front = sys.spawn(silent_facade);
  auto port = sys.middleman().publish(front, 0, "127.0.0.1", true);
  REQUIRE(port);
  temp_dir dir;
  // Without the interrupt check the hello waited out its request timeout (60 s here).
  start_work(dir, "work", std::to_string(*port), "--workers 1 --request-timeout-ms 60000");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500)); // connected, hello sent
  CHECK(exit_code(dir, "work", 0) == -1);                         // still waiting
  const auto stopped_at = std::chrono::steady_clock::now();
  ::kill(pid_in(dir, "work.pid"), SIGTERM);
  const int rc = exit_code(dir, "work", 10);
  const double took =
    std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped_at).count();
  const auto out = read_file(dir.file("work.out"));
  INFO(out << "stopped after " << took << " s");
  CHECK(rc != -1);
  CHECK(rc != 0);
  CHECK(took < 3);
  CHECK_THAT(out, Catch::Contains("waiting for the server's answer to this process's hello"));
  caf::anon_send_exit(front, caf::exit_reason::user_shutdown);
}

TEST_CASE("a peer cannot use a worker id it was not handed", "[network]") {
  temp_dir dir;
  auto port = start_server(dir, "--mode async --workers 2 --epochs 0.2 --port 0 --quiet");
  psgd::psgd_config cfg;
  cfg.enable_network(1);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto front = sys.middleman().remote_actor<psgd::facade_actor>("127.0.0.1",
                                                                static_cast<uint16_t>(std::stoi(port)));
  REQUIRE(front);
  psgd::hello_request ask;
  ask.version = psgd::protocol_version;
  auto data = fashion_mnist();
  ask.fingerprint = psgd::data::fingerprint(data->train);
  ask.wanted = 1;
  psgd::run_spec spec;
  self->request(*front, std::chrono::seconds(10), psgd::hello_atom::value, ask)
    .receive([&](psgd::run_spec& s) { spec = s; }, [&](caf::error& e) { FAIL(sys.render(e)); });
  REQUIRE(spec.ids == std::vector<int32_t>{0});
  auto expect_refused = [&](auto&&... request) {
    bool refused = false;
    self->request(*front, std::chrono::seconds(10), request...)
      .receive([&](psgd::snapshot&) {},
               [&](caf::error& e) {
                 refused = sys.render(e).find("not handed to this node") != std::string::npos;
               });
    CHECK(refused);
  };
  expect_refused(psgd::join_atom::value, int32_t{1}); // someone else's id
  // Nor open ids beyond the run's (only the serving process's join event does).
  bool open_refused = false;
  self->request(*front, std::chrono::seconds(10), psgd::open_atom::value, int32_t{5})
    .receive([&](int32_t) {},
             [&](caf::error& e) {
               open_refused = sys.render(e).find("only the serving process opens worker ids")
                              != std::string::npos;
             });
  CHECK(open_refused);
  psgd::gradient g;
  g.worker = 1;
  expect_refused(psgd::push_atom::value, g);
  // Its own id is fine (the server holds the join until the second worker comes: no wait).
  self->send(*front, psgd::join_atom::value, int32_t{0});
  auto work = run_psgd("work --connect 127.0.0.1:" + port + " --workers 1");
  INFO(work.output);
  CHECK(work.exit_code == 0);
  self->send_exit(*front, caf::exit_reason::user_shutdown); // a remote exit: ignored
  CHECK_THAT(wait_server(dir), Catch::Contains("test accuracy"));
}

namespace {

/// A peer in this test process: says hello to the serve at `port` for one worker id, joins
/// with it if `join`, and goes away (its actor system ends) without training.
void hello_and_leave(const std::string& port, bool join) {
  psgd::psgd_config cfg;
  cfg.enable_network(1);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto front = sys.middleman().remote_actor<psgd::facade_actor>(
    "127.0.0.1", static_cast<uint16_t>(std::stoi(port)));
  REQUIRE(front);
  psgd::hello_request ask;
  ask.version = psgd::protocol_version;
  ask.fingerprint = psgd::data::fingerprint(fashion_mnist()->train);
  ask.wanted = 1;
  std::vector<int32_t> ids;
  self->request(*front, std::chrono::seconds(10), psgd::hello_atom::value, ask)
    .receive([&](psgd::run_spec& s) { ids = s.ids; },
             [&](caf::error& e) { FAIL(sys.render(e)); });
  REQUIRE(ids == std::vector<int32_t>{0});
  if (join) // held at the barrier: no answer comes
    self->send(*front, psgd::join_atom::value, ids[0]);
}

} // namespace

TEST_CASE("ids handed to a process that went away before it joined go back", "[network]") {
  temp_dir dir;
  auto port = start_server(dir, "--mode sync --workers 2 --epochs 0.2 --port 0");
  // Gone without a join: a work process killed between its hello and its workers' joins.
  hello_and_leave(port, false);
  REQUIRE(wait_for(dir, "serve.err", "worker id 0 is free again", 30));
  // Before, id 0 stayed the dead node's: "2 worker(s) asked, 1 of 2 ids left".
  auto work = run_psgd("work --connect 127.0.0.1:" + port + " --workers 2");
  INFO(work.output << read_file(dir.file("serve.err")));
  CHECK(work.exit_code == 0);
  CHECK_THAT(wait_server(dir), Catch::Contains("test accuracy"));
}

TEST_CASE("a server whose only joined worker left before training stops after the request "
          "timeout, saying so",
          "[network]") {
  temp_dir dir;
  auto port = start_server(dir, "--mode sync --workers 2 --epochs 0.2 --port 0 "
                                "--request-timeout-ms 2000");
  hello_and_leave(port, true);
  REQUIRE(wait_for(dir, "serve.err", "worker id 0 is free again", 30));
  wait_server(dir);
  const auto log = read_file(dir.file("serve.err"));
  INFO(log);
  // Before, it started training with nobody ("only 0 of 2 worker(s) joined") and stopped a
  // request timeout later ("every worker is gone").
  CHECK_THAT(log, Catch::Contains("every worker that joined left before training started, and "
                                  "none took its place within 2000 ms"));
  CHECK_THAT(log, !Catch::Contains("training starts"));
}

TEST_CASE("a scenario's faults reach worker processes: a lossy link and a slow worker",
          "[network][network-faults]") {
  temp_dir dir;
  {
    std::ofstream s{dir.file("faults.json")};
    s << R"({"description": "across processes", "events": [
      {"kind": "net_drop", "workers": [1], "probability": 0.3, "detect_ms": 2},
      {"kind": "slow", "workers": [0], "delay": {"dist": "constant", "ms": 1},
       "from": {"updates": 50}, "to": {"updates": 150}}]})";
  }
  auto r = run_psgd("launch --mode sync --workers 2 --max-updates 300 --epochs 0 --quiet "
                    "--scenario " + dir.file("faults.json") + " --out " + dir.file("run.jsonl"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("injected event 0: drop each gradient")
                         && Catch::Contains("injected event 1: slow")
                         && Catch::Contains("injected event 1 ended"));
  auto summary = last_record(dir.file("run.jsonl"));
  CHECK(summary["transport"] == "network");
  const auto& w = summary["workers"];
  REQUIRE(w.size() == 2);
  for (const auto& x : w) {
    INFO(x.dump());
    const int64_t lost = x["lost_in_network"];
    CHECK(x["lost_in_flight"] == 0);
    CHECK(x["computed"].get<int64_t>()
          == x["applied"].get<int64_t>() + x["dropped"].get<int64_t>()
               + x["after_stop"].get<int64_t>() + lost);
    if (x["worker"] == 1) { // binomial(~430, 0.3)
      CHECK(lost > x["computed"].get<int64_t>() / 10);
      CHECK(lost < x["computed"].get<int64_t>() / 2);
    } else {
      CHECK(lost == 0);
    }
  }
}

TEST_CASE("a peer that kills the published facade: a new one takes the port and training "
          "completes",
          "[network]") {
  temp_dir dir;
  auto port = start_server(dir, "--mode sync --workers 2 --model mlp --epochs 6 --port 0");
  auto work = "cd " + dir.path() + " && (timeout 120 " + std::string{PSGD_BINARY}
              + " work --connect 127.0.0.1:" + port + " --workers 2 > work.out 2>&1;"
              + " echo $? > work.rc) & true";
  REQUIRE(std::system(work.c_str()) == 0);
  REQUIRE(wait_for(dir, "serve.err", "] epoch", 60)); // training runs
  psgd::psgd_config cfg;
  cfg.enable_network(1);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  // exit_reason::kill cannot be trapped in CAF 0.17: the facade dies, the driver replaces it.
  for (int k = 0; k < 2; ++k) {
    auto front = sys.middleman().remote_actor<psgd::facade_actor>(
      "127.0.0.1", static_cast<uint16_t>(std::stoi(port)));
    REQUIRE(front);
    self->send_exit(*front, caf::exit_reason::kill);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  auto out = wait_server(dir);
  auto err = read_file(dir.file("serve.err"));
  INFO(out << err << read_file(dir.file("work.out")));
  CHECK_THAT(err, Catch::Contains("the published facade was stopped (exit_reason(kill)); a new "
                                  "one listens on port " + port));
  CHECK_THAT(out, Catch::Contains("test accuracy"));
  REQUIRE(wait_for(dir, "work.rc", "0", 30));
  CHECK_THAT(read_file(dir.file("work.out")), Catch::Contains("worker 0: finished")
                                                && Catch::Contains("worker 1: finished"));
}
