// The wire vocabulary of psgd: every message type, atom and typed actor interface.
//
// Contract:
// - Messages are plain structs with a free inspect(); they carry std::vector<float> (behind
//   float_buffer), integers and strings, never Eigen types, so that the same messages pass by
//   reference inside one process and serialise through CAF's middleman across processes.
// - float_buffer is an immutable, reference-counted float vector. In one process a send
//   shares it (no copy per receiver); across processes it is serialised as ONE byte blob
//   (CAF 0.17 would otherwise encode a vector<float> element by element, ~40x slower).
//   The blob is the floats' in-memory bytes: all nodes must share float layout and byte order
//   (IEEE 754, little-endian: x86-64 and AArch64 alike).
// - One type-ID block (`caf::id_block::psgd`); register it with
//   cfg.add_message_types<caf::id_block::psgd>() (register_vocabulary() does that).
//
// The protocol (see docs/PROTOCOL.md):
//   worker -> server   join(worker id)                      -> snapshot (after all expected
//                                                              workers have joined)
//   worker -> server   push(gradient)                       -> snapshot to compute on next
//                                                              (async: at once; sync/backup:
//                                                              when the round closes; a late
//                                                              backup gradient: at once)
//   server -> observer progress(snapshot, stats)            -> resume (training pauses while
//                                                              the observer evaluates)
//   server -> observer done(snapshot, stats)                  the budget is spent
//   any    -> server   stats()                              -> server_stats
//   driver -> worker   start()                                begin training
//   server -> observer event(text)                            a notable event (quarantine,
//                                                              round timeout, late join)
//   worker -> server   report(worker_report)                  its count of computed gradients
//                                                              and where its time went, sent
//                                                              as it stops
//   injector -> worker fault(effect), heal(event)              slow down, pause, crash
//   injector -> server watch(version)                       -> version, once it is reached
//   injector -> server crash()                                 an injected server crash
//   injector -> driver join(count)                             start new workers mid-run
//   driver -> worker   rejoin(server)                         the server restarted from its
//                                                              checkpoint: join it and go on
//   process -> facade  hello(hello_request)                 -> run_spec with k worker ids, or
//                                                              the ids it held (a restarted
//                                                              server); across processes only
//   caller -> driver   run()                                -> run_summary when finished
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/deserializer.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/serializer.hpp>
#include <caf/type_id.hpp>
#include <caf/typed_actor.hpp>
#include <caf/replies_to.hpp>

#include "messages/buffer_pool.hpp"

namespace psgd {

/// The protocol's version: processes of different versions refuse each other.
inline constexpr const char* protocol_version = "psgd-5"; // 2: run_spec.positions, 3: run_id, 4: open, 5: flush

// -- float_buffer -------------------------------------------------------------------------

/// An immutable, shared vector of floats: parameters or a gradient.
struct float_buffer {
  std::shared_ptr<const std::vector<float>> ptr;

  float_buffer() = default;
  explicit float_buffer(std::shared_ptr<const std::vector<float>> p) : ptr(std::move(p)) {}
  explicit float_buffer(std::vector<float> values)
    : ptr(std::make_shared<const std::vector<float>>(std::move(values))) {}

  size_t size() const { return ptr ? ptr->size() : 0; }
  const float* data() const { return ptr ? ptr->data() : nullptr; }
  bool empty() const { return size() == 0; }
  const std::vector<float>& values() const;
};

bool operator==(const float_buffer& x, const float_buffer& y);

/// Serialises a float_buffer as a length and one blob of bytes.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, float_buffer& x) {
  if constexpr (std::is_base_of<caf::serializer, Inspector>::value) {
    size_t n = x.size();
    return caf::error::eval(
      [&] { return f.begin_sequence(n); },
      [&] {
        return n > 0 ? f.apply_raw(n * sizeof(float), const_cast<float*>(x.data()))
                     : caf::error{};
      },
      [&] { return f.end_sequence(); });
  } else if constexpr (std::is_base_of<caf::deserializer, Inspector>::value) {
    size_t n = 0;
    std::shared_ptr<std::vector<float>> values;
    auto err = caf::error::eval(
      [&] { return f.begin_sequence(n); },
      [&]() -> caf::error {
        // A length the rest of the message cannot hold is refused before anything is
        // allocated (a hostile peer must not make us allocate or pool gigabytes).
        auto* bin = dynamic_cast<caf::binary_deserializer*>(&f);
        if (bin != nullptr && n > bin->remaining() / sizeof(float))
          return caf::make_error(caf::sec::end_of_stream,
                                 "float_buffer: length longer than the message");
        values = receive_buffer(n);
        return n > 0 ? f.apply_raw(n * sizeof(float), values->data()) : caf::error{};
      },
      [&] { return f.end_sequence(); });
    if (!err)
      x.ptr = std::move(values);
    return err;
  } else {
    // Any other inspector (e.g. to_string): show the length, not the floats.
    auto n = x.size();
    return f(caf::meta::type_name("float_buffer"), n);
  }
}

