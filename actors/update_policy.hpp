// server_core: the parameter server's state and its three update rules, without messaging.
//
// The server actor (actors/server.hpp) feeds every gradient to push() and acts on the
// verdict; keeping the rules here makes them testable one gradient at a time.
//
// Rules (the lecture notes on parallel SGD):
// - sync: round t takes one gradient from every live worker, each computed on version t;
//   when the last arrives the aggregate is applied (version t+1). A gradient computed on an
//   older version cannot occur in a healthy sync run; if one arrives it is dropped as late.
// - backup (m, e): m+e workers; round t closes with the first m gradients computed on
//   version t; a gradient computed on an older version is dropped as late and counted
//   against its worker (Chen et al. 2017). If fewer than m workers are alive, rounds close
//   with all live workers.
// - async: every gradient is applied at once, with staleness = version at apply - version
//   read (the lecture's Definition 24.1).
// - ssp (stale synchronous parallel, Ho et al. 2013): applied at once as in async; a worker's
//   clock is its count of applied gradients, and a worker more than `staleness_bound` clocks
//   ahead of the slowest live worker is held (its answer waits) until the slowest catches
//   up. s = 0 is lockstep: the iterates equal sync with aggregate sum; no bound is async.
//   A worker joining late starts at the slowest clock.
// - stale_lr (async, ssp): the step is lr / max(1, staleness) (Zhang et al. 2016).
// - Simulated staleness (async, ssp): snapshot_for() answers a worker with the parameters of
//   K versions ago (K fixed or drawn uniformly from the seed), from a ring of recent
//   snapshots: with one worker every gradient has staleness exactly K (fewer in the first
//   K updates), deterministically. (A worker may then read the same version twice: the
//   duplicate check is off.)
// - Inclusion (track_inclusion): per training example, how many received and applied
//   gradients held it (from the gradient's example indices).
// - aggregate: mean (x -= lr * mean of the round's gradients) or sum (x -= lr * sum, the
//   lecture's Algorithm 1). Async applies one gradient: both rules give x -= lr * g.
// Every applied gradient's staleness goes into the histogram; sync and backup record 0.
//
// Admission: a gradient of the wrong length, with a NaN or Inf, or a second one from the same
// worker for the same read version is rejected (counted by reason, never applied); after
// `quarantine_after` bad gradients in a row the worker is quarantined: it leaves the quorum
// and everything it sends is rejected. Gradients from ids that never joined are counted apart.
// A worker may join after training started (it enters the quorum at once).
// suspend() takes workers a round has waited too long for out of the quorum (the round-
// timeout policy "drop"); a suspended worker's next gradient brings it back (that gradient is
// late: dropped).
// Divergence: a non-finite loss, or one above `divergence_loss`, marks the run diverged.
//
// Invariants: version == number of updates applied; `current()` is never modified once
// handed out (each update writes a buffer nobody else holds); per worker, pushed == applied +
// dropped + after_stop + rejected + (gradients waiting in the open round).
// Not thread-safe: owned by one actor.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/checkpoint.hpp"
#include "messages/buffer_pool.hpp"
#include "config/run_config.hpp"
#include "data/random.hpp"
#include "messages/vocabulary.hpp"

