// The driver actor: runs one training job with actors. On run() it spawns the server and
// the workers, starts them, evaluates the snapshots the server reports (loss on a fixed
// training subsample, accuracy on the test set), prints progress, and when the server
// reports the end of the budget it evaluates the final parameters, tells every actor it
// started to exit, and answers run() with the summary.
//
// Contract:
// - run() is answered exactly once: with the summary, or with an error when the server
//   dies or every worker is lost before the budget is spent. No path leaves an actor it
//   spawned running.
// - It monitors the server and every worker; a lost worker is named in the summary's events
//   and on stderr (the server takes it out of the quorum), as are the server's events.
// - Serving (job.serve): it publishes a facade (actors/facade.hpp) on the bind address
//   instead of spawning workers, and at the end waits (at most report_wait) until the remote
//   workers have disconnected before it takes the final counters. It monitors the facade:
//   if a peer kills it (exit_reason::kill cannot be trapped in CAF 0.17) while the server
//   lives, it publishes a successor on the same port (at most max_republish times); the
//   work processes reconnect to it.
// - With a scenario it runs the injector (actors/injector.hpp) and starts the new workers
//   it asks for (join).
// - When the server dies (not by divergence or a round-timeout stop, and not serving) and
//   the run has a checkpoint, it restarts the server from the last good checkpoint (at most
//   max_restarts times) and sends every worker and the injector rejoin(server).
// - With --resume the server starts from that checkpoint and every worker continues its
//   sample stream where the checkpoint left it.
// - At the end of the budget it waits (at most `report_wait`) for every worker to stop (each
//   reports its count of computed gradients to the server as it does), then takes the
//   server's final counters, so the summary's no-loss equation counts the gradients pushed
//   after the end too.
// - done() (run_training() on SIGINT/SIGTERM) tells the server to end the budget now (also
//   a server restarted after it); the run then ends as at the end of its budget, and the
//   summary is `interrupted` with an event naming the update.
// - Evaluation runs in the driver's handler, concurrently with training.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include <caf/typed_event_based_actor.hpp>

#include "actors/facade.hpp"
#include "actors/trainer.hpp"
#include "actors/update_policy.hpp"
#include "messages/buffer_pool.hpp"
#include "messages/vocabulary.hpp"

namespace psgd {

struct driver_state {
  static inline const char* name = "driver";
  std::shared_ptr<const training_job> job;
  server_actor server;
  facade_actor front;  ///< published (psgd serve)
  std::shared_ptr<id_owners> owners = std::make_shared<id_owners>();  ///< the facade's ids
  uint16_t port = 0;   ///< where the facade is published
  int republished = 0; ///< facades a peer killed and the driver replaced
  std::chrono::steady_clock::time_point collect_deadline;
  injector_actor injector;
  std::vector<worker_actor> workers;
  std::shared_ptr<buffer_pool> gradient_pool;  ///< the workers' gradient buffers, shared
  /// The run's training time, continued by a server restarted after a crash.
  std::shared_ptr<training_clock> clock = std::make_shared<training_clock>();
  std::map<caf::actor_addr, int32_t> worker_ids;
  run_summary summary;
  caf::typed_response_promise<run_summary> result;
  int32_t next_worker_id = 0;
  int restarts = 0;  ///< server restarts from its checkpoint so far
  bool started = false;
  std::chrono::steady_clock::time_point started_at;  ///< the run message (before training)
  bool finishing = false;  ///< the budget is spent: collecting reports
  bool finished = false;
};

/// Server restarts a run may use before it gives up.
inline constexpr int max_restarts = 5;

/// Facades killed by peers a serving run replaces before it gives up.
inline constexpr int max_republish = 20;

/// How long the driver waits for the workers' reports after the budget is spent.
inline constexpr std::chrono::seconds report_wait{2};

driver_actor::behavior_type driver(driver_actor::stateful_pointer<driver_state> self,
                                   std::shared_ptr<const training_job> job);

} // namespace psgd
