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
// - aggregate: mean (x -= lr * mean of the round's gradients) or sum (x -= lr * sum, the
//   lecture's Algorithm 1). Async applies one gradient: both rules give x -= lr * g.
// Every applied gradient's staleness goes into the histogram; sync and backup record 0.
//
// Invariants: version == number of updates applied; `current()` is never modified once
// handed out (each update writes a new buffer); per worker, pushed == applied + dropped +
// after_stop + waiting-in-round + rejected.
// Not thread-safe: owned by one actor.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <vector>

#include "actors/snapshot_pool.hpp"
#include "config/run_config.hpp"
#include "messages/vocabulary.hpp"

namespace psgd {

struct server_settings {
  train_mode mode = train_mode::sync;
  int quorum = 1;             ///< m: gradients per update (sync, backup)
  int expected_workers = 1;   ///< workers that must join before training starts
  double lr = 0.1;
  aggregate_rule aggregate = aggregate_rule::mean;
  uint64_t max_updates = 0;   ///< 0 = no limit
  int64_t sample_budget = 0;  ///< stop once this many samples were applied; 0 = no limit
  std::chrono::milliseconds request_timeout{60000};  ///< bound of the server's own requests

  static server_settings from(const run_config& cfg, int64_t train_rows);
};

class server_core {
public:
  enum class verdict {
    applied,       ///< async: applied; answer with current()
    waiting,       ///< sync/backup: part of the open round; answer when it closes
    round_closed,  ///< this gradient closed the round: answer every waiting worker
    dropped_late,  ///< computed on an old version: dropped; answer with current()
    after_stop,    ///< the budget is spent: not applied
    rejected,      ///< wrong length or unknown worker: not applied
  };

  server_core(server_settings settings, std::vector<float> initial);

  verdict push(const gradient& g);
  /// Admits a worker id (ids are 0..expected_workers-1).
  bool join(int32_t worker);
  /// A worker died: it leaves the quorum. Returns true if that closed the open round.
  bool lose(int32_t worker);

  const snapshot& current() const { return current_; }
  bool finished() const;
  bool all_joined() const { return joined_ == settings_.expected_workers; }
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
  worker_stats* find(int32_t worker);
  void add_to_round(const gradient& g);
  void close_round();
  /// current <- current - lr * scale * (sum of the k gradients), as a new buffer, in one
  /// pass (the sum in the order given, so sync equals sequential to float rounding).
  void apply(const float* const* grads, size_t k, float scale, int64_t samples, float loss);
  void record_applied(worker_stats& w, uint64_t staleness);
  int round_target() const;

  server_settings settings_;
  buffer_pool pool_;
  snapshot current_;
  std::map<int32_t, worker_stats> workers_;
  int joined_ = 0;
  int live_ = 0;
  // The open round (sync, backup): its gradients are held (shared, not copied) and summed
  // once, when it closes.
  std::vector<float_buffer> round_gradients_;
  std::vector<const float*> round_data_;
  std::vector<int32_t> round_members_;
  std::vector<int32_t> last_round_;
  int64_t round_samples_ = 0;
  float round_loss_ = 0;
  // Counters.
  int64_t samples_ = 0;
  int64_t applied_ = 0;
  int64_t dropped_ = 0;
  float recent_loss_ = 0;
  bool have_loss_ = false;
  std::vector<int64_t> staleness_histogram_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point pause_started_;
  std::chrono::steady_clock::duration paused_{0};
  bool clock_running_ = false;
  bool clock_paused_ = false;
};

} // namespace psgd
