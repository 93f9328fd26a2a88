// The worker actor: join the server, then loop: take the snapshot, sample a minibatch of b
// from this worker's shard, compute the mean gradient, push it, and continue with the
// snapshot the server answers.
//
// Contract:
// - Training starts on start(); the worker ends normally when the server answers
//   training_finished, and with the error otherwise (a failed request, a dead server).
//   Whenever it stops it first sends the server report(worker_report): its own count of
//   gradients computed, the left side of the no-loss equation, and its seconds computing
//   and waiting for answers (the join's wait before training is in neither).
// - It talks to an upstream_actor: the server in one process, the published facade across
//   processes (the same code either way).
// - The snapshot is released before the push, so the server's buffers recycle.
// - warm (from the server: this worker's gradient waits for its round) gathers the next
//   minibatch's rows meanwhile (model/minibatch.hpp), and the next step starts from them
//   instead of gathering on its critical path; a hint that changes no result (the same rows,
//   the same bits). Ignored when the answer has already come.
// - `step_delay` > 0, and the injector's effects (slow by a factor or by a delay drawn per
//   step, an extra cost per example of a class, a pause), make a step really take longer (a
//   straggler): the gradient is pushed after a timer, without blocking a scheduler thread.
//   An injected crash stops the worker with error injected_crash (a gradient it held is lost
//   in flight, and its report says so).
// - When the server dies the worker waits (at most `timeout`) for rejoin(server) from the
//   driver, which restarts the server from its checkpoint; then it joins the new server and
//   goes on with its own sample stream (a gradient it held is lost in flight).
// - No request waits longer than `timeout` for the server: a watchdog tick (every
//   timeout / 4, at most 1 s) ends the worker with request_timeout when the join or push in
//   flight is older than that. Why not CAF's per-request timeout: in 0.17 every timed request
//   wakes CAF's timer thread, which cost ~20% of an async softmax step on 2 cores. The join,
//   which happens once, keeps its per-request timeout. The server is monitored.
// - With `network_faults` its messages take its own link actor (actors/link.hpp, spawned
//   linked), and the injector's network effects (net_delay, net_drop) go to the link. A
//   push the link lost (error lost_in_network) is counted, and the worker pulls the current
//   parameters to go on. Its report always goes straight to the server.
// A worker computes inside its handler: spawn it detached (own thread) or on a scheduler
// sized for it, so that it never stalls the server (see docs/DESIGN notes).
#pragma once

#include <chrono>
#include <memory>
#include <map>
#include <optional>

#include <caf/io/broker.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/buffer_pool.hpp"
#include "data/random.hpp"
#include "data/sampler.hpp"
#include "messages/vocabulary.hpp"
#include "model/minibatch.hpp"
#include "model/model.hpp"

namespace psgd {

struct worker_settings {
  int32_t id = 0;
  int shards = 1;       ///< how many workers share each epoch (the sampler's m)
  int batch = 32;
  uint64_t seed = 1;
  std::chrono::milliseconds timeout{60000};
  std::chrono::microseconds step_delay{0};
  int64_t start_epoch = 0;     ///< where the sampler starts (a resumed run continues there)
  int64_t start_step = 0;
  int64_t start_computed = 0;  ///< gradients computed before a resume
  bool network_faults = false; ///< route messages through a link actor (default off)
  bool track_inclusion = false; ///< send each minibatch's example indices (default off)
  /// Gradient buffers shared by the workers of a process (they recycle through one pool, so
  /// memory grows with the gradients in use, not with the workers); null: the worker's own.
  std::shared_ptr<buffer_pool> gradient_pool;
};

/// The sample-order seed of worker `id` in a run of `shards` starting workers: the run's own
/// for those (each takes shard id of one permutation per epoch); one of its own for a worker
/// that joined mid-run (it takes shard id % shards of its own permutation, so that it does not
/// walk in step with the worker whose shard it shares).
uint64_t worker_seed(uint64_t run_seed, int32_t id, int shards);

struct worker_state {
  static inline const char* name = "worker";
  worker_settings settings;
  std::shared_ptr<const model::model> model;
  std::shared_ptr<const data::dataset> train;
  upstream_actor server;
  link_actor link;               ///< the path to the server, with network faults (or none)
  int64_t computed = 0;          ///< gradients computed so far
  int64_t lost_in_network = 0;   ///< of them, lost by the link (net_drop)
  std::unique_ptr<data::shard_sampler> sampler;
  std::shared_ptr<buffer_pool> gradients;
  std::optional<gradient> held;  ///< computed, waiting for the step delay to pass
  /// The next minibatch, gathered on a warm hint, and the sampler position (epoch, step) it
  /// was gathered for; -1: none. A step at any other position (after a seek) ignores it.
  model::gathered_minibatch next_batch;
  int64_t next_batch_epoch = -1, next_batch_step = -1;
  /// The held gradient's delay, as scripted, and when it began.
  std::chrono::steady_clock::duration delay_scripted{0};
  std::chrono::steady_clock::time_point delay_began;
  /// Delay realized beyond the scripted so far (the timer fires ~0.1-0.25 ms late on this
  /// kind of machine); taken off the next delays, so that they add up to the scripted ones.
  std::chrono::steady_clock::duration delay_debt{0};
  struct active_fault {
    fault_effect effect;
    data::splitmix64 draws;
  };
  std::map<int32_t, active_fault> faults;  ///< injected effects in force, by event
  double pending_pause_ms = 0;             ///< an injected pause, taken at the next step
  bool started = false;
  bool awaiting = false;         ///< a push is in flight
  bool orphaned = false;         ///< the server is gone: waiting for rejoin (or the deadline)
  uint64_t generation = 0;       ///< joins so far: answers to older requests are ignored
  std::chrono::steady_clock::time_point orphaned_at;
  std::chrono::steady_clock::time_point sent;  ///< when it was sent
  /// Time computing gradients (gathers included), and waiting for the answers to pushes and
  /// pulls less the gathers done meanwhile: the report's compute and wait seconds.
  std::chrono::steady_clock::duration compute_time{0};
  std::chrono::steady_clock::duration wait_time{0};
};

worker_actor::behavior_type worker(worker_actor::stateful_pointer<worker_state> self,
                                   upstream_actor server,
                                   std::shared_ptr<const model::model> model,
                                   std::shared_ptr<const data::dataset> train,
                                   worker_settings settings);

/// The same worker hosted by the middleman's multiplexer thread (a broker without
/// connections; spawn it with middleman().spawn_broker and actor_cast it to worker_actor).
/// For a process whose only job is one remote worker: the snapshot the multiplexer
/// deserialises is computed on by the same thread, and the gradient is serialised by it, so
/// a step makes no hand-off between the multiplexer and a scheduler thread (two thread
/// wake-ups per step fewer). Its compute holds up the process's other network I/O for one
/// step, so never put two workers there.
using worker_broker = caf::stateful_actor<worker_state, caf::io::broker>;
caf::behavior worker_on_multiplexer(worker_broker* self, upstream_actor server,
                                    std::shared_ptr<const model::model> model,
                                    std::shared_ptr<const data::dataset> train,
                                    worker_settings settings);

} // namespace psgd
