// The entry point of a training run, for the CLI, the tests and the benches.
//
// Contract:
// - prepare_job() loads the data the config names (Fashion-MNIST or a synthetic set), builds
//   the model and its initial parameters (model init from --seed), reads the scenario
//   (--scenario), and checks the options against the data. Every failure is one line naming
//   the problem.
// - run_training() runs the job to the end of its budget and returns its summary; in
//   `sequential` mode without actors, otherwise with a driver, a server and the workers on
//   `sys`. It blocks the calling thread; every actor it started has been told to exit when
//   it returns. Errors (a dead server, all workers lost) come back as values. Once
//   *job.interrupt is set (a signal handler may set it) the run stops within ~0.1 s as if its
//   budget were spent (final evaluation, checkpoint, accounting) and its summary says
//   `interrupted`.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include "config/run_config.hpp"
#include "actors/checkpoint.hpp"
#include "config/scenario.hpp"
#include "data/dataset.hpp"
#include "data/outcome.hpp"
#include "messages/vocabulary.hpp"
#include "model/model.hpp"

namespace psgd {

/// Where a serving process listens (psgd serve): its workers come over the network.
struct serve_options {
  std::string bind = "127.0.0.1";
  uint16_t port = 0;  ///< 0: the OS picks one (printed)
};

struct training_job {
  run_config cfg;                                ///< validated
  std::shared_ptr<const data::split> data;
  std::shared_ptr<const model::model> model;
  std::vector<float> initial;                    ///< initial parameters
  /// Extra time per step of some workers (a real straggler): worker id -> delay.
  std::map<int32_t, std::chrono::microseconds> step_delays;
  /// Stragglers and faults to inject (--scenario).
  std::optional<scenario> faults;
  /// The checkpoint to continue from (--resume), fingerprint-checked; null for a fresh run.
  std::shared_ptr<const checkpoint> resume;
  /// The run's identity: random for a fresh run, the checkpoint's for a resumed one. Work
  /// processes that reconnect compare it, so that they never join a new run of the same
  /// settings as if it were theirs.
  std::string run_id;
  /// What the run says of its --resume before training: its own file skipped for FILE.prev
  /// (a torn or corrupt write), a budget the checkpoint has already spent.
  std::vector<std::string> resume_notes;
  /// Set: publish the server's facade and wait for remote workers instead of spawning them.
  std::optional<serve_options> serve;
  /// Set to true to stop the run early with its results so far; null: never.
  const std::atomic<bool>* interrupt = nullptr;
  /// Called with each evaluation during training as it is made (not the final one, which
  /// the summary carries), on the driver's thread or, in sequential mode, the caller's.
  std::function<void(const eval_point&)> on_evaluation;
};

/// The data set a config names: Fashion-MNIST from cfg.data, or the synthetic problem for
/// cfg's model and seed (identical in every process). `cfg` must have passed validate().
outcome<std::shared_ptr<const data::split>> load_data(const run_config& cfg);

/// Reads --scenario and checks it against the run: no workers to fault in sequential mode,
/// a server crash needs --checkpoint, and a serving process (cfg.networked) has no local
/// workers to start (join) and no in-process server restart (server_crash). One line per
/// problem.
outcome<scenario> load_scenario_for(const run_config& cfg);

/// Loads data, builds the model, checks the config against the data. `cfg` must have passed
/// validate().
outcome<training_job> prepare_job(const run_config& cfg);

/// Same, on data the caller provides (tests, benches).
outcome<training_job> prepare_job(const run_config& cfg, std::shared_ptr<const data::split> data);

caf::expected<run_summary> run_training(caf::actor_system& sys, const training_job& job);

} // namespace psgd
