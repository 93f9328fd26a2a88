#include "actors/report.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "actors/results.hpp"
#include "config/run_config.hpp"

extern char** environ;

namespace psgd {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();

// ---------------------------------------------------------------------------------------------
// Small text helpers
// ---------------------------------------------------------------------------------------------

/// Control characters (a newline in a scenario name, say) would break a one-line error, a
/// gnuplot command or a data file comment: they become spaces.
std::string one_line(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s)
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
  return out;
}

/// A gnuplot single-quoted string. Inside single quotes gnuplot expands nothing (no
/// backslash escapes, no `command` substitution, no @macros); only the quote itself is
/// doubled. Labels come from JSON files, so this matters.
std::string gp_quote(std::string_view s) {
  std::string out = "'";
  for (char c : one_line(s))
    out += c == '\'' ? std::string{"''"} : std::string(1, c);
  return out + "'";
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    case '\'': out += "&#39;"; break;
    default: out += c;
    }
  }
  return out;
}

/// A number for a gnuplot data file; gnuplot is told that "NaN" marks a missing value.
std::string data_number(double x) {
  return std::isfinite(x) ? fmt::format("{:.9g}", x) : std::string{"NaN"};
}

/// A number for the page: "-" when missing.
std::string cell(double x, const char* format) {
  return std::isfinite(x) ? fmt::format(fmt::runtime(format), x) : std::string{"-"};
}

std::string joined(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i)
    out += (i > 0 ? std::string{separator} : std::string{}) + parts[i];
  return out;
}

// ---------------------------------------------------------------------------------------------
// JSON access that never throws: a field of the wrong type counts as missing.
// ---------------------------------------------------------------------------------------------

double number_at(const json& j, const char* key) {
  if (!j.is_object())
    return not_a_number;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : not_a_number;
}

std::string text_at(const json& j, const char* key, const std::string& fallback = "") {
  if (!j.is_object())
    return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

bool flag_at(const json& j, const char* key) {
  if (!j.is_object())
    return false;
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

/// An array of numbers; entries that are not numbers read as NaN (so positions keep their
/// meaning, e.g. class k stays at index k).
std::vector<double> numbers_at(const json& j, const char* key) {
  std::vector<double> out;
  if (!j.is_object())
    return out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array())
    return out;
  for (const auto& x : *it)
    out.push_back(x.is_number() ? x.get<double>() : not_a_number);
  return out;
}

/// An integer-valued field as text ("-" when missing).
std::string integer_text(const json& j, const char* key) {
  return cell(number_at(j, key), "{:.0f}");
}

// ---------------------------------------------------------------------------------------------
// Reading the input files
// ---------------------------------------------------------------------------------------------

struct eval_row {
  double seconds = not_a_number;
  double updates = not_a_number;
  double test_loss = not_a_number;
  double test_accuracy = not_a_number;
};

struct run {
  std::string file;
  std::string stem;
  json summary;  ///< the summary object, or null when the file ended without one
  std::vector<eval_row> evals;
  std::string label;
  int number = 0;  ///< 1-based, the page's "#" and the data files' names

  bool has_summary() const { return summary.is_object(); }
  std::string mode() const { return text_at(summary, "mode", "?"); }
  bool has_accuracy() const { return text_at(summary, "model") != "lsq"; }
  /// Has staleness to show: the modes that apply gradients on arrival.
  bool asynchronous() const { return mode() == "async" || mode() == "ssp"; }
};

struct sweep_point {
  std::string model;
  int64_t k = 0;
  double accuracy = not_a_number;  ///< NaN when a diverged run wrote null
  bool diverged = false;
  /// What else the sweep ran with ("lr 0.1, b 32, 3 epochs"; --stale-lr, --hidden): points of
  /// different settings are different curves, not seeds of one.
  std::string settings;
  std::string seed;  ///< with model, K and settings: the point's identity
};

struct inputs {
  std::vector<run> runs;
  std::vector<sweep_point> sweep;
  std::vector<std::string> file_descriptions;  ///< "F: 1 run" per input file, for the page
  std::vector<std::string> notes;
};

eval_row eval_of(const json& j) {
  return {number_at(j, "seconds"), number_at(j, "updates"), number_at(j, "test_loss"),
          number_at(j, "test_accuracy")};
}

/// A sweep point, or nothing when the line lacks what the sweep plot needs.
std::optional<sweep_point> sweep_point_of(const json& j) {
  sweep_point p;
  p.model = text_at(j, "model");
  const double k = number_at(j, "K");
  p.accuracy = number_at(j, "final_test_accuracy");
  p.diverged = flag_at(j, "diverged");
  p.settings = fmt::format("lr {}, b {}, {} epochs", cell(number_at(j, "lr"), "{:g}"),
                           cell(number_at(j, "b"), "{:g}"), cell(number_at(j, "epochs"), "{:g}"));
  if (p.model == "mlp" && std::isfinite(number_at(j, "hidden")))
    p.settings += fmt::format(", H={:g}", number_at(j, "hidden"));
  if (flag_at(j, "stale_lr"))
    p.settings += ", stale-lr";
  p.seed = cell(number_at(j, "seed"), "{:.0f}");
  // A diverged run may have no accuracy (NaN is written as null): it still counts as diverged.
  if (p.model.empty() || !(k >= 0) || (!std::isfinite(p.accuracy) && !p.diverged))
    return std::nullopt;
  p.k = static_cast<int64_t>(k);
  return p;
}

bool blank(const std::string& line) {
  return line.find_first_not_of(" \t\r") == std::string::npos;
}

std::string count_text(size_t n, const char* one, const char* many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

run make_run(const std::string& file, const std::string& stem, json summary,
             std::vector<eval_row> evals) {
  run r;
  r.file = file;
  r.stem = stem;
  r.summary = std::move(summary);
  r.evals = std::move(evals);
  return r;
}

/// Reads one file into `in`. Returns "" or the one-line error.
std::string read_input(const std::string& path, inputs& in) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    return fmt::format("{}: cannot open (a directory)", path);
  std::ifstream f{path};
  if (!f)
    return fmt::format("{}: cannot open", path);
  const std::string stem = fs::path{path}.stem().string();
  std::vector<eval_row> pending;  // eval lines waiting for their summary
  std::optional<std::string> failure;  // the run's error, from its failure line
  size_t runs = 0, points = 0, ignored = 0;
  std::string line;
  for (int64_t number = 1; std::getline(f, line); ++number) {
    if (blank(line))
      continue;
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded())
      return fmt::format("{}:{}: not valid JSON", path, number);
    if (!j.is_object())
      return fmt::format("{}:{}: not a JSON object", path, number);
    const auto type = text_at(j, "type");
    if (type == "eval") {
      pending.push_back(eval_of(j));
    } else if (type == "summary") {
      in.runs.push_back(make_run(path, stem, std::move(j), std::move(pending)));
      pending.clear();
      ++runs;
    } else if (type == "failure") {
      failure = text_at(j, "error");
    } else if (type == "sweep_point") {
      if (auto p = sweep_point_of(j)) {
        in.sweep.push_back(std::move(*p));
        ++points;
      } else {
        in.notes.push_back(fmt::format("{}:{}: sweep_point without model, K or "
                                       "final_test_accuracy: skipped", path, number));
      }
    } else {
      ++ignored;  // newer record types must not break an older report
    }
  }
  if (f.bad())
    return fmt::format("{}: read error", path);
  const auto evals = count_text(pending.size(), "eval line", "eval lines");
  if (failure)
    in.notes.push_back(failure_note(path, *failure)
                       + (pending.empty() ? "" : ": " + evals + " plotted under the file's name"));
  else if (!pending.empty())
    in.notes.push_back(fmt::format("{}: {} without a summary line (an unfinished run?): "
                                   "plotted under the file's name", path, evals));
  if (!pending.empty()) {
    in.runs.push_back(make_run(path, stem, json{}, std::move(pending)));
    ++runs;
  }
  std::vector<std::string> parts;
  if (runs > 0)
    parts.push_back(count_text(runs, "run", "runs"));
  if (points > 0)
    parts.push_back(count_text(points, "sweep point", "sweep points"));
  if (ignored > 0)
    parts.push_back(count_text(ignored, "other line ignored", "other lines ignored"));
  const auto contributed = parts.empty() ? std::string{"nothing to plot"} : joined(parts, ", ");
  in.file_descriptions.push_back(fmt::format("{}: {}", path, contributed));
  return {};
}

