// thread_placement: one CPU for each thread of CAF's work-stealing scheduler.
//
// Why: in one process the scheduler threads spin while they wait for work (see
// psgd_config), so Linux sees them always running and always cache-hot. When two of them
// start on the same CPU, its load balancer leaves them sharing it in 4 ms time slices for
// tens of milliseconds while the other CPU idles (seen in about one sync run in six: 4 ms
// gaps between steps in the first few hundred rounds, 15-20% of a 3-epoch run lost).
// Pinning each scheduler thread to a CPU of its own removes that.
//
// Contract:
// - allowed_cpus() lists the CPUs this process may run on (its affinity mask), ascending;
//   usable_cpus() counts them (psgd sizes its scheduler by it).
// - pin_current_thread(cpu) binds the calling thread to that one CPU; false if refused.
// - placement_hook: a caf::thread_hook. When the actor system runs the work-stealing
//   scheduler without the middleman (psgd's in-process runs), the k-th scheduler thread
//   that starts is pinned to allowed_cpus()[k % n]; every other thread, and every thread of
//   any other configuration (the "sharing" scheduler of network runs and scenarios, whose
//   processes share the cores), is left to the operating system. CAF 0.17.6 names its
//   scheduler threads "caf.multiplexer" (and its timer thread "caf.clock"): the name is how
//   the hook tells them apart. Thread-safe (thread_started runs on each new thread).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <vector>

#include <caf/thread_hook.hpp>

namespace psgd {

/// The CPUs process `pid` may run on (0: this process), ascending; empty if unreadable.
std::vector<int> allowed_cpus(pid_t pid = 0);

/// How many CPUs this process may use: allowed_cpus().size() (a `taskset` narrows it), or
/// std::thread::hardware_concurrency() if the mask cannot be read; at least 1.
size_t usable_cpus();

bool pin_current_thread(int cpu);

class placement_hook final : public caf::thread_hook {
public:
  void init(caf::actor_system& sys) override;
  void thread_started() override;
  void thread_terminates() override {}

private:
  bool active_ = false;
  std::vector<int> cpus_;
  std::atomic<size_t> started_{0};
};

} // namespace psgd
