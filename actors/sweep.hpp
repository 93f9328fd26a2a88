// sweep: the simulated-staleness sweep (Chen et al. 2017 simulated staleness to measure its
// effect apart from timing). For every model, K and seed it trains async with one worker and
// --simulate-staleness K, so every gradient has staleness exactly K, and records the final
// test accuracy and loss, or that the run diverged.
//
// Contract:
// - run_sweep() runs the points one after the other, each on a fresh actor system, and calls
//   `progress` after each. A diverged run is a result (diverged = true), not an error; any
//   other failure ends the sweep with that error.
// - Deterministic: the same base config, models, Ks and seeds give the same points, bit for
//   bit (each point runs on one scheduler thread; the server and its one worker take turns).
// - Not thread-safe to share a call's callback; the function itself holds no global state.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/run_config.hpp"
#include "data/dataset.hpp"
#include "data/outcome.hpp"

namespace psgd {

struct sweep_point {
  std::string model;
  int staleness = 0;  ///< K
  uint64_t seed = 0;
  bool diverged = false;     ///< the loss became NaN/Inf or passed --divergence-loss
  bool at_chance = false;    ///< finished, but no better than 1.5x chance: training collapsed
  double test_accuracy = 0;  ///< of the final parameters (meaningless when diverged)
  double test_loss = 0;
  double train_seconds = 0;
};

struct sweep_plan {
  std::vector<std::string> models{"softmax", "mlp"};
  std::vector<int> staleness{0, 1, 2, 4, 8, 16, 32};
  int seeds = 3;  ///< seeds base.seed, base.seed + 1, ...
};

/// Parses a comma-separated list of K values (each 0..max_simulated_staleness).
outcome<std::vector<int>> parse_staleness_list(const std::string& text);

/// Once *interrupt is set the sweep stops: the point running is dropped (its budget was cut
/// short), and the points finished before it are returned.
outcome<std::vector<sweep_point>> run_sweep(
  const run_config& base, const sweep_plan& plan, std::shared_ptr<const data::split> data,
  const std::function<void(const sweep_point&)>& progress = {},
  const std::atomic<bool>* interrupt = nullptr);

/// One JSON line per point: {"type":"sweep_point", "model", "K", "seed", "diverged",
/// "at_chance", "final_test_accuracy" (null when diverged), "final_test_loss",
/// "train_seconds", "lr", "b", "epochs"}.
nlohmann::json sweep_json(const run_config& base, const sweep_point& p);

/// The table: per model and K, mean, min and max accuracy over the seeds, how many diverged
/// and how many ended at chance level.
std::string sweep_table(const std::vector<sweep_point>& points);

} // namespace psgd
