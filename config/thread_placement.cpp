#include "config/thread_placement.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/defaults.hpp>
#include <caf/settings.hpp>

namespace psgd {

std::vector<int> allowed_cpus(pid_t pid) {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(pid, sizeof set, &set) != 0)
    return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set))
      cpus.push_back(cpu);
  return cpus;
}

size_t usable_cpus() {
  const size_t allowed = allowed_cpus().size();
  return std::max<size_t>(1, allowed > 0 ? allowed : std::thread::hardware_concurrency());
}

bool pin_current_thread(int cpu) {
  if (cpu < 0 || cpu >= CPU_SETSIZE)
    return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

void placement_hook::init(caf::actor_system& sys) {
  const auto& cfg = sys.config();
  const auto policy = caf::get_or(cfg, "scheduler.policy", caf::defaults::scheduler::policy);
  active_ = policy == caf::atom("stealing") && !sys.has_middleman();
  if (active_)
    cpus_ = allowed_cpus();
  active_ = active_ && cpus_.size() > 1;
}

void placement_hook::thread_started() {
  if (!active_)
    return;
  char name[16] = {};
  if (pthread_getname_np(pthread_self(), name, sizeof name) != 0
      || std::strcmp(name, "caf.multiplexer") != 0)
    return;
  pin_current_thread(cpus_[started_++ % cpus_.size()]);
}

} // namespace psgd
