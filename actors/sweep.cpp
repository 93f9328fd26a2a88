#include "actors/sweep.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "actors/trainer.hpp"
#include "config/build_info.hpp"

namespace psgd {

outcome<std::vector<int>> parse_staleness_list(const std::string& text) {
  using result = outcome<std::vector<int>>;
  std::vector<int> ks;
  std::stringstream in{text};
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty() || item.size() > 6 || item.find_first_not_of("0123456789") != std::string::npos
        || std::stoi(item) > max_simulated_staleness)
      return result::failure(fmt::format("--staleness: expected a list like 0,1,2,4 of values "
                                         "0..{} (got '{}')",
                                         max_simulated_staleness, text));
    const int k = std::stoi(item);
    // A value twice made one row of twice the runs, as if it were seeds.
    if (std::find(ks.begin(), ks.end(), k) != ks.end())
      return result::failure(fmt::format("--staleness: {} is in the list twice (got '{}')", k,
                                         text));
    ks.push_back(k);
  }
  if (ks.empty())
    return result::failure("--staleness: the list is empty");
  return ks;
}

namespace {

/// One point: async, one worker, simulated staleness K; none if `interrupt` stopped it.
outcome<std::optional<sweep_point>> run_point(run_config cfg,
                                              std::shared_ptr<const data::split> data,
                                              const std::atomic<bool>* interrupt) {
  using result = outcome<std::optional<sweep_point>>;
  sweep_point p;
  p.model = cfg.model;
  p.staleness = std::stoi(cfg.simulate_staleness);
  p.seed = cfg.seed;
  if (auto problem = validate(cfg); !problem.empty())
    return result::failure(problem);
  auto job = prepare_job(cfg, std::move(data));
  if (!job)
    return result::failure(job.error());
  job->interrupt = interrupt;
  psgd_config sys_cfg;
  sys_cfg.fit_scheduler_to(cfg);
  // One worker and the server take strict turns: one scheduler thread loses nothing.
  sys_cfg.set("scheduler.max-threads", 1);
  caf::actor_system sys{sys_cfg};
  auto summary = run_training(sys, *job);
  if (!summary) {
    if (summary.error() == make_error(error_code::diverged)) {
      p.diverged = true;
      p.test_accuracy = std::numeric_limits<double>::quiet_NaN();
      p.test_loss = std::numeric_limits<double>::quiet_NaN();
      return {p};
    }
    return result::failure(fmt::format("{} K={} seed {}: {}", cfg.model, p.staleness, cfg.seed,
                                       sys.render(summary.error())));
  }
  if (summary->interrupted) // a point of a shorter budget is not a point of this sweep
    return {std::nullopt};
  const auto& last = summary->evaluations.back();
  p.test_accuracy = last.test_accuracy;
  p.test_loss = last.test_loss;
  p.train_seconds = summary->final_stats.seconds;
  // A loss that blew up without passing the divergence threshold still counts as diverged.
  p.diverged = !std::isfinite(p.test_loss);
  const int classes = job->data->test.classes;
  p.at_chance = !p.diverged && classes > 0 && p.test_accuracy <= 1.5 / classes;
  return {p};
}

} // namespace

outcome<std::vector<sweep_point>> run_sweep(const run_config& base, const sweep_plan& plan,
                                            std::shared_ptr<const data::split> data,
                                            const std::function<void(const sweep_point&)>& progress,
                                            const std::atomic<bool>* interrupt) {
  using result = outcome<std::vector<sweep_point>>;
  std::vector<sweep_point> points;
  for (const auto& model : plan.models)
    for (int k : plan.staleness)
      for (int s = 0; s < plan.seeds; ++s) {
        if (interrupt != nullptr && *interrupt)
          return points;
        run_config cfg = base;
        cfg.mode = "async";
        cfg.workers = 1;
        cfg.model = model;
        cfg.simulate_staleness = std::to_string(k);
        cfg.seed = base.seed + static_cast<uint64_t>(s);
        auto p = run_point(cfg, data, interrupt);
        if (!p)
          return result::failure(p.error());
        if (!*p)
          return points;
        points.push_back(**p);
        if (progress)
          progress(**p);
      }
  return points;
}

nlohmann::json sweep_json(const run_config& base, const sweep_point& p) {
  auto number = [](double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(); };
  return {{"type", "sweep_point"},
          {"model", p.model},
          {"K", p.staleness},
          {"seed", p.seed},
          {"diverged", p.diverged},
          {"at_chance", p.at_chance},
          {"final_test_accuracy", number(p.test_accuracy)},
          {"final_test_loss", number(p.test_loss)},
          {"train_seconds", p.train_seconds},
          {"lr", base.lr},
          {"b", base.batch},
          {"epochs", base.epochs},
          {"stale_lr", base.stale_lr},
          {"hidden", p.model == "mlp" ? nlohmann::json(base.hidden) : nlohmann::json()},
          {"build", build_info()}};
}

std::string sweep_table(const std::vector<sweep_point>& points) {
  struct cell {
    std::vector<double> accuracy;
    int runs = 0;
    int diverged = 0;
    int at_chance = 0;
  };
  std::map<std::pair<std::string, int>, cell> cells;
  for (const auto& p : points) {
    auto& c = cells[{p.model, p.staleness}];
    ++c.runs;
    c.at_chance += p.at_chance ? 1 : 0;
    if (p.diverged)
      ++c.diverged;
    else
      c.accuracy.push_back(p.test_accuracy);
  }
  std::string out = fmt::format("{:<8} {:>4} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "model",
                                "K", "runs", "mean acc", "min", "max", "diverged", "at chance");
  out += std::string(69, '-') + "\n";
  for (const auto& [key, c] : cells) {
    if (c.accuracy.empty()) {
      out += fmt::format("{:<8} {:>4} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9}\n", key.first,
                         key.second, c.runs, "-", "-", "-", c.diverged, c.at_chance);
      continue;
    }
    double sum = 0;
    for (double a : c.accuracy)
      sum += a;
    auto [lo, hi] = std::minmax_element(c.accuracy.begin(), c.accuracy.end());
    out += fmt::format("{:<8} {:>4} {:>5} {:>9.4f} {:>9.4f} {:>9.4f} {:>9} {:>9}\n", key.first,
                       key.second, c.runs, sum / double(c.accuracy.size()), *lo, *hi,
                       c.diverged, c.at_chance);
  }
  return out;
}

} // namespace psgd
