// The worker actor: join the server, then loop: take the snapshot, sample a minibatch of b
// from this worker's shard, compute the mean gradient, push it, and continue with the
// snapshot the server answers.
//
// Contract:
// - Training starts on start(); the worker ends normally when the server answers
//   training_finished, and with the error otherwise (a failed request, a dead server).
//   Whenever it stops it first sends the observer report(id, computed): its own count of
//   gradients computed, the left side of the no-loss equation.
// - The snapshot is released before the push, so the server's buffers recycle.
// - `step_delay` > 0 makes every step really take that much longer (a straggler): the
//   gradient is pushed after a timer, without blocking a scheduler thread.
// - No request waits longer than `timeout` for the server: a watchdog tick (every
//   timeout / 4, at most 1 s) ends the worker with request_timeout when the join or push in
//   flight is older than that. Why not CAF's per-request timeout: in 0.17 every timed request
//   wakes CAF's timer thread, which cost ~20% of an async softmax step on 2 cores. The join,
//   which happens once, keeps its per-request timeout. The server is monitored.
// A worker computes inside its handler: spawn it detached (own thread) or on a scheduler
// sized for it, so that it never stalls the server (see docs/DESIGN notes).
#pragma once

#include <chrono>
#include <memory>
#include <optional>

#include <caf/typed_event_based_actor.hpp>

#include "actors/snapshot_pool.hpp"
#include "data/sampler.hpp"
#include "messages/vocabulary.hpp"
#include "model/model.hpp"

namespace psgd {

struct worker_settings {
  int32_t id = 0;
  int shards = 1;       ///< how many workers share each epoch (the sampler's m)
  int batch = 32;
  uint64_t seed = 1;
  std::chrono::milliseconds timeout{60000};
  std::chrono::microseconds step_delay{0};
};

struct worker_state {
  static inline const char* name = "worker";
  worker_settings settings;
  std::shared_ptr<const model::model> model;
  std::shared_ptr<const data::dataset> train;
  server_actor server;
  observer_actor observer;
  int64_t computed = 0;          ///< gradients computed so far
  std::unique_ptr<model::workspace> workspace;
  std::unique_ptr<data::shard_sampler> sampler;
  std::unique_ptr<buffer_pool> gradients;
  std::optional<gradient> held;  ///< computed, waiting for the step delay to pass
  bool started = false;
  bool awaiting = false;         ///< a push is in flight
  std::chrono::steady_clock::time_point sent;  ///< when it was sent
};

worker_actor::behavior_type worker(worker_actor::stateful_pointer<worker_state> self,
                                   server_actor server, observer_actor observer,
                                   std::shared_ptr<const model::model> model,
                                   std::shared_ptr<const data::dataset> train,
                                   worker_settings settings);

} // namespace psgd
