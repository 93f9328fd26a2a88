// The parameter server actor: holds the parameters and their version, applies gradients by
// the mode's rule (server_core), answers each worker with the snapshot to compute on next,
// and reports progress and the end of the budget to its observer (the driver).
//
// Contract:
// - join(id) is answered only once every expected worker has joined (a barrier, so a sync
//   round never closes before all workers are there), then with version 0. The barrier is
//   bounded: the request timeout after the first join, training starts with the workers
//   present and an event names the missing ones (a worker process that died before joining
//   must not hang the run). A fresh server that no worker joins within the request timeout
//   stops with error peer_lost ("no worker joined ..."), and so does one whose joined
//   workers were all released before training started ("every worker that joined left ...").
// - push(g) is answered with the next snapshot: async at once; sync/backup when the round
//   closes; a late backup gradient at once (with the current snapshot). Once the budget is
//   spent every push is answered with error training_finished. done() (the user interrupted
//   the run) spends it at once: the observer gets done as at the end (after an evaluation
//   pause, if one is open), an open round's workers get training_finished.
// - Every member is monitored: a dead worker leaves the quorum (a round waiting for it
//   closes with the live workers) and is marked lost in the stats. A dead observer stops the
//   server.
// - When the last live worker is lost (or quarantined) mid-run, the server waits the request
//   timeout for a worker to join (a reconnecting work process), then stops with error
//   peer_lost: a sync round with nobody left would otherwise wait for ever.
// - A worker may join after training started: it gets the current snapshot at once. A
//   member's own actor may join again (its path changed: a republished facade) and goes on
//   with the current snapshot; so may a lost member (not a quarantined one) once training
//   started: its connection dropped and its process reconnected (the facade lets only the
//   id's own node join with it). Another actor with a live member's id is refused.
// - release(id) before training started (a fresh server): the member, if it joined, is
//   forgotten, its held join dropped, and the barrier waits for a replacement; answered
//   true, and the facade frees the id. A restored server before its members are back:
//   false. Once training runs the member is lost (if its own down has not come yet) and
//   the answer is true, so that a new process may take the id over, unless it was
//   quarantined; after the end of the budget, false.
// - position(request): (id, epoch, step, computed) of each lost member among request.ids,
//   for the facade's hello answer: a process taking over a lost id goes on from there.
// - pull(id): the current snapshot for a member (its gradient was lost on the way).
// - Rejected gradients (see server_core) are answered with error `rejected`; quarantines,
//   late joins and round timeouts are told to the observer as events.
// - A round open longer than the round timeout names the workers it waits for; the policy
//   drops them from the quorum, or stops the server with error round_timeout. Divergence
//   stops it with error diverged.
// - watch(v) is answered once the version reaches v (the injector's update-count triggers);
//   crash() makes the server die with error injected_crash (a scenario's server crash).
// - With a checkpoint path it writes a checkpoint every `checkpoint_every` updates and/or
//   `checkpoint_seconds` seconds, and at the end of the budget (never after divergence: the
//   last one written is the last good one). A write that fails is told as an event.
// - Every `eval_every` updates (0 = never) it asks the observer to evaluate the snapshot and
//   PAUSES training until the answer: replies are held and new pushes deferred, and the
//   training clock stops (as sequential SGD pauses for its evaluations, so throughput
//   compares fairly); a worker that waited on the pause has it taken off its reported wait.
//   An evaluation that fails or times out resumes training too. At the end
//   of the budget it sends done(snapshot, stats) exactly once.
// Runs on CAF's scheduler, or (psgd serve) on the multiplexer thread (server_on_multiplexer);
// its handlers are short (one pass over the parameters).
#pragma once

#include <chrono>
#include <deque>

#include <caf/io/broker.hpp>
#include <caf/stateful_actor.hpp>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include <caf/typed_event_based_actor.hpp>

#include "actors/update_policy.hpp"
#include "messages/vocabulary.hpp"