// ---------------------------------------------------------------------------------------------
// Labels
// ---------------------------------------------------------------------------------------------

std::string base_label(const run& r) {
  if (!r.has_summary())
    return r.stem;
  auto label = r.mode();
  if (text_at(r.summary, "transport") == "network")
    label += " net";
  return label;
}

std::string scenario_of(const run& r) {
  return one_line(text_at(r.summary, "scenario"));
}

std::string m_e_text(const run& r) {
  return fmt::format(" m={} e={}", integer_text(r.summary, "m"), integer_text(r.summary, "e"));
}

/// Appends `suffix(i)` to every label shared by two runs or more.
template <class Suffix>
void disambiguate(std::vector<run>& runs, Suffix suffix) {
  std::map<std::string, std::vector<size_t>> by_label;
  for (size_t i = 0; i < runs.size(); ++i)
    by_label[runs[i].label].push_back(i);
  for (const auto& [label, members] : by_label)
    if (members.size() > 1)
      for (size_t k = 0; k < members.size(); ++k)
        runs[members[k]].label += suffix(members[k], k);
}

void label_runs(std::vector<run>& runs) {
  // m and e are shown only where they tell runs of the same mode and scenario apart.
  std::map<std::string, std::set<std::string>> m_e_by_group;
  for (const auto& r : runs)
    m_e_by_group[base_label(r) + '\n' + scenario_of(r)].insert(m_e_text(r));
  for (size_t i = 0; i < runs.size(); ++i) {
    auto& r = runs[i];
    r.number = int(i) + 1;
    const auto scenario = scenario_of(r);
    r.label = base_label(r);
    if (r.has_summary() && m_e_by_group[r.label + '\n' + scenario].size() > 1)
      r.label += m_e_text(r);
    if (!scenario.empty())
      r.label += " " + scenario;
  }
  disambiguate(runs, [&](size_t i, size_t) { return fmt::format(" ({})", runs[i].stem); });
  disambiguate(runs, [](size_t, size_t k) { return fmt::format(" #{}", k + 1); });
  for (auto& r : runs) // in the table and every plot's key
    if (was_interrupted(r.summary)) // stopped before its budget was spent
      r.label += " (interrupted)";
}

/// A note per run whose update count goes back between evaluations: its server restarted
/// from a checkpoint and redid the updates after it, so its curves against updates fold
/// back there (seconds go on).
void note_restarts(const std::vector<run>& runs, std::vector<std::string>& notes) {
  for (const auto& r : runs) {
    size_t back = 0;
    for (size_t i = 1; i < r.evals.size(); ++i)
      back += r.evals[i].updates < r.evals[i - 1].updates;
    if (back > 0)
      notes.push_back(fmt::format(
        "{}: the update count goes back {} (the server restarted from its checkpoint and "
        "redid the updates after it): its curves against updates fold back there, those "
        "against seconds do not",
        r.label, back == 1 ? std::string{"once"} : fmt::format("{} times", back)));
  }
}

// ---------------------------------------------------------------------------------------------
// Plot specifications: what each plot draws, turned into gnuplot commands later
// ---------------------------------------------------------------------------------------------

struct series_spec {
  std::string source;  ///< the plot clause without its title, e.g. "'data/run1.dat' using 1:4 ..."
  std::string title;   ///< key entry; "" draws the series without one (value labels)
};

