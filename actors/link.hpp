// The link actor: the path a worker's messages take to its upstream when a scenario delays or
// drops them (config/scenario.hpp: net_delay, net_drop). A worker spawns its own link (linked:
// they die together) in its own process, so the same code injects network faults in one
// process and across processes.
//
// Contract:
// - Transparent without an effect in force: join, push and pull go on to the upstream by
//   delegation (the upstream answers the worker directly and sees the worker as sender, so
//   the server monitors the worker, not the link); report goes on at once (workers send
//   theirs straight to the server, though: a link dies with its worker).
// - net_delay: each join, push and pull is held for a draw from the effect's distribution
//   (several effects add up), then delegated. Reports are never held: they are the worker's
//   last word as it stops.
// - net_drop: each push is lost with the effect's probability. The gradient never reaches
//   the upstream; after detect_ms (duration_ms) the worker gets error lost_in_network, as
//   from a transport that noticed the loss. (The worker counts it, and pulls the current
//   parameters to go on.)
// - Determinism: the draws come from the stream (event seed, worker id), as the worker's own
//   delays do (injector.hpp draw_seed).
// - rejoin(upstream) points the link at a restarted server; messages it still holds go there.
// - Not thread-safe beyond CAF's actor guarantees; all state is the actor's own.
#pragma once

#include <cstdint>
#include <functional>
#include <map>

#include <caf/typed_event_based_actor.hpp>

#include "data/random.hpp"
#include "messages/vocabulary.hpp"

namespace psgd {

struct link_state {
  static inline const char* name = "link";
  int32_t worker = 0;
  upstream_actor upstream;
  struct active_effect {
    fault_effect effect;
    data::splitmix64 draws;
  };
  std::map<int32_t, active_effect> effects;  ///< network effects in force, by event
  std::map<uint64_t, std::function<void()>> held;  ///< delayed messages, by ticket
  uint64_t next_ticket = 0;
};

link_actor::behavior_type network_link(link_actor::stateful_pointer<link_state> self,
                                       int32_t worker,
                                       upstream_actor upstream);

} // namespace psgd
