#include "actors/facade.hpp"

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
    [=](hello_atom, const std::string& version, const std::string& fingerprint,
        int32_t wanted) -> caf::result<run_spec> {
      auto& st = self->state;
      if (version != protocol_version)
        return make_error(error_code::refused,
                          fmt::format("protocol {} (this server speaks {})", version,
                                      protocol_version));
      if (wanted == 0) // a query: the run, no ids (the caller loads the data it names)
        return st.spec;
      if (fingerprint != st.data_fingerprint)
        return make_error(error_code::refused,
                          fmt::format("the training data differ: yours {}, the server's {}",
                                      fingerprint, st.data_fingerprint));
      if (wanted < 1 || st.next_id + wanted > st.spec.shards)
        return make_error(error_code::refused,
                          fmt::format("{} worker(s) asked, {} of {} ids left", wanted,
                                      st.spec.shards - st.next_id, st.spec.shards));
      auto spec = st.spec;
      for (int32_t i = 0; i < wanted; ++i)
        spec.ids.push_back(st.next_id++);
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