struct plot_spec {
  report_plot info;
  std::vector<std::string> setup;  ///< gnuplot commands between the labels and `plot`
  std::vector<series_spec> series;
};

struct report_builder {
  std::vector<plot_spec> plots;
  std::map<std::string, std::string> data_files;  ///< path relative to the report dir -> text
  std::vector<std::string> omitted;

  void omit(const std::string& title, const std::string& why) {
    omitted.push_back(title + ": " + why);
  }
  void add(report_plot info, std::vector<std::string> setup, std::vector<series_spec> series) {
    for (const auto& s : series)
      if (!s.title.empty())
        info.series.push_back(s.title);
    plots.push_back({std::move(info), std::move(setup), std::move(series)});
  }
};

std::string data_header(const std::string& what, const std::string& columns) {
  return fmt::format("# {}\n# {}\n", one_line(what), columns);
}

/// The staleness histogram's entries as fractions of their total (empty when the total is 0),
/// trimmed after the last nonzero entry.
std::vector<double> fractions(const std::vector<double>& histogram) {
  double total = 0;
  size_t last = 0;
  for (size_t i = 0; i < histogram.size(); ++i)
    if (std::isfinite(histogram[i]) && histogram[i] > 0) {
      total += histogram[i];
      last = i;
    }
  if (total <= 0)
    return {};
  std::vector<double> out;
  for (size_t i = 0; i <= last; ++i)
    out.push_back(std::isfinite(histogram[i]) && histogram[i] > 0 ? histogram[i] / total : 0.0);
  return out;
}

// --- 1-4: test accuracy and loss over time and updates -----------------------------------------

void write_eval_data(const std::vector<run>& runs, report_builder& b) {
  for (const auto& r : runs) {
    if (r.evals.empty())
      continue;
    auto text = data_header(r.label, "seconds updates test_loss test_accuracy");
    for (const auto& e : r.evals)
      text += fmt::format("{} {} {} {}\n", data_number(e.seconds), data_number(e.updates),
                          data_number(e.test_loss), data_number(e.test_accuracy));
    b.data_files[fmt::format("data/run{}.dat", r.number)] = text;
  }
}

struct eval_plot {
  const char* file;
  const char* title;
  int x_column;  ///< in data/runN.dat
  int y_column;
  const char* x_label;
  const char* y_label;
  const char* key;
  const char* x_field;  ///< the eval line's field names, for the omission note
  const char* y_field;
};

void add_eval_plot(const std::vector<run>& runs, const eval_plot& p, report_builder& b) {
  const bool accuracy = p.y_column == 4;
  std::vector<series_spec> series;
  std::vector<std::string> left_out;
  for (const auto& r : runs) {
    const bool has_points = std::any_of(r.evals.begin(), r.evals.end(), [&](const eval_row& e) {
      const double x = p.x_column == 1 ? e.seconds : e.updates;
      const double y = accuracy ? e.test_accuracy : e.test_loss;
      return std::isfinite(x) && std::isfinite(y);
    });
    if (!has_points)
      continue;
    // Least squares writes an accuracy of 0: it has none, and a flat line at 0 would mislead.
    if (accuracy && !r.has_accuracy()) {
      left_out.push_back(r.label);
      continue;
    }
    series.push_back({fmt::format("'data/run{}.dat' using {}:{} with linespoints", r.number,
                                  p.x_column, p.y_column),
                      r.label});
  }
  if (series.empty()) {
    b.omit(p.title, left_out.empty()
                      ? fmt::format("no eval line with {} and {} in any run", p.x_field, p.y_field)
                      : std::string{"no eval lines with an accuracy (least squares has none)"});
    return;
  }
  auto caption = fmt::format("{} per evaluation, one line per run.", p.y_label);
  caption[0] = char(std::toupper(static_cast<unsigned char>(caption[0])));
  if (!left_out.empty())
    caption += fmt::format(" Left out (least squares, no accuracy): {}.", joined(left_out, ", "));
  b.add({p.file, p.title, caption, {}, p.x_label, p.y_label},
        {fmt::format("set key {}", p.key)}, std::move(series));
}

void add_eval_plots(const std::vector<run>& runs, report_builder& b) {
  write_eval_data(runs, b);
  const eval_plot plots[] = {
    {"accuracy_vs_seconds.svg", "Test accuracy vs training time", 1, 4, "training time (s)",
     "test accuracy", "bottom right", "seconds", "test_accuracy"},
    {"accuracy_vs_updates.svg", "Test accuracy vs updates", 2, 4, "server updates",
     "test accuracy", "bottom right", "updates", "test_accuracy"},
    {"loss_vs_seconds.svg", "Test loss vs training time", 1, 3, "training time (s)",
     "test loss", "top right", "seconds", "test_loss"},
    {"loss_vs_updates.svg", "Test loss vs updates", 2, 3, "server updates", "test loss",
     "top right", "updates", "test_loss"},
  };
  for (const auto& p : plots)
    add_eval_plot(runs, p, b);
}

// --- 5, 6: staleness histograms ------------------------------------------------------------------

/// Runs whose staleness is worth a plot: the asynchronous modes, or any run that saw some.
bool shows_staleness(const run& r) {
  if (!r.has_summary())
    return false;
  if (r.asynchronous())
    return true;
  return fractions(numbers_at(r.summary, "staleness_histogram")).size() > 1;
}

/// Histogram data: the nonzero bins only, with a blank line wherever bins are skipped (so a
/// line drawn through them breaks instead of bridging an empty stretch).
std::string staleness_data(const std::string& what, const std::vector<double>& f) {
  auto text = data_header(what, "staleness fraction_of_applied_gradients");
  std::optional<size_t> previous;
  for (size_t s = 0; s < f.size(); ++s) {
    if (!(f[s] > 0))
      continue;
    if (previous && s != *previous + 1)
      text += "\n";
    text += fmt::format("{} {}\n", s, data_number(f[s]));
    previous = s;
  }
  return text;
}

