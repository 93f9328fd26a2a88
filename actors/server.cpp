#include "actors/server.hpp"

#include <algorithm>

#include <caf/all.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace psgd {

namespace {

using promise = caf::typed_response_promise<snapshot>;

template <class Self>
void handle_push(Self* self, gradient g, promise rp);

/// Answers worker `id` with the snapshot to compute on next (the current one, or an older
/// one under simulated staleness); held while an evaluation pauses training.
template <class Self>
void answer(Self* self, int32_t id, promise& rp) {
  auto& st = self->state;
  if (st.done_sent)
    rp.deliver(make_error(error_code::training_finished));
  else if (st.paused) {
    st.held.emplace_back(id, std::move(rp));
    st.pause_waiters.insert(id);
  } else
    rp.deliver(st.core->snapshot_for(id));
}

/// Answers the members of the round that just closed.
template <class Self>
void answer_round(Self* self) {
  auto& st = self->state;
  for (auto id : st.core->last_round()) {
    auto i = st.waiting.find(id);
    if (i != st.waiting.end()) {
      auto rp = std::move(i->second);
      st.waiting.erase(i);
      answer(self, id, rp);
    }
  }
}

template <class Self>
void report(Self* self);

/// Ends an evaluation pause: answer the held workers, then the pushes that came meanwhile
/// (until one of them pauses again).
template <class Self>
void resume(Self* self) {
  auto& st = self->state;
  st.paused = false;
  st.core->resume_clock();
  const double pause =
    std::chrono::duration<double>(std::chrono::steady_clock::now() - st.pause_began).count();
  for (auto id : st.pause_waiters)
    st.core->paused_for(id, pause);
  st.pause_waiters.clear();
  auto held = std::move(st.held);
  st.held.clear();
  for (auto& [id, rp] : held)
    answer(self, id, rp);
  while (!st.paused && !st.deferred.empty()) {
    auto [g, rp] = std::move(st.deferred.front());
    st.deferred.pop_front();
    handle_push(self, std::move(g), std::move(rp));
  }
  if (!st.paused && st.core->finished())
    report(self); // stopped early during the pause: no update comes to end the run
}

/// Tells the observer about a notable event (it logs it and keeps it in the results).
template <class Self>
void tell(Self* self, std::string text) {
  self->send(self->state.observer, event_atom::value, std::move(text));
}

template <class Self>
void write_checkpoint_now(Self* self) {
  auto& st = self->state;
  const auto& settings = st.core->settings();
  auto problem = write_checkpoint(settings.checkpoint_path,
                                  st.core->to_checkpoint(settings.fingerprint));
  st.checkpointed_version = st.core->current().version;
  st.checkpointed_at = std::chrono::steady_clock::now();
  if (!problem.empty())
    tell(self, "checkpoint failed: " + problem);
}

/// Writes a checkpoint when its interval (updates or seconds) has passed.
template <class Self>
void maybe_checkpoint(Self* self) {
  auto& st = self->state;
  const auto& settings = st.core->settings();
  if (settings.checkpoint_path.empty())
    return;
  const bool by_updates = settings.checkpoint_every > 0
                          && st.core->current().version
                               >= st.checkpointed_version + settings.checkpoint_every;
  const bool by_time =
    settings.checkpoint_seconds > 0
    && std::chrono::duration<double>(std::chrono::steady_clock::now() - st.checkpointed_at)
           .count()
         >= settings.checkpoint_seconds;
  if (by_updates || by_time)
    write_checkpoint_now(self);
}

/// Backup with fewer than m live workers closes its rounds with all of them: say so, once.
template <class Self>
void check_quorum(Self* self) {
  auto& st = self->state;
  const auto& settings = st.core->settings();
  if (st.said_short || settings.mode != train_mode::backup
      || st.core->live_workers() >= settings.quorum)
    return;
  st.said_short = true;
  tell(self, fmt::format("backup: {} live worker(s), fewer than m={}: rounds now close with "
                         "all live workers",
                         st.core->live_workers(), settings.quorum));
}

/// Nobody left to train with (lost, quarantined or timed out, however it came): wait, bounded,
/// for a worker to join, and say so once. Checked on every watchdog tick.
template <class Self>
void check_live(Self* self) {
  auto& st = self->state;
  if (!st.started || st.done_sent || st.core->live_workers() > 0) {
    st.deserted_until.reset();
    return;
  }
  if (st.deserted_until)
    return;
  const auto wait = st.core->settings().request_timeout;
  st.deserted_until = std::chrono::steady_clock::now() + wait;
  tell(self, fmt::format("every worker is gone: stopping in {} ms unless one joins",
                         wait.count()));
}

/// After an update: divergence, the end of the budget, or an evaluation point (which pauses
/// training).
template <class Self>
void report(Self* self) {
  auto& st = self->state;
  if (st.done_sent)
    return;
  if (st.core->diverged()) {
    self->quit(make_error(error_code::diverged, st.core->divergence_reason()));
    return;
  }
  const auto version = st.core->current().version;
  while (!st.watches.empty() && st.watches.begin()->first <= version) {
    st.watches.begin()->second.deliver(version);
    st.watches.erase(st.watches.begin());
  }
  if (st.core->finished()) {
    st.done_sent = true;
    // The training time ends with the last update: not after the final evaluation and the
    // workers' reports, which the observer's later stats request would otherwise count.
    st.core->pause_clock();
    // Not when interrupted before training started: a checkpoint without members would
    // resume with whoever joins first (a sync m=2 run went on with one worker).
    if (!st.core->settings().checkpoint_path.empty() && st.core->training_started())
      write_checkpoint_now(self);
    // The observer first: the workers stop as they hear of it.
    self->send(st.observer, done_atom::value, st.core->current(), st.core->stats());
    for (auto& [id, rp] : st.waiting)
      rp.deliver(make_error(error_code::training_finished));
    st.waiting.clear();
    // Interrupted before training started: the workers at the join barrier stop too (they
    // waited out the request timeout for a server that had gone).
    for (auto& [id, rp] : st.joins)
      rp.deliver(make_error(error_code::training_finished));
    st.joins.clear();
    return;
  }
  maybe_checkpoint(self);
  if (st.eval_every > 0 && st.core->current().version >= st.next_eval) {
    st.next_eval += st.eval_every;
    st.paused = true;
    st.pause_began = std::chrono::steady_clock::now();
    st.core->pause_clock();
    for (const auto& [id, rp] : st.waiting) // ssp: too far ahead; they wait out the pause
      st.pause_waiters.insert(id);
    // A failed or late evaluation must not stop training: resume either way.
    self->request(st.observer, st.core->settings().request_timeout, progress_atom::value,
                  st.core->current(), st.core->stats())
      .then([=](resume_atom) { resume(self); }, [=](caf::error&) { resume(self); });
  }
}

/// A rejected gradient: the worker gets an error; a quarantine is announced, and may close
/// a round that waited for that worker.
template <class Self>
void reject(Self* self, const gradient& g, promise& rp, uint64_t version_before) {
  auto& st = self->state;
  auto why = to_string(st.core->last_rejection());
  rp.deliver(make_error(error_code::rejected,
                        fmt::format("gradient of worker {} on version {}: {}", g.worker,
                                    g.version_read, why)));
  if (!st.core->quarantined_now())
    return;
  tell(self, fmt::format("worker {} quarantined after {} bad gradients in a row (last: {})",
                         g.worker, st.core->settings().quarantine_after, why));
  check_quorum(self);
  if (st.core->current().version > version_before) {
    report(self);
    answer_round(self);
  }
}

template <class Self>
void handle_push(Self* self, gradient g, promise rp) {
  auto& st = self->state;
  if (st.paused) {
    st.pause_waiters.insert(g.worker);
    st.deferred.emplace_back(std::move(g), std::move(rp));
    return;
  }
  const auto version_before = st.core->current().version;
  // The core may take the gradient's buffer for the new parameters; g's other fields stay.
  switch (st.core->push(std::move(g))) {
    case server_core::verdict::unknown:
      rp.deliver(make_error(error_code::not_a_member,
                            fmt::format("worker {} never joined", g.worker)));
      return;
    case server_core::verdict::rejected:
      reject(self, g, rp, version_before);
      return;
    case server_core::verdict::after_stop:
      rp.deliver(make_error(error_code::training_finished));
      return;
    case server_core::verdict::waiting:
      if (st.core->settings().warm_hints)
        if (const auto& worker = static_cast<caf::response_promise&>(rp).source())
          self->send(caf::actor_cast<worker_actor>(worker), warm_atom::value);
      st.waiting.insert_or_assign(g.worker, std::move(rp));
      if (st.core->current().version > version_before)
        report(self); // ssp: applied, but its worker waits for the slowest
      return;
    case server_core::verdict::round_closed:
      st.waiting.insert_or_assign(g.worker, std::move(rp));
      report(self); // first: at the end of the budget the round gets errors instead
      answer_round(self);
      return;
    case server_core::verdict::applied:
      report(self);
      answer(self, g.worker, rp);
      return;
    case server_core::verdict::dropped_late:
      answer(self, g.worker, rp);
      return;
  }
}

std::chrono::milliseconds tick_interval(const server_settings& s) {
  auto quarter = std::chrono::duration_cast<std::chrono::milliseconds>(s.round_timeout / 4);
  return std::clamp(quarter, std::chrono::milliseconds{10}, std::chrono::milliseconds{1000});
}

/// The round-timeout guard: a round open longer than --round-timeout names the workers it
/// waits for, then drops them from the quorum or stops the run (the configured policy).
template <class Self>
void check_round(Self* self) {
  auto& st = self->state;
  const auto& settings = st.core->settings();
  if (st.done_sent || st.paused || settings.round_timeout.count() <= 0
      || st.core->round_age() < settings.round_timeout)
    return;
  auto late = st.core->waiting_for();
  auto text = fmt::format("round {} waited {:.3g} s for worker(s) {}", // 0.012, not 0.0
                          st.core->current().version, st.core->round_age().count(),
                          fmt::join(late, ", "));
  if (settings.stop_on_round_timeout) {
    self->quit(make_error(error_code::round_timeout, text + "; stopping (--round-timeout-policy stop)"));
    return;
  }
  tell(self, text + "; dropped from the quorum until they push again");
  if (st.core->suspend(late)) {
    report(self);
    answer_round(self);
  }
  check_quorum(self);
}

/// Starts the watchdog tick once (it re-arms itself).
template <class Self>
void arm_tick(Self* self) {
  auto& st = self->state;
  if (st.ticking)
    return;
  st.ticking = true;
  self->delayed_send(self, tick_interval(st.core->settings()), tick_atom::value);
}

/// Why a member's actor went down, for the log: CAF's name for a lost remote node says
/// nothing to a user who killed a work process or cut its link.
std::string why_gone(caf::actor_system& sys, const caf::error& reason) {
  if (reason == caf::exit_reason::remote_link_unreachable)
    return "its work process or its connection is gone (remote_link_unreachable)";
  return sys.render(reason);
}

/// Stops watching worker `id`'s actor; true if it was watched (connected, in the server's
/// view).
bool drop_actor_of(server_state& st, int32_t id) {
  for (auto m = st.members.begin(); m != st.members.end(); ++m)
    if (m->second == id) {
      st.members.erase(m);
      return true;
    }
  return false;
}

/// Worker `id` is gone (its actor died, or the facade saw its process go): it leaves the
/// quorum, and a round that waited only for it closes.
template <class Self>
void lose_member(Self* self, int32_t id, const std::string& why) {
  auto& st = self->state;
  drop_actor_of(st, id);
  st.waiting.erase(id);
  tell(self, fmt::format("worker {} {}: {}", id,
                         st.started ? "left the quorum" : "left before training started", why));
  if (st.core->lose(id)) {
    report(self);
    answer_round(self);
  }
  check_quorum(self);
}

/// Every expected worker is here: start the clock and answer the held joins.
template <class Self>
void begin_training(Self* self) {
  auto& st = self->state;
  if (st.core->restored())
    // live_workers(), not the held joins: the join that completes the set is answered by
    // its own handler (the message read "1 worker(s) rejoined" with both back).
    tell(self, fmt::format("{} worker(s) rejoined; training goes on from update {}",
                           st.core->live_workers(), st.core->current().version));
  st.started = true;
  st.core->start_clock();
  arm_tick(self);
  self->send(st.observer, start_atom::value);
  for (auto& [id, rp] : st.joins)
    rp.deliver(st.core->snapshot_for(id));
  st.joins.clear();
}

/// A fresh server stops waiting for workers that did not join in time: it starts without
/// the late ones, or, when none came (all work processes failed before joining: launch then
/// waited forever), it stops.
template <class Self>
void check_joins(Self* self) {
  auto& st = self->state;
  if (st.started || st.core->restored() || std::chrono::steady_clock::now() < st.join_deadline)
    return;
  if (st.joins.empty()) { // none came, or those that came left again (released)
    const auto wait = st.core->settings().request_timeout.count();
    self->quit(make_error(
      error_code::peer_lost,
      st.first_joined
        ? fmt::format("every worker that joined left before training started, and none took "
                      "its place within {} ms (--request-timeout-ms)",
                      wait)
        : fmt::format("no worker joined within {} ms (--request-timeout-ms)", wait)));
    return;
  }
  tell(self, fmt::format("only {} of {} worker(s) joined within {} ms: training starts "
                         "without the others",
                         st.joins.size(), st.core->settings().expected_workers,
                         st.core->settings().request_timeout.count()));
  begin_training(self);
}

/// A restored server stops waiting for members that did not rejoin in time.
template <class Self>
void check_rejoins(Self* self) {
  auto& st = self->state;
  if (st.started || !st.core->restored()
      || std::chrono::steady_clock::now() < st.rejoin_deadline)
    return;
  auto missing = st.core->abandon_rejoins();
  tell(self, fmt::format("worker(s) {} did not rejoin the restarted server: lost",
                         fmt::join(missing, ", ")));
  if (st.core->live_workers() == 0) {
    // Nobody to train with: stop, do not wait for ever.
    self->quit(make_error(error_code::peer_lost, "no worker rejoined the restarted server"));
    return;
  }
  if (st.core->ready())
    begin_training(self);
}

template <class Self>
server_actor::behavior_type server_behavior(Self* self, server_settings settings,
                                   std::vector<float> initial, observer_actor observer,
                                   uint64_t eval_every, std::shared_ptr<const checkpoint> restore,
                                   std::vector<int32_t> rejoining) {
  auto& st = self->state;
  st.observer = std::move(observer);
  st.eval_every = eval_every;
  st.checkpointed_at = std::chrono::steady_clock::now();
  if (restore) {
    st.core = std::make_unique<server_core>(settings, *restore, rejoining);
    st.checkpointed_version = restore->version;
    st.rejoin_deadline = std::chrono::steady_clock::now() + settings.request_timeout;
    arm_tick(self);
    if (st.core->finished()) { // resumed from the final checkpoint: nothing left to do
      st.started = true;
      self->send(st.observer, done_atom::value, st.core->current(), st.core->stats());
      st.done_sent = true;
    }
  } else {
    st.core = std::make_unique<server_core>(settings, std::move(initial));
    st.join_deadline = std::chrono::steady_clock::now() + settings.request_timeout;
    arm_tick(self);
  }
  const uint64_t version = st.core->current().version;
  st.next_eval = eval_every > 0 ? (version / eval_every + 1) * eval_every : 0;
  self->monitor(st.observer);
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    if (msg.source == st.observer.address()) {
      self->quit(msg.reason);
      return;
    }
    auto i = st.members.find(msg.source);
    if (i == st.members.end())
      return;
    if (st.done_sent) { // workers leave once the budget is spent: not a loss
      st.members.erase(i);
      return;
    }
    lose_member(self, i->second, why_gone(self->system(), msg.reason));
  });
  return {
    [=](join_atom, int32_t id) -> caf::result<snapshot> {
      auto& st = self->state;
      if (auto m = st.members.find(caf::actor_cast<caf::actor_addr>(self->current_sender()));
          m != st.members.end() && m->second == id) {
        // A member joins again: its path changed (a republished facade). It goes on. If its
        // gradient is in the open round (or it is held by the ssp bound), it is answered
        // when that round closes, as its push would have been: answered now it would compute
        // on the same version again (a duplicate).
        auto rp = self->template make_response_promise<snapshot>();
        if (auto w = st.waiting.find(id); w != st.waiting.end())
          w->second = rp;
        else if (st.started)
          answer(self, id, rp);
        else
          st.joins.emplace_back(id, rp);
        return rp;
      }
      const bool rejoin = st.core->knows(id);
      if (!st.core->join(id))
        return make_error(error_code::not_a_member,
                          "worker id " + std::to_string(id) + " is unknown or taken");
      auto sender = caf::actor_cast<caf::actor>(self->current_sender());
      bool taken_over = false;
      if (sender) {
        self->monitor(sender);
        st.members.emplace(sender.address(), id);
        auto& node = st.node_of[id];
        taken_over = rejoin && node && node != sender.node();
        node = sender.node();
      }
      if (st.started) {
        tell(self, fmt::format("worker {} {} at update {}", id,
                               taken_over ? "was taken over by a new work process"
                               : rejoin   ? "rejoined"
                                          : "joined",
                               st.core->current().version));
        return st.core->snapshot_for(id);
      }
      if (!st.core->ready()) {
        if (!st.first_joined && !st.core->restored()) {
          st.first_joined = true;
          st.join_deadline = std::chrono::steady_clock::now() + settings.request_timeout;
          arm_tick(self);
        }
        auto rp = self->template make_response_promise<snapshot>();
        st.joins.emplace_back(id, rp);
        return rp;
      }
      begin_training(self);
      return st.core->snapshot_for(id);
    },
    // By mutable reference: CAF then copies a message that others share (none does in
    // psgd), so the gradient's buffer is ours alone when its reference count says so.
    [=](push_atom, gradient& g) -> caf::result<snapshot> {
      auto rp = self->template make_response_promise<snapshot>();
      handle_push(self, std::move(g), rp);
      return rp;
    },
    [=](stats_atom) {
      auto s = self->state.core->stats();
      s.connected = static_cast<int32_t>(self->state.members.size());
      return s;
    },
    [=](pull_atom, int32_t id) -> caf::result<snapshot> {
      auto& st = self->state;
      if (!st.core->knows(id))
        return make_error(error_code::not_a_member,
                          "worker id " + std::to_string(id) + " never joined");
      auto rp = self->template make_response_promise<snapshot>();
      answer(self, id, rp);
      return rp;
    },
    [=](release_atom, int32_t id) {
      auto& st = self->state;
      if (st.done_sent)
        return false;
      if (st.started) {
        // Its process is gone (the facade's word can come before the worker's own down).
        // A new process may take the id over, and goes on where the member left off.
        if (drop_actor_of(st, id))
          lose_member(self, id, "its work process is gone");
        if (st.core->knows(id) && !st.core->lost(id))
          return false; // quarantined: it stays out
        tell(self, fmt::format("worker id {} is free for another work process to take over",
                               id));
        return true;
      }
      if (st.core->restored())
        return false;
      st.core->forget(id); // or it never joined: its process died between hello and join
      drop_actor_of(st, id);
      auto held_for_id = [id](const server_state::held_answer& j) { return j.first == id; };
      st.joins.erase(std::remove_if(st.joins.begin(), st.joins.end(), held_for_id),
                     st.joins.end());
      tell(self, fmt::format("worker id {} is free again for another work process: waiting "
                             "for {} more worker(s)",
                             id, st.core->settings().expected_workers - st.joins.size()));
      return true;
    },
    [=](position_atom, const hello_request& req) {
      return member_positions{self->state.core->lost_positions(req.ids)};
    },
    [=](report_atom, const worker_report& r) { self->state.core->report(r); },
    [=](watch_atom, uint64_t version) -> caf::result<uint64_t> {
      auto& st = self->state;
      if (st.core->current().version >= version)
        return st.core->current().version;
      auto rp = self->template make_response_promise<uint64_t>();
      st.watches.emplace(version, rp);
      return rp;
    },
    [=](crash_atom) {
      self->quit(make_error(error_code::injected_crash, "the server (scenario)"));
    },
    [=](done_atom) {
      auto& st = self->state;
      st.core->stop_early();
      if (!st.paused) // else resume() ends it once the evaluation answers
        report(self);
    },
    [=](tick_atom) {
      auto& st = self->state;
      check_live(self);
      if (st.deserted_until && std::chrono::steady_clock::now() >= *st.deserted_until) {
        self->quit(make_error(error_code::peer_lost,
                              fmt::format("every worker was lost and none joined within {} ms",
                                          st.core->settings().request_timeout.count())));
        return;
      }
      check_joins(self);
      check_rejoins(self);
      check_round(self);
      self->delayed_send(self, tick_interval(self->state.core->settings()), tick_atom::value);
    },
  };
}

} // namespace

server_actor::behavior_type server(server_actor::stateful_pointer<server_state> self, server_settings settings, std::vector<float> initial, observer_actor observer, uint64_t eval_every, std::shared_ptr<const checkpoint> restore, std::vector<int32_t> rejoining) {
  return server_behavior(self, std::move(settings), std::move(initial), std::move(observer), eval_every, std::move(restore), std::move(rejoining));
}

caf::behavior server_on_multiplexer(server_broker* self, server_settings settings, std::vector<float> initial, observer_actor observer, uint64_t eval_every, std::shared_ptr<const checkpoint> restore, std::vector<int32_t> rejoining) {
  return server_behavior(self, std::move(settings), std::move(initial), std::move(observer), eval_every, std::move(restore), std::move(rejoining)).unbox();
}

} // namespace psgd