namespace psgd {

/// A run's training time: it runs from the moment every worker has joined and pauses for
/// evaluations. A server restarted in the same process after a crash continues its
/// predecessor's clock (server_settings::clock), so the updates it redoes and the time it
/// took to come back count as training time; a fresh one (or a --resume in a new process)
/// starts from the checkpoint's seconds. Used by one server at a time (a successor is
/// spawned once its predecessor is dead): not thread-safe.
class training_clock {
public:
  /// Starts counting on from `seconds_before`; a clock already running goes on (resumed if
  /// an evaluation had paused it) and ignores `seconds_before`.
  void start(double seconds_before);
  void pause();
  void resume();
  bool running() const { return running_; }
  double seconds() const;

private:
  using clock = std::chrono::steady_clock;
  bool running_ = false;
  bool paused_ = false;
  double before_ = 0;
  clock::time_point started_;
  clock::time_point pause_started_;
  clock::duration paused_total_{0};
};

struct server_settings {
  train_mode mode = train_mode::sync;
  int quorum = 1;             ///< m: gradients per update (sync, backup)
  int expected_workers = 1;   ///< workers that must join before training starts
  double lr = 0.1;
  aggregate_rule aggregate = aggregate_rule::mean;
  uint64_t max_updates = 0;   ///< 0 = no limit
  int64_t sample_budget = 0;  ///< stop once this many samples were applied; 0 = no limit
  std::chrono::milliseconds request_timeout{60000};  ///< bound of the server's own requests
  int quarantine_after = 3;   ///< bad gradients in a row that quarantine a worker
  double divergence_loss = 1e4;  ///< a minibatch loss above this (or NaN/Inf) = divergence
  std::chrono::duration<double> round_timeout{60};  ///< a round may wait this long; 0 = ever
  bool stop_on_round_timeout = false;  ///< policy: stop the run (else drop the late workers)
  std::string checkpoint_path;         ///< where the server checkpoints; empty = never
  uint64_t checkpoint_every = 0;       ///< updates between checkpoints (0 = by time only)
  double checkpoint_seconds = 0;       ///< seconds between checkpoints (0 = by updates only)
  nlohmann::json fingerprint;          ///< the run's settings, stored in every checkpoint
  std::string run_id;                  ///< the run's identity, stored in every checkpoint
  int64_t staleness_bound = -1;        ///< ssp: clocks a worker may lead by; -1 = no bound
  bool stale_lr = false;               ///< step lr / max(1, staleness)
  int simulated_min = -1;              ///< simulated staleness range; -1 = off
  int simulated_max = -1;
  uint64_t seed = 1;                   ///< draws of the simulated staleness
  int64_t train_rows = 0;              ///< examples tracked with track_inclusion
  bool track_inclusion = false;
  /// Tell a worker whose gradient waits for its round (warm_atom), so that it gathers
  /// its next minibatch meanwhile (default off; only for workers in the server's process
  /// that talk to it directly: the requester must be a worker_actor).
  bool warm_hints = false;
  /// The run's training clock, shared by a server and its restarted successors; null: the
  /// server keeps its own.
  std::shared_ptr<training_clock> clock;

  static server_settings from(const run_config& cfg, int64_t train_rows,
                              int64_t num_params = 0);
};

/// What identifies a run for --resume: a checkpoint only continues the run it came from.
nlohmann::json run_fingerprint(const run_config& cfg, int64_t num_params);

class server_core {
public:
  enum class verdict {
    applied,       ///< async: applied; answer with current()
    waiting,       ///< sync/backup: part of the open round; answer when it closes
    round_closed,  ///< this gradient closed the round: answer every waiting worker
    dropped_late,  ///< computed on an old version: dropped; answer with current()
    after_stop,    ///< the budget is spent: not applied
    rejected,      ///< refused (see last_rejection()): not applied
    unknown,       ///< from an id that never joined: not applied
  };

  server_core(server_settings settings, std::vector<float> initial);
  /// Restores a server from a checkpoint (see to_checkpoint): version, parameters, counters
  /// and every member. The members in `rejoining` are expected back (ready() once they all
  /// are); the others are marked lost.
  server_core(server_settings settings, const checkpoint& saved,
              const std::vector<int32_t>& rejoining);

  /// Training can start: every expected worker joined (fresh) or rejoined (restored).
  bool ready() const;
  /// Gives up on the members that have not rejoined: they are marked lost. Returns their ids.
  std::vector<int32_t> abandon_rejoins();

  /// The state to write: parameters, version, counters, each member's sampler position.
  /// `fingerprint` (the run's identity) is stored with it for --resume to check.
  checkpoint to_checkpoint(const nlohmann::json& fingerprint) const;