/// Staleness beyond which the x axis turns logarithmic: a few gradients delayed by 100+
/// updates would otherwise squeeze the bulk (staleness 0..m) into the first pixels.
constexpr size_t longest_linear_staleness = 32;

/// Draws histograms (fractions per staleness, one series each) on axes chosen to show them:
/// - y is logarithmic when the smallest nonzero share is under 1/1000 of the largest (the tail
///   would vanish on a linear axis); its range then starts a decade under the smallest bar.
/// - Short histograms are clustered boxes on a linear x axis, one box per series per bin.
/// - Long ones are drawn at staleness+1 on a log2 x axis (tics labelled by staleness) as
///   lines with points, broken where bins are empty: boxes of constant width would overlap
///   there.
void add_histogram_plot(report_plot info, const std::vector<std::string>& names,
                        const std::vector<std::vector<double>>& histograms,
                        const std::string& data_prefix, report_builder& b) {
  double largest = 0, smallest = 1;
  size_t bins = 0;
  for (const auto& f : histograms) {
    bins = std::max(bins, f.size());
    for (double x : f)
      if (x > 0) {
        largest = std::max(largest, x);
        smallest = std::min(smallest, x);
      }
  }
  const bool log_y = smallest < largest * 1e-3;
  const bool log_x = bins - 1 > longest_linear_staleness;
  std::vector<std::string> setup = {"set key top right"};
  if (log_y) {
    setup.push_back("set logscale y");
    setup.push_back("set format y '%g'");
    setup.push_back(fmt::format("set yrange [{}:1]",
                                std::pow(10.0, std::floor(std::log10(smallest * 0.5)))));
  } else {
    setup.push_back("set yrange [0:*]");
  }
  const size_t n = names.size();
  const double width = 0.8 / double(n);  // a cluster of n boxes fills 80% of a bin
  if (log_x) {
    std::vector<std::string> tics;
    for (size_t s = 0; s <= bins - 1; s = s == 0 ? 1 : 2 * s)
      tics.push_back(fmt::format("'{}' {}", s, s + 1));
    setup.push_back("set logscale x 2");
    setup.push_back(fmt::format("set xrange [0.8:{}]", double(bins) * 1.25));
    setup.push_back(fmt::format("set xtics ({})", joined(tics, ", ")));
  } else {
    setup.push_back("set style fill solid 0.6 border -1");
    setup.push_back(fmt::format("set boxwidth {} absolute", width));
    setup.push_back(fmt::format("set xrange [-0.6:{}]", double(bins) - 0.4));
    setup.push_back(bins <= 21 ? "set xtics 1" : "set xtics 2");
    setup.push_back("set grid noxtics ytics");
  }
  std::vector<series_spec> series;
  for (size_t i = 0; i < n; ++i) {
    const auto file = fmt::format("{}{}.dat", data_prefix, i + 1);
    b.data_files[file] = staleness_data(info.title + ": " + names[i], histograms[i]);
    const double offset = (double(i) - double(n - 1) / 2) * width;
    series.push_back({log_x ? fmt::format("'{}' using ($1+1):2 with linespoints lw 2 pt 7 "
                                          "ps 0.5", file)
                            : fmt::format("'{}' using ($1+{}):2 with boxes", file, offset),
                      names[i]});
  }
  if (log_x || log_y)
    info.caption += fmt::format(" Log scale on {}{}.",
                                log_x ? "x (drawn at staleness+1)" : "y",
                                log_x && log_y ? " and y" : "");
  b.add(std::move(info), std::move(setup), std::move(series));
}

constexpr const char* staleness_x_label = "staleness (updates between read and apply)";

void add_staleness_plot(const std::vector<run>& runs, report_builder& b) {
  const char* title = "Staleness of applied gradients";
  std::vector<std::string> names, without;
  std::vector<std::vector<double>> histograms;
  for (const auto& r : runs) {
    if (!shows_staleness(r))
      continue;
    auto f = fractions(numbers_at(r.summary, "staleness_histogram"));
    if (f.empty()) {
      without.push_back(r.label);
      continue;
    }
    names.push_back(r.label);
    histograms.push_back(std::move(f));
  }
  if (names.empty()) {
    b.omit(title, without.empty() ? "no async or ssp run, and no run with nonzero staleness"
                                  : "no staleness histogram in the async/ssp runs' summaries");
    return;
  }
  auto caption = std::string{"Share of each run's applied gradients by staleness (the server "
                             "version when applied minus the one the gradient was computed "
                             "on)."};
  if (!without.empty())
    caption += fmt::format(" No histogram: {}.", joined(without, ", "));
  add_histogram_plot({"staleness.svg", title, caption, {}, staleness_x_label,
                      "fraction of applied gradients"},
                     names, histograms, "data/staleness", b);
}

void add_worker_staleness_plot(const run& r, report_builder& b) {
  const auto title = fmt::format("Staleness per worker: {}", r.label);
  std::vector<std::string> names;
  std::vector<std::vector<double>> histograms;
  const auto workers = r.summary.find("workers");
  if (workers != r.summary.end() && workers->is_array())
    for (size_t i = 0; i < workers->size(); ++i) {
      const json& w = (*workers)[i];
      auto f = fractions(numbers_at(w, "staleness_histogram"));
      if (f.empty())
        continue;  // a worker with nothing applied has no distribution to show
      const double id = number_at(w, "worker");
      names.push_back(fmt::format("worker {}", std::isfinite(id) ? int64_t(id) : int64_t(i)));
      histograms.push_back(std::move(f));
    }
  if (names.empty()) {
    b.omit(title, "no per-worker staleness histograms in the summary");
    return;
  }
  add_histogram_plot({fmt::format("staleness_workers_run{}.svg", r.number), title,
                      fmt::format("Share of each worker's applied gradients by staleness in run "
                                  "\"{}\" (where one worker is slower, its gradients are the staler ones).",
                                  r.label),
                      {}, staleness_x_label, "fraction of the worker's applied gradients"},
                     names, histograms, fmt::format("data/staleness_run{}_worker", r.number), b);
}

