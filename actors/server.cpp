#include "actors/server.hpp"

#include <caf/all.hpp>

namespace psgd {

namespace {

using self_ptr = server_actor::stateful_pointer<server_state>;
using promise = caf::typed_response_promise<snapshot>;

void handle_push(self_ptr self, const gradient& g, promise rp);

/// Answers one worker with the current snapshot; held while an evaluation pauses training.
void answer(self_ptr self, promise& rp) {
  auto& st = self->state;
  if (st.done_sent)
    rp.deliver(make_error(error_code::training_finished));
  else if (st.paused)
    st.held.push_back(std::move(rp));
  else
    rp.deliver(st.core->current());
}

/// Answers the members of the round that just closed.
void answer_round(self_ptr self) {
  auto& st = self->state;
  for (auto id : st.core->last_round()) {
    auto i = st.waiting.find(id);
    if (i != st.waiting.end()) {
      auto rp = std::move(i->second);
      st.waiting.erase(i);
      answer(self, rp);
    }
  }
}

/// Ends an evaluation pause: answer the held workers, then the pushes that came meanwhile
/// (until one of them pauses again).
void resume(self_ptr self) {
  auto& st = self->state;
  st.paused = false;
  st.core->resume_clock();
  auto held = std::move(st.held);
  st.held.clear();
  for (auto& rp : held)
    answer(self, rp);
  while (!st.paused && !st.deferred.empty()) {
    auto [g, rp] = std::move(st.deferred.front());
    st.deferred.pop_front();
    handle_push(self, g, std::move(rp));
  }
}

/// After an update: the end of the budget, or an evaluation point (which pauses training).
void report(self_ptr self) {
  auto& st = self->state;
  if (st.done_sent)
    return;
  if (st.core->finished()) {
    st.done_sent = true;
    for (auto& [id, rp] : st.waiting)
      rp.deliver(make_error(error_code::training_finished));
    st.waiting.clear();
    self->send(st.observer, done_atom::value, st.core->current(), st.core->stats());
    return;
  }
  if (st.eval_every > 0 && st.core->current().version >= st.next_eval) {
    st.next_eval += st.eval_every;
    st.paused = true;
    st.core->pause_clock();
    // A failed or late evaluation must not stop training: resume either way.
    self->request(st.observer, st.core->settings().request_timeout, progress_atom::value,
                  st.core->current(), st.core->stats())
      .then([=](resume_atom) { resume(self); }, [=](caf::error&) { resume(self); });
  }
}

void handle_push(self_ptr self, const gradient& g, promise rp) {
  auto& st = self->state;
  if (st.paused) {
    st.deferred.emplace_back(g, std::move(rp));
    return;
  }
  switch (st.core->push(g)) {
    case server_core::verdict::rejected:
      rp.deliver(make_error(error_code::invalid_gradient,
                            "gradient from worker " + std::to_string(g.worker) + " of length "
                              + std::to_string(g.values.size())));
      return;
    case server_core::verdict::after_stop:
      rp.deliver(make_error(error_code::training_finished));
      return;
    case server_core::verdict::waiting:
      st.waiting.insert_or_assign(g.worker, std::move(rp));
      return;
    case server_core::verdict::round_closed:
      st.waiting.insert_or_assign(g.worker, std::move(rp));
      report(self); // first: at the end of the budget the round gets errors instead
      answer_round(self);
      return;
    case server_core::verdict::applied:
      report(self);
      answer(self, rp);
      return;
    case server_core::verdict::dropped_late:
      answer(self, rp);
      return;
  }
}

} // namespace

server_actor::behavior_type server(self_ptr self, server_settings settings,
                                   std::vector<float> initial, observer_actor observer,
                                   uint64_t eval_every) {
  auto& st = self->state;
  st.core = std::make_unique<server_core>(settings, std::move(initial));
  st.observer = std::move(observer);
  st.eval_every = eval_every;
  st.next_eval = eval_every;
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
    int32_t id = i->second;
    st.members.erase(i);
    st.waiting.erase(id);
    if (st.core->lose(id)) {
      report(self);
      answer_round(self);
    }
  });
  return {
    [=](join_atom, int32_t id) -> caf::result<snapshot> {
      auto& st = self->state;
      if (!st.core->join(id))
        return make_error(error_code::not_a_member,
                          "worker id " + std::to_string(id) + " is unknown or taken");
      auto sender = caf::actor_cast<caf::actor>(self->current_sender());
      if (sender) {
        self->monitor(sender);
        st.members.emplace(sender.address(), id);
      }
      if (!st.core->all_joined()) {
        auto rp = self->make_response_promise<snapshot>();
        st.joins.push_back(rp);
        return rp;
      }
      st.core->start_clock();
      for (auto& rp : st.joins)
        rp.deliver(st.core->current());
      st.joins.clear();
      return st.core->current();
    },
    [=](push_atom, const gradient& g) -> caf::result<snapshot> {
      auto rp = self->make_response_promise<snapshot>();
      handle_push(self, g, rp);
      return rp;
    },
    [=](stats_atom) { return self->state.core->stats(); },
  };
}

} // namespace psgd
