// Thread placement: the work-stealing scheduler's threads get a CPU each; nothing else does.
#include <catch2/catch.hpp>

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "config/run_config.hpp"
#include "config/thread_placement.hpp"

using namespace psgd;

namespace {

/// The CPUs the calling thread may run on.
std::vector<int> my_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(pthread_getaffinity_np(pthread_self(), sizeof set, &set) == 0);
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set))
      cpus.push_back(cpu);
  return cpus;
}

/// Starts a thread named `name` that runs the hook's thread_started and returns the CPUs
/// it may run on afterwards.
std::vector<int> start_named(placement_hook& hook, const char* name) {
  std::vector<int> cpus;
  std::thread{[&] {
    pthread_setname_np(pthread_self(), name);
    hook.thread_started();
    cpus = my_cpus();
  }}.join();
  return cpus;
}

/// Initialises `hook` with an actor system of one thread under the scheduler `policy`.
void init_for_policy(placement_hook& hook, psgd_config& cfg, const char* policy) {
  cfg.set("scheduler.policy", caf::atom_from_string(policy));
  cfg.set("scheduler.max-threads", 1);
  caf::actor_system sys{cfg};
  hook.init(sys);
}

} // namespace

TEST_CASE("allowed_cpus lists this process's CPUs; a thread can be pinned to one", "[placement]") {
  const auto cpus = allowed_cpus();
  REQUIRE_FALSE(cpus.empty());
  CHECK(std::is_sorted(cpus.begin(), cpus.end()));
  CHECK(cpus == my_cpus());
  CHECK(usable_cpus() == cpus.size());
  std::thread{[&] {
    REQUIRE(pin_current_thread(cpus.back()));
    CHECK(my_cpus() == std::vector<int>{cpus.back()});
    CHECK(sched_getcpu() == cpus.back());
    CHECK_FALSE(pin_current_thread(-1));
  }}.join();
}

TEST_CASE("with work stealing, scheduler threads get CPUs in turn and others none",
          "[placement]") {
  const auto cpus = allowed_cpus();
  if (cpus.size() < 2)
    SUCCEED("one CPU: nothing to place");
  psgd_config cfg;
  placement_hook hook;
  init_for_policy(hook, cfg, "stealing");
  if (cpus.size() >= 2) {
    CHECK(start_named(hook, "caf.multiplexer") == std::vector<int>{cpus[0]});
    CHECK(start_named(hook, "caf.multiplexer") == std::vector<int>{cpus[1]});
  }
  CHECK(start_named(hook, "caf.clock") == cpus);
  CHECK(start_named(hook, "other") == cpus);
}

TEST_CASE("with the sharing scheduler no thread is pinned", "[placement]") {
  psgd_config cfg;
  placement_hook hook;
  init_for_policy(hook, cfg, "sharing");
  CHECK(start_named(hook, "caf.multiplexer") == allowed_cpus());
}
