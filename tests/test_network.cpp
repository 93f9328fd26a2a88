// psgd serve and psgd work as real processes on loopback.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "tests/test_helpers.hpp"

using namespace psgd::testing;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

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

TEST_CASE("serve and work train across two processes", "[network]") {
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
  auto bad = run_psgd("work --connect nowhere");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("HOST:PORT"));
  auto closed = run_psgd("work --connect 127.0.0.1:1 --request-timeout-ms 3000");
  CHECK(closed.exit_code == 1);
  CHECK_THAT(closed.output, Catch::Contains("cannot connect to 127.0.0.1:1"));
}