  /// Takes the gradient by value: when nobody else holds its buffer (the server moved it out
  /// of its message), the update is written into that buffer (see step_params).
  verdict push(gradient g);
  /// Why the last rejected gradient was refused, and whether that quarantined its worker.
  reject_reason last_rejection() const { return last_rejection_; }
  bool quarantined_now() const { return quarantined_now_; }
  /// Admits a worker id: before training starts ids 0..expected_workers-1, afterwards any
  /// id not seen before (a worker joining mid-run), a restored member rejoining, or a lost
  /// (not quarantined) member coming back: its connection dropped and its process
  /// reconnected (counted in its `rejoins`). Who may use an id is the facade's check.
  bool join(int32_t worker);
  /// A member left before training started (a fresh server): it is forgotten, so that its
  /// id can be handed out again and the join barrier waits for a replacement. False (and
  /// nothing changes) once training started, on a restored server, or for a non-member.
  bool forget(int32_t worker);
  /// True if `worker` is a member that died (and was not quarantined): a new process may
  /// take its id over once training runs.
  bool lost(int32_t worker) const;
  /// (id, epoch, step, computed) of each lost member among `workers`, flat: where its shard's
  /// sample stream stood after its last accepted gradient, and its count of computed ones.
  std::vector<int64_t> lost_positions(const std::vector<int32_t>& workers) const;
  /// True if `worker` is (or was) a member.
  bool knows(int32_t worker) const { return members_.count(worker) > 0; }
  /// A worker died: it leaves the quorum. Returns true if that closed the open round.
  bool lose(int32_t worker);
  /// Takes these workers out of the quorum until they push again. True if that closed the
  /// open round.
  bool suspend(const std::vector<int32_t>& workers);
  /// Live workers the open round still waits for (empty when no round is open).
  std::vector<int32_t> waiting_for() const;
  /// How long the open round has been open (0 when none is).
  std::chrono::duration<double> round_age() const;
  /// A worker's final report: its own count of computed gradients, how many of them its
  /// link dropped, and its seconds computing and waiting.
  void report(const worker_report& r);
  /// The worker waited `seconds` on an evaluation pause: stats() takes them off its wait.
  void paused_for(int32_t worker, double seconds);
  bool diverged() const { return diverged_; }
  /// Why the run diverged, for its error: the loss, the update, the threshold and, when
  /// stale gradients were applied at full step (async, ssp without stale_lr, mean staleness
  /// of 2 or more), what damps them.
  std::string divergence_reason() const;

  const snapshot& current() const { return current_; }
  /// What to answer `worker` with: current(), or (simulated staleness) an older snapshot.
  const snapshot& snapshot_for(int32_t worker);
  /// The budget is spent, or stop_early() ended it.
  bool finished() const;
  /// Ends the budget now (the user interrupted the run): finished() from here on.
  void stop_early() { stopped_early_ = true; }
  bool all_joined() const { return joined_ >= settings_.expected_workers; }
  bool restored() const { return restored_; }
  /// start_clock() was called: every expected worker joined (or the join wait ended).
  bool training_started() const { return clock_running_; }
  /// Workers whose gradients made the last closed round (to answer when it closes).
  const std::vector<int32_t>& last_round() const { return last_round_; }
  const server_settings& settings() const { return settings_; }
  int live_workers() const { return live_; }

  /// Starts the training clock (all workers joined).
  void start_clock();
  /// Stops and restarts the clock around an evaluation pause: training seconds exclude it.
  void pause_clock();
  void resume_clock();
  server_stats stats() const;

private:
  struct member {
    worker_stats stats;
    int bad_in_a_row = 0;
    bool has_read = false;        ///< has pushed a gradient before
    uint64_t last_read = 0;       ///< version_read of its last accepted gradient
    bool suspended = false;
    bool awaiting_rejoin = false;  ///< restored from a checkpoint, not yet back
    int64_t epoch = 0;             ///< sampler position after the last accepted gradient
    int64_t step = 0;
    int64_t clock_offset = 0;      ///< ssp: a late joiner starts at the slowest clock
    bool held = false;             ///< ssp: too far ahead; its answer waits
    double paused_seconds = 0;     ///< waited on evaluation pauses (off its reported wait)
    int64_t clock() const { return stats.applied + clock_offset; }
    bool in_quorum() const {
      return !stats.lost && !stats.quarantined && !suspended && !awaiting_rejoin;
    }
  };