// -- messages -----------------------------------------------------------------------------

/// The parameters of one server version.
struct snapshot {
  uint64_t version = 0;
  float_buffer params;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, snapshot& x) {
  return f(caf::meta::type_name("snapshot"), x.version, x.params);
}

/// A worker's minibatch gradient, computed on the parameters of `version_read`.
struct gradient {
  int32_t worker = 0;
  uint64_t version_read = 0;
  int32_t batch_size = 0;
  float loss = 0;          ///< mean minibatch loss at version_read (a free progress signal)
  uint64_t seq = 0;        ///< gradients this worker has computed, this one included
  int64_t epoch = 0;       ///< the worker's sampler position after this batch (for
  int64_t step = 0;        ///< checkpoints: a resumed worker continues its stream there)
  float_buffer values;     ///< the mean gradient over the minibatch
  std::vector<int32_t> examples;  ///< the minibatch's example indices (--track-inclusion),
                                  ///< else empty
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gradient& x) {
  return f(caf::meta::type_name("gradient"), x.worker, x.version_read, x.batch_size, x.loss,
           x.seq, x.epoch, x.step, x.values, x.examples);
}

/// Why the server refused a gradient (never applied).
enum class reject_reason : uint8_t {
  wrong_length,  ///< not the parameter vector's length
  non_finite,    ///< contains NaN or Inf
  duplicate,     ///< a second gradient from this worker for the same read version
  quarantined,   ///< from a worker quarantined after too many bad gradients in a row
  count_         ///< (number of reasons)
};
std::string to_string(reject_reason r);

/// What happened to one worker's gradients. The no-loss equation:
///   computed = applied + dropped + after_stop + sum(rejected) + lost_in_network
///              + lost_in_flight
struct worker_stats {
  int32_t worker = 0;
  int64_t computed = 0;    ///< gradients the worker computed (its own count)
  int64_t pushed = 0;      ///< gradients received by the server
  int64_t applied = 0;     ///< gradients that went into an update
  int64_t dropped = 0;     ///< computed on an old version: dropped as late (backup, sync)
  int64_t after_stop = 0;  ///< received after the budget was spent (not applied)
  std::vector<int64_t> rejected = std::vector<int64_t>(size_t(reject_reason::count_), 0);
  int64_t lost_in_network = 0; ///< dropped between worker and server (scenario net_drop)
  int64_t lost_in_flight = 0;  ///< computed but never accounted: the worker or server died
  uint64_t staleness_sum = 0;  ///< over applied gradients
  uint64_t staleness_max = 0;
  std::vector<int64_t> staleness_histogram;  ///< [s] = its applied gradients of staleness s
  bool lost = false;       ///< the worker died during the run
  bool quarantined = false;
  bool joined_late = false;  ///< joined after training had started
  int32_t rejoins = 0;       ///< times it came back after it was lost (a dropped connection)
  /// From its reports (worker_report; one per worker actor, summed): seconds computing and
  /// waiting for answers, the wait less the evaluation pauses it spent held at the server;
  /// negative while none came (a worker whose process died sends none).
  double compute_seconds = -1;
  double wait_seconds = -1;

  int64_t rejected_total() const;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, worker_stats& x) {
  return f(caf::meta::type_name("worker_stats"), x.worker, x.computed, x.pushed, x.applied,
           x.dropped, x.after_stop, x.rejected, x.lost_in_network, x.lost_in_flight, x.staleness_sum,
           x.staleness_max, x.staleness_histogram, x.lost, x.quarantined, x.joined_late,
           x.rejoins, x.compute_seconds, x.wait_seconds);
}

