// What a run reports: evaluation points, the progress line, the JSON records, the table.
//
// Contract:
// - evaluate_at() measures one snapshot: mean loss on the first loss_rows training rows (a
//   fixed subsample, read in place), loss
//   and accuracy on the full test set. It reads only; thread-safe for distinct callers.
// - progress_line() is the one-line stderr report of a running job.
// - The JSON records (`--out`, JSON lines, written with nlohmann-json): one
//   {"type":"eval", ...} per evaluation and one {"type":"summary", ...} at the end. The
//   summary names everything needed to compare runs: mode, m, e, b, lr, aggregate, seed,
//   epochs, model, train seconds, samples/s, updates/s, final test accuracy and train loss,
//   the staleness histogram, the dropped gradients per worker, each worker's accounting and
//   the no-loss equation over all workers, and the run's events (injected faults, lost
//   workers, quarantines, round timeouts).
#pragma once

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/run_config.hpp"
#include "data/dataset.hpp"
#include "messages/vocabulary.hpp"
#include "data/chi_square.hpp"
#include "model/model.hpp"

namespace psgd {

eval_point evaluate_at(const model::model& m, const float* params, const data::dataset& train,
                       int64_t loss_rows, const data::dataset& test, const server_stats& stats);

/// The event of a run the user interrupted (SIGINT, SIGTERM) after `version` updates.
std::string interruption_note(uint64_t version, int64_t samples, int64_t train_rows);

std::string progress_line(const run_config& cfg, const eval_point& p, const server_stats& s,
                          int64_t train_rows);

/// The no-loss equation over all workers:
///   computed = applied + dropped + after_stop + rejected + lost_in_network + lost_in_flight
struct accounting {
  int64_t computed = 0;
  int64_t applied = 0;
  int64_t dropped = 0;
  int64_t after_stop = 0;
  int64_t rejected = 0;
  int64_t lost_in_network = 0;
  int64_t lost_in_flight = 0;
};
accounting accounting_totals(const server_stats& s);

nlohmann::json eval_json(const eval_point& p);
/// --track-inclusion: the chi-square test of "every class is applied at the same rate"
/// (applied against received-but-not-applied examples per class).
data::chi_square_result inclusion_test(const run_summary& r);
/// Per class examples received and applied, the applied rate, inclusion_test() (and the
/// per-example counts).
nlohmann::json inclusion_json(const run_summary& r);
nlohmann::json summary_json(const run_config& cfg, const run_summary& r, int64_t train_rows);

/// Where `path` (--out) goes: std::cout for stdout_path, else `file` opened on it (truncated);
/// null if it cannot be opened.
std::ostream* open_output(const std::string& path, std::ofstream& file);

/// Whether a summary record says its run was interrupted (a missing or non-boolean field
/// says no).
bool was_interrupted(const nlohmann::json& summary);

/// A results file (--out) written as the run goes: each evaluation's line as it is made,
/// flushed (a follower such as `tail -f | jq` sees it at once, and a run that dies keeps the
/// lines so far), then the rest and the summary. Not thread-safe: one writer at a time (the
/// driver's evaluations happen while the caller waits for the run).
class results_file {
public:
  /// Opens `path` (stdout_path: standard output), truncating it. An error line or "".
  std::string open(const std::string& path);
  bool is_open() const { return out_ != nullptr; }
  /// One evaluation's line (nothing if not open).
  void add(const eval_point& p);
  /// The evaluations of `r` not yet added, then its summary. An error line or "".
  std::string finish(const run_config& cfg, const run_summary& r, int64_t train_rows);
  /// The run failed: a last line {"type": "failure", "error", "run_id", "build"} instead of
  /// the summary, so that a reader tells a failed run from one still going or cut off.
  void fail(const std::string& error, const std::string& run_id);

private:
  std::string path_;
  std::ofstream file_;
  std::ostream* out_ = nullptr;
  size_t added_ = 0;
};

/// Writes the eval records and the summary as JSON lines to `path` (stdout_path: standard
/// output) at once. Returns an error line or "".
std::string write_results(const std::string& path, const run_config& cfg, const run_summary& r,
                          int64_t train_rows);

/// The updates between evaluations: cfg.eval_every, or four per epoch when it is 0.
uint64_t eval_interval(const run_config& cfg, int64_t train_rows);

/// Why a summary record read back from a file cannot be tabulated: a field the comparison
/// table shows is missing or of the wrong type (named, with what it should be); empty if
/// fine. Before, a field of the wrong type aborted psgd report, and an empty record made a
/// row of placeholders.
std::string summary_problem(const nlohmann::json& summary);

/// A fixed-width comparison table of summary records (as written by write_results; each
/// one without a summary_problem()).
std::string comparison_table(const std::vector<nlohmann::json>& summaries);

} // namespace psgd
