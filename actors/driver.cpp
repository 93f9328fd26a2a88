#include "actors/driver.hpp"

#include <algorithm>
#include <iostream>
#include <numeric>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/openssl/manager.hpp>
#include <fmt/format.h>

#include "actors/results.hpp"
#include "actors/server.hpp"
#include "actors/injector.hpp"
#include "actors/worker.hpp"
#include "actors/checkpoint.hpp"
#include "actors/facade.hpp"
#include "config/thread_placement.hpp"

namespace psgd {

namespace {

using self_ptr = driver_actor::stateful_pointer<driver_state>;

void say(self_ptr self, const std::string& line) {
  if (!self->state.job->cfg.quiet)
    std::cerr << line + '\n'; // one write: processes sharing a terminal never split it
}

/// A notable event: on stderr (also with --quiet, which silences progress only) and in the
/// summary.
void record_event(self_ptr self, std::string text) {
  auto& st = self->state;
  std::cerr << fmt::format("[{}] {}\n", st.job->cfg.mode, text);
  st.summary.events.push_back(std::move(text));
}

/// A resumed worker continues its sample stream and its count where the checkpoint left it.
/// False (and `ws` as it was) if the checkpoint has no such worker (it joined later).
bool resume_position(const checkpoint& c, worker_settings& ws) {
  for (const auto& m : c.state.value("members", nlohmann::json::array()))
    if (m.value("worker", -1) == ws.id) {
      ws.start_epoch = m.value("epoch", int64_t{0});
      ws.start_step = m.value("step", int64_t{0});
      ws.start_computed = m.value("computed", int64_t{0});
      return true;
    }
  return false;
}

/// Spawns the server, fresh or from `restore` (expecting the workers `rejoining` back), and
/// monitors it.
void spawn_server(self_ptr self, std::shared_ptr<const checkpoint> restore,
                  std::vector<int32_t> rejoining = {}) {
  auto& st = self->state;
  const auto& job = *st.job;
  const auto rows = job.data->train.rows;
  auto settings = server_settings::from(job.cfg, rows, job.model->num_params());
  settings.clock = st.clock;
  settings.run_id = job.run_id;
  // Only where every worker has a core to itself: a hint then uses time the worker's core
  // would idle away, where otherwise it takes time from a worker that computes. And only
  // in one process, where each push comes from the worker itself (unless a link carries it).
  const bool core_per_worker = static_cast<size_t>(job.cfg.total_workers()) <= usable_cpus();
  settings.warm_hints = core_per_worker && !job.serve
                        && !(job.faults && job.faults->has_network_faults());
  auto observer = caf::actor_cast<observer_actor>(self);
  const auto eval_every = eval_interval(job.cfg, rows);
  // Serving, every worker is remote: the server lives on the multiplexer thread that
  // receives and answers their pushes (see server_on_multiplexer).
  st.server = job.serve
                ? caf::actor_cast<server_actor>(self->system().middleman().spawn_broker(
                  server_on_multiplexer, settings, job.initial, observer, eval_every,
                  std::move(restore), std::move(rejoining)))
                : self->spawn(server, settings, job.initial, observer, eval_every,
                              std::move(restore), std::move(rejoining));
  self->monitor(st.server);
}

/// The server died mid-run: bring it back from its last good checkpoint, or give up.
void restart_server(self_ptr self, const caf::error& reason);

/// The ids of checkpoint `c`'s members for which keep(id, lost) holds, sorted.
template <class Keep>
std::vector<int32_t> members_where(const checkpoint& c, Keep keep) {
  std::vector<int32_t> ids;
  for (const auto& m : c.state.value("members", nlohmann::json::array()))
    if (const int32_t id = m.value("worker", -1); keep(id, m.value("lost", false)))
      ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

/// The workers of checkpoint `c` that joined mid-run (ids from `shards` on); with
/// `live_only`, those that were not lost.
std::vector<int32_t> late_joiners(const checkpoint& c, int32_t shards, bool live_only) {
  return members_where(c, [=](int32_t id, bool lost) {
    return id >= shards && !(live_only && lost);
  });
}

/// The workers of checkpoint `c` that were lost (a crash, or a link that went away).
std::vector<int32_t> lost_members(const checkpoint& c) {
  return members_where(c, [](int32_t, bool lost) { return lost; });
}

/// Where the run starts its scenario: the checkpoint's update and training seconds when it
/// resumes one.
resume_point resumed_at(const training_job& job) {
  if (!job.resume)
    return {};
  return {job.resume->version, job.resume->state.value("seconds", 0.0)};
}

/// Spawns worker `id` (monitored); the caller starts it.
worker_actor spawn_worker(self_ptr self, int32_t id) {
  auto& st = self->state;
  const auto& job = *st.job;
  const auto& cfg = job.cfg;
  st.next_worker_id = std::max(st.next_worker_id, id + 1);
  worker_settings ws;
  ws.id = id;
  ws.shards = cfg.total_workers();
  ws.seed = worker_seed(cfg.seed, id, ws.shards);
  ws.batch = cfg.batch;
  ws.timeout = std::chrono::milliseconds{cfg.request_timeout_ms};
  ws.network_faults = job.faults && job.faults->has_network_faults();
  ws.track_inclusion = cfg.track_inclusion;
  if (!st.gradient_pool)
    st.gradient_pool =
      std::make_shared<buffer_pool>(static_cast<size_t>(job.model->num_params()));
  ws.gradient_pool = st.gradient_pool;
  if (auto d = job.step_delays.find(id); d != job.step_delays.end())
    ws.step_delay = d->second;
  if (job.resume)
    resume_position(*job.resume, ws);
  // The workers share the training set; the split outlives them through this aliasing
  // pointer.
  std::shared_ptr<const data::dataset> train{job.data, &job.data->train};
  upstream_actor upstream = st.server;
  worker_actor w = cfg.placement == "detached"
                     ? self->spawn<caf::detached>(worker, upstream, job.model, train, ws)
                     : self->spawn(worker, upstream, job.model, train, ws);
  self->monitor(w);
  st.worker_ids.emplace(w.address(), id);
  st.workers.push_back(w);
  return w;
}

void finish(self_ptr self, caf::expected<run_summary> outcome);

/// Publishes the server's facade (psgd serve). False (and the run finished) on failure.
bool publish_front(self_ptr self) {
  auto& st = self->state;
  const auto& job = *st.job;
  const auto& cfg = job.cfg;
  run_spec spec;
  spec.run_id = job.run_id;
  spec.mode = cfg.mode;
  spec.model = cfg.model;
  spec.hidden = cfg.hidden;
  spec.input_dim = job.data->train.dim;
  spec.classes = job.data->train.classes;
  spec.batch = cfg.batch;
  spec.seed = cfg.seed;
  spec.shards = cfg.total_workers();
  spec.request_timeout_ms = cfg.request_timeout_ms;
  spec.dataset = cfg.synthetic ? "synthetic" : "fashion-mnist";
  spec.network_faults = job.faults && job.faults->has_network_faults();
  spec.track_inclusion = cfg.track_inclusion;
  if (job.resume) { // the work processes start (and after a restart go back) where it left them
    // The ids a join event opened are open again for their work processes.
    // (A resumed scenario's join events that fired before the checkpoint do not fire again.)
    const auto joiners = late_joiners(*job.resume, spec.shards, false);
    const int32_t open = joiners.empty() ? spec.shards : joiners.back() + 1;
    st.owners->open_up_to(open);
    for (int32_t id = 0; id < open; ++id) {
      worker_settings at;
      at.id = id;
      if (resume_position(*job.resume, at))
        spec.positions.insert(spec.positions.end(),
                              {id, at.start_epoch, at.start_step, at.start_computed});
    }
  }
  // Beside the server on the multiplexer thread: a push it delegates stays on that thread.
  st.front = caf::actor_cast<facade_actor>(self->system().middleman().spawn_broker(
    facade_on_multiplexer, st.server, spec, data::fingerprint(job.data->train), st.owners,
    st.injector));
  self->monitor(st.front);
  // With TLS nothing is published in plain text: only the openssl module's listener.
  const uint16_t wanted = st.port != 0 ? st.port : job.serve->port;
  auto port = cfg.tls()
                ? caf::openssl::publish(st.front, wanted, job.serve->bind.c_str(), true)
                : self->system().middleman().publish(st.front, wanted, job.serve->bind.c_str(),
                                                     true);
  if (!port) {
    // Bad input (the port is taken, the address is not this machine's): refused.
    finish(self, make_error(error_code::refused,
                            fmt::format("cannot listen on {}:{} (taken, or not an address of "
                                        "this machine): {}",
                                        job.serve->bind, wanted,
                                        self->system().render(port.error()))));
    return false;
  }
  if (st.port != 0)
    return true; // a successor: the workers know the port
  st.port = *port;
  // Always printed (also with --quiet): the workers need the port.
  const size_t joiners = job.resume ? late_joiners(*job.resume, spec.shards, true).size() : 0;
  std::cerr << fmt::format("psgd serve: listening on {}:{}; waiting for {} worker(s){}\n",
                           job.serve->bind, *port, cfg.total_workers() + joiners,
                           cfg.tls() ? " (mutual TLS)" : "");
  return true;
}

/// Serving, a `join` event: the facade opens `count` new worker ids for work processes that
/// join mid-run. Said also with --quiet: psgd launch starts a work process for them when it
/// reads the line (and a user of psgd serve starts one by hand).
void open_worker_ids(self_ptr self, int32_t count) {
  auto& st = self->state;
  self->request(st.front, std::chrono::milliseconds{st.job->cfg.request_timeout_ms},
                open_atom::value, count)
    .then(
      [=](int32_t first) {
        auto& st = self->state;
        std::vector<int32_t> ids(static_cast<size_t>(count));
        std::iota(ids.begin(), ids.end(), first);
        record_event(self, fmt::format("join: worker id(s) {} open for a new work process",
                                       fmt::join(ids, ", ")));
        std::cerr << fmt::format("psgd serve: {} new worker id(s) open: psgd work --connect "
                                 "{}:{} --workers {} takes them\n",
                                 count, st.job->serve->bind, st.port, count);
      },
      [=](caf::error& err) {
        record_event(self, "join: no new worker ids: " + self->system().render(err));
      });
}

/// Arms the injector's triggers, then runs `then`; a failure ends the run.
template <class F>
void start_injector(self_ptr self, F then) {
  self->request(self->state.injector,
                std::chrono::milliseconds{self->state.job->cfg.request_timeout_ms},
                start_atom::value)
    .then([=](start_atom) { then(); },
          [=](caf::error& err) {
            finish(self, make_error(error_code::peer_lost,
                                    "the fault injector did not start: "
                                      + self->system().render(err)));
          });
}

/// Spawns the injector (detached: its timers and messages must not queue behind the busy
/// workers) for the workers spawned so far; remote ones are enlisted as they join.
void spawn_injector(self_ptr self) {
  auto& st = self->state;
  const auto& cfg = st.job->cfg;
  for (auto& line : plan_lines(*st.job->faults, cfg.seed, cfg.total_workers()))
    record_event(self, std::move(line));
  std::map<int32_t, worker_actor> by_id;
  for (const auto& [addr, id] : st.worker_ids)
    by_id.emplace(id, caf::actor_cast<worker_actor>(addr));
  st.injector = self->spawn<caf::detached>(injector, *st.job->faults, cfg.seed,
                                           cfg.total_workers(), st.server,
                                           caf::actor_cast<driver_actor>(self),
                                           std::move(by_id), resumed_at(*st.job));
}

void spawn_team(self_ptr self) {
  auto& st = self->state;
  const auto& job = *st.job;
  const auto& cfg = job.cfg;
  std::vector<int32_t> everyone(cfg.total_workers());
  std::iota(everyone.begin(), everyone.end(), 0);
  if (job.resume) // and the workers that a join event added before the checkpoint
    for (auto id : late_joiners(*job.resume, cfg.total_workers(), true))
      everyone.push_back(id);
  for (const auto& note : job.resume_notes)
    record_event(self, note);
  if (job.resume && !job.serve) {
    // In one process a lost worker is one that died (a scenario's crash): the uninterrupted
    // run went on without it, and so does this one. (Serving, a work process may bring
    // back a worker whose link went away.)
    const auto lost = lost_members(*job.resume);
    if (!lost.empty())
      record_event(self, fmt::format("resume: worker(s) {} were lost before the checkpoint; "
                                     "the run goes on without them",
                                     fmt::join(lost, ", ")));
    everyone.erase(std::remove_if(everyone.begin(), everyone.end(),
                                  [&](int32_t id) {
                                    return std::count(lost.begin(), lost.end(), id) > 0;
                                  }),
                   everyone.end());
    // A join after the checkpoint gets the id it would have had: none of a lost joiner's.
    for (auto id : lost)
      st.next_worker_id = std::max(st.next_worker_id, id + 1);
  }
  spawn_server(self, job.resume, everyone);
  if (job.serve) {
    if (job.faults)
      spawn_injector(self); // started with training (start from the server)
    publish_front(self);
    return;
  }
  for (auto id : everyone)
    spawn_worker(self, id);
  auto start_workers = [=] {
    for (auto& w : self->state.workers)
      self->send(w, start_atom::value);
  };
  if (!job.faults) {
    start_workers();
    return;
  }
  spawn_injector(self);
  start_injector(self, start_workers); // training starts once every trigger is armed
}

/// Ends the run: every actor we spawned exits, the caller gets `outcome`.
/// The scenario's events whose point the run never reached (an update past its last, a
/// time past its length), each said: a result labelled with the scenario must not pass for
/// one that had them. (The injector's clock starts with training, after `started_at`: a
/// time beyond the run's age since then was not reached either.)
void note_unreached_events(self_ptr self, uint64_t version) {
  auto& st = self->state;
  if (!st.job->faults)
    return;
  const double age =
    resumed_at(*st.job).seconds
    + std::chrono::duration<double>(std::chrono::steady_clock::now() - st.started_at).count();
  const auto& events = st.job->faults->events;
  for (size_t i = 0; i < events.size(); ++i) {
    const auto& from = events[i].from;
    if (!from)
      continue;
    const bool unreached = from->in == fault_point::unit::updates
                             ? from->value > static_cast<double>(version)
                             : from->value > age;
    if (unreached)
      record_event(self, fmt::format("scenario event {} ({} at {}) did not happen: the run "
                                     "ended {}",
                                     i, to_string(events[i].kind), to_string(*from),
                                     from->in == fault_point::unit::updates
                                       ? fmt::format("at update {}", version)
                                       : fmt::format("after {:.1f} s", age)));
  }
}

void finish(self_ptr self, caf::expected<run_summary> outcome) {
  auto& st = self->state;
  st.finished = true;
  for (auto& w : st.workers)
    self->send_exit(w, caf::exit_reason::user_shutdown);
  if (st.server)
    self->send_exit(st.server, caf::exit_reason::user_shutdown);
  if (st.injector)
    self->send_exit(st.injector, caf::exit_reason::user_shutdown);
  if (st.front)
    self->send_exit(st.front, caf::exit_reason::user_shutdown);
  if (outcome)
    st.result.deliver(std::move(*outcome));
  else
    st.result.deliver(std::move(outcome.error()));
  self->quit();
}

/// --track-inclusion: the per-example counts summed per class (the training labels).
void tally_classes(run_summary& r, const data::dataset& train) {
  const auto& s = r.final_stats;
  if (s.example_received.empty() || train.labels.size() != s.example_received.size())
    return;
  r.class_received.assign(static_cast<size_t>(train.classes), 0);
  r.class_applied.assign(static_cast<size_t>(train.classes), 0);
  for (size_t i = 0; i < train.labels.size(); ++i) {
    const auto k = static_cast<size_t>(train.labels[i]);
    r.class_received[k] += s.example_received[i];
    r.class_applied[k] += s.example_applied[i];
  }
}

/// The end of the budget, step 2: the server's final counters and the workers' reports.
void collect(self_ptr self) {
  auto& st = self->state;
  if (st.finished)
    return;
  auto finish_with = [=](server_stats stats) {
    auto& st = self->state;
    st.summary.final_stats = std::move(stats);
    tally_classes(st.summary, st.job->data->train);
    finish(self, std::move(st.summary));
  };
  self->request(st.server, std::chrono::milliseconds{st.job->cfg.request_timeout_ms},
                stats_atom::value)
    .then(
      [=](server_stats& stats) {
        // Remote workers: wait (bounded) until they have all stopped and disconnected.
        if (self->state.job->serve && stats.connected > 0
            && std::chrono::steady_clock::now() < self->state.collect_deadline) {
          self->delayed_send(self, std::chrono::milliseconds{50}, tick_atom::value);
          return;
        }
        finish_with(std::move(stats));
      },
      [=](caf::error&) { finish_with(self->state.summary.final_stats); });
}

void restart_server(self_ptr self, const caf::error& reason) {
  auto& st = self->state;
  const auto& cfg = st.job->cfg;
  auto stopped = [&](const std::string& why) {
    finish(self, make_error(error_code::peer_lost,
                            "the server stopped: " + self->system().render(reason) + why));
  };
  // Divergence, a round-timeout stop and a server with no worker left are decisions, not
  // crashes: the run ends with them (their codes intact, so callers can tell). A serving
  // process's facade dies with its server, and no remote worker could reach a successor:
  // stop, and let the operator restart psgd serve with --resume.
  if (reason == make_error(error_code::diverged) || reason == make_error(error_code::round_timeout)
      || reason == make_error(error_code::peer_lost)) // no worker left: a restart cannot help
    return finish(self, reason);
  if (cfg.checkpoint.empty() || st.job->serve)
    return stopped("");
  if (++st.restarts > max_restarts)
    return stopped(fmt::format(" (after {} restarts)", max_restarts));
  auto saved = read_checkpoint(cfg.checkpoint);
  if (!saved)
    return stopped("; no checkpoint to restart from: " + saved.error());
  record_event(self, fmt::format("server stopped ({}); restarted from {} at update {}{}",
                                 self->system().render(reason), saved->file,
                                 saved->data.version,
                                 saved->note.empty() ? "" : " (" + saved->note + ")"));
  std::vector<int32_t> alive;
  for (const auto& [addr, id] : st.worker_ids)
    alive.push_back(id);
  auto restored = std::make_shared<const checkpoint>(std::move(saved->data));
  spawn_server(self, restored, std::move(alive));
  // Each worker goes back to its sample position at the checkpoint: the rolled-back updates
  // are trained again on the same minibatches (a sync run then ends as it would have without
  // the crash). Before, the workers went on with their next minibatches.
  for (const auto& [addr, id] : st.worker_ids) {
    auto w = caf::actor_cast<worker_actor>(addr);
    worker_settings at;
    at.id = id;
    if (resume_position(*restored, at))
      self->send(w, rejoin_atom::value, upstream_actor{st.server}, at.start_epoch, at.start_step);
    else // it joined after the checkpoint: from where it is
      self->send(w, rejoin_atom::value, upstream_actor{st.server});
  }
  if (st.injector)
    self->send(st.injector, rejoin_atom::value, st.server);
  if (st.summary.interrupted) // the interrupt reached the server that stopped
    self->send(st.server, done_atom::value);
}

/// A peer killed the published facade while the server lives: publish a successor on the
/// same port (the work processes reconnect and get their ids back), or give up.
void republish(self_ptr self, const caf::error& reason) {
  auto& st = self->state;
  const auto& cfg = st.job->cfg;
  if (++st.republished > max_republish) {
    finish(self, make_error(error_code::peer_lost,
                            fmt::format("the published facade was stopped {} times (last: {})",
                                        st.republished, self->system().render(reason))));
    return;
  }
  // Free the port (caf::openssl::unpublish does not compile in 0.17.6: ask the manager
  // actor). The driver may block: serving, it has a scheduler thread that no worker needs
  // (see run_training), and the manager answers from the multiplexer thread.
  auto& sys = self->system();
  auto manager = cfg.tls() ? sys.openssl_manager().actor_handle()
                           : sys.middleman().actor_handle();
  caf::scoped_actor blocking{sys};
  blocking
    ->request(manager, std::chrono::milliseconds{cfg.request_timeout_ms},
              caf::unpublish_atom::value, st.front.address(), st.port)
    .receive([] {},
             [&](caf::error& err) {
               record_event(self, "unpublishing the stopped facade failed: " + sys.render(err));
             });
  if (publish_front(self))
    record_event(self, fmt::format("the published facade was stopped ({}); a new one "
                                   "listens on port {}",
                                   self->system().render(reason), st.port));
}

eval_point evaluate(self_ptr self, const snapshot& snap, const server_stats& stats) {
  const auto& job = *self->state.job;
  return evaluate_at(*job.model, snap.params.data(), job.data->train, job.cfg.loss_subsample,
                     job.data->test, stats);
}

} // namespace

driver_actor::behavior_type driver(self_ptr self, std::shared_ptr<const training_job> job) {
  self->state.job = job;
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    if (st.finished)
      return;
    if (msg.source == st.server.address()) {
      if (st.finishing)
        finish(self, std::move(st.summary));
      else
        restart_server(self, msg.reason);
      return;
    }
    if (msg.source == st.front.address()) {
      // A peer's kill (it dies with the server too: that is the server's down message).
      if (!st.finishing && msg.reason == caf::exit_reason::kill)
        republish(self, msg.reason);
      return;
    }
    auto i = st.worker_ids.find(msg.source);
    if (i == st.worker_ids.end())
      return;
    const int32_t id = i->second;
    st.worker_ids.erase(i);
    // A worker that exits normally was told the budget is spent (its down message may
    // overtake the server's done): not a loss.
    if (st.finishing || !msg.reason) {
      if (st.finishing && st.worker_ids.empty())
        collect(self);
      return;
    }
    record_event(self, fmt::format("worker {} lost: {}", id, self->system().render(msg.reason)));
    // A worker that stopped because the server is gone is not the cause: the server's own
    // down message follows and names it.
    if (st.worker_ids.empty() && msg.reason != make_error(error_code::peer_lost))
      finish(self, make_error(error_code::peer_lost, "every worker was lost"));
  });
  return {
    [=](run_atom) -> caf::result<run_summary> {
      auto& st = self->state;
      if (st.started)
        return make_error(error_code::not_a_member, "the driver runs one job");
      st.started = true;
      st.started_at = std::chrono::steady_clock::now();
      if (st.job->resume)
        st.summary.resumed_from = static_cast<int64_t>(st.job->resume->version);
      st.summary.run_id = st.job->run_id;
      st.result = self->make_response_promise<run_summary>();
      spawn_team(self);
      return st.result;
    },
    [=](progress_atom, const snapshot& snap, const server_stats& stats) {
      auto& st = self->state;
      if (!st.finished) {
        auto p = evaluate(self, snap, stats);
        st.summary.evaluations.push_back(p);
        if (st.job->on_evaluation)
          st.job->on_evaluation(p);
        say(self, progress_line(st.job->cfg, p, stats, st.job->data->train.rows));
      }
      return resume_atom::value;
    },
    [=](done_atom, const snapshot& snap, const server_stats& stats) {
      auto& st = self->state;
      if (st.finished || st.finishing)
        return;
      st.finishing = true;
      if (st.summary.interrupted)
        record_event(self,
                     interruption_note(stats.version, stats.samples, st.job->data->train.rows));
      note_unreached_events(self, stats.version);
      // An interrupt during an evaluation pause ends the run at the version just evaluated:
      // that evaluation is the final one (before, it was made and written twice).
      auto& evals = st.summary.evaluations;
      if (evals.empty() || evals.back().updates != snap.version)
        evals.push_back(evaluate(self, snap, stats));
      st.summary.final_stats = stats;
      st.summary.final_params = snap;
      // Step 1: the workers stop as their next push is refused; wait for their reports.
      st.collect_deadline = std::chrono::steady_clock::now() + report_wait;
      if (st.worker_ids.empty())
        collect(self);
      else
        self->delayed_send(self, report_wait, tick_atom::value);
    },
    [=](event_atom, std::string& text) { record_event(self, std::move(text)); },
    [=](start_atom) {
      // Serving: the remote workers have joined; the scenario's clock starts now. (In one
      // process the injector started before the workers.)
      auto& st = self->state;
      // The wait for the work processes (each loads its data first) was silent, seconds
      // long with many of them; say when it ends, also with --quiet (psgd launch watches for
      // it). (A partial join or a resume says so itself.)
      if (st.job->serve && !st.job->resume)
        std::cerr << "psgd serve: workers joined; training starts\n";
      if (st.job->serve && st.injector && !st.finished)
        start_injector(self, [] {});
    },
    [=](tick_atom) { collect(self); },
    [=](done_atom) {
      auto& st = self->state;
      if (st.finishing || st.finished || st.summary.interrupted)
        return;
      st.summary.interrupted = true;
      self->send(st.server, done_atom::value);
    },
    [=](join_atom, int32_t count) {
      if (self->state.finishing || self->state.finished)
        return;
      auto& st = self->state;
      if (st.job->serve) {
        open_worker_ids(self, count);
        return;
      }
      for (int32_t i = 0; i < count; ++i) {
        const int32_t id = st.next_worker_id;
        auto w = spawn_worker(self, id);
        if (!st.injector) {
          self->send(w, start_atom::value);
          continue;
        }
        // The scenario may name it (a later event's ids past the starting workers'). Its
        // effects in force reach it before its first step: started once the injector has
        // enlisted it (a start sent alongside could overtake them, and a fast joiner then
        // ran its whole share unslowed). Started anyway if the injector does not answer.
        auto start = [self, w] { self->send(w, start_atom::value); };
        self->request(st.injector, std::chrono::milliseconds{st.job->cfg.request_timeout_ms},
                      enlist_atom::value, id, w)
          .then(start, [start](caf::error&) { start(); });
      }
    },
  };
}

} // namespace psgd