void add_worker_staleness_plots(const std::vector<run>& runs, report_builder& b) {
  bool any = false;
  for (const auto& r : runs)
    if (shows_staleness(r)) {
      add_worker_staleness_plot(r, b);
      any = true;
    }
  if (!any)
    b.omit("Staleness per worker", "no async or ssp run, and no run with nonzero staleness");
}

// --- 7, 8: bar charts ----------------------------------------------------------------------------

struct bar {
  std::string label;
  double value;
};

/// One bar per run, each its own series (so the key names it) and labelled under the axis.
void add_bar_plot(report_plot info, const std::vector<bar>& bars, const std::string& value_label,
                  report_builder& b) {
  const auto file = "data/" + fs::path{info.file}.stem().string() + ".dat";
  // The labels go in the header, not in the rows: a quote in a label must not reach gnuplot's
  // column parser.
  auto text = data_header(info.title, "position value");
  for (size_t i = 0; i < bars.size(); ++i)
    text += fmt::format("# {} = {}\n", i, one_line(bars[i].label));
  std::vector<std::string> tics;
  double largest = 0;
  for (size_t i = 0; i < bars.size(); ++i) {
    text += fmt::format("{} {}\n", i, data_number(bars[i].value));
    tics.push_back(fmt::format("{} {}", gp_quote(bars[i].label), i));
    largest = std::max(largest, bars[i].value);
  }
  b.data_files[file] = text;
  std::vector<std::string> setup = {
    "set key above",
    "set style fill solid 0.6 border -1",
    "set boxwidth 0.6",
    fmt::format("set xrange [-0.6:{}]", double(bars.size()) - 0.4),
    // Room above the tallest bar for its value label; a chart of zeros still gets an axis.
    fmt::format("set yrange [0:{}]", largest > 0 ? largest * 1.18 : 1.0),
    fmt::format("set xtics ({}) rotate by 20 right nomirror", joined(tics, ", ")),
    "set grid noxtics ytics",
  };
  std::vector<series_spec> series;
  for (size_t i = 0; i < bars.size(); ++i)
    series.push_back({fmt::format("'{}' every ::{}::{} using 1:2 with boxes", file, i, i),
                      bars[i].label});
  series.push_back({fmt::format("'{}' using 1:2:({}) with labels offset 0,0.8", file, value_label),
                    ""});
  b.add(std::move(info), std::move(setup), std::move(series));
}

void add_time_per_update_plot(const std::vector<run>& runs, report_builder& b) {
  const char* title = "Time per update";
  std::vector<bar> bars;
  for (const auto& r : runs) {
    const double seconds = number_at(r.summary, "train_seconds");
    const double updates = number_at(r.summary, "updates");
    if (seconds > 0 && updates > 0)
      bars.push_back({r.label, 1000.0 * seconds / updates});
  }
  if (bars.empty()) {
    b.omit(title, "no summary with train_seconds and updates > 0");
    return;
  }
  add_bar_plot({"time_per_update.svg", title,
                "Milliseconds of training per server update (train_seconds / updates; an "
                "update is one round in sync and backup): the time per round with and without "
                "backup workers.",
                {}, "run", "ms per update"},
               bars, "sprintf('%.3g', $2)", b);
}

void add_dropped_plot(const std::vector<run>& runs, report_builder& b) {
  const char* title = "Share of dropped gradients";
  std::vector<bar> bars;
  for (const auto& r : runs) {
    const double applied = number_at(r.summary, "gradients_applied");
    const double dropped = number_at(r.summary, "gradients_dropped");
    if (applied >= 0 && dropped >= 0 && applied + dropped > 0)
      bars.push_back({r.label, dropped / (applied + dropped)});
  }
  if (bars.empty()) {
    b.omit(title, "no summary with gradients_applied and gradients_dropped");
    return;
  }
  add_bar_plot({"dropped_share.svg", title,
                "Dropped / (applied + dropped) gradients per run: the work backup workers throw "
                "away (late gradients).",
                {}, "run", "share of gradients dropped"},
               bars, "sprintf('%.1f%%', 100 * $2)", b);
}

// --- 9: staleness sweep --------------------------------------------------------------------------

struct sweep_cell {
  std::string model;
  int64_t k = 0;
  int runs = 0;  ///< points with an accuracy
  double sum = 0, min = 0, max = 0;
  int diverged = 0;
  double mean() const { return runs > 0 ? sum / runs : not_a_number; }
};

/// Sweep points pooled by (model and settings, K), in that order; a point read twice (the
/// same file given twice) counts once. The curves are named by model, and by their settings
/// too when the inputs hold more than one (before, sweeps at lr 0.1 and 0.02 were averaged
/// as if they were seeds of one).
std::vector<sweep_cell> sweep_cells(const std::vector<sweep_point>& points) {
  std::set<std::string> settings;
  for (const auto& p : points)
    settings.insert(p.settings);
  std::set<std::tuple<std::string, std::string, int64_t, std::string>> seen;
  std::map<std::pair<std::string, int64_t>, sweep_cell> cells;
  for (const auto& p : points) {
    if (!seen.insert({p.model, p.settings, p.k, p.seed}).second)
      continue;
    const auto series = settings.size() > 1 ? p.model + " (" + p.settings + ")" : p.model;
    auto& c = cells[{series, p.k}];
    c.model = series;
    c.k = p.k;
    c.diverged += p.diverged ? 1 : 0;
    if (!std::isfinite(p.accuracy))
      continue;
    c.min = c.runs == 0 ? p.accuracy : std::min(c.min, p.accuracy);
    c.max = c.runs == 0 ? p.accuracy : std::max(c.max, p.accuracy);
    c.sum += p.accuracy;
    ++c.runs;
  }
  std::vector<sweep_cell> out;
  for (auto& [key, c] : cells)
    out.push_back(c);
  return out;
}

