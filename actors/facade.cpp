#include "actors/facade.hpp"

#include <algorithm>

#include <caf/all.hpp>
#include <fmt/format.h>

namespace psgd {

facade_actor::behavior_type facade(facade_actor::stateful_pointer<facade_state> self,
                                   server_actor server, run_spec spec,
                                   std::string data_fingerprint) {
  auto& st = self->state;
  st.server = std::move(server);
  st.spec = std::move(spec);
  st.data_fingerprint = std::move(data_fingerprint);
  st.taken.assign(static_cast<size_t>(std::max(0, st.spec.shards)), false);
  self->monitor(st.server);
  self->set_down_handler([=](caf::down_msg& msg) {
    if (msg.source == self->state.server.address())
      self->quit(msg.reason);
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
      if (!req.ids.empty()) { // back after a server restart: the same ids
        for (auto id : req.ids)
          if (id < 0 || id >= spec.shards || st.taken[id])
            return make_error(error_code::refused,
                              fmt::format("worker id {} is not free on this server", id));
        for (auto id : req.ids)
          st.taken[id] = true;
        spec.ids = req.ids;
        return spec;
      }
      for (int32_t id = 0; id < spec.shards && int32_t(spec.ids.size()) < req.wanted; ++id)
        if (!st.taken[id])
          spec.ids.push_back(id);
      if (req.wanted < 1 || int32_t(spec.ids.size()) < req.wanted)
        return make_error(error_code::refused,
                          fmt::format("{} worker(s) asked, {} of {} ids left", req.wanted,
                                      spec.ids.size(), spec.shards));
      for (auto id : spec.ids)
        st.taken[id] = true;
      return spec;
    },
    [=](join_atom, int32_t id) {
      return self->delegate(self->state.server, join_atom::value, id);
    },
    [=](push_atom, gradient& g) {
      return self->delegate(self->state.server, push_atom::value, std::move(g));
    },
    [=](report_atom, int32_t id, int64_t computed) {
      self->send(self->state.server, report_atom::value, id, computed);
    },
  };
}

} // namespace psgd