namespace psgd {

struct server_state {
  static inline const char* name = "server";
  std::unique_ptr<server_core> core;
  observer_actor observer;
  uint64_t eval_every = 0;
  uint64_t next_eval = 0;
  bool done_sent = false;
  bool started = false;  ///< every expected worker joined; training runs
  bool paused = false;   ///< an evaluation is under way
  bool said_short = false;  ///< told that backup has fewer than m live workers
  /// A worker's answer, held for later: its id and its promise.
  using held_answer = std::pair<int32_t, caf::typed_response_promise<snapshot>>;
  /// Join requests held until every expected worker has joined.
  std::vector<held_answer> joins;
  /// Workers whose gradient is in the open round, waiting for it to close (ssp: workers
  /// too far ahead, waiting for the slowest).
  std::map<int32_t, caf::typed_response_promise<snapshot>> waiting;
  /// Replies held during an evaluation pause (answered with the snapshot on resume).
  std::vector<held_answer> held;
  /// Pushes that arrived during an evaluation pause, handled in order on resume.
  std::deque<std::pair<gradient, caf::typed_response_promise<snapshot>>> deferred;
  /// When the evaluation pause under way began, and the workers that waited on it (an
  /// answer held, a push deferred, waiting in ssp). On resume each one's pause goes to the
  /// core, which takes it off the worker's reported wait: a pause is not the run's waiting.
  /// From the pause's start, not from each hold: the evaluating thread, woken by the
  /// progress request, can preempt the server's own thread for the whole evaluation before
  /// it holds the answer in hand (seen: 5 ms of a 9 ms wait).
  std::chrono::steady_clock::time_point pause_began;
  std::set<int32_t> pause_waiters;
  /// watch(version) requests, answered once the server reaches their version.
  std::multimap<uint64_t, caf::typed_response_promise<uint64_t>> watches;
  std::chrono::steady_clock::time_point rejoin_deadline;  ///< restored: stop waiting then
  std::chrono::steady_clock::time_point join_deadline;    ///< fresh: start without the late
  /// Every worker was lost mid-run: stop at this time unless one joins (unset: some live).
  std::optional<std::chrono::steady_clock::time_point> deserted_until;
  bool first_joined = false;
  bool ticking = false;  ///< the watchdog tick (join barrier, rejoins, round timeout) runs
  uint64_t checkpointed_version = 0;                    ///< of the last checkpoint written
  std::chrono::steady_clock::time_point checkpointed_at;
  /// Member actors by address, for the down handler.
  std::map<caf::actor_addr, int32_t> members;
  /// The node each worker id last joined from: one back from another node was taken over
  /// by a new work process, one back from its own came back after its connection dropped.
  std::map<int32_t, caf::node_id> node_of;
};

/// `restore`: null for a fresh start from `initial`; else the checkpoint to continue from
/// (`initial` is ignored): the members in `rejoining` are expected back and training goes on
/// once they all rejoined, or after the request timeout without the missing ones (they
/// count as lost).
server_actor::behavior_type server(server_actor::stateful_pointer<server_state> self,
                                   server_settings settings, std::vector<float> initial,
                                   observer_actor observer, uint64_t eval_every,
                                   std::shared_ptr<const checkpoint> restore,
                                   std::vector<int32_t> rejoining);

/// The same server hosted by the middleman's multiplexer thread (a broker without
/// connections; spawn it with middleman().spawn_broker and actor_cast it to server_actor).
/// For psgd serve, whose workers are all remote: a push is deserialised, applied and
/// answered by that one thread, with no hand-off to a scheduler thread and back (two thread
/// wake-ups per update fewer). Its handlers hold up the process's network I/O for one
/// update (one pass over the parameters), or for a checkpoint write.
using server_broker = caf::stateful_actor<server_state, caf::io::broker>;
caf::behavior server_on_multiplexer(server_broker* self, server_settings settings,
                                    std::vector<float> initial, observer_actor observer,
                                    uint64_t eval_every, std::shared_ptr<const checkpoint> restore,
                                    std::vector<int32_t> rejoining);

} // namespace psgd
