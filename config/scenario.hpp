// scenario: a script of stragglers and faults, read from a JSON file (nlohmann-json).
//
// Contract:
// - load_scenario() reads and validates the whole file before any training starts; the first
//   problem comes back as one line naming the file and the field, e.g.
//   "slow.json: events[2].delay.shape: must be > 0 (got -1)". Unknown keys are errors too
//   (a typo must not silently disable a fault).
// - load_scenario(path, workers) also checks the scenario against the run: check_workers()
//   refuses a worker the run does not have, e.g. "f.json: events[0].workers[0]: worker 7
//   does not exist (the run has 2 workers)". The file alone cannot say how many workers a
//   run has, so load_scenario(path) does not check worker ids.
// - Every number that becomes a wait is bounded (max_slow_factor, max_duration_ms,
//   max_example_cost_ms, max_lognormal_sigma), well inside the timers' int64 nanoseconds: a
//   factor of 1e15 overflowed them, and the worker was not slowed at all. A larger value is
//   refused, naming the field and the limit: "f.json: events[0].factor: must be <= 1000000
//   (got 1e+20)".
// - A scenario is a plain immutable value: share it read-only between threads.
// - delay_distribution::draw() is deterministic in the generator's state.
//
// File format (all times in milliseconds unless the key says seconds):
//   {
//     "name": "one-slow-worker",                 optional, default: the file's stem
//     "description": "worker 1 is 10x slower",   optional
//     "events": [ EVENT, ... ]                   required, may be empty
//   }
//   EVENT = { "kind": KIND, ... } with, per kind:
//     "slow"          workers, window, and exactly one of
//                       "factor": F          (1 <= F <= 1e6: each step takes F times its
//                                             compute time)
//                       "delay": DIST        (extra time per step drawn from DIST)
//     "example_cost"  workers, window, "per_class_ms": [c0, c1, ...] (0 <= c <= 60000 each, a
//                     minute): extra time per example of class k in the batch (biases which
//                     gradients arrive late)
//     "pause"         workers, "at": POINT, "duration_ms": D (0 < D <= 86400000, a day)
//     "crash"         workers, "at": POINT              (the worker actor dies with an error)
//     "join"          "at": POINT, "count": N (1..1024, default 1)  (N new workers join; across
//                     processes the server opens N new ids for a new work process)
//     "server_crash"  "at": POINT                       (the server dies; restarts from its
//                                                       last checkpoint)
//     "net_delay"     workers, window, "delay": DIST: each message from the worker to the
//                     server (join, push, pull) is held for a draw from DIST on the way
//     "net_drop"      workers, window, "probability": P (0 < P <= 1), optional "detect_ms": D
//                     (0 <= D <= 86400000, default 200): each gradient the worker pushes is
//                     lost on the way with probability P; after D ms (a transport's loss
//                     timeout) the worker carries on with the current parameters. Lost
//                     gradients are counted as lost_in_network. Both network kinds work in
//                     one process and across processes: the worker's messages take a link
//                     actor (actors/link.hpp).
//   workers = "all" | [id, ...] | {"random": K}   (K distinct workers drawn from the seed);
//             required for per-worker kinds. Against a run of n workers (m, or m + e in
//             backup mode): an id is < n, or names a worker that a join event listed earlier
//             in the file adds (ids n, n + 1, ... up to n + their counts - 1; the check does
//             not compare when the events fire); 1 <= K <= n ("all" and "random" take the
//             workers the run starts with)
//   window  = optional "from": POINT and "to": POINT (default: the whole run); from < to when
//             both use the same unit
//   POINT   = {"seconds": S} (0 <= S <= 86400, since training started) | {"updates": U}
//             (0 <= U <= 2^53, server version)
//   DIST    = {"dist": "constant",    "ms": X}                         (0 <= X)
//           | {"dist": "uniform",     "min_ms": A, "max_ms": B}       (0 <= A <= B)
//           | {"dist": "exponential", "mean_ms": X}                    (X > 0)
//           | {"dist": "lognormal",   "median_ms": M, "sigma": S}      (M > 0, 0 <= S <= 10)
//           | {"dist": "pareto",      "scale_ms": X, "shape": A}       (X > 0, A > 0,
//                                                      median X * 2^(1/A) at most a day)
//             and every *_ms parameter <= 86400000 (a day). A draw is at most a day too
//             (the cap of draw()): the tails of exponential, lognormal and pareto are not
//             bounded.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/outcome.hpp"
#include "data/random.hpp"