/// The server's counters at one moment.
struct server_stats {
  uint64_t version = 0;           ///< updates applied so far
  int64_t samples = 0;            ///< examples in applied gradients
  int64_t gradients_applied = 0;
  int64_t gradients_dropped = 0;
  double seconds = 0;             ///< since training started (all workers joined)
  float recent_loss = 0;          ///< mean minibatch loss of recently applied gradients
  int64_t rejected_unknown = 0;   ///< gradients from worker ids that never joined
  int32_t connected = 0;          ///< member actors the server still watches
  std::vector<int64_t> staleness_histogram;  ///< [s] = applied gradients of staleness s
  std::vector<worker_stats> workers;
  std::vector<int32_t> example_received;  ///< per training example: received gradients that
                                          ///< held it (--track-inclusion; else empty)
  std::vector<int32_t> example_applied;   ///< per training example: applied ones
};

/// The mean of a staleness histogram ([s] = gradients of staleness s); 0 if it is empty.
inline double mean_of_histogram(const std::vector<int64_t>& histogram) {
  double n = 0, sum = 0;
  for (size_t i = 0; i < histogram.size(); ++i) {
    n += double(histogram[i]);
    sum += double(i) * double(histogram[i]);
  }
  return n > 0 ? sum / n : 0.0;
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, server_stats& x) {
  return f(caf::meta::type_name("server_stats"), x.version, x.samples, x.gradients_applied,
           x.gradients_dropped, x.seconds, x.recent_loss, x.rejected_unknown, x.connected,
           x.staleness_histogram, x.workers, x.example_received, x.example_applied);
}

/// One evaluation of the parameters during or after training.
struct eval_point {
  double seconds = 0;        ///< training seconds when the snapshot was taken
  uint64_t updates = 0;      ///< server version of the snapshot
  int64_t samples = 0;       ///< samples applied up to the snapshot
  double train_loss = 0;     ///< mean loss on the fixed training subsample
  double test_loss = 0;      ///< mean loss on the test set
  double test_accuracy = 0;  ///< fraction correct on the test set (0 for least squares)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, eval_point& x) {
  return f(caf::meta::type_name("eval_point"), x.seconds, x.updates, x.samples, x.train_loss,
           x.test_loss, x.test_accuracy);
}

/// What a finished run hands back: its evaluations, final counters and final parameters.
struct run_summary {
  std::vector<eval_point> evaluations;  ///< in training order; the last is the final one
  std::vector<int64_t> class_received;  ///< per class: examples in received gradients
  std::vector<int64_t> class_applied;   ///< per class: examples in applied gradients
                                        ///< (both with --track-inclusion; else empty)
  server_stats final_stats;
  snapshot final_params;
  std::vector<std::string> events;      ///< notable events (a worker lost, ...), in order
  bool interrupted = false;             ///< stopped by the user before the budget was spent
  /// The checkpoint's version a --resume went on from (its counts and seconds are in the
  /// totals); -1 for a run that started fresh.
  int64_t resumed_from = -1;
  std::string run_id;  ///< the run's identity (training_job::run_id)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_summary& x) {
  return f(caf::meta::type_name("run_summary"), x.evaluations, x.class_received,
           x.class_applied, x.final_stats, x.final_params, x.events, x.interrupted,
           x.resumed_from, x.run_id);
}

/// One injected effect on a worker, sent by the injector (see config/scenario.hpp).
struct fault_effect {
  enum kinds : int32_t { slow_factor, slow_delay, example_cost, pause, crash, net_delay, net_drop };
  int32_t event = 0;        ///< index of the scenario event
  int32_t kind = slow_factor;
  double factor = 1;        ///< slow_factor: step time multiplier
  int32_t dist = 0;         ///< slow_delay, net_delay: delay_distribution::family
  double a = 0;             ///< slow_delay, net_delay: the distribution's parameters
  double b = 0;
  std::vector<double> per_class_ms;  ///< example_cost
  double duration_ms = 0;   ///< pause; net_drop: time until the sender notices the loss
  double probability = 0;   ///< net_drop: chance that a gradient is lost
  uint64_t seed = 0;        ///< the event's seed; the worker mixes in its id for its draws
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, fault_effect& x) {
  return f(caf::meta::type_name("fault_effect"), x.event, x.kind, x.factor, x.dist, x.a, x.b,
           x.per_class_ms, x.duration_ms, x.probability, x.seed);
}

