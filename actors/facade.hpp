// The facade: what a serving process publishes through CAF's middleman instead of the
// server itself.
//
// Contract:
// - It accepts only the worker protocol (facade_actor): hello, join, push, pull, report.
//   join, push and pull are delegated to the server, which answers the worker directly (and
//   monitors it); report is forwarded.
// - With a scenario (`injector` set) each joining worker is enlisted with the injector, so
//   its faults reach it across the network. Stats, crash and timer messages of the server are not reachable from
//   the network.
// - hello(request) assigns `wanted` worker ids from 0..shards-1 to the asking process, or
//   gives it back the `ids` it held before a server restart (if no other process holds
//   them), and answers the run_spec it must train with; or error `refused` naming the
//   mismatch: another protocol version, other data, ids taken or none left. A request with
//   wanted == 0 and no ids is a query: the run_spec without ids (so the process knows which
//   data to load).
// - A worker id belongs to the node it was handed to: join, push and report carrying an id
//   from another node are refused (`refused`, never delegated): no spoofed worker ids.
// - Exit messages from other nodes are ignored: a peer cannot stop the facade that way.
//   (Except exit_reason::kill, which CAF 0.17 delivers untrappably: the driver then
//   publishes a new facade on the same port, with the same `owners`.)
// - The work process that got ids is monitored (the actor that said hello): when it is gone
//   (killed, interrupted, its connection lost), each of its ids is released to the server,
//   and those the server lets go are free for another process: before training started the
//   barrier waits for a replacement; afterwards a new process takes the lost worker over.
// - A hello that hands out ids (or gives them back) is answered once the server said where
//   the lost members among them left their shards (run_spec::positions, first).
// - It dies with the server.
#pragma once

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <caf/io/broker.hpp>
#include <caf/node_id.hpp>
#include <caf/stateful_actor.hpp>

#include <caf/typed_event_based_actor.hpp>

#include "messages/vocabulary.hpp"

namespace psgd {

/// Which node holds each worker id. It outlives a facade, so that a successor knows the
/// owners; only the live facade touches it (a successor is spawned after its predecessor
/// died; the driver opens a resumed run's ids while no facade lives), so it needs no lock.
struct id_owners {
  std::vector<caf::node_id> owner;  ///< per worker id: the node it was handed to (or none)
  std::vector<uint64_t> handed;     ///< per worker id: how often it was handed out
  void hand(int32_t id, const caf::node_id& node) {
    owner[static_cast<size_t>(id)] = node;
    ++handed[static_cast<size_t>(id)];
  }
  /// At least `ids` ids (0..ids-1) exist; never fewer than before.
  void open_up_to(int32_t ids) {
    owner.resize(std::max(owner.size(), static_cast<size_t>(std::max(0, ids))));
    handed.resize(owner.size());
  }
  int32_t size() const { return static_cast<int32_t>(owner.size()); }
};

struct facade_state {
  static inline const char* name = "facade";
  server_actor server;
  run_spec spec;                 ///< the run; `ids` is filled per hello
  std::string data_fingerprint;  ///< of the serving process's training set
  std::shared_ptr<id_owners> owners;
  injector_actor injector;          ///< the run's scenario, if any
  /// The work processes (the actor that said hello in each) that hold ids, monitored: when
  /// one is gone before training started its ids go back (see release in server_actor).
  std::set<caf::actor_addr> processes;
};

facade_actor::behavior_type facade(facade_actor::stateful_pointer<facade_state> self,
                                   server_actor server, run_spec spec,
                                   std::string data_fingerprint,
                                   std::shared_ptr<id_owners> owners, injector_actor injector);

/// The same facade hosted by the multiplexer thread, beside server_on_multiplexer: a push
/// it delegates stays on that thread.
using facade_broker = caf::stateful_actor<facade_state, caf::io::broker>;
caf::behavior facade_on_multiplexer(facade_broker* self, server_actor server, run_spec spec,
                                    std::string data_fingerprint,
                                    std::shared_ptr<id_owners> owners, injector_actor injector);

} // namespace psgd