namespace psgd {

enum class fault_kind {
  slow, example_cost, pause, crash, join, server_crash, net_delay, net_drop
};

/// net_drop's default time until a lost gradient is noticed, in milliseconds.
inline constexpr double default_detect_ms = 200;

/// The largest slow "factor": a step may take a million times its compute time, no more.
inline constexpr double max_slow_factor = 1e6;
/// The longest time a field may give (a day, in ms): duration_ms, detect_ms, a
/// distribution's *_ms parameters, a POINT's seconds (86400). Also the cap on one draw.
inline constexpr double max_duration_ms = 86'400'000;
/// The largest per_class_ms (a minute): a step waits it once per example of its batch, and
/// a batch can hold a whole training set (60000 Fashion-MNIST examples: 42 days at most).
inline constexpr double max_example_cost_ms = 60'000;
/// The largest lognormal sigma: draws then span e^(+-86) around the median already.
inline constexpr double max_lognormal_sigma = 10;

std::string to_string(fault_kind k);

/// A moment of the run: seconds since training started, or a server version.
struct fault_point {
  enum class unit { seconds, updates };
  unit in = unit::seconds;
  double value = 0;
};

std::string to_string(const fault_point& p); // "2.5 s" or "update 300"

/// Extra time per step, in milliseconds.
struct delay_distribution {
  enum class family { constant, uniform, exponential, lognormal, pareto };
  family dist = family::constant;
  double a = 0;  ///< constant: ms; uniform: min_ms; exponential: mean_ms; lognormal:
                 ///< median_ms; pareto: scale_ms
  double b = 0;  ///< uniform: max_ms; lognormal: sigma; pareto: shape; unused otherwise

  /// One draw, in milliseconds (0 <= draw <= max_duration_ms).
  double draw(data::splitmix64& rng) const;
  /// The mean in milliseconds (infinite for pareto with shape <= 1), before draw()'s cap.
  double mean() const;
  std::string describe() const; // e.g. "pareto(scale 0.5 ms, shape 1.5)"
};

/// Which workers an event concerns.
struct worker_set {
  bool all = false;
  std::vector<int32_t> ids;  ///< explicit ids (when not all and random == 0)
  int random = 0;            ///< > 0: that many distinct workers drawn from the seed

  /// The ids this set names: "all" and `random` (drawn with `rng`) among the n starting
  /// workers 0..n-1, explicit ids as given (check_workers() bounds them; those >= n are
  /// workers that a join event adds). Sorted.
  std::vector<int32_t> resolve(int n, data::splitmix64& rng) const;
};

struct fault_event {
  fault_kind kind = fault_kind::slow;
  worker_set workers;
  std::optional<fault_point> from;  ///< window start (slow, example_cost); the moment of
                                    ///< pause, crash, join, server_crash ("at")
  std::optional<fault_point> to;    ///< window end (slow, example_cost)
  double factor = 1;                ///< slow: step time multiplier (>= 1), when no delay
  std::optional<delay_distribution> delay;  ///< slow: extra time per step; net_delay: per
                                            ///< message
  double duration_ms = 0;           ///< pause; net_drop: detect_ms
  double probability = 0;           ///< net_drop
  int count = 1;                    ///< join
  std::vector<double> per_class_ms; ///< example_cost
};

struct scenario {
  std::string name;
  std::string description;
  std::vector<fault_event> events;

  /// True if an event delays or drops messages (workers then need a link actor).
  bool has_network_faults() const;
  /// The first server_crash event, if any: it restarts the server inside its process, which
  /// is not possible when the workers are remote (psgd serve). (A join event is: there it
  /// opens worker ids for a new work process.)
  const fault_event* server_crash() const;
};

/// Reads and validates a scenario file. Errors name the file and the field.
outcome<scenario> load_scenario(const std::string& path);

/// Same, from text; `origin` names it in errors (a path, or e.g. "<test>").
outcome<scenario> parse_scenario(const std::string& json_text, const std::string& origin);

/// Checks `s` against a run that starts `workers` workers (run_config::total_workers()):
/// every id an event names exists by then (see "workers" above), and every {"random": K}
/// has K <= workers. Returns "" when it does, else the first problem as one line,
/// "events[I].workers[J]: ...", naming the run's number of workers.
std::string check_workers(const scenario& s, int workers);

/// load_scenario(path), then check_workers(): what a run of `workers` workers reads.
/// Errors name the file and the field.
outcome<scenario> load_scenario(const std::string& path, int workers);

} // namespace psgd
