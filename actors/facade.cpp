#include "actors/facade.hpp"

#include <algorithm>

#include <caf/all.hpp>
#include <fmt/format.h>

namespace psgd {

namespace {


/// True if worker `id` was handed to the node the current message comes from.
template <class Self>
bool owned_by_sender(Self* self, int32_t id) {
  const auto& owner = self->state.owners->owner;
  auto sender = self->current_sender();
  return sender && id >= 0 && id < static_cast<int32_t>(owner.size()) && owner[id]
         && owner[id] == sender->node();
}

/// Monitors the work process that asks for ids (the actor that said hello lives as long as
/// the process's workers do): when it is gone its ids go back (see the down handler).
template <class Self>
void watch_process(Self* self) {
  auto process = caf::actor_cast<caf::actor>(self->current_sender());
  if (process && self->state.processes.insert(process.address()).second)
    self->monitor(process);
}

/// Answers `spec` once the server said where the lost members among its ids left off: a
/// process that takes over a lost worker's id (or comes back after its connection dropped)
/// goes on from there. Those positions come first, before a resumed checkpoint's.
template <class Self>
caf::result<run_spec> with_positions(Self* self, run_spec spec) {
  auto rp = self->template make_response_promise<run_spec>();
  hello_request ask;
  ask.ids = spec.ids;
  self->request(self->state.server, std::chrono::milliseconds{spec.request_timeout_ms},
                position_atom::value, std::move(ask))
    .then(
      [=](member_positions& at) mutable {
        auto answer = spec;
        answer.positions.insert(answer.positions.begin(), at.flat.begin(), at.flat.end());
        rp.deliver(std::move(answer));
      },
      [=](caf::error& err) mutable { rp.deliver(std::move(err)); });
  return rp;
}

caf::error spoofed(int32_t id) {
  return make_error(error_code::refused,
                    "worker id " + std::to_string(id) + " was not handed to this node");
}

template <class Self>
facade_actor::behavior_type facade_behavior(Self* self, server_actor server, run_spec spec,
                                   std::string data_fingerprint,
                                   std::shared_ptr<id_owners> owners, injector_actor injector) {
  auto& st = self->state;
  st.injector = std::move(injector);
  st.owners = std::move(owners);
  st.server = std::move(server);
  st.spec = std::move(spec);
  st.data_fingerprint = std::move(data_fingerprint);
  // A successor facade keeps the ids a join event opened (never fewer than m+e).
  st.owners->open_up_to(st.spec.shards);
  self->monitor(st.server);
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    if (msg.source == st.server.address()) {
      self->quit(msg.reason);
      return;
    }
    if (st.processes.erase(msg.source) == 0)
      return;
    // A work process is gone (or its connection). The ids the server lets go are free for
    // another process: before training started a replacement at the barrier (else it
    // counted a dead worker, or waited for one that never joined), afterwards a successor
    // that takes the lost worker over.
    const auto& owners = *st.owners;
    for (size_t id = 0; id < owners.owner.size(); ++id)
      if (owners.owner[id] == msg.source.node())
        self->request(st.server, std::chrono::milliseconds{st.spec.request_timeout_ms},
                      release_atom::value, static_cast<int32_t>(id))
          .then(
            [=, handed = owners.handed[id]](bool released) {
              // Unless it was handed out again meanwhile (the same process came back).
              auto& now = *self->state.owners;
              if (released && now.handed[id] == handed)
                now.owner[id] = caf::node_id{};
            },
            [](caf::error&) {}); // the server is gone: so is this facade
  });
  // Only this node may stop the facade; an exit from the network is ignored.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    if (msg.source.node() == self->node())
      self->quit(msg.reason);
  });
  return {
    [=](hello_atom, const hello_request& req) -> caf::result<run_spec> {
      auto& st = self->state;
      if (req.version != protocol_version)
        return make_error(error_code::refused,
                          fmt::format("protocol {} (this server speaks {})", req.version,
                                      protocol_version));
      if (req.wanted == 0 && req.ids.empty()) // a query: the run, no ids
        return st.spec;
      if (req.fingerprint != st.data_fingerprint)
        return make_error(error_code::refused,
                          fmt::format("the training data differ: yours {}, the server's {}",
                                      req.fingerprint, st.data_fingerprint));
      auto spec = st.spec;
      auto& owner = st.owners->owner;
      if (!req.ids.empty()) { // back after a server restart: the same ids
        // Free, or already this node's (its earlier hello was answered but lost).
        const auto node = self->current_sender()->node();
        for (auto id : req.ids)
          if (id < 0 || id >= st.owners->size() || (owner[id] && owner[id] != node))
            return make_error(error_code::refused,
                              fmt::format("worker id {} is not free on this server", id));
        for (auto id : req.ids)
          st.owners->hand(id, node);
        spec.ids = req.ids;
        watch_process(self);
        return with_positions(self, std::move(spec));
      }
      // Ids never handed out first (a join event's, or those nobody took yet), then those
      // given back: a work process started for a join event gets the new workers it is for,
      // one started after a crash the lost worker's id.
      for (bool fresh : {true, false})
        for (int32_t id = 0; id < st.owners->size() && int32_t(spec.ids.size()) < req.wanted;
             ++id)
          if (!owner[id] && (st.owners->handed[id] == 0) == fresh)
            spec.ids.push_back(id);
      std::sort(spec.ids.begin(), spec.ids.end());
      if (req.wanted < 1 || int32_t(spec.ids.size()) < req.wanted)
        return make_error(error_code::refused,
                          fmt::format("{} worker(s) asked, {} of {} ids left", req.wanted,
                                      spec.ids.size(), st.owners->size()));
      for (auto id : spec.ids)
        st.owners->hand(id, self->current_sender()->node());
      watch_process(self);
      return with_positions(self, std::move(spec));
    },
    [=](open_atom, int32_t count) -> caf::result<int32_t> {
      auto sender = self->current_sender();
      if (!sender || sender->node() != self->node())
        return make_error(error_code::refused, "only the serving process opens worker ids");
      auto& owners = *self->state.owners;
      const auto first = owners.size();
      owners.open_up_to(first + std::max(0, count));
      return first;
    },
    [=](join_atom, int32_t id) -> caf::result<snapshot> {
      if (!owned_by_sender(self, id))
        return spoofed(id);
      if (auto& injector = self->state.injector)
        self->send(injector, enlist_atom::value, id,
                   caf::actor_cast<worker_actor>(self->current_sender()));
      return self->delegate(self->state.server, join_atom::value, id);
    },
    [=](push_atom, gradient& g) -> caf::result<snapshot> {
      if (!owned_by_sender(self, g.worker))
        return spoofed(g.worker);
      return self->delegate(self->state.server, push_atom::value, std::move(g));
    },
    [=](pull_atom, int32_t id) -> caf::result<snapshot> {
      if (!owned_by_sender(self, id))
        return spoofed(id);
      return self->delegate(self->state.server, pull_atom::value, id);
    },
    [=](report_atom, const worker_report& r) {
      if (owned_by_sender(self, r.worker))
        self->send(self->state.server, report_atom::value, r);
    },
    [=](flush_atom) { return flush_atom::value; },
  };
}

} // namespace

facade_actor::behavior_type facade(facade_actor::stateful_pointer<facade_state> self, server_actor server, run_spec spec, std::string data_fingerprint, std::shared_ptr<id_owners> owners, injector_actor injector) {
  return facade_behavior(self, std::move(server), std::move(spec), std::move(data_fingerprint), std::move(owners), std::move(injector));
}

caf::behavior facade_on_multiplexer(facade_broker* self, server_actor server, run_spec spec, std::string data_fingerprint, std::shared_ptr<id_owners> owners, injector_actor injector) {
  return facade_behavior(self, std::move(server), std::move(spec), std::move(data_fingerprint), std::move(owners), std::move(injector)).unbox();
}

} // namespace psgd