void add_sweep_plot(const std::vector<sweep_cell>& cells, report_builder& b) {
  const char* title = "Final test accuracy vs simulated staleness K";
  std::map<std::string, std::string> data;  // model -> rows
  std::set<int64_t> ks;
  for (const auto& c : cells) {
    if (c.runs == 0)
      continue;
    data[c.model] += fmt::format("{} {} {} {} {}\n", c.k + 1, data_number(c.mean()),
                                 data_number(c.min), data_number(c.max), c.k);
    ks.insert(c.k);
  }
  if (data.empty()) {
    b.omit(title, cells.empty() ? "no sweep_point lines" : "no sweep point with an accuracy");
    return;
  }
  std::vector<series_spec> series;
  int index = 0;
  for (const auto& [model, rows] : data) {
    const auto file = fmt::format("data/sweep{}.dat", ++index);
    b.data_files[file] = data_header(model, "K+1 mean_accuracy min max K") + rows;
    series.push_back({fmt::format("'{}' using 1:2:3:4 with yerrorlines lw 2", file), model});
  }
  // K = 0, 1, 2, 4, ... 32 sit evenly on a log axis once shifted by one; the tics show K.
  std::vector<std::string> tics;
  for (auto k : ks)
    tics.push_back(fmt::format("'{}' {}", k, k + 1));
  std::vector<std::string> setup = {
    "set key bottom left",
    "set logscale x 2",
    fmt::format("set xrange [0.8:{}]", double(*ks.rbegin() + 1) * 1.25),
    fmt::format("set xtics ({})", joined(tics, ", ")),
  };
  b.add({"staleness_sweep.svg", title,
         "Final test accuracy against the simulated staleness K (axis at K+1, log scale), one "
         "line per model (and per setting, where the sweeps given differ: lr, b, epochs, H, "
         "stale-lr): the mean over seeds, error bars from the worst to the best seed.",
         {}, "staleness K", "final test accuracy"},
        std::move(setup), std::move(series));
}

// --- 10: per-class inclusion ---------------------------------------------------------------------

struct inclusion {
  std::vector<double> rate;  ///< applied / received per class
  double chi2 = not_a_number, dof = not_a_number, p_value = not_a_number;
};

std::optional<inclusion> inclusion_of(const run& r) {
  if (!r.summary.is_object() || !r.summary.contains("inclusion"))
    return std::nullopt;
  const json& j = r.summary["inclusion"];
  inclusion in;
  in.rate = numbers_at(j, "rate");
  if (in.rate.empty()) {  // older writers: derive the rate from the counts
    const auto received = numbers_at(j, "received");
    const auto applied = numbers_at(j, "applied");
    for (size_t k = 0; k < std::min(received.size(), applied.size()); ++k)
      in.rate.push_back(received[k] > 0 ? applied[k] / received[k] : not_a_number);
  }
  if (std::none_of(in.rate.begin(), in.rate.end(), [](double x) { return std::isfinite(x); }))
    return std::nullopt;
  in.chi2 = number_at(j, "chi2");
  in.dof = number_at(j, "dof");
  in.p_value = number_at(j, "p_value");
  return in;
}

std::string verdict(double p_value) {
  if (!std::isfinite(p_value))
    return "no p-value";
  return p_value < 0.05 ? "uniform rejected at 5%" : "uniform not rejected at 5%";
}

void add_inclusion_plot(const std::vector<run>& runs, report_builder& b) {
  const char* title = "Per-class inclusion rate";
  std::vector<series_spec> series;
  size_t classes = 0;
  for (const auto& r : runs) {
    const auto in = inclusion_of(r);
    if (!in)
      continue;
    const auto file = fmt::format("data/inclusion_run{}.dat", r.number);
    auto text = data_header(r.label, "class inclusion_rate");
    for (size_t k = 0; k < in->rate.size(); ++k)
      text += fmt::format("{} {}\n", k, data_number(in->rate[k]));
    b.data_files[file] = text;
    classes = std::max(classes, in->rate.size());
    series.push_back({fmt::format("'{}' using 1:2 with linespoints lw 2", file),
                      fmt::format("{} (chi2 p={})", r.label, cell(in->p_value, "{:.3g}"))});
  }
  if (series.empty()) {
    b.omit(title, "no run with an \"inclusion\" record");
    return;
  }
  // Below the plot: a skewed run's line crosses any corner inside it.
  std::vector<std::string> setup = {"set key below",
                                    fmt::format("set xrange [-0.5:{}]", double(classes) - 0.5)};
  if (classes <= 20)
    setup.push_back("set xtics 1");
  b.add({"inclusion.svg", title,
         "Applied / received examples per class: under uniform inclusion every class's line is "
         "flat. The key gives the chi-square test's p-value (table below).",
         {}, "class", "inclusion rate (applied / received)"},
        std::move(setup), std::move(series));
}

report_builder build_plots(const inputs& in, const std::vector<sweep_cell>& cells) {
  report_builder b;
  add_eval_plots(in.runs, b);
  add_staleness_plot(in.runs, b);
  add_worker_staleness_plots(in.runs, b);
  add_time_per_update_plot(in.runs, b);
  add_dropped_plot(in.runs, b);
  add_sweep_plot(cells, b);
  add_inclusion_plot(in.runs, b);
  return b;
}

// ---------------------------------------------------------------------------------------------
// The gnuplot script
// ---------------------------------------------------------------------------------------------

