#include "actors/link.hpp"

#include <caf/all.hpp>

#include "actors/injector.hpp"
#include "config/scenario.hpp"

namespace psgd {

namespace {

using self_ptr = link_actor::stateful_pointer<link_state>;

/// The extra time the net_delay effects in force add to one message, in milliseconds.
double delay_ms(self_ptr self) {
  double ms = 0;
  for (auto& [event, active] : self->state.effects) {
    const auto& e = active.effect;
    if (e.kind != fault_effect::net_delay)
      continue;
    delay_distribution d{static_cast<delay_distribution::family>(e.dist), e.a, e.b};
    ms += d.draw(active.draws);
  }
  return ms;
}

/// Whether the net_drop effects in force lose this gradient (each draws on its own), and
/// the longest time until the loss is noticed.
bool lose(self_ptr self, double& detect_ms) {
  bool lost = false;
  for (auto& [event, active] : self->state.effects) {
    const auto& e = active.effect;
    if (e.kind != fault_effect::net_drop)
      continue;
    if (active.draws.uniform() < e.probability) {
      lost = true;
      detect_ms = std::max(detect_ms, e.duration_ms);
    }
  }
  return lost;
}

/// Runs `deliver` after `ms` milliseconds (at once when 0).
void after(self_ptr self, double ms, std::function<void()> deliver) {
  if (ms <= 0) {
    deliver();
    return;
  }
  auto& st = self->state;
  const auto ticket = st.next_ticket++;
  st.held.emplace(ticket, std::move(deliver));
  auto delay = std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double, std::milli>(ms));
  self->delayed_send(self, delay, tick_atom::value, ticket);
}

} // namespace

link_actor::behavior_type network_link(self_ptr self, int32_t worker, upstream_actor upstream) {
  self->state.worker = worker;
  self->state.upstream = std::move(upstream);
  return {
    [=](join_atom, int32_t id) -> caf::result<snapshot> {
      auto rp = self->make_response_promise<snapshot>();
      after(self, delay_ms(self),
            [=]() mutable { rp.delegate(self->state.upstream, join_atom::value, id); });
      return rp;
    },
    [=](push_atom, gradient& g) -> caf::result<snapshot> {
      auto rp = self->make_response_promise<snapshot>();
      double detect_ms = 0;
      if (lose(self, detect_ms)) {
        auto lost = make_error(error_code::lost_in_network,
                               "gradient " + std::to_string(g.seq) + " of worker "
                                 + std::to_string(g.worker));
        after(self, detect_ms, [=]() mutable { rp.deliver(lost); });
        return rp;
      }
      after(self, delay_ms(self), [=, g = std::move(g)]() mutable {
        rp.delegate(self->state.upstream, push_atom::value, std::move(g));
      });
      return rp;
    },
    [=](pull_atom, int32_t id) -> caf::result<snapshot> {
      auto rp = self->make_response_promise<snapshot>();
      after(self, delay_ms(self),
            [=]() mutable { rp.delegate(self->state.upstream, pull_atom::value, id); });
      return rp;
    },
    [=](report_atom, const worker_report& r) {
      self->send(self->state.upstream, report_atom::value, r);
    },
    [=](fault_atom, const fault_effect& effect) {
      auto& st = self->state;
      st.effects.insert_or_assign(
        effect.event,
        link_state::active_effect{effect, data::splitmix64{draw_seed(effect, st.worker)}});
    },
    [=](heal_atom, int32_t event) { self->state.effects.erase(event); },
    [=](rejoin_atom, upstream_actor upstream) { self->state.upstream = std::move(upstream); },
    [=](tick_atom, uint64_t ticket) {
      auto& held = self->state.held;
      auto i = held.find(ticket);
      if (i == held.end())
        return;
      auto deliver = std::move(i->second);
      held.erase(i);
      deliver();
    },
  };
}

} // namespace psgd
