#include "actors/server.hpp"

#include <caf/all.hpp>

namespace psgd {

namespace {

using self_ptr = server_actor::stateful_pointer<server_state>;

/// Answers the members of the round that just closed (except `skip`, answered directly).
void answer_round(self_ptr self, int32_t skip) {
  auto& st = self->state;
  for (auto id : st.core->last_round()) {
    if (id == skip)
      continue;
    auto i = st.waiting.find(id);
    if (i != st.waiting.end()) {
      i->second.deliver(st.core->current());
      st.waiting.erase(i);
    }
  }
}

/// After an update: report progress, or the end of the budget.
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
    self->send(st.observer, progress_atom::value, st.core->current(), st.core->stats());
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
      answer_round(self, -1);
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
      auto& st = self->state;
      switch (st.core->push(g)) {
        case server_core::verdict::rejected:
          return make_error(error_code::invalid_gradient,
                            "gradient from worker " + std::to_string(g.worker) + " of length "
                              + std::to_string(g.values.size()));
        case server_core::verdict::after_stop:
          return make_error(error_code::training_finished);
        case server_core::verdict::waiting: {
          auto rp = self->make_response_promise<snapshot>();
          st.waiting.insert_or_assign(g.worker, rp);
          return rp;
        }
        case server_core::verdict::round_closed:
          report(self); // first: at the end of the budget the round gets errors instead
          answer_round(self, g.worker);
          break;
        case server_core::verdict::applied:
          report(self);
          break;
        case server_core::verdict::dropped_late:
          break;
      }
      if (st.done_sent)
        return make_error(error_code::training_finished);
      return st.core->current();
    },
    [=](stats_atom) { return self->state.core->stats(); },
  };
}

} // namespace psgd