/// What a serving process tells the workers that join it over the network: everything they
/// must agree on (workers cannot disagree with the server).
struct run_spec {
  std::string run_id;            ///< the run's identity: kept across --resume, new otherwise
  std::string mode;
  std::string model;             ///< softmax | mlp | lsq
  int32_t hidden = 0;
  int32_t input_dim = 0;
  int32_t classes = 0;
  int32_t batch = 0;
  uint64_t seed = 0;
  int32_t shards = 0;            ///< workers sharing each epoch
  int64_t request_timeout_ms = 0;
  std::string dataset;           ///< fashion-mnist | synthetic
  bool track_inclusion = false;  ///< gradients carry their example indices
  bool network_faults = false;   ///< the scenario delays or drops messages: workers route
                                 ///< theirs through a link actor (actors/link.hpp)
  std::vector<int32_t> ids;      ///< the worker ids assigned to the asking process
  /// A resumed run's sample positions: (id, epoch, step, computed) per worker of its
  /// checkpoint, flat. A worker with an entry starts there with that count (or goes back
  /// there after a server restart, keeping its own count).
  std::vector<int64_t> positions;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_spec& x) {
  return f(caf::meta::type_name("run_spec"), x.run_id, x.mode, x.model, x.hidden, x.input_dim,
           x.classes, x.batch, x.seed, x.shards, x.request_timeout_ms, x.dataset,
           x.track_inclusion, x.network_faults,
           x.ids, x.positions);
}

/// A worker process asking a serving process for work: its protocol version, its training
/// set's fingerprint, and either `wanted` new worker ids, or (after a server restart) the
/// `ids` it already holds. wanted == 0 and no ids: a query for the run_spec only.
struct hello_request {
  std::string version;
  std::string fingerprint;
  int32_t wanted = 0;
  std::vector<int32_t> ids;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, hello_request& x) {
  return f(caf::meta::type_name("hello_request"), x.version, x.fingerprint, x.wanted, x.ids);
}

/// Where lost members left their shards: (id, epoch, step, computed) per member, flat, as
/// run_spec::positions. The server tells the facade, so that a new work process that takes
/// over a lost worker's id goes on from there with its count.
struct member_positions {
  std::vector<int64_t> flat;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_positions& x) {
  return f(caf::meta::type_name("member_positions"), x.flat);
}

/// What a worker says of itself as it stops: its own count of computed gradients (the left
/// side of the no-loss equation), how many of them its link lost, and where its time went.
/// compute_seconds: computing gradients, gathering the minibatch included (also a gather
/// done ahead while a sync round was open). wait_seconds: from each push or pull to its
/// answer, less the gathers done meanwhile. A scripted step delay is in neither.
struct worker_report {
  int32_t worker = 0;
  int64_t computed = 0;
  int64_t lost_in_network = 0;
  double compute_seconds = 0;
  double wait_seconds = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, worker_report& x) {
  return f(caf::meta::type_name("worker_report"), x.worker, x.computed, x.lost_in_network,
           x.compute_seconds, x.wait_seconds);
}

/// psgd's error codes (category atom "psgd").
enum class error_code : uint8_t {
  none = 0,
  training_finished,   ///< the budget is spent: the receiver should stop
  not_a_member,        ///< the worker id is unknown or out of range
  peer_lost,           ///< a peer actor died
  rejected,            ///< the server refused a gradient (see reject_reason)
  injected_crash,      ///< a scenario crashed this actor
  refused,             ///< a worker process does not match the run (version, data, ids)
  round_timeout,       ///< a round waited longer than --round-timeout (policy stop)
  diverged,            ///< the loss became NaN/Inf or passed the divergence threshold
  lost_in_network,     ///< a link lost the gradient on its way (scenario net_drop)
  interrupted,         ///< the user stopped this process (SIGINT, SIGTERM)
};

std::string to_string(error_code x);
caf::error make_error(error_code x, std::string context = {});

} // namespace psgd

// -- type IDs and atoms ---------------------------------------------------------------------

