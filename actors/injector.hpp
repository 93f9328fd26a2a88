// The injector actor: carries out a scenario's stragglers and faults (config/scenario.hpp).
//
// Contract:
// - It resolves every event's workers among the team's ids 0..team-1 (a "random" set is
//   drawn from the seed) as it is spawned. On start() it arms each event's begin and end: a timer for a point in seconds (since start()), a
//   watch request to the server for a point in updates; then it answers start(), so the
//   driver starts the workers only once every trigger is armed. (Serving, the driver starts
//   it when training starts, and the workers are enlisted as they join over the network.) (The plan itself,
//   plan_lines(), is a pure function the driver writes into the results.)
// - At an event's begin it sends the effect: fault(effect) to each target worker (slow
//   down, example cost, pause, crash, net delay, net drop: a worker hands the network ones
//   to its link), join(count) to the driver, crash() to the server;
//   at a window's end heal(event) to the targets. Each firing is told to the observer too.
// - Determinism: the plan (targets, parameters, the first draws of every delay
//   distribution) depends only on (seed, scenario); a worker's draws come from the stream
//   (event seed, worker id), so the same seed and scenario give the same delays in the
//   same order. When each event fires depends on the run (timing).
// - It never blocks: watch requests wait without timeout because the server answers them
//   by construction or dies, and the driver ends the injector with the run. After a server
//   restart, rejoin(server) re-arms the update-count triggers that have not fired.
// - A resumed run (--resume) continues its scenario from the checkpoint: an event whose
//   point the uninterrupted run had passed by then (an update below the checkpoint's
//   version, a time below its training seconds) is not fired again, and says so; a window
//   open then is in force from the start, one closed then never begins. Times count training
//   seconds since the run began, the checkpoint's included. (A point at the checkpoint's
//   very update fires: its effect came after that checkpoint was written.)
// - enlist(id, w) makes `w` worker id (a worker that joined a serving process); it gets the
//   windowed effects in force and those that hold from the start. Each worker gets each
//   effect once.
#pragma once

#include <map>
#include <set>
#include <vector>

#include <caf/typed_event_based_actor.hpp>

#include "config/scenario.hpp"
#include "messages/vocabulary.hpp"

namespace psgd {

/// Where a run starts its scenario: a fresh run at {0, 0}, a resumed one at its checkpoint's
/// server version and training seconds.
struct resume_point {
  uint64_t version = 0;
  double seconds = 0;
  /// True if the run started past `p`.
  bool passed(const fault_point& p) const;
};

struct injector_state {
  static inline const char* name = "injector";
  scenario plan;
  uint64_t seed = 1;
  server_actor server;
  driver_actor driver;
  std::map<int32_t, worker_actor> workers;   ///< the workers by id (initial or enlisted)
  std::vector<std::vector<int32_t>> targets; ///< per event: the resolved worker ids
  std::vector<bool> begun;                   ///< per event: its begin has fired
  std::vector<bool> ended;                   ///< per event: its end has fired
  std::vector<std::set<int32_t>> delivered;  ///< per event: the workers that got its effect
  resume_point resumed;
  bool started = false;
};

/// The effect a worker gets for event `index` (slow, example_cost, pause, crash).
fault_effect effect_of(const fault_event& e, int32_t index, uint64_t seed);

/// The seed of a worker's draws for an effect: the same on every run with the same seed.
uint64_t draw_seed(const fault_effect& effect, int32_t worker);

/// One line per event: what it does to whom, and when (deterministic in seed and scenario).
std::vector<std::string> plan_lines(const scenario& s, uint64_t seed, int workers);

injector_actor::behavior_type injector(injector_actor::stateful_pointer<injector_state> self,
                                       scenario plan, uint64_t seed, int team,
                                       server_actor server, driver_actor driver,
                                       std::map<int32_t, worker_actor> workers,
                                       resume_point resumed);

} // namespace psgd
