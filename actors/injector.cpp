#include "actors/injector.hpp"

#include <algorithm>

#include <caf/all.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "data/random.hpp"

namespace psgd {

namespace {

using self_ptr = injector_actor::stateful_pointer<injector_state>;

uint64_t event_seed(uint64_t seed, int32_t index) {
  return data::mix_seed(seed, 0x1a9ec7, static_cast<uint64_t>(index));
}

/// The workers of event `index`: its own random stream, so adding an event later in the
/// file does not change the draws of the earlier ones.
std::vector<int32_t> resolve_targets(const fault_event& e, int32_t index, uint64_t seed,
                                     int workers) {
  data::splitmix64 rng{data::mix_seed(event_seed(seed, index), 0x7a29e7)};
  return e.workers.resolve(workers, rng);
}

std::string describe(const fault_event& e) {
  switch (e.kind) {
    case fault_kind::slow:
      return e.delay ? "slow by " + e.delay->describe() + " per step"
                     : fmt::format("slow by factor {}", e.factor);
    case fault_kind::example_cost:
      return fmt::format("example cost {} ms per example of class 0..{}",
                         fmt::join(e.per_class_ms, "/"), e.per_class_ms.size() - 1);
    case fault_kind::pause:
      return fmt::format("pause {} ms", e.duration_ms);
    case fault_kind::crash:
      return "crash";
    case fault_kind::join:
      return fmt::format("join {} new worker(s)", e.count);
    case fault_kind::server_crash:
      return "crash the server";
    case fault_kind::net_delay:
      return "delay each message to the server by " + e.delay->describe();
    case fault_kind::net_drop:
      return fmt::format("drop each gradient with probability {} (noticed after {} ms)",
                         e.probability, e.duration_ms);
  }
  return "?";
}

/// Kinds in force over a window (rather than firing once).
bool windowed(fault_kind k) {
  return k == fault_kind::slow || k == fault_kind::example_cost || k == fault_kind::net_delay
         || k == fault_kind::net_drop;
}

bool targets(const std::vector<int32_t>& ids, int32_t id) {
  return std::binary_search(ids.begin(), ids.end(), id);
}

/// Sends event `index`'s effect to worker `id`, once.
void deliver(self_ptr self, int32_t index, int32_t id) {
  auto& st = self->state;
  auto w = st.workers.find(id);
  if (w == st.workers.end() || !st.delivered[index].insert(id).second)
    return;
  self->send(w->second, fault_atom::value, effect_of(st.plan.events[index], index, st.seed));
}

std::string when(const fault_event& e) {
  if (!windowed(e.kind))
    return "at " + to_string(*e.from);
  return fmt::format("from {} to {}", e.from ? to_string(*e.from) : "the start",
                     e.to ? to_string(*e.to) : "the end");
}

/// Arms a point: a timer for seconds (those trained before a resume already count), a watch
/// request for updates.
void arm(self_ptr self, const fault_point& p, bool begin, int32_t index) {
  if (p.in == fault_point::unit::seconds) {
    const double left = std::max(0.0, p.value - self->state.resumed.seconds);
    auto delay = std::chrono::duration_cast<caf::timespan>(std::chrono::duration<double>(left));
    if (begin)
      self->delayed_send(self, delay, fault_atom::value, index);
    else
      self->delayed_send(self, delay, heal_atom::value, index);
    return;
  }
  // The server answers once it reaches the version (or dies with the run): no timeout.
  self->request(self->state.server, caf::infinite, watch_atom::value,
                static_cast<uint64_t>(p.value))
    .then(
      [=](uint64_t) {
        if (begin)
          self->send(self, fault_atom::value, index);
        else
          self->send(self, heal_atom::value, index);
      },
      [=](caf::error&) {}); // the server is gone: its restart is the driver's business
}

void tell(self_ptr self, std::string text) {
  self->send(self->state.driver, event_atom::value, std::move(text));
}

void begin(self_ptr self, int32_t index) {
  auto& st = self->state;
  if (st.begun[index])
    return;
  st.begun[index] = true;
  const auto& e = st.plan.events[index];
  tell(self, fmt::format("injected event {}: {}{}", index, describe(e),
                         st.targets[index].empty()
                           ? std::string{}
                           : fmt::format(" on worker(s) {}", fmt::join(st.targets[index], ", "))));
  switch (e.kind) {
    case fault_kind::join:
      self->send(st.driver, join_atom::value, static_cast<int32_t>(e.count));
      return;
    case fault_kind::server_crash:
      self->send(st.server, crash_atom::value);
      return;
    default:
      break;
  }
  std::vector<int32_t> absent;
  for (auto id : st.targets[index])
    if (st.workers.count(id) == 0)
      absent.push_back(id);
    else
      deliver(self, index, id);
  // A worker the scenario names that has not joined (yet): before, the event was announced
  // for it and nothing happened.
  if (!absent.empty())
    tell(self, fmt::format("injected event {}: worker(s) {} not running yet: {}", index,
                           fmt::join(absent, ", "),
                           windowed(e.kind) ? "they get it if they join while it holds"
                                            : "no effect on them"));
}

void end(self_ptr self, int32_t index) {
  auto& st = self->state;
  if (st.ended[index])
    return;
  st.ended[index] = true;
  tell(self, fmt::format("injected event {} ended", index));
  for (auto id : st.targets[index])
    if (auto w = st.workers.find(id); w != st.workers.end())
      self->send(w->second, heal_atom::value, index);
}

/// "before the checkpoint (update 1000, 2.31 s of training)".
std::string before_checkpoint(const resume_point& r) {
  return fmt::format("before the checkpoint (update {}, {:.2f} s of training)", r.version,
                     r.seconds);
}

/// Arms event `index` at the run's start, or, resumed past its points, takes it as the
/// uninterrupted run had it by then.
void start_event(self_ptr self, int32_t index) {
  auto& st = self->state;
  const auto& e = st.plan.events[index];
  if (e.to && st.resumed.passed(*e.to)) {
    st.begun[index] = st.ended[index] = true;
    tell(self, fmt::format("injected event {}: {} {} ended {}: not in force", index,
                           describe(e), when(e), before_checkpoint(st.resumed)));
    return;
  }
  if (e.from && st.resumed.passed(*e.from) && !windowed(e.kind)) {
    st.begun[index] = true;
    tell(self, fmt::format("injected event {}: {} {} happened {}: not again", index,
                           describe(e), when(e), before_checkpoint(st.resumed)));
    return;
  }
  if (e.from && !st.resumed.passed(*e.from))
    arm(self, *e.from, true, index);
  else
    begin(self, index); // before the answer: in force from the workers' first step
  if (e.to)
    arm(self, *e.to, false, index);
}

} // namespace

bool resume_point::passed(const fault_point& p) const {
  return p.in == fault_point::unit::updates ? p.value < static_cast<double>(version)
                                            : p.value < seconds;
}

fault_effect effect_of(const fault_event& e, int32_t index, uint64_t seed) {
  fault_effect f;
  f.event = index;
  f.seed = event_seed(seed, index);
  switch (e.kind) {
    case fault_kind::slow:
      if (e.delay) {
        f.kind = fault_effect::slow_delay;
        f.dist = static_cast<int32_t>(e.delay->dist);
        f.a = e.delay->a;
        f.b = e.delay->b;
      } else {
        f.kind = fault_effect::slow_factor;
        f.factor = e.factor;
      }
      break;
    case fault_kind::example_cost:
      f.kind = fault_effect::example_cost;
      f.per_class_ms = e.per_class_ms;
      break;
    case fault_kind::pause:
      f.kind = fault_effect::pause;
      f.duration_ms = e.duration_ms;
      break;
    case fault_kind::net_delay:
      f.kind = fault_effect::net_delay;
      f.dist = static_cast<int32_t>(e.delay->dist);
      f.a = e.delay->a;
      f.b = e.delay->b;
      break;
    case fault_kind::net_drop:
      f.kind = fault_effect::net_drop;
      f.probability = e.probability;
      f.duration_ms = e.duration_ms;
      break;
    default:
      f.kind = fault_effect::crash;
      break;
  }
  return f;
}

uint64_t draw_seed(const fault_effect& effect, int32_t worker) {
  return data::mix_seed(effect.seed, 0xd2a3, static_cast<uint64_t>(worker));
}

std::vector<std::string> plan_lines(const scenario& s, uint64_t seed, int workers) {
  std::vector<std::string> lines;
  for (int32_t i = 0; i < static_cast<int32_t>(s.events.size()); ++i) {
    const auto& e = s.events[i];
    auto targets = resolve_targets(e, i, seed, workers);
    auto line = fmt::format("inject: scenario {} event {}: {} {}", s.name, i, describe(e), when(e));
    if (!targets.empty())
      line += fmt::format(" on worker(s) {}", fmt::join(targets, ", "));
    if (e.delay) { // slow or net_delay
      // The first draws each target will take: the same for the same seed and scenario.
      auto effect = effect_of(e, i, seed);
      for (auto id : targets) {
        data::splitmix64 rng{draw_seed(effect, id)};
        std::vector<std::string> draws;
        for (int k = 0; k < 3; ++k)
          draws.push_back(fmt::format("{:.4f}", e.delay->draw(rng)));
        line += fmt::format("; worker {} draws {} ms ...", id, fmt::join(draws, ", "));
      }
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

injector_actor::behavior_type injector(self_ptr self, scenario plan, uint64_t seed,
                                       int team, server_actor server, driver_actor driver,
                                       std::map<int32_t, worker_actor> workers,
                                       resume_point resumed) {
  auto& st = self->state;
  st.resumed = resumed;
  st.plan = std::move(plan);
  st.seed = seed;
  st.server = std::move(server);
  st.driver = std::move(driver);
  st.workers = std::move(workers);
  const auto events = st.plan.events.size();
  st.begun.assign(events, false);
  st.ended.assign(events, false);
  st.delivered.resize(events);
  for (int32_t i = 0; i < static_cast<int32_t>(events); ++i)
    st.targets.push_back(resolve_targets(st.plan.events[i], i, st.seed, team));
  return {
    [=](start_atom) {
      auto& st = self->state;
      if (st.started)
        return start_atom::value;
      st.started = true;
      for (int32_t i = 0; i < static_cast<int32_t>(st.plan.events.size()); ++i)
        start_event(self, i);
      return start_atom::value;
    },
    [=](enlist_atom, int32_t id, worker_actor w) {
      // A remote worker joined: it gets the windowed effects in force, and those that hold
      // from the start, before its first step.
      auto& st = self->state;
      st.workers.insert_or_assign(id, std::move(w));
      for (int32_t i = 0; i < static_cast<int32_t>(st.plan.events.size()); ++i) {
        const auto& e = st.plan.events[i];
        if (windowed(e.kind) && targets(st.targets[i], id) && !st.ended[i]
            && (st.begun[i] || !e.from))
          deliver(self, i, id);
      }
    },
    [=](fault_atom, int32_t index) { begin(self, index); },
    [=](heal_atom, int32_t index) { end(self, index); },
    [=](rejoin_atom, server_actor server) {
      auto& st = self->state;
      st.server = std::move(server);
      auto by_updates = [](const std::optional<fault_point>& p) {
        return p && p->in == fault_point::unit::updates;
      };
      for (int32_t i = 0; i < static_cast<int32_t>(st.plan.events.size()); ++i) {
        const auto& e = st.plan.events[i];
        if (!st.begun[i] && by_updates(e.from))
          arm(self, *e.from, true, i);
        if (!st.ended[i] && by_updates(e.to))
          arm(self, *e.to, false, i);
      }
    },
  };
}

} // namespace psgd