CAF_BEGIN_TYPE_ID_BLOCK(psgd, caf::first_custom_type_id)
  CAF_ADD_TYPE_ID(psgd, (psgd::float_buffer))
  CAF_ADD_TYPE_ID(psgd, (psgd::snapshot))
  CAF_ADD_TYPE_ID(psgd, (psgd::gradient))
  CAF_ADD_TYPE_ID(psgd, (psgd::worker_stats))
  CAF_ADD_TYPE_ID(psgd, (psgd::server_stats))
  CAF_ADD_TYPE_ID(psgd, (psgd::eval_point))
  CAF_ADD_TYPE_ID(psgd, (psgd::run_summary))
  CAF_ADD_TYPE_ID(psgd, (psgd::fault_effect))
  CAF_ADD_TYPE_ID(psgd, (psgd::run_spec))
  CAF_ADD_TYPE_ID(psgd, (psgd::hello_request))
  CAF_ADD_TYPE_ID(psgd, (psgd::member_positions))
  CAF_ADD_TYPE_ID(psgd, (psgd::worker_report))
  CAF_ADD_ATOM(psgd, psgd, join_atom, "join")
  CAF_ADD_ATOM(psgd, psgd, push_atom, "push")
  CAF_ADD_ATOM(psgd, psgd, stats_atom, "stats")
  CAF_ADD_ATOM(psgd, psgd, progress_atom, "progress")
  CAF_ADD_ATOM(psgd, psgd, done_atom, "done")
  CAF_ADD_ATOM(psgd, psgd, start_atom, "start")
  CAF_ADD_ATOM(psgd, psgd, run_atom, "run")
  CAF_ADD_ATOM(psgd, psgd, tick_atom, "tick")
  CAF_ADD_ATOM(psgd, psgd, resume_atom, "resume")
  CAF_ADD_ATOM(psgd, psgd, event_atom, "event")
  CAF_ADD_ATOM(psgd, psgd, report_atom, "report")
  CAF_ADD_ATOM(psgd, psgd, fault_atom, "fault")
  CAF_ADD_ATOM(psgd, psgd, heal_atom, "heal")
  CAF_ADD_ATOM(psgd, psgd, watch_atom, "watch")
  CAF_ADD_ATOM(psgd, psgd, crash_atom, "crash")
  CAF_ADD_ATOM(psgd, psgd, rejoin_atom, "rejoin")
  CAF_ADD_ATOM(psgd, psgd, hello_atom, "hello")
  CAF_ADD_ATOM(psgd, psgd, pull_atom, "pull")
  CAF_ADD_ATOM(psgd, psgd, enlist_atom, "enlist")
  CAF_ADD_ATOM(psgd, psgd, warm_atom, "warm")
  CAF_ADD_ATOM(psgd, psgd, release_atom, "release")
  CAF_ADD_ATOM(psgd, psgd, position_atom, "position")
  CAF_ADD_ATOM(psgd, psgd, open_atom, "open")
  CAF_ADD_ATOM(psgd, psgd, psgd_error_atom, "psgd")
  CAF_ADD_ATOM(psgd, psgd, flush_atom, "flush")
CAF_END_TYPE_ID_BLOCK(psgd)

// -- typed actor interfaces -------------------------------------------------------------------