  member* find(int32_t worker);
  /// Checks a gradient (its values for NaN/Inf only with `check_values`); returns false
  /// (and records why) if it must be rejected.
  bool admit(member& m, const gradient& g, bool check_values);
  /// Records a rejection of m's gradient; returns false.
  bool reject(member& m, reject_reason why);
  /// An admitted gradient is taken: m's bad streak ends, its read version and position move.
  void accept(member& m, const gradient& g);
  /// Takes a member out of the quorum; true if that closed the open round.
  bool leave_quorum(member& m);
  void add_to_round(gradient& g);
  /// The round's bookkeeping for g (member, samples, loss), without its values.
  void count_in_round(const gradient& g);
  /// 1/k for the mean of k gradients, 1 for their sum.
  float round_scale(size_t gradients) const;
  /// Applies the open round's gradients.
  void close_round();
  /// Applies the open round's gradients and g, which completes it, in one pass that checks
  /// g's values; false (nothing changed but g's values) if it holds a NaN or Inf.
  bool close_round_with(member& m, gradient& g);
  /// Commits a round's update and empties the round.
  void finish_round(std::shared_ptr<std::vector<float>> next);
  /// current - lr * scale * (sum of the k gradients), in one pass (the sum in the order
  /// given, so sync equals sequential to float rounding), into a buffer nobody else holds:
  /// the spent gradient `reuse` (one of the k) if this is its last reference, else one from
  /// the pool. The spent gradient was just written by this core (the pushing worker's, or
  /// the deserialiser's): updating in its cache lines is cheaper than claiming a buffer
  /// another core touched last, and one buffer fewer circulates. With `check_finite` null
  /// if the last gradient holds a NaN or Inf (the others were checked as they came). Changes
  /// no state.
  std::shared_ptr<std::vector<float>> step_params(const float* const* grads, size_t k,
                                                  float scale, float_buffer reuse,
                                                  bool check_finite);
  /// Makes `next` the current parameters: one more version, and the update's counters.
  void commit(std::shared_ptr<std::vector<float>> next, int64_t samples, float loss);
  void record_applied(worker_stats& w, uint64_t staleness);
  int round_target() const;
  bool round_complete() const;
  /// ssp: the slowest live clock, whether `m` is within the bound of `slowest`, and the held
  /// members the bound now lets go (into last_round_).
  int64_t slowest_clock() const;
  bool within_bound(const member& m, int64_t slowest) const;
  bool release_held();
  verdict ssp_verdict(member& m);
  void count_examples(const gradient& g, std::vector<int32_t>& counts);

  server_settings settings_;
  buffer_pool pool_;
  snapshot current_;
  std::map<int32_t, member> members_;
  int joined_ = 0;
  int live_ = 0;     ///< members in the quorum
  reject_reason last_rejection_ = reject_reason::wrong_length;
  bool quarantined_now_ = false;
  bool diverged_ = false;
  bool stopped_early_ = false;
  float last_loss_ = 0;
  int64_t rejected_unknown_ = 0;
  // The open round (sync, backup): its gradients are held (shared, not copied) and summed
  // once, when it closes.
  std::vector<float_buffer> round_gradients_;
  std::vector<const float*> round_data_;
  std::vector<int32_t> round_members_;
  std::vector<int32_t> last_round_;
  std::chrono::steady_clock::time_point round_opened_;
  int64_t round_samples_ = 0;
  float round_loss_ = 0;
  // Counters.
  int64_t samples_ = 0;
  int64_t applied_ = 0;
  int64_t dropped_ = 0;
  float recent_loss_ = 0;
  bool have_loss_ = false;
  std::vector<int64_t> staleness_histogram_;
  std::deque<snapshot> history_;   ///< simulated staleness: the last versions, oldest first
  data::splitmix64 draws_;         ///< simulated staleness: K per answer
  std::vector<int32_t> example_received_;
  std::vector<int32_t> example_applied_;
  std::shared_ptr<training_clock> clock_;
  double seconds_before_ = 0;  ///< training seconds of the run before a restore
  bool restored_ = false;
  bool clock_running_ = false;  ///< this server has started training
};

} // namespace psgd