std::string gnuplot_script(const std::vector<plot_spec>& plots) {
  std::string s = "# psgd report: redraw every plot with  cd <this directory> && gnuplot plots.gp\n"
                  "set terminal svg size 800,480 dynamic noenhanced background '#ffffff'\n";
  for (const auto& p : plots) {
    // `reset` drops the previous plot's log scales, ranges and tics (not the terminal).
    s += fmt::format("\n# --- {}\nreset\nset encoding utf8\nset datafile missing 'NaN'\n"
                     "set grid\nset output {}\nset title {}\nset xlabel {}\nset ylabel {}\n",
                     one_line(p.info.title), gp_quote(p.info.file), gp_quote(p.info.title),
                     gp_quote(p.info.x_label), gp_quote(p.info.y_label));
    for (const auto& line : p.setup)
      s += line + "\n";
    std::vector<std::string> clauses;
    for (const auto& x : p.series)
      clauses.push_back(x.source + " " +
                        (x.title.empty() ? std::string{"notitle"} : "title " + gp_quote(x.title)));
    s += "plot " + joined(clauses, ", \\\n     ") + "\n";
    s += "unset output\n";  // closes the SVG file
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Running gnuplot
// ---------------------------------------------------------------------------------------------

/// The line of gnuplot's stderr that names the problem: its first error line (not a
/// warning), else its first non-empty line.
std::string first_error_line(const std::string& log_file) {
  std::ifstream f{log_file};
  std::string line, first;
  while (std::getline(f, line)) {
    if (blank(line))
      continue;
    if (first.empty())
      first = line;
    if (line.find(" line ") != std::string::npos && line.find("warning:") == std::string::npos)
      return one_line(line);
  }
  return first.empty() ? std::string{"(nothing on stderr)"} : one_line(first);
}

/// Runs `gnuplot -e "cd 'DIR'; load 'plots.gp'"` with stdin and stdout on /dev/null and stderr
/// in DIR/gnuplot.log; no shell, so DIR needs no shell quoting. Returns "" or the error line.
std::string run_gnuplot(const std::string& program, const std::string& dir) {
  const std::string log_file = dir + "/gnuplot.log";
  const std::string commands = fmt::format("cd {}; load 'plots.gp'", gp_quote(dir));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  std::vector<std::string> args = {program, "-e", commands};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int failed = posix_spawnp(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (failed == ENOENT)
    return "psgd report: gnuplot not found (apt-get install gnuplot-nox)";
  if (failed != 0)
    return fmt::format("psgd report: cannot run {}: {}", program, std::strerror(failed));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return fmt::format("psgd report: waiting for gnuplot: {}", std::strerror(errno));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return {};
  const auto how = WIFEXITED(status) ? fmt::format("exit code {}", WEXITSTATUS(status))
                                     : fmt::format("signal {}", WTERMSIG(status));
  return fmt::format("psgd report: gnuplot failed ({}): {}", how, first_error_line(log_file));
}

// ---------------------------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------------------------

std::string table_row(const std::vector<std::string>& cells, const char* tag = "td") {
  std::string row = "<tr>";
  for (const auto& c : cells)
    row += fmt::format("<{0}>{1}</{0}>", tag, html_escape(c));
  return row + "</tr>\n";
}

std::string runs_table(const std::vector<run>& runs) {
  std::string t = "<table>\n";
  t += table_row({"#", "label", "file", "mode", "model", "m", "e", "b", "samples/s", "updates",
                  "final test accuracy", "final test loss", "staleness mean / max", "dropped"},
                 "th");
  for (const auto& r : runs) {
    const auto& s = r.summary;
    const bool any = r.has_summary();
    t += table_row({std::to_string(r.number), r.label, r.file, any ? r.mode() : "-",
                    text_at(s, "model", "-"), integer_text(s, "m"), integer_text(s, "e"),
                    integer_text(s, "b"), cell(number_at(s, "samples_per_s"), "{:.0f}"),
                    integer_text(s, "updates"),
                    r.has_accuracy() ? cell(number_at(s, "final_test_accuracy"), "{:.4f}") : "-",
                    cell(number_at(s, "final_test_loss"), "{:.4g}"),
                    r.asynchronous() ? cell(number_at(s, "staleness_mean"), "{:.2f}") + " / "
                                         + integer_text(s, "staleness_max")
                                     : "-",
                    integer_text(s, "gradients_dropped")});
  }
  return t + "</table>\n";
}

std::string sweep_table(const std::vector<sweep_cell>& cells) {
  std::string t = "<table>\n";
  t += table_row({"model", "K", "runs", "mean accuracy", "min", "max", "diverged"}, "th");
  for (const auto& c : cells)
    t += table_row({c.model, std::to_string(c.k), std::to_string(c.runs),
                    cell(c.mean(), "{:.4f}"), c.runs > 0 ? cell(c.min, "{:.4f}") : "-",
                    c.runs > 0 ? cell(c.max, "{:.4f}") : "-", std::to_string(c.diverged)});
  return t + "</table>\n";
}

std::string inclusion_table(const std::vector<run>& runs) {
  std::string t;
  for (const auto& r : runs)
    if (auto in = inclusion_of(r))
      t += table_row({r.label, std::to_string(in->rate.size()), cell(in->chi2, "{:.4g}"),
                      cell(in->dof, "{:.0f}"), cell(in->p_value, "{:.4g}"),
                      verdict(in->p_value)});
  if (t.empty())
    return t;
  return "<table>\n" +
         table_row({"run", "classes", "chi-square", "dof", "p-value", "verdict"}, "th") + t +
         "</table>\n";
}

std::string bullet_list(const std::vector<std::string>& items) {
  std::string out = "<ul>\n";
  for (const auto& i : items)
    out += "<li>" + html_escape(i) + "</li>\n";
  return out + "</ul>\n";
}

std::string figure(const report_plot& p) {
  return fmt::format("<figure>\n<img src=\"{0}\" alt=\"{1}\" width=\"800\" height=\"480\">\n"
                     "<figcaption><b>{1}.</b> {2}</figcaption>\n</figure>\n",
                     html_escape(p.file), html_escape(p.title), html_escape(p.caption));
}

std::string page(const inputs& in, const std::vector<sweep_cell>& cells,
                 const report_contents& contents, const std::string& dir) {
  std::string h =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<title>psgd report</title>\n<style>\n"
    "body { font-family: sans-serif; margin: 2em; max-width: 1100px; }\n"
    "table { border-collapse: collapse; margin: 1em 0; }\n"
    "th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }\n"
    "th { background: #eee; }\n"
    "td:nth-child(-n+3) { text-align: left; }\n"
    "figure { margin: 2em 0; }\n"
    "figcaption { max-width: 800px; }\n"
    "</style>\n</head>\n<body>\n<h1>psgd report</h1>\n";
  h += "<h2>Inputs</h2>\n" + bullet_list(in.file_descriptions);
  if (!in.runs.empty())
    h += "<h2>Runs</h2>\n" + runs_table(in.runs);
  if (!cells.empty())
    h += "<h2>Staleness sweep</h2>\n" + sweep_table(cells);
  if (!contents.plots.empty())
    h += "<h2>Plots</h2>\n";
  for (const auto& p : contents.plots) {
    h += figure(p);
    if (p.file == "inclusion.svg")
      h += "<h3>Chi-square test of uniform inclusion</h3>\n" + inclusion_table(in.runs);
  }
  if (!contents.omitted.empty())
    h += "<h2>Plots left out</h2>\n" + bullet_list(contents.omitted);
  if (!contents.notes.empty())
    h += "<h2>Notes</h2>\n" + bullet_list(contents.notes);
  h += fmt::format("<p>Data in <code>data/</code>; redraw the plots with <code>cd {} &amp;&amp; "
                   "gnuplot plots.gp</code>.</p>\n</body>\n</html>\n",
                   html_escape(dir));
  return h;
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

std::string write_text(const fs::path& path, const std::string& text) {
  std::ofstream out{path, std::ios::trunc | std::ios::binary};
  out << text;
  out.flush();
  if (!out)
    return fmt::format("psgd report: cannot write {}", path.string());
  return {};
}

std::string make_directories(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir / "data", ec);
  if (ec || !fs::is_directory(dir / "data"))
    return fmt::format("psgd report: cannot create {}: {}", dir.string(),
                       ec ? ec.message() : std::string{"not a directory"});
  return {};
}

/// An SVG left by an earlier report must not pass for one gnuplot failed to draw.
void remove_old_svgs(const fs::path& dir, const std::vector<plot_spec>& plots) {
  std::error_code ec;
  for (const auto& p : plots)
    fs::remove(dir / p.info.file, ec);
}

std::string check_svgs(const fs::path& dir, const std::vector<plot_spec>& plots) {
  for (const auto& p : plots) {
    std::error_code ec;
    const auto size = fs::file_size(dir / p.info.file, ec);
    if (ec || size == 0)
      return fmt::format("psgd report: gnuplot drew no {} (see {})", p.info.file,
                         (dir / "gnuplot.log").string());
  }
  return {};
}

std::string no_runs_error(const std::vector<std::string>& files) {
  if (files.empty())
    return "psgd report: no input files";
  return fmt::format("psgd report: no runs in {} (no summary, eval or sweep_point lines)",
                     joined(files, ", "));
}

} // namespace

std::string failure_note(const std::string& file, const std::string& error) {
  return fmt::format("{}: the run failed ({})", file, error);
}

std::vector<std::string> distinct_files(const std::vector<std::string>& files) {
  std::vector<std::string> out;
  for (const auto& f : files) {
    const bool seen = std::any_of(out.begin(), out.end(),
                                  [&](const std::string& g) { return same_file(f, g); });
    if (!seen)
      out.push_back(f);
  }
  return out;
}

namespace {

outcome<report_contents> make_report(const std::vector<std::string>& given,
                                     const std::string& out_dir, const std::string& gnuplot) {
  using result = outcome<report_contents>;
  const auto files = distinct_files(given);
  inputs in;
  for (const auto& f : files)
    if (auto err = read_input(f, in); !err.empty())
      return result::failure(err);
  if (in.runs.empty() && in.sweep.empty())
    return result::failure(no_runs_error(files));
  label_runs(in.runs);
  note_restarts(in.runs, in.notes);
  const auto cells = sweep_cells(in.sweep);
  auto b = build_plots(in, cells);

  std::error_code ec;
  const fs::path dir = fs::absolute(out_dir, ec);
  if (ec)
    return result::failure(fmt::format("psgd report: cannot create {}: {}", out_dir, ec.message()));
  if (auto err = make_directories(dir); !err.empty())
    return result::failure(err);
  for (const auto& [name, text] : b.data_files)
    if (auto err = write_text(dir / name, text); !err.empty())
      return result::failure(err);
  if (auto err = write_text(dir / "plots.gp", gnuplot_script(b.plots)); !err.empty())
    return result::failure(err);
  if (!b.plots.empty()) {
    remove_old_svgs(dir, b.plots);
    if (auto err = run_gnuplot(gnuplot, dir.string()); !err.empty())
      return result::failure(err);
    if (auto err = check_svgs(dir, b.plots); !err.empty())
      return result::failure(err);
  }

  report_contents contents;
  for (auto& p : b.plots)
    contents.plots.push_back(p.info);
  contents.omitted = std::move(b.omitted);
  contents.notes = in.notes;
  if (auto err = write_text(dir / "index.html", page(in, cells, contents, dir.string()));
      !err.empty())
    return result::failure(err);
  return contents;
}

} // namespace

outcome<report_contents> write_report_plots(const std::vector<std::string>& jsonl_files,
                                            const std::string& out_dir,
                                            const std::string& gnuplot) {
  // The readers above do not throw; this catches what is left (allocation, filesystem).
  try {
    return make_report(jsonl_files, out_dir, gnuplot);
  } catch (const std::exception& e) {
    return outcome<report_contents>::failure(fmt::format("psgd report: {}", one_line(e.what())));
  }
}

std::string write_report(const std::vector<std::string>& jsonl_files, const std::string& out_dir) {
  auto r = write_report_plots(jsonl_files, out_dir);
  return r ? std::string{} : r.error();
}

} // namespace psgd