namespace psgd {

/// What a worker talks to: the server itself (in one process), the facade a serving
/// process publishes, or a link in between (scenarios with network faults).
/// report(worker_report) is the worker's own count of computed gradients, sent as it stops,
/// how many of them its link lost and where its time went. pull(id): the current parameters
/// for a member whose gradient was lost on the way (it has nothing to push).
using upstream_actor = caf::typed_actor<
  caf::replies_to<join_atom, int32_t>::with<snapshot>,
  caf::replies_to<push_atom, gradient>::with<snapshot>,
  caf::replies_to<pull_atom, int32_t>::with<snapshot>,
  caf::reacts_to<report_atom, worker_report>>;

/// What a serving process publishes: the worker protocol and nothing else (no stats, no
/// crash, no timers). hello(request) -> the run_spec with the ids assigned to the asking
/// process, or error `refused` naming the mismatch. open(count) comes from the serving
/// process's own driver (refused from any other node): a scenario's `join` event opens
/// `count` new worker ids, after every id so far, for work processes that join mid-run;
/// the answer is the first of them. flush() is answered at once: a work process whose
/// workers just left asks it before it exits, so that their down messages (sent before it
/// on the same connection) have reached the serving node.
using facade_actor = upstream_actor::extend<
  caf::replies_to<hello_atom, hello_request>::with<run_spec>,
  caf::replies_to<open_atom, int32_t>::with<int32_t>,
  caf::replies_to<flush_atom>::with<flush_atom>>;

/// The parameter server. tick() is its own watchdog timer (round timeout). done() comes from
/// the driver: the user interrupted the run; end the budget now, as if it were spent.
/// release(id) comes from the facade: the process holding worker id is gone; true if the
/// server let the id go, so that the facade may hand it out again (before training: the
/// member is forgotten; after: it is lost, and a new process may take it over).
/// position(request) answers where the lost members among request.ids left their shards.
using server_actor = upstream_actor::extend<
  caf::replies_to<stats_atom>::with<server_stats>,
  caf::replies_to<release_atom, int32_t>::with<bool>,
  caf::replies_to<position_atom, hello_request>::with<member_positions>,
  caf::replies_to<watch_atom, uint64_t>::with<uint64_t>,
  caf::reacts_to<crash_atom>,
  caf::reacts_to<tick_atom>,
  caf::reacts_to<done_atom>>;

/// Who the server reports to (the driver). Training pauses while the observer evaluates a
/// progress snapshot; its answer (resume) lets it go on. start() says training started
/// (every expected worker joined).
using observer_actor = caf::typed_actor<
  caf::reacts_to<start_atom>,
  caf::replies_to<progress_atom, snapshot, server_stats>::with<resume_atom>,
  caf::reacts_to<done_atom, snapshot, server_stats>,
  caf::reacts_to<event_atom, std::string>>;

/// A worker: idle until started. push() and tick() are its own timers: "send the gradient
/// you hold" after an injected delay, and "check that the server answered in time".
/// fault() and heal() come from the injector: an effect begins, an effect window ends.
/// rejoin(server) comes from the driver: the server was restarted; continue with this one.
/// rejoin(server, epoch, step): the same, from that sample position (the checkpoint's, so
/// the rolled-back updates are trained again on the same minibatches).
/// warm() comes from the server: your gradient waits for its round (gather the next batch).
using worker_actor = caf::typed_actor<caf::reacts_to<start_atom>, caf::reacts_to<push_atom>,
                                      caf::reacts_to<warm_atom>,
                                      caf::reacts_to<tick_atom>,
                                      caf::reacts_to<fault_atom, fault_effect>,
                                      caf::reacts_to<heal_atom, int32_t>,
                                      caf::reacts_to<rejoin_atom, upstream_actor>,
                                      caf::reacts_to<rejoin_atom, upstream_actor, int64_t,
                                                     int64_t>>;

/// The driver: runs one training job and answers with its summary. tick() is its own timer
/// (the bound on waiting for the workers' reports at the end).
/// join(count) comes from the injector: start that many new workers.
/// done() comes from its caller (SIGINT, SIGTERM): stop now and answer with the run so far.
using driver_actor = observer_actor::extend<caf::replies_to<run_atom>::with<run_summary>,
                                            caf::reacts_to<tick_atom>,
                                            caf::reacts_to<join_atom, int32_t>,
                                            caf::reacts_to<done_atom>>;

/// The injector: carries out a scenario. start() is answered once every trigger is armed.
/// fault(i) and heal(i) are its own timers: event i begins, event i's window ends.
/// enlist(id, w): worker id is `w` (a remote worker that joined a serving process).
using injector_actor = caf::typed_actor<caf::replies_to<start_atom>::with<start_atom>,
                                        caf::reacts_to<fault_atom, int32_t>,
                                        caf::reacts_to<heal_atom, int32_t>,
                                        caf::reacts_to<rejoin_atom, server_actor>,
                                        caf::reacts_to<enlist_atom, int32_t, worker_actor>>;

/// A worker's link to its upstream (actors/link.hpp): the path its messages take when a
/// scenario delays or drops them. fault() and heal() are the worker's network effects;
/// rejoin(upstream) points it at a (restarted) server; tick(k) is its own timer: "send held
/// message k on".
using link_actor = upstream_actor::extend<caf::reacts_to<fault_atom, fault_effect>,
                                          caf::reacts_to<heal_atom, int32_t>,
                                          caf::reacts_to<rejoin_atom, upstream_actor>,
                                          caf::reacts_to<tick_atom, uint64_t>>;

/// Registers the vocabulary (type IDs and the psgd error category) with a config.
void register_vocabulary(caf::actor_system_config& cfg);

} // namespace psgd
