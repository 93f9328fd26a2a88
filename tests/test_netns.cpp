// psgd serve and psgd work on separate network addresses: the server in the host namespace,
// each worker process in a network namespace of its own, joined to the server by a veth pair
// on a host bridge. Unlike loopback, a link can be cut here without killing a process, so the
// test sees whether the heartbeats alone detect a lost worker.
// Creating namespaces needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and the ip tool: where they
// are missing (an unprivileged container, CI) each test case WARNs "... skipped: <why>" and
// passes.
#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/test_helpers.hpp"

extern char** environ;

using namespace psgd::testing;

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

/// Why namespaces cannot be made here ("" if they may be).
std::string why_no_namespaces() {
  if (::geteuid() != 0)
    return "not root (ip netns and veth links need CAP_SYS_ADMIN and CAP_NET_ADMIN)";
  if (run_shell("command -v ip").exit_code != 0)
    return "the ip tool (iproute2) is not installed";
  return {};
}

bool process_alive(int pid) {
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

/// Deletes the namespaces (psgd-PID-x) and links (pnPIDx) of test processes that are gone:
/// a crashed or killed run cannot clean up, and its subnet or names may collide with ours.
void remove_stale_labs() {
  std::set<int> dead;
  auto collect = [&](const std::string& listing, const std::regex& pattern) {
    for (std::sregex_iterator i{listing.begin(), listing.end(), pattern}, end; i != end; ++i) {
      int pid = std::stoi((*i)[1].str());
      if (pid != ::getpid() && !process_alive(pid))
        dead.insert(pid);
    }
  };
  collect(run_shell("ip netns list").output, std::regex{R"(psgd-(\d+)-[a-z])"});
  collect(run_shell("ip -o link show").output, std::regex{R"(\d+: pn(\d+)[a-z]+[@:])"});
  for (int pid : dead) {
    auto p = std::to_string(pid);
    run_shell("for ns in $(ip netns list | grep -o 'psgd-" + p + "-[a-z]*'); do ip netns del $ns; "
          "done; for l in $(ip -o link show | grep -o 'pn" + p + "[a-z]*'); do ip link del $l; "
          "done");
  }
}

/// A host bridge at 10.A.B.1/24 and `count` network namespaces, namespace k joined to the
/// bridge by a veth pair (pnPIDa, pnPIDb, ... on the host side), at 10.A.B.(2 + k). The names
/// and the subnet come from this process's pid, so that concurrent test processes (ctest -j,
/// two suites at once) do not meet. Everything is deleted on destruction, also after a failed
/// REQUIRE.
class netns_lab {
public:
  explicit netns_lab(int count) : count_(count), pid_(std::to_string(::getpid())) {}
  netns_lab(const netns_lab&) = delete;
  netns_lab& operator=(const netns_lab&) = delete;

  ~netns_lab() { tear_down(); }

  /// Builds the network; "" on success, else what failed (taken as "not permitted here").
  std::string set_up() {
    remove_stale_labs();
    tear_down(); // leftovers of a dead process that had our pid
    subnet_ = free_subnet();
    if (subnet_.empty())
      return "no free 10.x.y.0/24 subnet";
    // ip netns add fails first in an unprivileged container (no CAP_SYS_ADMIN); without
    // CAP_NET_ADMIN alone, the bridge is the first to fail.
    for (int k = 0; k < count_; ++k)
      if (auto problem = run("ip netns add " + ns(k)); !problem.empty())
        return problem;
    if (auto problem = run("ip link add " + bridge() + " type bridge && ip addr add "
                           + host_address() + "/24 dev " + bridge() + " && ip link set "
                           + bridge() + " up");
        !problem.empty())
      return problem;
    for (int k = 0; k < count_; ++k) {
      // Inside the namespace the peer is eth0; lo comes up too (CAF may use it).
      auto in_ns = "ip -n " + ns(k) + " ";
      if (auto problem = run("ip link add " + host_link(k) + " type veth peer name eth0 netns "
                             + ns(k) + " && ip link set " + host_link(k) + " master " + bridge()
                             + " && ip link set " + host_link(k) + " up && " + in_ns
                             + "addr add " + address(k) + "/24 dev eth0 && " + in_ns
                             + "link set eth0 up && " + in_ns + "link set lo up");
          !problem.empty())
        return problem;
    }
    return {};
  }

  std::string host_address() const { return subnet_ + ".1"; }
  std::string address(int k) const { return subnet_ + "." + std::to_string(2 + k); }
  std::string ns(int k) const { return "psgd-" + pid_ + "-" + letter(k); }
  /// The host side of namespace k's veth pair (at most 15 characters: pn + 7 digits + a).
  std::string host_link(int k) const { return "pn" + pid_ + letter(k); }

  /// Takes namespace k's link down on the host side, as a pulled cable would.
  void cut(int k) const { set_link(k, "down"); }
  /// Brings it back up, as the cable plugged in again.
  void heal(int k) const { set_link(k, "up"); }

private:
  void set_link(int k, const std::string& state) const {
    auto r = run_shell("ip link set " + host_link(k) + " " + state);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
  }
  static std::string letter(int k) { return std::string(1, static_cast<char>('a' + k)); }
  std::string bridge() const { return "pn" + pid_ + "br"; }

  static std::string run(const std::string& cmd) {
    auto r = run_shell(cmd);
    return r.exit_code == 0 ? std::string{} : "`" + cmd + "` failed: " + r.output;
  }

  /// 10.(100 + pid % 100).(pid / 100 % 250), or the next one not on any host interface.
  std::string free_subnet() const {
    int pid = std::stoi(pid_);
    for (int i = 0; i < 250; ++i) {
      auto candidate = "10." + std::to_string(100 + pid % 100) + "."
                       + std::to_string((pid / 100 + i) % 250);
      if (run_shell("ip -4 -o addr show to " + candidate + ".0/24").output.empty()
          && run_shell("ip -4 route show to match " + candidate + ".1 | grep -v ^default")
               .output.empty())
        return candidate;
    }
    return {};
  }

  /// Deleting the host side of a veth pair deletes both ends.
  void tear_down() const {
    for (int k = 0; k < count_; ++k)
      run_shell("ip link del " + host_link(k));
    run_shell("ip link del " + bridge());
    for (int k = 0; k < count_; ++k)
      run_shell("ip netns del " + ns(k));
  }

  int count_;
  std::string pid_;
  std::string subnet_;
};

/// Commands run in the background, each under `timeout 120` (nothing outlives a crashed test
/// by long), with stdout and stderr in dir/NAME.out and dir/NAME.err. Whatever still runs is
/// killed on destruction.
class background {
public:
  explicit background(const temp_dir& dir) : dir_(dir) {}
  background(const background&) = delete;
  background& operator=(const background&) = delete;

  ~background() {
    for (auto& [name, pid] : running_) {
      ::kill(-pid, SIGKILL); // the group: timeout and the command it runs
      ::waitpid(pid, nullptr, 0);
    }
  }

  void start(const std::string& name, const std::string& command) {
    auto line = "exec timeout 120 " + command + " < /dev/null > " + out(name) + " 2> "
                + err(name);
    const char* argv[] = {"/bin/sh", "-c", line.c_str(), nullptr};
    // A process group of its own from the start (timeout would make one too, but only once
    // it runs): the destructor kills timeout and the command together, whenever it comes.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    pid_t pid = 0;
    int failed = posix_spawn(&pid, "/bin/sh", nullptr, &attr, const_cast<char**>(argv), environ);
    posix_spawnattr_destroy(&attr);
    REQUIRE(failed == 0);
    running_[name] = pid;
  }

  /// Waits (at most `seconds`) for `name` to exit; its exit code, or nothing if it still runs.
  std::optional<int> wait(const std::string& name, double seconds) {
    auto it = running_.find(name);
    REQUIRE(it != running_.end());
    auto start = clock_type::now();
    do {
      int status = 0;
      if (::waitpid(it->second, &status, WNOHANG) == it->second) {
        running_.erase(it);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (seconds_since(start) < seconds);
    return std::nullopt;
  }

  /// Waits (at most `seconds`) until dir/FILE contains `text`; true if it does.
  bool wait_for(const std::string& file, const std::string& text, double seconds) const {
    auto start = clock_type::now();
    do {
      if (read_file(dir_.file(file)).find(text) != std::string::npos)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (seconds_since(start) < seconds);
    return false;
  }

  std::string out(const std::string& name) const { return dir_.file(name + ".out"); }
  std::string err(const std::string& name) const { return dir_.file(name + ".err"); }
  std::string output(const std::string& name) const {
    return read_file(out(name)) + read_file(err(name));
  }

private:
  const temp_dir& dir_;
  std::map<std::string, pid_t> running_;
};

/// Starts `psgd serve <args>` bound to `host` (in namespace `ns` if one is named) and returns
/// the port it printed.
std::string start_server(background& procs, const std::string& host, const std::string& args,
                         const std::string& ns = "") {
  procs.start("serve", (ns.empty() ? "" : "ip netns exec " + ns + " ") + std::string{PSGD_BINARY}
                         + " serve --bind " + host + " --insecure --port 0 " + args);
  // Not the first "listening on": a warning line about the address comes before.
  bool listening = procs.wait_for("serve.err", "listening on " + host + ":", 30);
  auto err = read_file(procs.err("serve"));
  INFO(err);
  REQUIRE(listening);
  std::smatch m;
  REQUIRE(std::regex_search(err, m, std::regex{"listening on " + host + ":(\\d+)"}));
  return m[1].str();
}

/// Starts `psgd work` in namespace k of `lab` as NAME.
void start_worker(background& procs, const netns_lab& lab, int k, const std::string& name,
                  const std::string& args) {
  procs.start(name, "ip netns exec " + lab.ns(k) + " " + std::string{PSGD_BINARY}
                      + " work --workers 1 " + args);
}

double accuracy_in(const std::string& output) {
  auto at = output.find("test accuracy ");
  REQUIRE(at != std::string::npos);
  return std::stod(output.substr(at + 14, 6));
}

/// The worker id in "worker N: finished" (-1 if there is none).
int finished_id(const std::string& output) {
  std::smatch m;
  return std::regex_search(output, m, std::regex{R"(worker (\d+): finished)"})
           ? std::stoi(m[1].str())
           : -1;
}

/// Builds `lab`; false (and a WARN saying why the test is skipped) where namespaces cannot
/// be made here.
bool ready(netns_lab& lab) {
  auto why = why_no_namespaces();
  if (why.empty())
    why = lab.set_up();
  if (!why.empty())
    WARN("network namespace test skipped: " << why);
  return why.empty();
}

} // namespace

TEST_CASE("server and workers on separate addresses in network namespaces train to "
          "completion",
          "[network][netns]") {
  netns_lab lab{2};
  if (!ready(lab))
    return;
  temp_dir dir;
  background procs{dir};
  auto port = start_server(procs, lab.host_address(),
                           "--mode async --workers 2 --epochs 1 --lr 0.03 --quiet");
  // A non-loopback address without TLS is allowed, but not silently.
  CHECK_THAT(read_file(procs.err("serve")), Catch::Contains("WARNING"));
  for (int k = 0; k < 2; ++k)
    start_worker(procs, lab, k, "work" + std::to_string(k),
                 "--connect " + lab.host_address() + ":" + port);
  for (int k = 0; k < 2; ++k) {
    auto name = "work" + std::to_string(k);
    auto rc = procs.wait(name, 60);
    INFO(name << " in " << lab.ns(k) << " at " << lab.address(k) << ":\n"
              << procs.output(name));
    REQUIRE(rc);
    CHECK(*rc == 0);
    CHECK(finished_id(procs.output(name)) >= 0);
  }
  auto rc = procs.wait("serve", 30);
  auto out = read_file(procs.out("serve"));
  INFO(out << procs.output("serve"));
  REQUIRE(rc);
  CHECK(*rc == 0);
  CHECK(accuracy_in(out) >= 0.75);
}

/// A sync MLP run of `epochs` with heartbeats: the server on the host, the workers "kept"
/// (namespace 0) and "cut" (namespace 1). Returns once training runs. Sync: every round
/// waits for both workers, so the run cannot end before a cut worker is found lost; without
/// --quiet serve prints progress lines ("] epoch"). A cut worker retries for
/// `request_timeout_ms`.
void start_kept_and_cut(const netns_lab& lab, background& procs, const std::string& epochs,
                        const std::string& request_timeout_ms) {
  const std::string liveness = " --heartbeat-ms 200 --connection-timeout-ms 1000";
  auto port = start_server(procs, lab.host_address(),
                           "--mode sync --workers 2 --model mlp --epochs " + epochs
                             + " --eval-every 300" + liveness);
  const auto work_args = "--connect " + lab.host_address() + ":" + port + liveness
                         + " --request-timeout-ms " + request_timeout_ms;
  start_worker(procs, lab, 0, "kept", work_args);
  start_worker(procs, lab, 1, "cut", work_args);
  bool training = procs.wait_for("serve.err", "] epoch", 60); // mid-run, not during the joins
  INFO(procs.output("serve"));
  REQUIRE(training);
}

TEST_CASE("cutting a worker's link is detected", "[network][netns]") {
  netns_lab lab{2};
  if (!ready(lab))
    return;
  temp_dir dir;
  background procs{dir};
  start_kept_and_cut(lab, procs, "3", "3000"); // the cut worker gives up soon
  lab.cut(1);
  auto cut_at = clock_type::now();
  bool seen = procs.wait_for("serve.err", "left the quorum", 10);
  double detected = seconds_since(cut_at);
  INFO("the server reported the loss " << detected << " s after the cut");
  REQUIRE(seen);
  CHECK(detected <= 3.0); // the connection timeout is 1 s

  // The run goes on with the kept worker and completes.
  auto kept_rc = procs.wait("kept", 60);
  auto serve_rc = procs.wait("serve", 30);
  INFO("kept worker:\n" << procs.output("kept"));
  REQUIRE(kept_rc);
  CHECK(*kept_rc == 0);
  REQUIRE(serve_rc);
  CHECK(*serve_rc == 0);
  auto serve_out = procs.output("serve");
  INFO("serve:\n" << serve_out);
  CHECK(accuracy_in(serve_out) >= 0.75);
  // The server names the worker whose link was cut (ids go by hello order: either may be it),
  // and only that one.
  std::smatch left;
  REQUIRE(std::regex_search(serve_out, left, std::regex{R"(worker (\d+) left the quorum)"}));
  int kept_id = finished_id(procs.output("kept"));
  CHECK(kept_id >= 0);
  CHECK(std::stoi(left[1].str()) != kept_id);
  CHECK(std::regex_search(left.suffix().str(), std::regex{"left the quorum"}) == false);

  // The cut worker gives up: its server is gone and does not come back (request timeout 3 s).
  auto cut_rc = procs.wait("cut", 20);
  INFO("cut worker (gone by " << seconds_since(cut_at) << " s after the cut):\n"
                              << procs.output("cut"));
  REQUIRE(cut_rc); // (else the background destructor kills it)
  CHECK(*cut_rc == 1);
  CHECK_THAT(procs.output("cut"), Catch::Contains("is gone") || Catch::Contains("stopped"));
}

TEST_CASE("a worker whose link was cut and healed rejoins the run", "[network][netns]") {
  netns_lab lab{2};
  if (!ready(lab))
    return;
  temp_dir dir;
  background procs{dir};
  start_kept_and_cut(lab, procs, "4", "20000"); // the cut worker waits for the link
  lab.cut(1);
  REQUIRE(procs.wait_for("serve.err", "left the quorum", 10));
  REQUIRE(procs.wait_for("cut.err", "lost the server at", 10));
  lab.heal(1);
  // Before, the server refused it ("worker id 1 is unknown or taken") and it failed.
  REQUIRE(procs.wait_for("serve.err", "rejoined at update", 30));
  auto cut_rc = procs.wait("cut", 60);
  auto kept_rc = procs.wait("kept", 60);
  auto serve_rc = procs.wait("serve", 30);
  INFO("serve:\n" << procs.output("serve") << "\ncut:\n" << procs.output("cut"));
  REQUIRE(cut_rc);
  CHECK(*cut_rc == 0);
  REQUIRE(kept_rc);
  CHECK(*kept_rc == 0);
  REQUIRE(serve_rc);
  CHECK(*serve_rc == 0);
  CHECK(accuracy_in(procs.output("serve")) >= 0.75);
}

TEST_CASE("a cut that leaves output pending on both sides: every process still exits",
          "[network][netns]") {
  netns_lab lab{3};
  if (!ready(lab))
    return;
  // Small send buffers for the server (namespace 0) and the worker that is cut (2): a 407 KB
  // message does not fit, so the cut leaves output pending in CAF, and CAF 0.17's shutdown
  // waits for it until TCP gives up, minutes later, unless psgd bounds it. (The setting is
  // per namespace; without psgd's bound, one of the two processes hung in every try.)
  for (int k : {0, 2}) {
    auto small = run_shell("ip netns exec " + lab.ns(k)
                           + " sysctl -qw net.ipv4.tcp_wmem='4096 8192 16384'");
    INFO(small.output);
    REQUIRE(small.exit_code == 0);
  }
  temp_dir dir;
  background procs{dir};
  const std::string liveness = " --heartbeat-ms 200 --connection-timeout-ms 1000";
  auto port = start_server(procs, lab.address(0),
                           "--mode sync --workers 2 --model mlp --epochs 2 --eval-every 300"
                             + liveness,
                           lab.ns(0));
  const auto work_args = "--connect " + lab.address(0) + ":" + port + liveness
                         + " --request-timeout-ms 3000";
  start_worker(procs, lab, 1, "kept", work_args);
  start_worker(procs, lab, 2, "cut", work_args);
  bool training = procs.wait_for("serve.err", "] epoch", 60);
  INFO(procs.output("serve"));
  REQUIRE(training);
  lab.cut(2);
  auto kept_rc = procs.wait("kept", 60);
  auto serve_rc = procs.wait("serve", 30);
  auto cut_rc = procs.wait("cut", 20);
  INFO("serve:\n" << procs.output("serve") << "\nkept:\n" << procs.output("kept")
                   << "\ncut:\n" << procs.output("cut"));
  REQUIRE(kept_rc);
  CHECK(*kept_rc == 0);
  REQUIRE(serve_rc); // (else the background destructor kills it)
  CHECK(*serve_rc == 0);
  REQUIRE(cut_rc);
  CHECK(*cut_rc == 1);
}
