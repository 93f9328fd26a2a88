// psgd work: worker actors in this process, training for a psgd serve elsewhere.
//
// Contract: work_remotely() connects to HOST:PORT through CAF's middleman with a finite
// timeout (remote_actor() has none), checks that the published actor speaks the worker
// protocol (facade_actor) and its protocol version, asks for the run (hello query), loads the
// data the run names from cfg.data, asks for `cfg.workers` worker ids with the data's
// fingerprint (the server refuses other data), and runs that many workers until they stop.
// If the connection drops (the server died, or its heartbeats stopped: frozen, cut off) it
// reconnects with back-off (up to the request timeout), gets the same ids back from the
// same server or a restarted one (psgd serve --resume on the same port), and the workers
// rejoin it; past the deadline it stops them and fails naming the server.
// Returns how many stopped normally (the run finished) or the first failure. Blocks the
// calling thread; every actor it started has stopped when it returns.
#pragma once

#include <atomic>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "config/run_config.hpp"

namespace psgd {

struct work_outcome {
  int workers = 0;                 ///< started
  int finished = 0;                ///< stopped because the run finished
  std::vector<std::string> lines;  ///< one per worker: how it stopped
  bool interrupted = false;        ///< `interrupt` was set: the workers left the run
};

/// `interrupt` (may be null) is polled every 0.1 s: once set, the connection attempts stop
/// (error interrupted), or the workers leave the run (error interrupted as their exit
/// reason, which the server's log shows) and the outcome says `interrupted`.
caf::expected<work_outcome> work_remotely(caf::actor_system& sys, const run_config& cfg,
                                          const std::atomic<bool>* interrupt = nullptr);

} // namespace psgd
