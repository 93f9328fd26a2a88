#include "actors/sequential.hpp"

#include <chrono>
#include <cmath>
#include <iostream>

#include <fmt/format.h>

#include "actors/results.hpp"
#include "actors/update_policy.hpp"
#include "data/sampler.hpp"
#include "model/float_env.hpp"

namespace psgd {

caf::expected<run_summary> run_sequential(const training_job& job) {
  using clock = std::chrono::steady_clock;
  // The caller's thread computes as the actor system's threads do.
  model::scoped_flush_denormals flushed;
  const auto& cfg = job.cfg;
  const auto& m = *job.model;
  const auto& train = job.data->train;
  const auto budget = server_settings::from(cfg, train.rows);
  const uint64_t every = eval_interval(cfg, train.rows);
  const float lr = static_cast<float>(cfg.lr);

  std::vector<float> params = job.initial;
  std::vector<float> grad(params.size());
  auto ws = m.make_workspace(cfg.batch);
  data::shard_sampler sampler{train.rows, cfg.seed, 0, 1, cfg.batch};

  run_summary r;
  r.run_id = job.run_id;
  server_stats s;
  worker_stats w;
  double seconds = 0;
  auto finished = [&] {
    return (budget.max_updates > 0 && s.version >= budget.max_updates)
           || (budget.sample_budget > 0 && s.samples >= budget.sample_budget);
  };
  auto stats_now = [&] {
    s.seconds = seconds;
    s.gradients_applied = static_cast<int64_t>(s.version);
    s.staleness_histogram = {static_cast<int64_t>(s.version)};
    w.staleness_histogram = s.staleness_histogram;
    w.computed = w.pushed = w.applied = static_cast<int64_t>(s.version);
    w.compute_seconds = seconds; // one thread, computing all the time; no server to wait for
    w.wait_seconds = 0;
    s.workers = {w};
    return s;
  };
  auto start = clock::now();
  while (!finished()) {
    if (job.interrupt != nullptr && job.interrupt->load(std::memory_order_relaxed)) {
      r.interrupted = true;
      r.events.push_back(interruption_note(s.version, s.samples, train.rows));
      std::cerr << fmt::format("[sequential] {}\n", r.events.back());
      break;
    }
    float loss = m.gradient(params.data(), train, sampler.next(), cfg.batch, grad.data(), *ws);
    // The servers' rule (server_core::commit): a loss above the threshold, or NaN, stops the
    // run. Before, sequential SGD went on and reported NaN results with exit 0.
    if (!std::isfinite(loss) || loss > cfg.divergence_loss)
      return make_error(error_code::diverged,
                        fmt::format("minibatch loss {} at update {} (--divergence-loss {})", loss,
                                    s.version + 1, cfg.divergence_loss));
    for (size_t i = 0, n = params.size(); i < n; ++i)
      params[i] -= lr * grad[i];
    ++s.version;
    s.samples += cfg.batch;
    s.recent_loss = loss;
    if (s.version % every == 0 && !finished()) {
      seconds += std::chrono::duration<double>(clock::now() - start).count();
      auto p = evaluate_at(m, params.data(), train, cfg.loss_subsample, job.data->test, stats_now());
      r.evaluations.push_back(p);
      if (job.on_evaluation)
        job.on_evaluation(p);
      if (!cfg.quiet)
        std::cerr << progress_line(cfg, p, s, train.rows) << std::endl;
      start = clock::now();
    }
  }
  seconds += std::chrono::duration<double>(clock::now() - start).count();
  r.final_stats = stats_now();
  // Interrupted right after an evaluation: that one is the final one.
  if (r.evaluations.empty() || r.evaluations.back().updates != s.version)
    r.evaluations.push_back(
      evaluate_at(m, params.data(), train, cfg.loss_subsample, job.data->test, s));
  r.final_params = snapshot{s.version, float_buffer{std::move(params)}};
  return r;
}

} // namespace psgd
