// psgd_core_rtt: how far apart the first two CPUs this process may use are, as one cache
// line's round trip between them.
//
// usage: psgd_core_rtt [ROUNDS]   (ROUNDS default 100000, after 10000 warm-up rounds)
// Prints one JSON line: {"rtt_ns": mean nanoseconds per round trip, "rounds": ROUNDS,
// "cpus": [a, b]}; with a single usable CPU {"rtt_ns": null, ...}.
//
// Why: every in-process parallel run moves parameters and gradients between the two cores
// (DESIGN.md; docs/BENCHMARKS.md "Where the time goes"), so what a line costs to cross
// decides how close async and sync come to 2x sequential. On the project's VMs that cost is
// not fixed: on 12-02 an AMD EPYC VM measured 70-160 ns in some minutes and 430-540 ns in
// others (its two vCPUs then sat, it seems, on cores that share no L3), and an async MLP
// step took 330 us in the first case and 520 us in the second. bench/compare runs this next
// to the T2 runs so that each repetition says which case it ran in.
//
// Two threads, one pinned to each CPU, hand a flag back and forth (acquire/release on one
// atomic in its own cache line). No allocation in the loop, nothing else shared.
// Exit codes: 0 measured (or a single CPU), 2 bad arguments.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "config/thread_placement.hpp"

namespace {

struct alignas(64) line {
  std::atomic<long> turn{0};
};

/// Mean nanoseconds of one round trip over `rounds`, after `warmup` unmeasured ones.
double round_trip_ns(int a, int b, long warmup, long rounds) {
  line flag;
  const long total = warmup + rounds;
  std::thread echo([&] {
    psgd::pin_current_thread(b);
    for (long i = 0; i < total; ++i) {
      while (flag.turn.load(std::memory_order_acquire) != 2 * i + 1) {
      }
      flag.turn.store(2 * i + 2, std::memory_order_release);
    }
  });
  psgd::pin_current_thread(a);
  std::chrono::steady_clock::time_point began;
  for (long i = 0; i < total; ++i) {
    if (i == warmup)
      began = std::chrono::steady_clock::now();
    flag.turn.store(2 * i + 1, std::memory_order_release);
    while (flag.turn.load(std::memory_order_acquire) != 2 * i + 2) {
    }
  }
  const auto took = std::chrono::steady_clock::now() - began;
  echo.join();
  return std::chrono::duration<double, std::nano>(took).count() / static_cast<double>(rounds);
}

} // namespace

int main(int argc, char** argv) {
  long rounds = 100000;
  if (argc > 2 || (argc == 2 && (rounds = std::atol(argv[1])) <= 0)) {
    std::fprintf(stderr, "usage: psgd_core_rtt [ROUNDS > 0]\n");
    return 2;
  }
  const auto cpus = psgd::allowed_cpus();
  if (cpus.size() < 2) {
    std::printf("{\"rtt_ns\": null, \"rounds\": 0, \"cpus\": [%d]}\n",
                cpus.empty() ? -1 : cpus[0]);
    return 0;
  }
  const double ns = round_trip_ns(cpus[0], cpus[1], rounds / 10, rounds);
  std::printf("{\"rtt_ns\": %.1f, \"rounds\": %ld, \"cpus\": [%d, %d]}\n", ns, rounds, cpus[0],
              cpus[1]);
  return 0;
}
