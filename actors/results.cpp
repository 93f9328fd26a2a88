#include "actors/results.hpp"
#include "config/build_info.hpp"
#include "data/chi_square.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <fmt/format.h>

namespace psgd {

eval_point evaluate_at(const model::model& m, const float* params, const data::dataset& train,
                       int64_t loss_rows, const data::dataset& test, const server_stats& stats) {
  eval_point p;
  p.seconds = stats.seconds;
  p.updates = stats.version;
  p.samples = stats.samples;
  p.train_loss = m.evaluate(params, train, loss_rows).loss;
  auto t = m.evaluate(params, test);
  p.test_loss = t.loss;
  p.test_accuracy = t.accuracy;
  return p;
}

namespace {

double mean_staleness(const server_stats& s) {
  return mean_of_histogram(s.staleness_histogram);
}

size_t max_staleness(const server_stats& s) {
  size_t m = 0;
  for (size_t i = 0; i < s.staleness_histogram.size(); ++i)
    if (s.staleness_histogram[i] > 0)
      m = i;
  return m;
}

double per_second(double x, double seconds) {
  return seconds > 0 ? x / seconds : 0.0;
}

} // namespace

std::string interruption_note(uint64_t version, int64_t samples, int64_t train_rows) {
  if (version == 0)
    return "interrupted before the first update: nothing was trained";
  return fmt::format("interrupted at update {} (epoch {:.2f}): the results are the run's so far",
                     version, double(samples) / double(train_rows));
}

std::string progress_line(const run_config& cfg, const eval_point& p, const server_stats& s,
                          int64_t train_rows) {
  // Least squares has no accuracy: its test loss says how far it is from the optimum.
  const bool regression = cfg.parsed_model == model::kind::least_squares;
  auto line = fmt::format("[{}] epoch {:.2f}  updates {}  samples/s {:.0f}  train loss {:.4f}  "
                          "{} {:.4f}",
                          cfg.mode, double(p.samples) / double(train_rows), p.updates,
                          per_second(double(p.samples), p.seconds), p.train_loss,
                          regression ? "test loss" : "test acc",
                          regression ? p.test_loss : p.test_accuracy);
  if (cfg.applies_on_arrival())
    line += fmt::format("  staleness mean {:.2f} max {}", mean_staleness(s), max_staleness(s));
  if (cfg.parsed_mode == train_mode::backup || s.gradients_dropped > 0)
    line += fmt::format("  dropped {}", s.gradients_dropped);
  return line;
}

accounting accounting_totals(const server_stats& s) {
  accounting a;
  for (const auto& w : s.workers) {
    a.computed += w.computed;
    a.applied += w.applied;
    a.dropped += w.dropped;
    a.after_stop += w.after_stop;
    a.rejected += w.rejected_total();
    a.lost_in_network += w.lost_in_network;
    a.lost_in_flight += w.lost_in_flight;
  }
  return a;
}

namespace {

/// Seconds from a worker's report, null where none came.
nlohmann::json reported_seconds(double s) {
  return s < 0 ? nlohmann::json() : nlohmann::json(s);
}

/// The share of the reporting workers' time spent computing rather than waiting for the
/// server; null where none reported.
nlohmann::json compute_share(const server_stats& s) {
  double compute = 0, wait = 0;
  for (const auto& w : s.workers)
    if (w.compute_seconds >= 0) {
      compute += w.compute_seconds;
      wait += std::max(w.wait_seconds, 0.0);
    }
  return compute + wait > 0 ? nlohmann::json(compute / (compute + wait)) : nlohmann::json();
}

nlohmann::json rejected_json(const worker_stats& w) {
  nlohmann::json j = nlohmann::json::object();
  for (size_t r = 0; r < w.rejected.size(); ++r)
    j[to_string(static_cast<reject_reason>(r))] = w.rejected[r];
  return j;
}

} // namespace

data::chi_square_result inclusion_test(const run_summary& r) {
  std::vector<int64_t> not_applied;
  for (size_t k = 0; k < r.class_received.size(); ++k)
    not_applied.push_back(r.class_received[k] - r.class_applied[k]);
  return data::chi_square_homogeneity(r.class_applied, not_applied);
}

nlohmann::json inclusion_json(const run_summary& r) {
  std::vector<double> rate;
  for (size_t k = 0; k < r.class_received.size(); ++k)
    rate.push_back(r.class_received[k] > 0
                     ? double(r.class_applied[k]) / double(r.class_received[k])
                     : 0.0);
  auto test = inclusion_test(r);
  return {{"classes", r.class_received.size()},
          {"received", r.class_received},
          {"applied", r.class_applied},
          {"rate", rate},
          {"chi2", test.statistic},
          {"dof", test.dof},
          {"p_value", test.p_value},
          {"uniform_rejected_at_5pct", test.p_value < 0.05},
          {"example_received", r.final_stats.example_received},
          {"example_applied", r.final_stats.example_applied}};
}

nlohmann::json eval_json(const eval_point& p) {
  return {{"type", "eval"},           {"seconds", p.seconds},
          {"updates", p.updates},     {"samples", p.samples},
          {"train_loss", p.train_loss}, {"test_loss", p.test_loss},
          {"test_accuracy", p.test_accuracy}};
}

nlohmann::json summary_json(const run_config& cfg, const run_summary& r, int64_t train_rows) {
  const auto& s = r.final_stats;
  const eval_point last = r.evaluations.empty() ? eval_point{} : r.evaluations.back();
  nlohmann::json workers = nlohmann::json::array();
  nlohmann::json dropped = nlohmann::json::object();
  const auto totals = accounting_totals(s);
  for (const auto& w : s.workers) {
    workers.push_back({{"worker", w.worker},
                       {"computed", w.computed},
                       {"pushed", w.pushed},
                       {"applied", w.applied},
                       {"dropped", w.dropped},
                       {"after_stop", w.after_stop},
                       {"rejected", rejected_json(w)},
                       {"lost_in_network", w.lost_in_network},
                       {"lost_in_flight", w.lost_in_flight},
                       {"staleness_mean", w.applied > 0 ? double(w.staleness_sum) / w.applied : 0.0},
                       {"staleness_max", w.staleness_max},
                       {"staleness_histogram", w.staleness_histogram},
                       {"lost", w.lost},
                       {"quarantined", w.quarantined},
                       {"joined_late", w.joined_late},
                       {"rejoins", w.rejoins},
                       {"compute_seconds", reported_seconds(w.compute_seconds)},
                       {"wait_seconds", reported_seconds(w.wait_seconds)}});
    dropped[std::to_string(w.worker)] = w.dropped;
  }
  const bool actors = cfg.parsed_mode != train_mode::sequential;
  nlohmann::json out = {
    {"type", "summary"},
    {"mode", cfg.mode},
    {"model", cfg.model},
    {"hidden", cfg.parsed_model == model::kind::mlp ? cfg.hidden : 0},
    {"m", actors ? cfg.workers : 1},
    {"e", cfg.parsed_mode == train_mode::backup ? cfg.backup : 0},
    {"b", cfg.batch},
    {"lr", cfg.lr},
    {"aggregate", cfg.aggregate},
    {"seed", cfg.seed},
    {"epochs", cfg.epochs},
    {"max_updates", cfg.max_updates},
    {"placement", actors ? cfg.placement : "none"},
    {"transport", cfg.networked ? "network" : "in-process"},
    {"train_rows", train_rows},
    {"train_seconds", s.seconds},
    {"updates", s.version},
    {"samples", s.samples},
    {"epochs_done", double(s.samples) / double(train_rows)},
    {"samples_per_s", per_second(double(s.samples), s.seconds)},
    {"updates_per_s", per_second(double(s.version), s.seconds)},
    {"gradients_applied", s.gradients_applied},
    {"gradients_dropped", s.gradients_dropped},
    {"final_test_accuracy", last.test_accuracy},
    {"final_test_loss", last.test_loss},
    {"final_train_loss", last.train_loss},
    {"staleness_mean", mean_staleness(s)},
    {"staleness_max", max_staleness(s)},
    {"staleness_histogram", s.staleness_histogram},
    {"dropped_per_worker", dropped},
    {"compute_share", compute_share(s)},
    {"accounting", {{"equation", "computed = applied + dropped + after_stop + rejected + "
                                 "lost_in_network + lost_in_flight"},
                    {"computed", totals.computed},
                    {"applied", totals.applied},
                    {"dropped", totals.dropped},
                    {"after_stop", totals.after_stop},
                    {"rejected", totals.rejected},
                    {"lost_in_network", totals.lost_in_network},
                    {"lost_in_flight", totals.lost_in_flight},
                    {"rejected_unknown_worker", s.rejected_unknown}}},
    {"workers", workers},
    {"events", r.events},
    {"interrupted", r.interrupted},
    // A resumed run's counts and seconds include the sessions before it.
    {"resumed_from_update", r.resumed_from >= 0 ? nlohmann::json(r.resumed_from) : nlohmann::json()},
    // Kept across --resume, so the summaries of one run's sessions can be told apart from
    // another run's; the checkpoint holds it too.
    {"run_id", r.run_id},
    {"build", build_info()},
    {"stale_lr", cfg.stale_lr},
    {"simulated_staleness", cfg.simulate_staleness.empty() ? "none" : cfg.simulate_staleness},
  };
  if (cfg.parsed_mode == train_mode::ssp)
    out["staleness_bound"] = cfg.staleness_bound;
  if (!cfg.scenario.empty())
    out["scenario"] = std::filesystem::path(cfg.scenario).stem().string();
  if (!r.class_received.empty())
    out["inclusion"] = inclusion_json(r);
  return out;
}

std::ostream* open_output(const std::string& path, std::ofstream& file) {
  if (path == stdout_path)
    return &std::cout;
  file.open(path, std::ios::trunc);
  return file ? &file : nullptr;
}

bool was_interrupted(const nlohmann::json& summary) {
  if (!summary.is_object())
    return false;
  const auto it = summary.find("interrupted");
  return it != summary.end() && it->is_boolean() && it->get<bool>();
}

std::string results_file::open(const std::string& path) {
  path_ = path;
  out_ = open_output(path, file_);
  return out_ ? std::string{} : fmt::format("--out: cannot write {}", path);
}

void results_file::add(const eval_point& p) {
  if (out_ == nullptr)
    return;
  *out_ << eval_json(p).dump() << '\n' << std::flush;
  ++added_;
}

std::string results_file::finish(const run_config& cfg, const run_summary& r,
                                 int64_t train_rows) {
  if (out_ == nullptr)
    return {};
  while (added_ < r.evaluations.size())
    add(r.evaluations[added_]);
  *out_ << summary_json(cfg, r, train_rows).dump() << '\n';
  out_->flush();
  if (!*out_)
    return path_ == stdout_path
             ? std::string{"--out: error while writing to standard output"}
             : fmt::format("--out: error while writing {}", path_);
  return {};
}

void results_file::fail(const std::string& error, const std::string& run_id) {
  if (out_ == nullptr)
    return;
  *out_ << nlohmann::json{{"type", "failure"}, {"error", error}, {"run_id", run_id},
                          {"build", build_info()}}
             .dump()
        << '\n'
        << std::flush;
}

std::string write_results(const std::string& path, const run_config& cfg, const run_summary& r,
                          int64_t train_rows) {
  results_file out;
  if (auto problem = out.open(path); !problem.empty())
    return problem;
  return out.finish(cfg, r, train_rows);
}

uint64_t eval_interval(const run_config& cfg, int64_t train_rows) {
  if (cfg.eval_every > 0)
    return static_cast<uint64_t>(cfg.eval_every);
  const int64_t samples_per_update = int64_t{cfg.batch} * cfg.quorum();
  return std::max<uint64_t>(1, uint64_t(train_rows / samples_per_update / 4));
}

std::string summary_problem(const nlohmann::json& summary) {
  enum class kind { text, integer, number };
  struct field {
    const char* name;
    kind type;
    bool required;
  };
  static const field fields[] = {
    {"mode", kind::text, true},          {"model", kind::text, true},
    {"m", kind::integer, true},          {"b", kind::integer, true},
    {"samples_per_s", kind::number, true}, {"updates", kind::integer, true},
    {"e", kind::integer, false},         {"staleness_mean", kind::number, false},
    {"staleness_max", kind::integer, false}, {"gradients_dropped", kind::integer, false},
    {"final_test_accuracy", kind::number, false}, {"final_test_loss", kind::number, false},
    {"scenario", kind::text, false},     {"transport", kind::text, false}};
  for (const auto& f : fields) {
    auto it = summary.find(f.name);
    if (it == summary.end() || it->is_null()) {
      if (f.required)
        return fmt::format("the summary has no '{}'", f.name);
      continue;
    }
    const bool fits = f.type == kind::text      ? it->is_string()
                      : f.type == kind::integer ? it->is_number_integer()
                                                : it->is_number();
    if (!fits)
      return fmt::format("the summary's '{}' should be {} (got {})", f.name,
                         f.type == kind::text      ? "text"
                         : f.type == kind::integer ? "an integer"
                                                   : "a number",
                         it->dump());
  }
  return {};
}

std::string comparison_table(const std::vector<nlohmann::json>& summaries) {
  // "test acc/L": accuracy, or for least squares (no accuracy) "L" and the test loss.
  // "computing": the workers' compute_share ("-" in files from before it was recorded).
  std::string out =
    fmt::format("{:<11} {:<8} {:>2} {:>2} {:>4} {:>12} {:>9} {:>10} {:>9} {:>22}  {}\n", "mode",
                "model", "m", "e", "b", "samples/s", "updates", "test acc/L", "computing",
                "staleness / dropped", "scenario");
  out += std::string(107, '-') + "\n";
  for (const auto& s : summaries) {
    std::string extra = "-";
    if (s.value("mode", "") == "async" || s.value("mode", "") == "ssp")
      extra = fmt::format("mean {:.2f} max {}", s.value("staleness_mean", 0.0),
                          s.value("staleness_max", 0));
    else if (s.value("mode", "") == "backup")
      extra = fmt::format("dropped {}", s.value("gradients_dropped", 0));
    auto mode = s.value("mode", "?");
    if (s.value("transport", "") == "network")
      mode += " net";
    // Least squares has no accuracy: its row shows the test loss instead.
    // NaN (a diverged evaluation) is written as null: shown as "-".
    auto shown = [&](const char* key, const char* format, double scale = 1) {
      auto it = s.find(key);
      return it == s.end() || !it->is_number()
               ? std::string{"-"}
               : fmt::format(fmt::runtime(format), scale * it->get<double>());
    };
    const auto quality = s.value("model", "") == "lsq" ? "L " + shown("final_test_loss", "{:.4g}")
                                                       : shown("final_test_accuracy", "{:.4f}");
    const auto computing = shown("compute_share", "{:.0f}%", 100);
    // A run stopped by the user did not spend its budget: its row must not pass for one.
    out += fmt::format("{:<11} {:<8} {:>2} {:>2} {:>4} {:>12.0f} {:>9} {:>10} {:>9} {:>22}  {}{}\n",
                       mode, s.value("model", "?"), s.value("m", 0), s.value("e", 0),
                       s.value("b", 0), s.value("samples_per_s", 0.0), s.value("updates", 0),
                       quality, computing, extra, s.value("scenario", "-"),
                       was_interrupted(s) ? " (interrupted)" : "");
  }
  return out;
}

} // namespace psgd
